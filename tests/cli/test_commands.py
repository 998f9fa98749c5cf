"""Bad input gives one clear line and a non-zero exit; sessions, trace view and the demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import assert_one_line_error, cli_env, run_lash, write_steps


@pytest.mark.parametrize("args", [("-p", "hi"), ("chat",), ()])
async def test_no_provider_says_what_to_set(tmp_path: Path, args: tuple[str, ...]) -> None:
    run = await run_lash(*args, env=cli_env(tmp_path))
    assert_one_line_error(run, "OPENAI_API_KEY", "LASH_BASE_URL", "config.json", "lash demo")


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("{broken", "is not valid JSON"),
        ('{"active_provider": "openai", "colour": "blue"}', "unknown field `colour`"),
        ('{"providers": {"p": {"type": "carrier-pigeon"}}}', "$.providers[...].type"),
        ('["not", "an", "object"]', "Expected `object`"),
    ],
)
async def test_bad_config_files(tmp_path: Path, config: str, needle: str) -> None:
    (tmp_path / "config.json").write_text(config)
    run = await run_lash("-p", "hi", env=cli_env(tmp_path))
    assert_one_line_error(run, str(tmp_path / "config.json"), needle)


async def test_unknown_provider_and_bad_mode(tmp_path: Path) -> None:
    run = await run_lash("--provider", "nope", "-p", "hi", env=cli_env(tmp_path))
    assert_one_line_error(run, "unknown provider 'nope'")
    run = await run_lash("-p", "hi", "--mode", "xml", env=cli_env(tmp_path))
    assert_one_line_error(run, "unknown --mode 'xml'")
    run = await run_lash("--mode", "json", env=cli_env(tmp_path))
    assert_one_line_error(run, "--mode json needs --print")


async def test_unknown_session_ids(tmp_path: Path) -> None:
    steps = write_steps(tmp_path / "s.json", [])
    env = cli_env(tmp_path / "home", LASH_SCRIPTED_STEPS=str(steps))
    for args in (
        ("--provider", "scripted", "-p", "hi", "--resume", "ghost"),
        ("chat", "--provider", "scripted", "--resume", "ghost"),
        ("sessions", "show", "ghost"),
        ("sessions", "delete", "ghost"),
    ):
        run = await run_lash(*args, env=env)
        assert_one_line_error(run, "no session 'ghost'", "lash sessions")


async def test_trace_view_bad_files(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    run = await run_lash("trace", "view", str(tmp_path / "missing.jsonl"), env=env)
    assert_one_line_error(run, "trace file not found")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "custom"}\n{"half": \n')
    run = await run_lash("trace", "view", str(bad), env=env)
    assert_one_line_error(run, "bad.jsonl line 2: invalid JSON")
    run = await run_lash("trace", "view", str(tmp_path), env=env)
    assert_one_line_error(run, "is a directory")


async def test_sessions_list_show_delete_and_trace_view(tmp_path: Path) -> None:
    steps = write_steps(
        tmp_path / "s.json",
        [
            {"tool_call": {"name": "write", "arguments": {"path": "out.txt", "content": "x"}}},
            {"reply": "Wrote out.txt."},
        ],
    )
    env = cli_env(tmp_path / "home", LASH_SCRIPTED_STEPS=str(steps))
    empty = await run_lash("sessions", env=env)
    assert empty.code == 0 and "no sessions yet" in empty.out
    trace = tmp_path / "t.jsonl"
    run = await run_lash(
        "--provider",
        "scripted",
        "--cwd",
        str(tmp_path),
        "--trace",
        str(trace),
        "-p",
        "write a file",
        env=env,
    )
    assert run.code == 0, run.err
    assert run.out == "Wrote out.txt.\n" and (tmp_path / "out.txt").read_text() == "x"
    assert "[tool] write · ok · " in run.err
    session_id = run.err.splitlines()[-1].split()[1]
    listed = await run_lash("sessions", "list", env=env)
    assert listed.code == 0 and session_id in listed.out and "scripted" in listed.out
    shown = await run_lash("sessions", "show", session_id, env=env)
    assert shown.code == 0
    assert "write a file" in shown.out and "Wrote out.txt." in shown.out
    assert "tokens in 20 · out 10" in shown.out

    out = tmp_path / "view.html"
    viewed = await run_lash("trace", "view", str(trace), "--out", str(out), env=env)
    assert viewed.code == 0 and viewed.out.strip() == f"wrote {out}"
    page = out.read_text()
    assert '"llm_calls": 2, "tool_calls": 1' in page and "tool · write" in page

    deleted = await run_lash("sessions", "delete", session_id, env=env)
    assert deleted.code == 0 and f"deleted session {session_id}" in deleted.out
    after = await run_lash("sessions", env=env)
    assert session_id not in after.out


async def test_demo_runs_offline(tmp_path: Path) -> None:
    run = await run_lash("demo", env=cli_env(tmp_path), timeout=120)
    assert run.code == 0, run.err
    assert "exactly one commit for the interrupted turn" in run.out
    assert "killed with SIGKILL" in run.out


def test_help_lists_the_commands() -> None:
    from typer.testing import CliRunner

    from lash.cli.app import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for word in ("chat", "sessions", "trace", "demo", "--print", "--mode", "--resume"):
        assert word in result.output
    assert "openai, anthropic, google, openrouter, openai-compatible" in result.output
    assert "scripted," not in result.output  # the test-only provider stays hidden


async def test_chat_reads_piped_input_one_turn_per_line(tmp_path: Path) -> None:
    steps = write_steps(tmp_path / "s.json", [{"reply": "one"}, {"reply": "two"}])
    env = cli_env(tmp_path / "home", LASH_SCRIPTED_STEPS=str(steps))
    run = await run_lash("chat", "--provider", "scripted", env=env, stdin=b"first\nsecond\n/info\n")
    assert run.code == 0, run.err
    assert run.out.index("one") < run.out.index("two") < run.out.index("revision 2")
    assert "joined the turn" not in run.out


async def test_print_mode_ctrl_c_cancels_the_turn(tmp_path: Path) -> None:
    import asyncio
    import json
    import signal

    from .helpers import lash_argv

    steps = write_steps(tmp_path / "s.json", [{"stall": "working on it"}])
    env = cli_env(tmp_path / "home", LASH_SCRIPTED_STEPS=str(steps))
    proc = await asyncio.create_subprocess_exec(
        *lash_argv("--provider", "scripted", "-p", "long job", "--mode", "json"),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    frames = []
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the stream ended before any prose arrived"
        frames.append(json.loads(line))
        event = frames[-1].get("activity", {}).get("event", {})
        if event.get("type") == "assistant_prose_delta":
            break
    proc.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(proc.communicate(), 30)
    frames += [json.loads(line) for line in rest.splitlines()]
    assert proc.returncode == 130, err.decode()
    finish = frames[-1]
    assert finish["type"] == "turn_finish" and finish["cancelled"] is True
    assert finish["outcome"]["reason"] == "cancelled" and finish["ok"] is False
    assert b"Traceback" not in err
