"""Stable runtime error codes, the durable store facets they name, and the error types.

Callers match :class:`RuntimeErrorCode` values, never message text. A code serialises to
the same snake_case string lash uses in traces and host errors; an unknown string parses
to an open code that round-trips unchanged (plugin abort codes live there).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar, Final

__all__ = [
    "DurableStoreFacet",
    "EmbedError",
    "LashRuntimeError",
    "RuntimeErrorCode",
    "StoreError",
    "StoreErrorKind",
]


class DurableStoreFacet(enum.Enum):
    """A store facet that a durable execution path needs to be durable."""

    ATTACHMENT_STORE = "attachment_store"
    PROCESS_ENV_STORE = "process_env_store"
    SESSION_STORE = "session_store"
    PROCESS_REGISTRY = "process_registry"
    TRIGGER_STORE = "trigger_store"

    @property
    def code(self) -> str:
        """The full ``durable_store_required:<facet>`` code string."""
        return f"durable_store_required:{self.value}"

    @property
    def label(self) -> str:
        """Human label used in messages ("attachment store", ...)."""
        return self.value.replace("_", " ")


_KNOWN: Final = (
    "missing_execution_scope_id",
    "execution_scope_turn_id_mismatch",
    "session_execution_busy",
    "session_execution_lease_lost",
    "missing_process_execution_id",
    "store_commit_failed",
    "plugin_session_manager",
    "plugin_finalize_turn",
    "plugin_checkpoint",
    "plugin_prepare_turn",
    "context_prepare_turn",
    "protocol_turn_extension",
    "protocol_before_llm_call",
    "turn_stream_join",
    "empty_agent_frame_run",
    "durable_effect_live_protocol_extension",
    "durable_effect_live_plugin_input",
)


class RuntimeErrorCode:
    """A stable runtime error code: one of lash's named codes or an open string.

    Named codes are class attributes in UPPER_SNAKE (``RuntimeErrorCode.STORE_COMMIT_FAILED``);
    ``str(code)`` is the exact wire string. Codes compare and hash by that string, so a code
    parsed from JSON equals the constant it names.
    """

    __slots__ = ("_value",)

    MISSING_EXECUTION_SCOPE_ID: ClassVar[RuntimeErrorCode]
    EXECUTION_SCOPE_TURN_ID_MISMATCH: ClassVar[RuntimeErrorCode]
    SESSION_EXECUTION_BUSY: ClassVar[RuntimeErrorCode]
    SESSION_EXECUTION_LEASE_LOST: ClassVar[RuntimeErrorCode]
    MISSING_PROCESS_EXECUTION_ID: ClassVar[RuntimeErrorCode]
    STORE_COMMIT_FAILED: ClassVar[RuntimeErrorCode]
    PLUGIN_SESSION_MANAGER: ClassVar[RuntimeErrorCode]
    PLUGIN_FINALIZE_TURN: ClassVar[RuntimeErrorCode]
    PLUGIN_CHECKPOINT: ClassVar[RuntimeErrorCode]
    PLUGIN_PREPARE_TURN: ClassVar[RuntimeErrorCode]
    CONTEXT_PREPARE_TURN: ClassVar[RuntimeErrorCode]
    PROTOCOL_TURN_EXTENSION: ClassVar[RuntimeErrorCode]
    PROTOCOL_BEFORE_LLM_CALL: ClassVar[RuntimeErrorCode]
    TURN_STREAM_JOIN: ClassVar[RuntimeErrorCode]
    EMPTY_AGENT_FRAME_RUN: ClassVar[RuntimeErrorCode]
    DURABLE_EFFECT_LIVE_PROTOCOL_EXTENSION: ClassVar[RuntimeErrorCode]
    DURABLE_EFFECT_LIVE_PLUGIN_INPUT: ClassVar[RuntimeErrorCode]

    def __init__(self, value: str) -> None:
        self._value = str(value)

    @property
    def value(self) -> str:
        """The wire string."""
        return self._value

    @property
    def is_known(self) -> bool:
        """True for lash's named codes (including every durable-store facet code)."""
        return self._value in _KNOWN or self.facet is not None

    @property
    def facet(self) -> DurableStoreFacet | None:
        """The facet of a ``durable_store_required:*`` code, else ``None``."""
        prefix = "durable_store_required:"
        if self._value.startswith(prefix):
            try:
                return DurableStoreFacet(self._value[len(prefix) :])
            except ValueError:
                return None
        return None

    @property
    def is_retryable(self) -> bool:
        """Only a busy session and a lost lease are worth retrying as-is."""
        return self._value in ("session_execution_busy", "session_execution_lease_lost")

    @property
    def is_terminal(self) -> bool:
        """Wiring and identity errors that no retry can fix."""
        return self.facet is not None or self._value in (
            "missing_execution_scope_id",
            "execution_scope_turn_id_mismatch",
            "missing_process_execution_id",
            "durable_effect_live_protocol_extension",
            "durable_effect_live_plugin_input",
        )

    @classmethod
    def parse(cls, value: str | RuntimeErrorCode) -> RuntimeErrorCode:
        """Map any string to its code; unknown strings become open codes."""
        if isinstance(value, RuntimeErrorCode):
            return value
        return _BY_VALUE.get(value) or cls(value)

    @classmethod
    def durable_store_required(cls, facet: DurableStoreFacet) -> RuntimeErrorCode:
        """The ``durable_store_required:<facet>`` code."""
        return cls.parse(facet.code)

    @classmethod
    def known(cls) -> tuple[RuntimeErrorCode, ...]:
        """Every named code, facet codes included (for exhaustive tests)."""
        return tuple(_BY_VALUE.values())

    def __str__(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"RuntimeErrorCode({self._value!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RuntimeErrorCode):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("RuntimeErrorCode", self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        return (RuntimeErrorCode.parse, (self._value,))


_BY_VALUE: dict[str, RuntimeErrorCode] = {}
for _name in _KNOWN:
    _code = RuntimeErrorCode(_name)
    _BY_VALUE[_name] = _code
    setattr(RuntimeErrorCode, _name.upper(), _code)
for _facet in DurableStoreFacet:
    _BY_VALUE[_facet.code] = RuntimeErrorCode(_facet.code)
del _name, _code, _facet


class LashRuntimeError(Exception):
    """A runtime failure with a stable :class:`RuntimeErrorCode`.

    ``str(err)`` is ``"<code>: <message>"``; :meth:`to_dict`/:meth:`from_dict` round-trip
    losslessly through JSON.
    """

    def __init__(self, code: RuntimeErrorCode | str, message: str) -> None:
        self.code: RuntimeErrorCode = RuntimeErrorCode.parse(code)
        self.message: str = message
        super().__init__(f"{self.code}: {message}")

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"LashRuntimeError({str(self.code)!r}, {self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (LashRuntimeError, (str(self.code), self.message))

    def is_code(self, code: RuntimeErrorCode | str) -> bool:
        """True when this error carries ``code``."""
        return self.code == RuntimeErrorCode.parse(code)

    @property
    def is_retryable(self) -> bool:
        """See :attr:`RuntimeErrorCode.is_retryable`."""
        return self.code.is_retryable

    @property
    def is_terminal(self) -> bool:
        """See :attr:`RuntimeErrorCode.is_terminal`."""
        return self.code.is_terminal

    def to_dict(self) -> dict[str, str]:
        """``{"code": ..., "message": ...}``."""
        return {"code": str(self.code), "message": self.message}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LashRuntimeError:
        """Inverse of :meth:`to_dict`; unknown codes are kept verbatim."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a runtime error must be a mapping, not {type(data).__name__}")
        code = data.get("code")
        message = data.get("message")
        if not isinstance(code, str) or not isinstance(message, str):
            raise ValueError("a runtime error needs string 'code' and 'message' fields")
        return cls(code, message)

    @classmethod
    def durable_store_required(cls, facet: DurableStoreFacet) -> LashRuntimeError:
        """A durable effect host was wired to an ephemeral ``facet``."""
        return cls(
            RuntimeErrorCode.durable_store_required(facet),
            f"durable effect hosts require a durable {facet.label}",
        )

    @classmethod
    def missing_process_execution_id(cls) -> LashRuntimeError:
        """A process (re-)execution lost its stable persisted id."""
        return cls(
            RuntimeErrorCode.MISSING_PROCESS_EXECUTION_ID,
            "process execution requires a non-empty persisted process id",
        )


class StoreErrorKind(enum.Enum):
    """Store-level failure kinds (persistence.md §3.12)."""

    SESSION_BINDING_MISMATCH = "session_binding_mismatch"
    HEAD_REVISION_CONFLICT = "head_revision_conflict"
    RUNTIME_TURN_COMMIT_CONFLICT = "runtime_turn_commit_conflict"
    SESSION_EXECUTION_LEASE_EXPIRED = "session_execution_lease_expired"
    QUEUED_WORK_CLAIM_SUPERSEDED = "queued_work_claim_superseded"
    TURN_INPUT_CLAIM_SUPERSEDED = "turn_input_claim_superseded"
    UNSETTLED_QUEUED_WORK_CLAIM = "unsettled_queued_work_claim"
    UNSETTLED_TURN_INPUT_CLAIM = "unsettled_turn_input_claim"
    PENDING_TURN_INPUT_SOURCE_KEY_CONFLICT = "pending_turn_input_source_key_conflict"
    UNSUPPORTED_READ_SCOPE = "unsupported_read_scope"
    RECORD_SCHEMA_VERSION = "record_schema_version"
    NOT_FOUND = "not_found"
    INVALID_ARGUMENT = "invalid_argument"
    CORRUPT = "corrupt"
    SCHEMA_TOO_NEW = "schema_too_new"
    READ_ONLY = "read_only"
    DISK_FULL = "disk_full"
    BACKEND = "backend"


class StoreError(Exception):
    """A typed store failure; the runtime maps it onto a :class:`RuntimeErrorCode`."""

    def __init__(self, kind: StoreErrorKind, message: str, **details: Any) -> None:
        self.kind = kind
        self.message = message
        self.details: dict[str, Any] = details
        super().__init__(f"{kind.value}: {message}")

    @property
    def retryable(self) -> bool:
        """Conflicts that a fresh attempt may win."""
        return self.kind in (
            StoreErrorKind.HEAD_REVISION_CONFLICT,
            StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
        ) or bool(self.details.get("retryable", False))

    def to_runtime_error(self) -> LashRuntimeError:
        """Lease expiry becomes a lost lease; everything else a failed commit."""
        if self.kind is StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED:
            return LashRuntimeError(RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST, self.message)
        return LashRuntimeError(RuntimeErrorCode.STORE_COMMIT_FAILED, str(self))


class EmbedError(Exception):
    """A facade wiring or usage error (missing model, store peers that disagree, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}")

    @property
    def is_terminal(self) -> bool:
        """Wiring errors never fix themselves."""
        return self.kind != "session_still_in_use"
