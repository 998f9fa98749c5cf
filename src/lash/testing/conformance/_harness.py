"""The harness a backend hands to the conformance kit, and the case/suite bookkeeping.

A backend describes itself once, as a :class:`StoreHarness`: how to open a fresh store, and —
for durable backends — how to open a second handle over the same backing data. Suites are
plain lists of :class:`Case` objects; :func:`conformance_params` turns them into
``pytest.param`` objects with ids ``"<backend>-<suite>-<case>"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from lash.clock import ManualClock
from lash.stores.base import AttachmentStore, DurabilityTier, ProcessEnvStore, SessionStore

__all__ = [
    "CAPABILITIES",
    "Case",
    "CaseSkipped",
    "HarnessFactory",
    "StoreHarness",
    "Suite",
    "conformance_params",
    "run_case",
]

CAPABILITIES = frozenset(
    {
        "reopen",
        "attachments",
        "attachments_reopen",
        "process_envs",
        "process_envs_reopen",
        "linux_proc",
    }
)
"""What a case may require. ``linux_proc`` is met when ``/proc`` liveness proofs work."""


class CaseSkipped(Exception):
    """Raised by a case that cannot run here (e.g. no ``/proc``); the runner skips it."""


@dataclasses.dataclass
class StoreHarness:
    """One backend, as the kit sees it.

    ``open`` returns a fresh store; ``reopen(store)`` a second handle over the same backing
    data (durable backends only). The attachment and process-env factories work the same
    way. Every handle the harness opens is closed by :meth:`aclose`; ``cleanup`` then runs
    (drop a database, stop a container, ...).
    """

    name: str
    tier: DurabilityTier
    clock: ManualClock
    open_store: Callable[[], Awaitable[SessionStore]]
    reopen_store: Callable[[SessionStore], Awaitable[SessionStore]] | None = None
    open_attachments: Callable[[], Awaitable[AttachmentStore]] | None = None
    reopen_attachments_fn: Callable[[AttachmentStore], Awaitable[AttachmentStore]] | None = None
    open_process_envs: Callable[[], Awaitable[ProcessEnvStore]] | None = None
    reopen_process_envs_fn: Callable[[ProcessEnvStore], Awaitable[ProcessEnvStore]] | None = None
    cleanup: Callable[[], Awaitable[None]] | None = None
    _opened: list[Any] = dataclasses.field(default_factory=list, repr=False)

    @property
    def capabilities(self) -> frozenset[str]:
        """The optional features this backend offers."""
        from lash.stores.liveness import current_liveness

        caps: set[str] = set()
        if self.reopen_store is not None:
            caps.add("reopen")
        if self.open_attachments is not None:
            caps.add("attachments")
            if self.reopen_attachments_fn is not None:
                caps.add("attachments_reopen")
        if self.open_process_envs is not None:
            caps.add("process_envs")
            if self.reopen_process_envs_fn is not None:
                caps.add("process_envs_reopen")
        if current_liveness() is not None:
            caps.add("linux_proc")
        return frozenset(caps)

    def _track(self, handle: Any) -> Any:
        self._opened.append(handle)
        return handle

    async def open(self) -> SessionStore:
        """A fresh store."""
        return self._track(await self.open_store())  # type: ignore[no-any-return]

    async def reopen(self, store: SessionStore) -> SessionStore:
        """A second handle over ``store``'s backing data."""
        if self.reopen_store is None:
            raise CaseSkipped(f"{self.name} cannot reopen a store")
        return self._track(await self.reopen_store(store))  # type: ignore[no-any-return]

    async def second_handle(self, store: SessionStore) -> SessionStore:
        """Another handle if the backend can reopen, else ``store`` itself.

        Concurrency cases race two handles where they exist and one handle otherwise.
        """
        if self.reopen_store is None:
            return store
        return await self.reopen(store)

    async def attachments(self) -> AttachmentStore:
        """A fresh attachment store."""
        if self.open_attachments is None:
            raise CaseSkipped(f"{self.name} has no attachment store")
        return self._track(await self.open_attachments())  # type: ignore[no-any-return]

    async def reopen_attachments(self, store: AttachmentStore) -> AttachmentStore:
        """A second handle over an attachment store's backing data."""
        if self.reopen_attachments_fn is None:
            raise CaseSkipped(f"{self.name} cannot reopen its attachment store")
        return self._track(await self.reopen_attachments_fn(store))  # type: ignore[no-any-return]

    async def process_envs(self) -> ProcessEnvStore:
        """A fresh process-env store."""
        if self.open_process_envs is None:
            raise CaseSkipped(f"{self.name} has no process-env store")
        return self._track(await self.open_process_envs())  # type: ignore[no-any-return]

    async def reopen_process_envs(self, store: ProcessEnvStore) -> ProcessEnvStore:
        """A second handle over a process-env store's backing data."""
        if self.reopen_process_envs_fn is None:
            raise CaseSkipped(f"{self.name} cannot reopen its process-env store")
        return self._track(await self.reopen_process_envs_fn(store))  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close every handle opened through the harness (newest first), then clean up."""
        while self._opened:
            handle = self._opened.pop()
            close = getattr(handle, "aclose", None)
            if close is not None:
                await close()
        if self.cleanup is not None:
            await self.cleanup()


HarnessFactory = Callable[[Path], StoreHarness]
"""Builds a fresh harness; gets a private temporary directory for file-backed stores."""

CaseFn = Callable[[StoreHarness], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Case:
    """One conformance check: an async function of a harness."""

    suite: str
    name: str
    fn: CaseFn
    requires: frozenset[str] = frozenset()
    reason: str = ""
    """Why the requirement exists (shown when the case is skipped)."""

    @property
    def id(self) -> str:
        """``<suite>-<case>``."""
        return f"{self.suite}-{self.name}"


class Suite:
    """A named, ordered list of cases, filled by the :meth:`case` decorator."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cases: list[Case] = []

    def case(self, *, requires: Iterable[str] = (), reason: str = "") -> Callable[[CaseFn], CaseFn]:
        """Register an ``async def name(h: StoreHarness)`` as a case of this suite."""
        needs = frozenset(requires)
        unknown = needs - CAPABILITIES
        if unknown:
            raise ValueError(f"unknown capabilities {sorted(unknown)}")

        def register(fn: CaseFn) -> CaseFn:
            self.cases.append(Case(self.name, fn.__name__, fn, needs, reason))
            return fn

        return register


async def run_case(factory: HarnessFactory, case: Case, tmp_path: Path) -> None:
    """Run one case on a fresh harness; skip (via pytest) when a capability is missing."""
    harness = factory(tmp_path)
    try:
        missing = case.requires - harness.capabilities
        if missing:
            _skip(f"{harness.name} lacks {sorted(missing)}: {case.reason or 'not applicable'}")
        try:
            await case.fn(harness)
        except CaseSkipped as skipped:
            _skip(str(skipped))
    finally:
        await harness.aclose()


def _skip(reason: str) -> None:
    import pytest

    pytest.skip(reason)


def conformance_params(backends: Mapping[str, HarnessFactory], cases: Iterable[Case]) -> list[Any]:
    """``pytest.param(factory, case, id="<backend>-<suite>-<case>")`` for every pair."""
    import pytest

    case_list = list(cases)
    return [
        pytest.param(factory, case, id=f"{backend}-{case.id}")
        for backend, factory in backends.items()
        for case in case_list
    ]
