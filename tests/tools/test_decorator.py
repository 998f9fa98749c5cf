"""@tool: schemas from hints, argument validation, sync/async, results and errors."""

import asyncio
import dataclasses
import enum
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import msgspec
import pytest

from lash.tools import FunctionTool, SchemaError, Tool, ToolContext, ToolError, tool
from lash.types import ToolCallOutput

from .helpers import make_ctx, run


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(TypedDict):
    x: int
    y: Annotated[int, "vertical"]
    label: NotRequired[str]


@dataclasses.dataclass
class Box:
    width: float
    tags: list[str] = dataclasses.field(default_factory=list)


class Item(msgspec.Struct):
    name: str
    qty: int = 1


def params(t: FunctionTool) -> dict[str, Any]:
    return t.spec.parameters


# --- schema generation -------------------------------------------------------------------


def test_scalars_defaults_and_required() -> None:
    @tool
    def f(a: str, b: int, c: float, d: bool, e: None, g: int = 5) -> str:
        return ""

    schema = params(f)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["a", "b", "c", "d", "e"]
    props = schema["properties"]
    assert props["a"] == {"type": "string"}
    assert props["b"] == {"type": "integer"}
    assert props["c"] == {"type": "number"}
    assert props["d"] == {"type": "boolean"}
    assert props["e"] == {"type": "null"}
    assert props["g"] == {"type": "integer", "default": 5}


def test_containers_literals_optionals_and_enums() -> None:
    @tool
    def f(
        xs: list[int],
        m: dict[str, float],
        mode: Literal["fast", "slow"],
        maybe: str | None,
        color: Color,
        pair: tuple[int, str],
        many: tuple[str, ...] = (),
    ) -> None:
        return None

    props = params(f)["properties"]
    assert props["xs"] == {"type": "array", "items": {"type": "integer"}}
    assert props["m"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert props["maybe"] == {"type": ["string", "null"]}
    assert props["color"] == {"type": "string", "enum": ["red", "blue"]}
    assert props["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert props["many"] == {"type": "array", "items": {"type": "string"}, "default": []}


def test_literal_or_none_uses_any_of() -> None:
    @tool
    def f(x: Literal["a"] | None = None) -> None:
        return None

    assert params(f)["properties"]["x"] == {
        "anyOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}],
        "default": None,
    }


def test_nested_objects_typeddict_dataclass_struct() -> None:
    @tool
    def f(p: Point, b: Box, items: list[Item]) -> None:
        return None

    props = params(f)["properties"]
    assert props["p"] == {
        "type": "object",
        "properties": {
            "x": {"type": "integer"},
            "y": {"type": "integer", "description": "vertical"},
            "label": {"type": "string"},
        },
        "required": ["x", "y"],
        "additionalProperties": False,
    }
    assert props["b"]["required"] == ["width"]
    assert props["b"]["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    item = props["items"]["items"]
    assert item["required"] == ["name"]
    assert item["properties"]["qty"] == {"type": "integer", "default": 1}


def test_annotated_descriptions_and_constraints() -> None:
    @tool
    def f(
        q: Annotated[str, "the query"],
        n: Annotated[int, msgspec.Meta(ge=1, le=10, description="how many")] = 3,
        tags: Annotated[list[str], msgspec.Meta(min_length=1)] = ["x"],  # noqa: B006
    ) -> None:
        return None

    props = params(f)["properties"]
    assert props["q"] == {"type": "string", "description": "the query"}
    assert props["n"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10,
        "description": "how many",
        "default": 3,
    }
    assert props["tags"]["minItems"] == 1


def test_docstring_first_paragraph_and_google_args() -> None:
    @tool
    def search(query: str, limit: int = 5) -> str:
        """Search the index.

        Second paragraph is not part of the description.

        Args:
            query: What to look for,
                spanning two lines.
            limit (int): Maximum hits.

        Returns:
            The hits.
        """
        return ""

    assert search.spec.description == "Search the index."
    props = params(search)["properties"]
    assert props["query"]["description"] == "What to look for, spanning two lines."
    assert props["limit"]["description"] == "Maximum hits."


def test_annotated_description_wins_over_docstring() -> None:
    @tool
    def f(q: Annotated[str, "from annotation"]) -> str:
        """Do it.

        Args:
            q: from docstring
        """
        return q

    assert params(f)["properties"]["q"]["description"] == "from annotation"


def test_explicit_name_description_and_retry() -> None:
    @tool(name="renamed", description="Explicit.", retry="safe", max_attempts=4)
    async def f(ctx: ToolContext) -> str:
        """Docstring."""
        return ctx.call_id

    assert isinstance(f, Tool)
    assert f.spec.name == "renamed"
    assert f.spec.description == "Explicit."
    assert f.retry_policy == "safe"
    assert f.max_attempts == 4
    assert params(f) == {"type": "object", "properties": {}, "additionalProperties": False}


def test_context_parameter_is_not_in_schema() -> None:
    @tool
    async def f(ctx: ToolContext, q: str) -> str:
        return q

    assert list(params(f)["properties"]) == ["q"]
    assert params(f)["required"] == ["q"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "invalid tool name"),
        ({"retry": "sometimes"}, "invalid retry policy"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_tool_options_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):

        @tool(**kwargs)
        def f() -> None:
            return None


def test_unsupported_hints_fail_at_decoration() -> None:
    with pytest.raises(TypeError, match="parameter 'x'"):

        @tool
        def f(x: complex) -> None:
            return None

    with pytest.raises(TypeError, match=r"\*args"):

        @tool
        def g(*xs: int) -> None:
            return None

    with pytest.raises(TypeError, match="keys must be str"):

        @tool
        def h(m: dict[int, int]) -> None:
            return None


# --- validation ----------------------------------------------------------------------------


async def test_valid_arguments_are_converted_to_typed_values() -> None:
    seen: dict[str, Any] = {}

    @tool
    def f(p: Point, b: Box, items: list[Item], color: Color, ratio: float = 0.5) -> str:
        seen.update(p=p, b=b, items=items, color=color, ratio=ratio)
        return "ok"

    out = await run(
        f,
        {
            "p": {"x": 1, "y": 2},
            "b": {"width": 2},
            "items": [{"name": "a"}],
            "color": "blue",
            "ratio": 1,
        },
    )
    assert out.status == "success" and out.payload == "ok"
    assert seen["p"] == {"x": 1, "y": 2}
    assert seen["b"] == Box(width=2.0)
    assert seen["items"] == [Item(name="a", qty=1)]
    assert seen["color"] is Color.BLUE
    assert seen["ratio"] == 1.0


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({}, "missing required field `q`"),
        ({"q": 1}, "`$.q`"),
        ({"q": "x", "n": "3"}, "`$.n`"),
        ({"q": "x", "n": True}, "`$.n`"),
        ({"q": "x", "n": 0}, "`$.n`"),
        ({"q": "x", "extra": 1}, "unknown field `extra`"),
        ({"q": "x", "mode": "medium"}, "`$.mode`"),
        ({"q": "x", "points": [{"x": 1}]}, "`$.points[0]`"),
    ],
)
async def test_invalid_arguments_fail_before_the_call(
    arguments: dict[str, Any], fragment: str
) -> None:
    called = False

    @tool
    def f(
        q: str,
        n: Annotated[int, msgspec.Meta(ge=1)] = 1,
        mode: Literal["fast", "slow"] = "fast",
        points: list[Point] | None = None,
    ) -> str:
        nonlocal called
        called = True
        return q

    out = await run(f, arguments)
    assert out.status == "failure"
    assert out.error_code == "invalid_tool_args"
    assert fragment in out.payload
    assert "'f'" in out.payload
    assert called is False


async def test_non_object_arguments_are_invalid() -> None:
    @tool
    def f() -> str:
        return "x"

    out = await f.invoke(make_ctx(), ["not", "an", "object"])  # type: ignore[arg-type]
    assert out.error_code == "invalid_tool_args"


async def test_mutable_defaults_are_not_shared_between_calls() -> None:
    @tool
    def f(xs: list[int] = [1]) -> list[int]:  # noqa: B006
        xs.append(2)
        return xs

    assert (await run(f)).payload == [1, 2]
    assert (await run(f)).payload == [1, 2]


# --- calling -------------------------------------------------------------------------------


async def test_async_tool_receives_context() -> None:
    @tool
    async def f(ctx: ToolContext, q: str) -> str:
        await asyncio.sleep(0)
        return f"{ctx.session_id}/{ctx.call_id}/{ctx.attempt}/{q}"

    out = await run(f, {"q": "hi"}, session_id="S", call_id="C")
    assert out.payload == "S/C/1/hi"


async def test_sync_tool_runs_off_the_event_loop_thread() -> None:
    import threading

    main = threading.get_ident()

    @tool
    def f() -> bool:
        return threading.get_ident() != main

    @tool(threaded=False)
    def g() -> bool:
        return threading.get_ident() != main

    assert (await run(f)).payload is True
    assert (await run(g)).payload is False


async def test_decorated_function_is_still_callable() -> None:
    @tool
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5


@pytest.mark.parametrize(
    ("value", "payload"),
    [
        ("text", "text"),
        (None, None),
        ({"a": [1, 2]}, {"a": [1, 2]}),
        (Item(name="n"), {"name": "n", "qty": 1}),
        (Color.RED, "red"),
        (3.5, 3.5),
    ],
)
async def test_results_become_payloads(value: Any, payload: Any) -> None:
    @tool
    def f() -> Any:
        return value

    out = await run(f)
    assert out.status == "success"
    assert out.payload == payload


async def test_tool_call_output_passes_through() -> None:
    expected = ToolCallOutput(status="success", payload={"x": 1}, control={"finish": True})

    @tool
    def f() -> ToolCallOutput:
        return expected

    assert await run(f) is expected


async def test_unserialisable_result_is_a_failure() -> None:
    @tool
    def f() -> object:
        return object()

    out = await run(f)
    assert out.status == "failure" and out.error_code == "tool_error"
    assert "TypeError" in out.payload


async def test_tool_error_becomes_failure_with_its_code() -> None:
    @tool
    async def f() -> str:
        raise ToolError("quota exhausted", code="quota", retry_after_ms=50)

    out = await run(f)
    assert out.status == "failure"
    assert out.error_code == "quota"
    assert out.payload == "quota exhausted"
    assert out.retryable is True and out.retry_after_ms == 50


async def test_other_exceptions_become_tool_error() -> None:
    @tool
    def f() -> str:
        raise KeyError("missing")

    out = await run(f)
    assert out.error_code == "tool_error"
    assert out.payload == "KeyError: 'missing'"
    assert out.retryable is False


async def test_cancellation_propagates() -> None:
    started = asyncio.Event()

    @tool
    async def f() -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    task = asyncio.create_task(run(f))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- explicit JSON-schema tools ------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "q": {"type": "string", "minLength": 1},
        "n": {"type": "integer", "minimum": 1},
    },
    "required": ["q"],
    "additionalProperties": False,
}


async def test_from_schema_validates_and_calls_with_arguments() -> None:
    t = FunctionTool.from_schema("find", "Find things.", SCHEMA, lambda args: args["q"] * 2)
    assert t.spec.parameters == SCHEMA and t.spec.description == "Find things."
    assert (await run(t, {"q": "ab"})).payload == "abab"
    bad = await run(t, {"q": "ab", "n": 0})
    assert bad.error_code == "invalid_tool_args" and "`$.n`" in bad.payload
    missing = await run(t, {})
    assert "missing required field `q`" in missing.payload


async def test_from_schema_passes_context_to_two_argument_functions() -> None:
    async def fn(ctx: ToolContext, args: dict[str, Any]) -> str:
        return f"{ctx.call_id}:{args['q']}"

    t = FunctionTool.from_schema("find", "Find.", SCHEMA, fn, retry="idempotent")
    assert t.retry_policy == "idempotent"
    assert (await run(t, {"q": "z"}, call_id="c9")).payload == "c9:z"


def test_from_schema_rejects_remote_refs_and_non_objects() -> None:
    remote = {"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}}
    with pytest.raises(SchemaError, match="non-local"):
        FunctionTool.from_schema("t", "", remote, lambda a: a)
    with pytest.raises(SchemaError, match="object"):
        FunctionTool.from_schema("t", "", {"type": "array"}, lambda a: a)


def test_constraints_msgspec_cannot_apply_fail_at_decoration() -> None:
    with pytest.raises(TypeError, match="unsupported argument types"):

        @tool
        def f(n: Annotated[int | None, msgspec.Meta(ge=1)] = None) -> None:
            return None
