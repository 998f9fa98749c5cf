"""``lash chat`` in a real pseudo-terminal: type, stream, Ctrl+C a running turn, resume later.

The model is the hidden ``--provider scripted`` (``LASH_SCRIPTED_STEPS``): a ``stall`` step
streams some text and then hangs until the turn is cancelled, which is what Ctrl+C must do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pexpect

from lash.trace.viewer import load_records

from .helpers import cli_env, lash_argv, write_steps


def _spawn(tmp_path: Path, steps: Path, *args: str) -> pexpect.spawn:
    argv = lash_argv("chat", "--provider", "scripted", "--cwd", str(tmp_path), *args)
    env = cli_env(tmp_path / "home", LASH_SCRIPTED_STEPS=str(steps))
    return pexpect.spawn(
        argv[0], argv[1:], env=env, encoding="utf-8", timeout=30, dimensions=(40, 200)
    )


def test_type_cancel_and_resume_in_a_new_process(tmp_path: Path) -> None:
    steps = write_steps(
        tmp_path / "first.json",
        [{"reply": "Hello from lash."}, {"stall": "thinking hard"}, {"reply": "Third answer."}],
    )
    child = _spawn(tmp_path, steps)
    child.expect(r"session (\d{8}-\d{6}-[0-9a-f]{6})")
    session_id = child.match.group(1)
    child.expect("› ")
    child.sendline("hello")
    child.expect("Hello from lash.")
    child.expect(r"tokens in 10 · out 5")
    child.expect("› ")
    child.sendline("go slow")
    child.expect("thinking hard")
    child.sendintr()
    child.expect("cancelling the turn")
    child.expect(r"turn cancelled \(committed as cancelled\)")
    child.expect("› ")
    child.sendline("/info")
    child.expect(rf"session\s+{session_id} \(revision 2\)")
    child.expect("› ")
    child.sendline("and again")
    child.expect("Third answer.")
    child.expect("› ")
    child.sendline("/exit")
    child.expect(f"resume with: lash chat --resume {session_id}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    trace = tmp_path / "resumed.jsonl"
    steps = write_steps(tmp_path / "second.json", [{"reply": "Welcome back."}])
    child = _spawn(tmp_path, steps, "--resume", session_id, "--trace", str(trace))
    child.expect(f"session {session_id}")
    child.expect("Hello from lash.")  # the recent transcript is shown on resume
    child.expect("› ")
    child.sendline("what did I say first?")
    child.expect("Welcome back.")
    child.expect("› ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    (request,) = [
        r["payload"]["request"] for r in load_records(trace) if r["type"] == "llm_call_started"
    ]
    said = [
        (m["role"], "".join(p.get("text", "") for p in m["parts"])) for m in request["messages"]
    ]
    assert ("user", "hello") in said and ("assistant", "Hello from lash.") in said
    assert ("user", "go slow") in said and ("assistant", "Third answer.") in said
    assert said[-1] == ("user", "what did I say first?")
    assert "thinking hard" not in json.dumps(said), "the cancelled partial text is not history"


def test_ctrl_c_twice_at_an_idle_prompt_quits(tmp_path: Path) -> None:
    steps = write_steps(tmp_path / "s.json", [])
    child = _spawn(tmp_path, steps)
    child.expect("› ")
    child.sendintr()
    child.expect(re.escape("press Ctrl+C again or type /exit to quit"))
    child.sendintr()
    child.expect("saved · resume with")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_slash_commands(tmp_path: Path) -> None:
    steps = write_steps(tmp_path / "s.json", [{"reply": "first"}, {"reply": "second"}])
    child = _spawn(tmp_path, steps)
    child.expect(r"session (\S+)")
    first = child.match.group(1)
    child.expect("› ")
    child.sendline("/help")
    child.expect("/compact")
    child.expect("› ")
    child.sendline("/compact")
    child.expect("nothing to compact yet")
    child.sendline("hi")
    child.expect("first")
    child.expect("› ")
    child.sendline("/compact")
    child.expect("compacted: the next turn starts a new context window")
    child.expect("› ")
    child.sendline("/model other-model")
    child.expect(f"model set to other-model for session {first}")
    child.expect("› ")
    child.sendline("/new")
    child.expect(r"new session (\S+)")
    second = child.match.group(1)
    assert second != first
    child.expect("› ")
    child.sendline("/resume")
    child.expect(re.escape(first))
    child.expect("› ")
    child.sendline(f"/resume {first}")
    child.expect(f"resumed session {first}")
    child.expect("› ")
    child.sendline("/resume no-such-session")
    child.expect("error: no session 'no-such-session'")
    child.expect("› ")
    child.sendline("/bogus")
    child.expect("unknown command /bogus")
    child.expect("› ")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_line_typed_during_a_turn_joins_it(tmp_path: Path) -> None:
    steps = write_steps(
        tmp_path / "s.json",
        [
            {"tool_call": {"name": "exec_command", "arguments": {"cmd": "sleep 1"}}},
            {"reply": "done with sleep"},
        ],
    )
    trace = tmp_path / "t.jsonl"
    child = _spawn(tmp_path, steps, "--trace", str(trace))
    child.expect("› ")
    child.sendline("run sleep")
    child.expect("⚙ exec_command")
    child.sendline("also this")
    child.expect(re.escape("(queued for the running turn)"))
    child.expect(re.escape("(your message joined the turn)"))
    child.expect("done with sleep")
    child.expect("› ")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    requests = [
        r["payload"]["request"] for r in load_records(trace) if r["type"] == "llm_call_started"
    ]
    assert len(requests) == 2
    last = requests[1]["messages"][-1]
    assert last["role"] == "user" and last["parts"][0]["text"] == "also this"


def test_a_tab_prefixed_line_during_a_turn_is_queued_for_the_next_turn(tmp_path: Path) -> None:
    steps = write_steps(
        tmp_path / "s.json",
        [
            {"tool_call": {"name": "exec_command", "arguments": {"cmd": "sleep 1"}}},
            {"reply": "done with sleep"},
            {"reply": "now the queued one"},
        ],
    )
    trace = tmp_path / "t.jsonl"
    child = _spawn(tmp_path, steps, "--trace", str(trace))
    child.expect("› ")
    child.sendline("run sleep")
    child.expect("⚙ exec_command")
    child.sendline("\tafterwards please")
    child.expect(re.escape("(queued for the next turn)"))
    child.expect("done with sleep")
    child.expect("now the queued one")
    child.expect("› ")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    requests = [
        r["payload"]["request"] for r in load_records(trace) if r["type"] == "llm_call_started"
    ]
    assert len(requests) == 3
    assert requests[1]["messages"][-1]["role"] == "tool"  # it did not join the running turn
    assert requests[2]["messages"][-1]["parts"][0]["text"] == "afterwards please"
