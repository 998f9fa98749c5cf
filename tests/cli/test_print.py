"""``lash -p`` against a loopback wire-script server (``LASH_BASE_URL``): the real
OpenAI-compatible adapter, real sockets, the real workspace tools, one process per run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from lash.testing.wire import WireScript, WireServer
from lash.trace.viewer import build_model, load_records

from .helpers import cli_env, run_lash


def _sse(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    timeline: list[dict[str, Any]] = [
        {
            "at": 0,
            "event": "response_start",
            "status": 200,
            "headers": [{"name": "content-type", "value": "text/event-stream"}],
        }
    ]
    for n, chunk in enumerate(chunks, start=1):
        timeline.append({"at": n, "event": "sse", "data": json.dumps(chunk)})
    timeline.append({"at": len(chunks) + 1, "event": "sse", "data": "[DONE]"})
    timeline.append({"at": len(chunks) + 2, "event": "end"})
    return timeline


def _script(name: str, body: dict[str, Any], chunks: list[dict[str, Any]]) -> WireScript:
    return msgspec.convert(
        {
            "schema": "lash.provider-wire-script.v1",
            "name": name,
            "provider_kind": "openai-compatible",
            "endpoint": {"method": "POST", "path": "/v1/chat/completions"},
            "request_match": {"body": body},
            "timeline": _sse(chunks),
        },
        WireScript,
    )


def _scripts() -> list[WireScript]:
    call = {
        "id": "call_glob",
        "type": "function",
        "function": {"name": "glob", "arguments": json.dumps({"pattern": "*.txt"})},
    }
    first = _script(
        "cli.print-tool-call",
        {
            "model": {"equals": "served-model"},
            "messages[0].role": {"equals": "system"},
            "messages[1].role": {"equals": "user"},
            "messages[1].content": {"contains": "which text files"},
            "tools": {"min_len": 5},
        },
        [
            {
                "id": "c1",
                "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **call}]}}],
            },
            {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {"id": "c1", "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 7}},
        ],
    )
    second = _script(
        "cli.print-answer",
        {
            "messages[3].role": {"equals": "tool"},
            "messages[3].tool_call_id": {"equals": "call_glob"},
            "messages[3].content": {"contains": "notes.txt"},
        },
        [
            {"id": "c2", "choices": [{"index": 0, "delta": {"content": "One file: "}}]},
            {"id": "c2", "choices": [{"index": 0, "delta": {"content": "notes.txt."}}]},
            {"id": "c2", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"id": "c2", "choices": [], "usage": {"prompt_tokens": 60, "completion_tokens": 5}},
        ],
    )
    return [first, second]


def _workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "notes.txt").write_text("hello\n")
    (root / "main.py").write_text("print('hi')\n")
    return root


async def test_print_text_mode_over_a_loopback_server(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    trace = tmp_path / "trace.jsonl"
    async with WireServer(*_scripts()) as server:
        env = cli_env(tmp_path / "home", LASH_BASE_URL=server.url("/v1"), LASH_API_KEY="test-key")
        run = await run_lash(
            "-p",
            "which text files are here?",
            "--model",
            "served-model",
            "--trace",
            str(trace),
            env=env,
            cwd=root,
        )
        server.assert_exhausted()
    assert run.code == 0, run.err
    assert run.out == "One file: notes.txt.\n"
    err = run.err.splitlines()
    assert err[0].startswith("[tool] glob · ok · ") and err[0].endswith(" ms")
    assert err[-1].startswith("[session] ") and "finished (assistant_message)" in err[-1]
    model = build_model(load_records(trace))
    assert model["counts"]["llm_calls"] == 2 and model["counts"]["tool_calls"] == 1
    assert model["usage"] == {
        "input_tokens": 100,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "output_tokens": 12,
        "reasoning_output_tokens": 0,
    }
    session_id = err[-1].split()[1]
    shown = await run_lash("sessions", "show", session_id, env=env)
    assert shown.code == 0 and "One file: notes.txt." in shown.out
    assert "which text files are here?" in shown.out and "glob" in shown.out


async def test_print_json_mode_streams_start_events_finish(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    async with WireServer(*_scripts()) as server:
        env = cli_env(
            tmp_path / "home",
            LASH_BASE_URL=server.url("/v1"),
            LASH_API_KEY="k",
            LASH_MODEL="served-model",
        )
        run = await run_lash(
            "-p", "which text files are here?", "--mode", "json", env=env, cwd=root
        )
        server.assert_exhausted()
    assert run.code == 0, run.err
    assert run.out.endswith("\n") and "\r" not in run.out
    frames = [json.loads(line) for line in run.out.splitlines()]
    assert frames[0]["type"] == "turn_start" and frames[0]["protocol_version"] == 1
    stream_id = frames[0]["stream_id"]
    assert frames[-1]["type"] == "turn_finish"
    events = frames[1:-1]
    assert events and all(f["type"] == "event" and f["stream_id"] == stream_id for f in events)
    kinds = [f["activity"]["event"]["type"] for f in events]
    assert "tool_call_started" in kinds and "tool_call_completed" in kinds
    assert (
        "".join(
            f["activity"]["event"]["text"]
            for f in events
            if f["activity"]["event"]["type"] == "assistant_prose_delta"
        )
        == "One file: notes.txt."
    )
    finish = frames[-1]
    assert finish["ok"] is True and finish["cancelled"] is False
    assert finish["assistant_text"] == "One file: notes.txt."
    assert finish["outcome"]["kind"] == "finished"
    assert finish["usage"]["input_tokens"] == 100 and finish["usage"]["output_tokens"] == 12
    assert [c["name"] for c in finish["tool_calls"]] == ["glob"]
    assert finish["errors"] == [] and finish["stream_id"] == stream_id
    assert set(finish) >= {"children_usage", "execution"}


async def test_print_reports_a_provider_failure_and_exits_non_zero(tmp_path: Path) -> None:
    failing = msgspec.convert(
        {
            "schema": "lash.provider-wire-script.v1",
            "name": "cli.print-auth-failure",
            "provider_kind": "openai-compatible",
            "endpoint": {"method": "POST", "path": "/v1/chat/completions"},
            "timeline": [
                {
                    "at": 0,
                    "event": "http_error",
                    "status": 401,
                    "body": json.dumps({"error": {"message": "bad key"}}),
                }
            ],
        },
        WireScript,
    )
    async with WireServer(failing) as server:
        env = cli_env(tmp_path / "home", LASH_BASE_URL=server.url("/v1"), LASH_MODEL="m")
        run = await run_lash("-p", "hello", env=env, cwd=tmp_path)
    assert run.code == 1
    assert run.out == ""
    assert "Traceback" not in run.err
    assert "stopped (provider_error)" in run.err.splitlines()[-1]
