"""project_output: rendering, the byte and line budget, direction and determinism."""

from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lash.tools import project_output
from lash.tools.projection import truncate_text
from lash.types import ToolCallOutput

from .helpers import call


def ok(payload: object) -> ToolCallOutput:
    return ToolCallOutput(status="success", payload=payload)


def test_string_payload_is_shown_as_is() -> None:
    part = project_output(call("t", call_id="c7"), ok("hello\nworld"))
    assert part.content == "hello\nworld"
    assert part.tool_call_id == "c7" and part.name == "t" and part.is_error is False


def test_structured_payload_is_compact_json() -> None:
    part = project_output(call("t"), ok({"b": 1, "a": ["x", None], "u": "é"}))
    assert part.content == '{"b":1,"a":["x",null],"u":"é"}'


def test_none_payload_has_visible_text() -> None:
    assert project_output(call("t"), ok(None)).content == "(no output)"


def test_failure_renders_code_and_message() -> None:
    out = ToolCallOutput(status="failure", payload="boom", error_code="tool_error")
    part = project_output(call("t"), out)
    assert part.content == "Error [tool_error]: boom"
    assert part.is_error is True


def test_failure_with_detail_shows_the_detail() -> None:
    out = ToolCallOutput(
        status="failure",
        payload={"message": "timed out", "output": "partial"},
        error_code="shell_timeout",
    )
    content = project_output(call("t"), out).content
    assert content == 'Error [shell_timeout]: timed out\n{"output":"partial"}'


def test_cancelled_is_clear() -> None:
    part = project_output(call("t"), ToolCallOutput(status="cancelled"))
    assert part.content == "Tool call cancelled."
    assert part.is_error is True
    why = ToolCallOutput(status="cancelled", payload="turn cancelled by the user")
    content = project_output(call("t"), why).content
    assert content == "Tool call cancelled: turn cancelled by the user"


def test_within_budget_is_untouched() -> None:
    text = "\n".join(f"line {i}" for i in range(400))
    assert project_output(call("t"), ok(text)).content == text


def test_line_budget_keeps_the_head_and_notes_the_rest() -> None:
    text = "\n".join(f"line {i}" for i in range(1000))
    content = project_output(call("t"), ok(text), max_lines=10).content
    body, note = content.rsplit("\n", 1)
    assert body.split("\n") == [f"line {i}" for i in range(10)]
    assert "990 of 1000 lines" in note
    omitted = len(text.encode()) - len(body.encode())
    assert f"({omitted} bytes) omitted" in note


def test_byte_budget_keeps_whole_lines_within_the_limit() -> None:
    text = "\n".join("x" * 99 for _ in range(100))  # 100 bytes per line with the newline
    content = project_output(call("t"), ok(text), max_bytes=1000).content
    body, note = content.rsplit("\n", 1)
    assert len(body.encode()) <= 1000
    assert body.split("\n") == ["x" * 99] * 10
    assert "90 of 100 lines" in note


def test_single_long_line_is_cut_at_a_character_boundary() -> None:
    text = "é" * 1000  # 2000 bytes, one line
    content = project_output(call("t"), ok(text), max_bytes=101).content
    body, note = content.rsplit("\n", 1)
    assert body == "é" * 50
    assert "1900 of 2000 bytes" in note


def test_shell_tools_keep_the_tail() -> None:
    text = "\n".join(f"l{i}" for i in range(100))
    content = project_output(call("exec_command"), ok(text), max_lines=5).content
    note, body = content.split("\n", 1)
    assert body.split("\n") == ["l95", "l96", "l97", "l98", "l99"]
    assert "before this point" in note
    head = project_output(call("exec_command"), ok(text), max_lines=5, keep="head").content
    assert head.startswith("l0\n")


def test_structured_payload_windows_long_string_leaves() -> None:
    payload = {"exit_code": 1, "output": "\n".join(f"row {i}" for i in range(5000))}
    content = project_output(call("exec_command"), ok(payload), max_bytes=2000).content
    assert len(content.encode()) <= 2000
    assert content.startswith("{") and content.endswith("}")
    assert '"exit_code":1' in content
    assert "row 4999" in content and "row 0\\n" not in content


def test_full_output_path_is_mentioned_in_the_note() -> None:
    payload = {"output": "x" * 100, "blob": ["y" * 50] * 100, "full_output_path": "out.log"}
    content = project_output(call("t"), ok(payload), max_bytes=500).content
    assert "out.log" in content.rsplit("\n", 1)[1]


def test_projection_is_deterministic() -> None:
    payload = {"k": ["v" * 300] * 200, "n": 1}
    first = project_output(call("t"), ok(payload), max_bytes=3000, max_lines=7)
    second = project_output(call("t"), ok(dict(payload)), max_bytes=3000, max_lines=7)
    assert first == second


def test_invalid_budget_is_rejected() -> None:
    with pytest.raises(ValueError):
        project_output(call("t"), ok("x"), max_bytes=0)


def test_truncate_text_returns_text_within_limits_unchanged() -> None:
    assert truncate_text("a\nb", max_bytes=10, max_lines=2) == "a\nb"


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab é\n日"), max_size=400),
    max_bytes=st.integers(min_value=1, max_value=120),
    max_lines=st.integers(min_value=1, max_value=12),
    keep=st.sampled_from(["head", "tail"]),
)
def test_truncation_always_respects_both_limits(
    text: str, max_bytes: int, max_lines: int, keep: Literal["head", "tail"]
) -> None:
    result = truncate_text(text, max_bytes=max_bytes, max_lines=max_lines, keep=keep)
    assert result == truncate_text(text, max_bytes=max_bytes, max_lines=max_lines, keep=keep)
    if len(text.encode()) <= max_bytes and text.count("\n") < max_lines:
        assert result == text
        return
    if keep == "head":
        body, note = result.rsplit("\n", 1)
        assert text.startswith(body)
    else:
        note, body = result.split("\n", 1)
        assert text.endswith(body)
    assert note.startswith("[output truncated")
    assert len(body.encode()) <= max_bytes
    assert body.count("\n") < max_lines
