"""Turn typed Python functions (or hand-written JSON schemas) into :class:`Tool` objects.

``@tool`` reads the function's signature once: type hints give the model-facing JSON schema
and a msgspec argument type, the docstring gives the description. At call time arguments are
converted with msgspec *before* user code runs, so a tool body only ever sees valid, typed
values; bad arguments become an ``invalid_tool_args`` failure naming the field.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, get_args, overload

import msgspec

from lash.tools._jsonschema import SchemaError, check_schema, validate
from lash.tools._outputs import failure, failure_from_exception, success
from lash.tools._schema import json_schema_for, parse_docstring, set_default
from lash.tools.base import ToolContext, ToolRetryPolicy
from lash.types import ToolCallOutput, ToolSpec

__all__ = ["FunctionTool", "SchemaError", "tool"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_POLICIES: tuple[str, ...] = get_args(ToolRetryPolicy)

_Prepared = tuple[tuple[Any, ...], dict[str, Any]]
_Preparer = Callable[[ToolContext, Mapping[str, Any]], _Prepared]


class _ArgumentError(Exception):
    """Arguments did not match the tool's schema."""


class FunctionTool:
    """A :class:`~lash.tools.base.Tool` backed by a Python callable.

    Build one with :func:`tool` (typed function) or :meth:`from_schema` (explicit schema).
    Calling the object directly calls the wrapped function unchanged, which keeps the
    decorated function usable (and testable) as plain Python.

    ``max_attempts``/``base_delay_ms``/``max_delay_ms`` override the dispatcher's retry
    defaults for this tool; they only matter when ``retry`` is ``safe`` or ``idempotent``.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        spec: ToolSpec,
        prepare: _Preparer,
        retry: ToolRetryPolicy = "never",
        max_attempts: int | None = None,
        base_delay_ms: int | None = None,
        max_delay_ms: int | None = None,
        threaded: bool = True,
    ) -> None:
        if not _NAME.match(spec.name):
            raise ValueError(
                f"invalid tool name {spec.name!r}: use 1-64 letters, digits, '_' or '-'"
            )
        if retry not in _POLICIES:
            raise ValueError(f"invalid retry policy {retry!r}: expected one of {_POLICIES}")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._fn = fn
        self._spec = spec
        self._prepare = prepare
        self._retry: ToolRetryPolicy = retry
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
        )
        self._threaded = threaded
        self.max_attempts = max_attempts
        self.base_delay_ms = base_delay_ms
        self.max_delay_ms = max_delay_ms
        self.__wrapped__ = fn
        self.__doc__ = getattr(fn, "__doc__", None)

    @property
    def spec(self) -> ToolSpec:
        """Name, description and argument schema."""
        return self._spec

    @property
    def name(self) -> str:
        """The model-facing tool name."""
        return self._spec.name

    @property
    def retry_policy(self) -> ToolRetryPolicy:
        """Whether failed attempts may be retried."""
        return self._retry

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionTool(name={self._spec.name!r}, retry={self._retry!r})"

    async def invoke(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolCallOutput:
        """Validate ``arguments``, run the function, and map its result or error to an output."""
        try:
            args, kwargs = self._prepare(ctx, arguments)
        except _ArgumentError as exc:
            return failure(
                "invalid_tool_args", f"Invalid arguments for tool '{self._spec.name}': {exc}"
            )
        try:
            if self._is_async or not self._threaded:
                result = self._fn(*args, **kwargs)
            else:
                result = await asyncio.to_thread(self._fn, *args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # CancelledError is a BaseException and propagates
            return failure_from_exception(exc)
        return _to_output(result)

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        fn: Callable[..., Any],
        *,
        retry: ToolRetryPolicy = "never",
        max_attempts: int | None = None,
        base_delay_ms: int | None = None,
        max_delay_ms: int | None = None,
        threaded: bool = True,
    ) -> FunctionTool:
        """A tool with a hand-written JSON schema.

        ``fn`` is called as ``fn(arguments)`` or, when it takes two positional parameters,
        ``fn(ctx, arguments)``; ``arguments`` is the validated dict. Validation covers the
        subset of JSON Schema in :mod:`lash.tools._jsonschema`.
        """
        schema = dict(parameters)
        check_schema(schema)
        if schema.get("type", "object") != "object":
            raise SchemaError("a tool's parameters schema must describe an object")
        wants_ctx = _positional_count(fn) >= 2

        def prepare(ctx: ToolContext, arguments: Mapping[str, Any]) -> _Prepared:
            data = _as_object(arguments)
            problem = validate(data, schema)
            if problem is not None:
                raise _ArgumentError(problem)
            return ((ctx, data) if wants_ctx else (data,)), {}

        spec = ToolSpec(name=name, description=description, parameters=schema)
        return cls(
            fn,
            spec=spec,
            prepare=prepare,
            retry=retry,
            max_attempts=max_attempts,
            base_delay_ms=base_delay_ms,
            max_delay_ms=max_delay_ms,
            threaded=threaded,
        )


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    retry: ToolRetryPolicy = "never",
    max_attempts: int | None = None,
    base_delay_ms: int | None = None,
    max_delay_ms: int | None = None,
    threaded: bool = True,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    retry: ToolRetryPolicy = "never",
    max_attempts: int | None = None,
    base_delay_ms: int | None = None,
    max_delay_ms: int | None = None,
    threaded: bool = True,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a tool from a typed (sync or async) function.

    A parameter annotated :class:`ToolContext` receives the call context and is not part of
    the schema. Sync functions run in a worker thread unless ``threaded=False``.
    """

    def build(func: Callable[..., Any]) -> FunctionTool:
        spec, prepare = _typed_signature(func, name=name, description=description)
        return FunctionTool(
            func,
            spec=spec,
            prepare=prepare,
            retry=retry,
            max_attempts=max_attempts,
            base_delay_ms=base_delay_ms,
            max_delay_ms=max_delay_ms,
            threaded=threaded,
        )

    return build(fn) if fn is not None else build


def _typed_signature(
    fn: Callable[..., Any], *, name: str | None, description: str | None
) -> tuple[ToolSpec, _Preparer]:
    tool_name = name or getattr(fn, "__name__", None)
    if not tool_name:
        raise TypeError("cannot infer a tool name; pass name=...")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise TypeError(f"cannot resolve the type hints of tool {tool_name!r}: {exc}") from exc
    summary, arg_docs = parse_docstring(inspect.getdoc(fn))
    signature = inspect.signature(fn)

    properties: dict[str, Any] = {}
    required: list[str] = []
    fields: list[Any] = []
    # How to rebuild the call: (parameter name, kind, receives the context?).
    plan: list[tuple[str, Any, bool]] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name!r}: *args/**kwargs parameters are not supported")
        hint = hints.get(param.name, Any)
        if _is_context(hint):
            plan.append((param.name, param.kind, True))
            continue
        try:
            prop = json_schema_for(hint)
        except TypeError as exc:
            raise TypeError(f"tool {tool_name!r}, parameter {param.name!r}: {exc}") from exc
        if "description" not in prop and param.name in arg_docs:
            prop["description"] = arg_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
            fields.append((param.name, hint))
        else:
            set_default(prop, param.default)
            fields.append((param.name, hint, _field_default(param.default)))
        properties[param.name] = prop
        plan.append((param.name, param.kind, False))

    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    parameters["additionalProperties"] = False
    args_type = msgspec.defstruct(
        f"{tool_name}_arguments", fields, kw_only=True, forbid_unknown_fields=True
    )
    try:  # msgspec checks the hints (and their constraints) when a decoder is built
        msgspec.json.Decoder(args_type)
    except TypeError as exc:
        raise TypeError(f"tool {tool_name!r}: unsupported argument types: {exc}") from exc

    def prepare(ctx: ToolContext, arguments: Mapping[str, Any]) -> _Prepared:
        data = _as_object(arguments)
        try:
            parsed = msgspec.convert(data, args_type)
        except msgspec.ValidationError as exc:
            raise _ArgumentError(str(exc)) from exc
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param_name, kind, is_ctx in plan:
            value = ctx if is_ctx else getattr(parsed, param_name)
            if kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[param_name] = value
        return tuple(args), kwargs

    spec = ToolSpec(
        name=tool_name,
        description=description if description is not None else summary,
        parameters=parameters,
    )
    return spec, prepare


def _is_context(hint: Any) -> bool:
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return isinstance(hint, type) and issubclass(hint, ToolContext)


def _field_default(default: Any) -> Any:
    if isinstance(default, list | dict | set | bytearray):
        return msgspec.field(default_factory=lambda: copy.deepcopy(default))
    return default


def _as_object(arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    if arguments is None:
        return {}
    if not isinstance(arguments, Mapping):
        raise _ArgumentError(f"arguments must be a JSON object, got {type(arguments).__name__}")
    return dict(arguments)


def _positional_count(fn: Callable[..., Any]) -> int:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    return sum(
        1
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )


def _to_output(result: Any) -> ToolCallOutput:
    if isinstance(result, ToolCallOutput):
        return result
    if result is None or isinstance(result, str):
        return success(result)
    try:
        return success(msgspec.to_builtins(result))
    except TypeError as exc:
        return failure("tool_error", f"TypeError: tool result is not JSON-serialisable: {exc}")
