"""Python type hints to model-facing JSON Schema, and Google-style docstring parsing.

The schema is what the model sees; validation itself is done by msgspec against the same
hints, so the two cannot drift apart for the supported types. Nested objects are inlined
(no ``$ref``) because several providers reject or mishandle references.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types
import typing
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, Union

import msgspec

__all__ = ["describe_docstring", "json_schema_for", "parse_docstring", "set_default"]

_NoneType = type(None)
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Returns|Return|"
    r"Yields|Raises|Examples|Example|Notes|Note|Attributes|See Also|Warnings|Warning):\s*$"
)
_ARG_SECTIONS = {"Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments"}
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring into its first paragraph and its ``Args:`` descriptions."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        header = _SECTION.match(stripped)
        if header and (len(line) - len(line.lstrip())) == 0:
            section, current, arg_indent = header.group(1), None, None
            continue
        if section not in _ARG_SECTIONS or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            section = None
            continue
        if arg_indent is None:
            arg_indent = indent
        match = _ARG_LINE.match(stripped)
        if indent == arg_indent and match:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None and indent > arg_indent:
            params[current] = f"{params[current]} {stripped}".strip()
    return " ".join(summary), params


def describe_docstring(obj: object) -> str:
    """The first paragraph of ``obj``'s docstring ("" when it has none)."""
    return parse_docstring(inspect.getdoc(obj))[0]


def json_schema_for(tp: Any) -> dict[str, Any]:
    """The JSON schema of one type hint (raises ``TypeError`` for unsupported hints)."""
    return _Builder().schema(tp)


class _Builder:
    def __init__(self) -> None:
        self._active: set[int] = set()

    def schema(self, tp: Any) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            base, *extras = typing.get_args(tp)
            out = self.schema(base)
            for extra in extras:
                _apply_annotation(out, extra)
            return out
        if tp is Any or tp is object or tp is inspect.Parameter.empty:
            return {}
        if tp is None or tp is _NoneType:
            return {"type": "null"}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp is float:
            return {"type": "number"}
        if tp is str:
            return {"type": "string"}
        if origin is Literal:
            return _enum_schema(list(typing.get_args(tp)))
        if origin is Union or origin is types.UnionType:
            return _union([self.schema(arg) for arg in typing.get_args(tp)])
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _enum_schema([member.value for member in tp])
        if origin is not None:
            return self._generic(tp, origin)
        if tp in (list, tuple, set, frozenset):
            return {"type": "array"}
        if tp is dict:
            return {"type": "object"}
        if isinstance(tp, type):
            return self._object(tp)
        raise TypeError(f"unsupported type hint for a tool argument: {tp!r}")

    def _generic(self, tp: Any, origin: Any) -> dict[str, Any]:
        args = typing.get_args(tp)
        if origin in (list, Sequence, MutableSequence):
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if origin in (set, frozenset, AbstractSet):
            out: dict[str, Any] = {"type": "array", "uniqueItems": True}
            if args:
                out["items"] = self.schema(args[0])
            return out
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0])}
            items = [self.schema(arg) for arg in args]
            return {
                "type": "array",
                "prefixItems": items,
                "minItems": len(items),
                "maxItems": len(items),
            }
        if origin in (dict, Mapping, MutableMapping):
            if args and args[0] is not str:
                raise TypeError(f"object keys must be str, got {args[0]!r}")
            value = self.schema(args[1]) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": value}
        raise TypeError(f"unsupported type hint for a tool argument: {tp!r}")

    def _object(self, cls: type) -> dict[str, Any]:
        if id(cls) in self._active:
            raise TypeError(f"recursive type {cls.__name__} is not supported in tool arguments")
        self._active.add(id(cls))
        try:
            fields = _object_fields(cls)
            properties: dict[str, Any] = {}
            required: list[str] = []
            for name, hint, is_required, default in fields:
                prop = self.schema(hint)
                if not is_required and default is not _MISSING:
                    set_default(prop, default)
                properties[name] = prop
                if is_required:
                    required.append(name)
            out: dict[str, Any] = {"type": "object", "properties": properties}
            if required:
                out["required"] = required
            out["additionalProperties"] = False
            return out
        finally:
            self._active.discard(id(cls))


_MISSING = object()


def _object_fields(cls: type) -> list[tuple[str, Any, bool, Any]]:
    """(wire name, hint, required, default) for a Struct, dataclass or TypedDict."""
    if issubclass(cls, msgspec.Struct):
        hints = typing.get_type_hints(cls, include_extras=True)
        rows = []
        for field in msgspec.structs.fields(cls):
            default = field.default if field.default is not msgspec.NODEFAULT else _MISSING
            rows.append((field.encode_name, hints[field.name], field.required, default))
        return rows
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls, include_extras=True)
        rows = []
        for dc_field in dataclasses.fields(cls):
            if not dc_field.init:
                continue
            has_default = dc_field.default is not dataclasses.MISSING
            has_factory = dc_field.default_factory is not dataclasses.MISSING
            default = dc_field.default if has_default else _MISSING
            rows.append(
                (dc_field.name, hints[dc_field.name], not (has_default or has_factory), default)
            )
        return rows
    if typing.is_typeddict(cls):
        hints = typing.get_type_hints(cls, include_extras=True)
        required_keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
        return [
            (key, _strip_required(hint), key in required_keys, _MISSING)
            for key, hint in hints.items()
        ]
    raise TypeError(
        f"unsupported type hint for a tool argument: {cls!r} "
        "(use a msgspec Struct, dataclass or TypedDict for nested objects)"
    )


def _strip_required(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Required, typing.NotRequired):
        return typing.get_args(hint)[0]
    return hint


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    values = [v.value if isinstance(v, enum.Enum) else v for v in values]
    out: dict[str, Any] = {}
    kinds = {_json_type(v) for v in values}
    if len(kinds) == 1:
        out["type"] = kinds.pop()
    out["enum"] = values
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _union(members: list[dict[str, Any]]) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for member in members:
        if set(member) == {"anyOf"}:
            flat.extend(member["anyOf"])
        elif member not in flat:
            flat.append(member)
    if all(set(m) == {"type"} and isinstance(m["type"], str) for m in flat):
        kinds = [m["type"] for m in flat]
        return {"type": kinds[0] if len(kinds) == 1 else kinds}
    return {"anyOf": flat}


def _apply_annotation(schema: dict[str, Any], extra: Any) -> None:
    if isinstance(extra, str):
        schema["description"] = extra
        return
    if not isinstance(extra, msgspec.Meta):
        return
    kind = schema.get("type")
    for attr, key in (
        ("gt", "exclusiveMinimum"),
        ("ge", "minimum"),
        ("lt", "exclusiveMaximum"),
        ("le", "maximum"),
        ("multiple_of", "multipleOf"),
        ("pattern", "pattern"),
        ("title", "title"),
        ("description", "description"),
        ("examples", "examples"),
    ):
        value = getattr(extra, attr)
        if value is not None:
            schema[key] = value
    for attr, suffix in (("min_length", "min"), ("max_length", "max")):
        value = getattr(extra, attr)
        if value is None:
            continue
        if kind == "string":
            schema[f"{suffix}Length"] = value
        elif kind == "object":
            schema[f"{suffix}Properties"] = value
        else:
            schema[f"{suffix}Items"] = value


def set_default(schema: dict[str, Any], default: Any) -> None:
    """Record ``default`` in ``schema`` when it has a JSON form (skipped otherwise)."""
    try:
        schema["default"] = msgspec.json.decode(msgspec.json.encode(default))
    except (TypeError, msgspec.EncodeError):
        pass
