"""The JSON-schema subset checker used by explicit-schema tools."""

from typing import Any

import pytest

from lash.tools._jsonschema import SchemaError, check_schema, validate

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"},
        "count": {"type": "integer", "minimum": 0, "maximum": 10},
        "ratio": {"type": "number", "exclusiveMaximum": 1},
        "mode": {"enum": ["a", "b"]},
        "flag": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "opt": {"type": ["string", "null"]},
        "nested": {"$ref": "#/$defs/Nested"},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    },
    "required": ["name"],
    "additionalProperties": False,
    "$defs": {
        "Nested": {
            "type": "object",
            "properties": {"x": {"type": "integer"}},
            "required": ["x"],
        }
    },
}


def test_valid_value_passes() -> None:
    value = {
        "name": "abc",
        "count": 3,
        "ratio": 0.5,
        "mode": "a",
        "flag": True,
        "tags": ["x"],
        "opt": None,
        "nested": {"x": 1, "extra": "allowed"},
        "either": "s",
    }
    assert validate(value, SCHEMA) is None
    assert validate({"name": "a", "count": 2.0}, SCHEMA) is None  # 2.0 is an integer in JSON


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({}, "missing required field `name`"),
        ({"name": 1}, "`$.name`: expected string, got integer"),
        ({"name": ""}, "shorter than 1"),
        ({"name": "ABC"}, "pattern"),
        ({"name": "a", "count": True}, "`$.count`: expected integer, got boolean"),
        ({"name": "a", "count": 11}, "<= 10"),
        ({"name": "a", "ratio": 1}, "< 1"),
        ({"name": "a", "mode": "c"}, "not one of"),
        ({"name": "a", "tags": ["x", 2]}, "`$.tags[1]`"),
        ({"name": "a", "tags": ["x", "y", "z"]}, "at most 2"),
        ({"name": "a", "other": 1}, "unknown field `other`"),
        ({"name": "a", "nested": {}}, "`$.nested`: missing required field `x`"),
        ({"name": "a", "either": 1.5}, "`$.either`"),
        ({"name": "a", "opt": 3}, "expected string or null"),
    ],
)
def test_problems_name_the_path(value: dict[str, Any], fragment: str) -> None:
    problem = validate(value, SCHEMA)
    assert problem is not None and fragment in problem


def test_absent_additional_properties_allows_unknown_fields() -> None:
    assert validate({"x": 1}, {"type": "object", "properties": {}}) is None


def test_non_local_and_unresolvable_refs_are_refused() -> None:
    check_schema(SCHEMA)
    with pytest.raises(SchemaError):
        check_schema({"$ref": "other.json#/x"})
    with pytest.raises(SchemaError):
        check_schema({"properties": {"a": {"$ref": "#/$defs/Missing"}}})
