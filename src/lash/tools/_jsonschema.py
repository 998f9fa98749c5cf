"""A small JSON-schema subset checker for hand-written tool schemas.

Supported keywords: ``type``, ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``prefixItems``, ``minItems``/``maxItems``,
``minLength``/``maxLength``, ``minimum``/``maximum`` (and exclusive forms), ``pattern``,
``anyOf``/``oneOf``/``allOf`` and local ``$ref`` (``#/$defs/...``). Unknown keywords are
annotations and are ignored, as JSON Schema says. A non-local ``$ref`` is refused when the
tool is built, never silently skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["SchemaError", "check_schema", "validate"]


class SchemaError(ValueError):
    """The schema itself is unusable (e.g. a non-local ``$ref``)."""


def check_schema(schema: Mapping[str, Any]) -> None:
    """Refuse schemas this checker cannot honour."""
    if not isinstance(schema, Mapping):
        raise SchemaError("a tool schema must be a JSON object")
    _check_refs(schema, schema)


def _check_refs(node: Any, root: Mapping[str, Any]) -> None:
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if ref is not None:
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise SchemaError(f"non-local $ref {ref!r} is not supported")
            _resolve(root, ref)
        for value in node.values():
            _check_refs(value, root)
    elif isinstance(node, list):
        for item in node:
            _check_refs(item, root)


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    node: Any = root
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or key not in node:
            raise SchemaError(f"unresolvable $ref {ref!r}")
        node = node[key]
    if not isinstance(node, Mapping):
        raise SchemaError(f"$ref {ref!r} does not name a schema")
    return node


def validate(value: Any, schema: Mapping[str, Any]) -> str | None:
    """The first problem with ``value`` (naming its path), or ``None`` when it is valid."""
    return _Validator(schema).check(value, schema, "$")


_TYPE_NAMES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
    "array": "array",
    "object": "object",
}


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _is_type(value: Any, name: str) -> bool:
    actual = _type_of(value)
    if name == "number":
        return actual in ("integer", "number")
    if name == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == name


def _equal(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


class _Validator:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root

    def check(self, value: Any, schema: Any, path: str) -> str | None:
        if schema is True or schema is None:
            return None
        if schema is False:
            return f"`{path}`: no value is allowed here"
        if not isinstance(schema, Mapping):
            return None
        if "$ref" in schema:
            problem = self.check(value, _resolve(self._root, schema["$ref"]), path)
            if problem:
                return problem
        for check in (
            self._type,
            self._enum,
            self._combinators,
            self._string,
            self._number,
            self._array,
            self._object,
        ):
            problem = check(value, schema, path)
            if problem:
                return problem
        return None

    def _type(self, value: Any, schema: Mapping[str, Any], path: str) -> str | None:
        expected = schema.get("type")
        if expected is None:
            return None
        names = [expected] if isinstance(expected, str) else list(expected)
        if any(_is_type(value, str(name)) for name in names):
            return None
        wanted = " or ".join(_TYPE_NAMES.get(str(n), str(n)) for n in names)
        return f"`{path}`: expected {wanted}, got {_type_of(value)}"

    def _enum(self, value: Any, schema: Mapping[str, Any], path: str) -> str | None:
        if "const" in schema and not _equal(value, schema["const"]):
            return f"`{path}`: expected {schema['const']!r}, got {value!r}"
        options = schema.get("enum")
        if options is not None and not any(_equal(value, option) for option in options):
            allowed = ", ".join(repr(o) for o in options)
            return f"`{path}`: {value!r} is not one of {allowed}"
        return None

    def _combinators(self, value: Any, schema: Mapping[str, Any], path: str) -> str | None:
        for sub in schema.get("allOf", ()):
            problem = self.check(value, sub, path)
            if problem:
                return problem
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if options is None:
                continue
            problems = [self.check(value, sub, path) for sub in options]
            passed = sum(1 for p in problems if p is None)
            if passed == 0:
                return next((p for p in problems if p), f"`{path}`: matches no allowed schema")
            if key == "oneOf" and passed > 1:
                return f"`{path}`: matches more than one allowed schema"
        return None

    def _string(self, value: Any, schema: Mapping[str, Any], path: str) -> str | None:
        if not isinstance(value, str):
            return None
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"`{path}`: shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"`{path}`: longer than {schema['maxLength']} characters"
        pattern = schema.get("pattern")
        if pattern is not None and re.search(pattern, value) is None:
            return f"`{path}`: does not match pattern {pattern!r}"
        return None

    def _number(self, value: Any, schema: Mapping[str, Any], path: str) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if "minimum" in schema and value < schema["minimum"]:
            return f"`{path}`: must be >= {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"`{path}`: must be <= {schema['maximum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return f"`{path}`: must be > {schema['exclusiveMinimum']}"
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return f"`{path}`: must be < {schema['exclusiveMaximum']}"
        return None

    def _array(self, value: Any, schema: Mapping[str, Any], path: str) -> str | None:
        if not isinstance(value, list | tuple):
            return None
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"`{path}`: needs at least {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"`{path}`: allows at most {schema['maxItems']} items"
        prefix = schema.get("prefixItems", ())
        for index, (item, sub) in enumerate(zip(value, prefix, strict=False)):
            problem = self.check(item, sub, f"{path}[{index}]")
            if problem:
                return problem
        items = schema.get("items")
        if items is not None:
            for index in range(len(prefix), len(value)):
                problem = self.check(value[index], items, f"{path}[{index}]")
                if problem:
                    return problem
        return None

    def _object(self, value: Any, schema: Mapping[str, Any], path: str) -> str | None:
        if not isinstance(value, Mapping):
            return None
        for key in schema.get("required", ()):
            if key not in value:
                return f"`{path}`: missing required field `{key}`"
        properties: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            child = f"{path}.{key}"
            if key in properties:
                problem = self.check(item, properties[key], child)
            elif extra is False:
                problem = f"`{path}`: unknown field `{key}`"
            else:
                problem = self.check(item, extra, child)
            if problem:
                return problem
        return None
