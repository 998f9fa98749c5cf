"""project_output: rendering, the byte/token and line budget, the truncation marker and hint
(spill files), per-child batch projection, direction and determinism."""

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lash.tools import project_output
from lash.tools.projection import spill_dir, truncate_text
from lash.types import ToolCallOutput

from .helpers import call


@pytest.fixture(autouse=True)
def _private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Spill files go to this test's own temp dir."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield


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
    body, marker, hint = content.split("\n\n")
    assert body.split("\n") == [f"line {i}" for i in range(10)]
    assert marker == "...990 lines truncated..."
    assert hint.startswith("The tool output was truncated. Full output saved to: ")


def test_byte_budget_keeps_whole_lines_within_the_limit() -> None:
    text = "\n".join("x" * 99 for _ in range(100))  # 100 bytes per line with the newline
    content = project_output(call("t"), ok(text), max_bytes=1000).content
    body, marker, _ = content.split("\n\n")
    assert len(body.encode()) <= 1000
    assert body.split("\n") == ["x" * 99] * 10
    assert marker == f"...{len(text) - len(body)} bytes truncated..."


def test_windowed_truncation_truncates_over_long_single_line_instead_of_dropping_it() -> None:
    got = truncate_text("x" * 1000, max_bytes=64, max_lines=400, hint="hint")
    preview = got.split("\n\n...")[0]
    assert preview == "x" * 64
    assert got == f"{preview}\n\n...936 bytes truncated...\n\nhint"


def test_windowed_truncation_never_splits_a_multibyte_char() -> None:
    got = truncate_text("★" * 100, max_bytes=10, max_lines=400, hint="hint")  # 3 bytes each
    preview = got.split("\n\n...")[0]
    assert preview == "★" * 3
    content = project_output(call("t"), ok("é" * 1000), max_bytes=101).content
    assert content.startswith("é" * 50 + "\n\n...950 bytes truncated...")


def test_windowed_truncation_returns_input_unchanged_when_within_budget() -> None:
    assert truncate_text("a\nb\nc", max_bytes=1024, max_lines=400, hint="hint") == "a\nb\nc"
    assert truncate_text("a\nb", max_bytes=10, max_lines=2) == "a\nb"


def test_shell_tools_keep_the_tail() -> None:
    text = "\n".join(f"l{i}" for i in range(100))
    content = project_output(call("exec_command"), ok(text), max_lines=5).content
    marker, _, body = content.split("\n\n")
    assert body.split("\n") == ["l95", "l96", "l97", "l98", "l99"]
    assert marker == "...95 lines truncated..."
    head = project_output(call("exec_command"), ok(text), max_lines=5, keep="head").content
    assert head.startswith("l0\n")
    assert project_output(call("start_command"), ok(text), max_lines=5).content.startswith("l0")


def test_truncates_strings_with_terminal_style_marker() -> None:
    text = "this is an example of a long output that should be truncated"
    content = project_output(call("grep"), ok(text), max_bytes=5, unit="tokens").content
    assert "tokens truncated" in content
    assert "Full output saved to:" in content
    path = content.split("Full output saved to: ", 1)[1].split("\n", 1)[0]
    assert Path(path).read_text() == text  # the whole text, where read_file can reach it
    assert Path(path).parent == spill_dir()
    assert project_output(call("grep"), ok(text), max_bytes=5, unit="tokens").content == content


def test_truncation_hint_reuses_existing_full_output_path() -> None:
    payload = {"output": "x" * 20_000, "full_output_path": "/tmp/existing-shell-output.log"}
    content = project_output(call("exec_command"), ok(payload), max_bytes=512).content
    assert "Full output saved to: /tmp/existing-shell-output.log" in content
    assert not list(spill_dir().glob("exec_command-*"))  # nothing spilled: it already exists


def test_model_projection_can_collapse_large_structured_payload_to_string() -> None:
    payload = {"results": [{"output": "x" * 200}]}
    content = project_output(call("search_tools"), ok(payload), max_bytes=40).content
    assert "bytes truncated" in content
    value = msgspec.json.decode(content)  # still valid JSON: the leaf was windowed
    assert value["results"][0]["output"].startswith("x" * 40 + "\n\n...160 bytes truncated")


def _batch(results: list[dict[str, object]]) -> ToolCallOutput:
    return ok({"results": results})


def test_batch_model_projection_preserves_projected_child_payloads() -> None:
    out = _batch(
        [
            {"tool": "read_file", "success": True, "duration_ms": 1, "result": "child payload"},
            {"tool": "grep", "success": False, "duration_ms": 1, "error": "boom"},
        ]
    )
    value = msgspec.json.decode(project_output(call("batch"), out).content)
    assert value == {
        "results": [
            {"tool": "read_file", "success": True, "duration_ms": 1, "result": "child payload"},
            {"tool": "grep", "success": False, "duration_ms": 1, "error": "boom"},
        ]
    }


def test_batch_history_projection_recursively_projects_child_payloads() -> None:
    out = _batch(
        [
            {"tool": "read_file", "success": True, "duration_ms": 1, "result": "child payload"},
            {"tool": "grep", "success": False, "duration_ms": 1, "error": "boom"},
        ]
    )
    value = msgspec.json.decode(project_output(call("batch"), out, max_bytes=8).content)
    assert "truncated" in value["results"][0]["result"]
    assert value["results"][1]["error"] == "boom"


def test_batch_children_keep_their_own_direction() -> None:
    shell = "\n".join(f"l{i}" for i in range(50))
    args = {"tool_calls": [{"tool": "exec_command", "parameters": {"cmd": "seq"}}]}
    out = _batch(
        [{"index": 0, "tool": "exec_command", "success": True, "duration_ms": 2, "result": shell}]
    )
    value = msgspec.json.decode(project_output(call("batch", args), out, max_lines=3).content)
    row = value["results"][0]
    assert (row["index"], row["tool"], row["duration_ms"]) == (0, "exec_command", 2)
    assert row["result"].endswith("l47\nl48\nl49")  # the tail, as exec_command alone


def test_structured_payload_windows_long_string_leaves() -> None:
    payload = {"exit_code": 1, "output": "\n".join(f"row {i}" for i in range(5000))}
    content = project_output(call("exec_command"), ok(payload), max_bytes=2000).content
    value = msgspec.json.decode(content)
    assert value["exit_code"] == 1
    assert value["output"].endswith("row 4999") and "row 0\n" not in value["output"]


def test_projection_is_deterministic() -> None:
    payload = {"k": ["v" * 300] * 200, "n": 1}
    first = project_output(call("t"), ok(payload), max_bytes=3000, max_lines=7)
    second = project_output(call("t"), ok(dict(payload)), max_bytes=3000, max_lines=7)
    assert first == second


def test_invalid_budget_is_rejected() -> None:
    with pytest.raises(ValueError):
        project_output(call("t"), ok("x"), max_bytes=0)


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
    result = truncate_text(text, max_bytes=max_bytes, max_lines=max_lines, keep=keep, hint="H")
    assert result == truncate_text(
        text, max_bytes=max_bytes, max_lines=max_lines, keep=keep, hint="H"
    )
    lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
    if len(text.encode()) <= max_bytes and len(lines) <= max_lines:
        assert result == text
        return
    if keep == "head":
        body, rest = result.rsplit("\n\n...", 1)
        assert text.startswith(body)
        assert rest.endswith("truncated...\n\nH")
    else:
        rest, body = result.split("\n\nH\n\n", 1)
        # a final newline ends the last line; it is not a line of its own
        assert (text[:-1] if text.endswith("\n") else text).endswith(body)
        assert rest.startswith("...") and rest.endswith("truncated...")
    assert len(body.encode()) <= max_bytes
    assert body.count("\n") < max_lines
