"""``lash demo`` end to end: a real SIGKILL, a takeover and one commit for the interrupted turn."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import lash
from lash.cli.demo import SESSION, DemoPaths, load_demo_scripts, main
from lash.testing import ScriptedProvider
from lash.testing.wire import JsonMatcher, RequestMatch
from lash.trace.viewer import build_model, load_records

from .helpers import Run, cli_env, lash_argv


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Path]:
    """One real ``lash demo`` run (a subprocess) shared by the tests of this file."""
    base = tmp_path_factory.mktemp("demo")
    (base / "tmp").mkdir()
    env = cli_env(base / "home", TMPDIR=str(base / "tmp"))
    done = subprocess.run(lash_argv("demo"), env=env, capture_output=True, text=True, timeout=120)
    run = Run(done.returncode, done.stdout, done.stderr)
    assert run.code == 0, run.out + run.err
    found = re.search(r"everything this run wrote is in (\S+)", run.out)
    assert found, run.out
    root = Path(found.group(1))
    assert root.parent == base / "tmp"
    return run, root


def _journal(root: Path) -> list[dict[str, Any]]:
    lines = (root / "store-journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_output_shows_the_kill_the_takeover_and_one_commit(
    demo_run: tuple[Run, Path],
) -> None:
    run, _ = demo_run
    out = run.out
    kill = out.index("worker-2 (pid")
    assert "killed with SIGKILL while exec_command ran (exit -9)" in out[kill:]
    takeover = out.index("lease reclaimed from fencing token 2 → fencing token 3")
    assert "takeover: pid " in out[kill:takeover]
    commit = out.index("commit · revision 2 · fencing token 3 · settles #2")
    assert kill < takeover < commit
    assert "input #2 claims: generation 2 (worker-2) → generation 3 (worker-3) → completed" in out
    assert "interrupted turn: 1 commit(s) for input #2" in out
    assert out.count("commit · revision") == 2
    assert "never committed: call_checks_1" in out
    assert "loopback server: 6 requests, each matched its wire script" in out
    assert "exactly one commit for the interrupted turn" in out
    assert "Traceback" not in out + run.err


async def test_the_store_holds_each_turn_once(demo_run: tuple[Run, Path]) -> None:
    _, root = demo_run
    commits = [e for e in _journal(root) if e["op"] == "commit"]
    assert [(e["revision"], e["fencing"], e["worker"]) for e in commits] == [
        (1, 1, "worker-1"),
        (2, 3, "worker-3"),
    ]
    claims = [e for e in _journal(root) if e["op"] == "inputs_claimed"]
    second = commits[1]["inputs"]
    assert [(e["worker"], e["generation"]) for e in claims if e["inputs"] == second] == [
        ("worker-2", 2),
        ("worker-3", 3),
    ]
    # Read the file back with a fresh core: two user turns, every tool call answered, and the
    # dead worker's call is nowhere in the committed transcript.
    core = lash.LashCore.local(
        root / "lash.db", provider=ScriptedProvider([]), model=lash.ModelSpec("m")
    )
    async with core:
        session = await core.session(SESSION).open()
        view = await session.read_view()
        assert view.revision == 2
        assert [m.text for m in view.messages if m.role == "user"] == [
            "Make greet() in hello.py use an f-string.",
            "Now run the checks and log the result.",
        ]
        calls = [c.id for m in view.messages for c in m.tool_calls]
        answered = [m.tool_call_id for m in view.messages if m.role == "tool"]
        assert calls == answered == ["call_read", "call_edit", "call_checks_2"]
        assert await session.pending_inputs() == []
    assert (root / "workspace" / "checks.log").read_text() == "checks passed\n"
    assert 'return f"Hello, {name}!"' in (root / "workspace" / "hello.py").read_text()


async def test_the_html_trace_lists_every_model_and_tool_call(demo_run: tuple[Run, Path]) -> None:
    run, root = demo_run
    html_path = root / "trace.html"
    assert f"HTML trace: {html_path}" in run.out
    page = html_path.read_text()
    records = load_records(root / "trace.jsonl")
    llm_ids = {r["context"]["llm_call_id"] for r in records if r["type"] == "llm_call_started"}
    tool_ids = {r["payload"]["call_id"] for r in records if r["type"] == "tool_call_started"}
    assert len(llm_ids) == 6  # 3 for turn 1, 1 by the killed worker, 2 by the new one
    assert tool_ids == {"call_read", "call_edit", "call_checks_1", "call_checks_2"}
    for ident in llm_ids | tool_ids:
        assert ident in page, ident
    counts = build_model(records)["counts"]
    assert (counts["llm_calls"], counts["tool_calls"], counts["turns"]) == (6, 4, 3)


def test_the_wire_scripts_ship_with_the_package() -> None:
    scripts = load_demo_scripts()
    assert [s.name for s in scripts] == [
        "demo.1-read-file",
        "demo.2-edit-file",
        "demo.3-answer",
        "demo.4-run-checks",
        "demo.5-run-checks-again",
        "demo.6-report",
    ]
    assert {s.endpoint.path for s in scripts} == {"/v1/chat/completions"}


async def test_a_request_off_script_stops_the_demo_with_the_diff(tmp_path: Path) -> None:
    scripts = load_demo_scripts()
    off = RequestMatch(body={"messages[-1].content": JsonMatcher(contains="no such words")})
    scripts[0] = scripts[0].with_request_match(off)
    out = io.StringIO()
    console = Console(file=out, width=200, highlight=False)
    code = await main(DemoPaths(tmp_path), console, scripts=scripts)
    text = out.getvalue()
    assert code == 1
    assert "demo failed: a model call failed, so the demo cannot go on:" in text
    assert "request does not match wire script 'demo.1-read-file'" in text
    assert 'expected to contain "no such words"' in text
    assert "worker-2" not in text  # it stopped at the first bad request
