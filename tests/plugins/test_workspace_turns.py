"""The issue's acceptance: a scripted model edits a real workspace through the built-in
tools, tool errors reach the model without touching the file, and over-budget output is
stored whole but projected within the budget, identically when the turn is replayed."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import lash
from lash.plugins import ToolOutputBudget
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.testing.effect_hosts import ReplayJournalHost
from lash.tools.builtin import workspace_tools


async def test_read_edit_and_exec_change_the_workspace(tmp_path: Path, make_core: Any) -> None:
    (tmp_path / "app.py").write_text("def greet():\n    return 'hello'\n")
    provider = ScriptedProvider(
        [
            tool_call("read_file", {"path": "app.py"}, "c-read"),
            tool_call(
                "edit",
                {
                    "path": "app.py",
                    "edits": [{"oldText": "return 'hello'", "newText": "return 'hi there'"}],
                },
                "c-edit",
            ),
            tool_call(
                "exec_command",
                {"cmd": 'python3 -c "import app; print(app.greet())" > out.txt && cat out.txt'},
                "c-exec",
            ),
            reply("done"),
        ]
    )
    tools = workspace_tools(tmp_path)
    core = make_core(provider, tools=tools, plugins=[ToolOutputBudget])
    session = await core.session("ws").open()
    result = await session.turn("make greet say hi there").run()

    assert result.assistant_text == "done"
    assert (tmp_path / "app.py").read_text() == "def greet():\n    return 'hi there'\n"
    assert (tmp_path / "out.txt").read_text() == "hi there\n"
    records = {r.call_id: r for r in result.tool_calls}
    assert [r.name for r in result.tool_calls] == ["read_file", "edit", "exec_command"]
    assert all(r.status == "success" for r in result.tool_calls)
    assert "return 'hello'" in records["c-read"].output
    assert records["c-edit"].output["replacements"] == 1
    assert records["c-exec"].output["exit_code"] == 0
    assert "hi there" in records["c-exec"].output["output"]
    # the model saw each result before its next step
    seen = [m for m in provider.requests[3].messages if m.role == "tool"]
    assert [m.tool_call_id for m in seen] == ["c-read", "c-edit", "c-exec"]
    view = await session.read_view()
    assert [m.tool_call_id for m in view.messages if m.role == "tool"] == [
        "c-read",
        "c-edit",
        "c-exec",
    ]
    await tools.aclose()


async def test_ambiguous_edit_is_a_tool_error_and_leaves_the_file(
    tmp_path: Path, make_core: Any
) -> None:
    original = "x = 1\nx = 1\n"
    (tmp_path / "dup.py").write_text(original)
    provider = ScriptedProvider(
        [
            tool_call(
                "edit",
                {"path": "dup.py", "edits": [{"oldText": "x = 1", "newText": "x = 2"}]},
                "c1",
            ),
            reply("could not edit"),
        ]
    )
    core = make_core(provider, tools=workspace_tools(tmp_path, shell=False))
    session = await core.session("ws").open()
    result = await session.turn("bump x").run()

    assert (tmp_path / "dup.py").read_text() == original
    record = result.tool_calls[0]
    assert record.status == "failure"
    assert record.error_code == "edit_ambiguous_match"
    seen = provider.requests[1].messages[-1]
    assert seen.role == "tool" and seen.tool_call_id == "c1"
    assert "2 occurrences" in seen.text and seen.parts[0].is_error  # type: ignore[union-attr]
    assert result.assistant_text == "could not edit"


class CountingTool:
    """A tool that prints a large report and counts its real executions."""

    def __init__(self) -> None:
        self.runs = 0
        self.text = "\n".join(f"line {i:05d} " + "x" * 40 for i in range(3000))

        @lash.tool
        async def report(ctx: lash.ToolContext) -> str:
            """Print the big report."""
            self.runs += 1
            return self.text

        self.tool = report


async def test_over_budget_output_is_stored_whole_and_projected_identically_on_replay(
    make_core: Any,
) -> None:
    counting = CountingTool()
    host = ReplayJournalHost(kinds=None)
    budget = functools.partial(ToolOutputBudget, max_bytes=4096, max_lines=100)
    script = [tool_call("report", {}, "c1"), reply("summarised")]

    async def run_once() -> tuple[lash.TurnResult, ScriptedProvider, MemoryStore]:
        provider, store = ScriptedProvider(script), MemoryStore()
        core = make_core(provider, tools=[counting.tool], plugins=[budget], store=store, host=host)
        session = await core.session("s").open()
        return await session.turn("report").turn_id("t1").run(), provider, store

    first, provider, store = await run_once()
    assert first.tool_calls[0].output == counting.text  # durable: the whole output
    projected = provider.requests[1].messages[-1].text
    assert projected.startswith("line 00000 ")
    assert "lines truncated..." in projected or "bytes truncated..." in projected
    body = projected.split("\n\n...", 1)[0]
    assert len(body.encode()) <= 4096 and body.count("\n") < 100
    assert "Full output saved to: " in projected  # spilled where read_file can reach it
    loaded = await store.load_session("s")
    assert loaded is not None
    stored_tool_message = [
        n.payload.message for n in loaded.nodes if n.payload.message.role == "tool"
    ][0]
    assert stored_tool_message.text == projected

    # a second worker replays the same turn from the journal: the tool does not run again
    # and the committed projection is byte-identical
    replayed, _, store2 = await run_once()
    assert counting.runs == 1
    assert replayed.tool_calls[0].output == counting.text
    loaded2 = await store2.load_session("s")
    assert loaded2 is not None
    replayed_message = [
        n.payload.message for n in loaded2.nodes if n.payload.message.role == "tool"
    ][0]
    assert replayed_message.text == projected


async def test_budget_plugin_rejects_bad_limits() -> None:
    import pytest

    with pytest.raises(ValueError):
        ToolOutputBudget(max_bytes=0)
    with pytest.raises(ValueError):
        ToolOutputBudget(max_lines=0)
    with pytest.raises(ValueError):
        ToolOutputBudget(max_tokens=0)
