"""``lash -p PROMPT``: one autonomous turn, settled prose to stdout, tool lines to stderr.

``--mode json`` streams LF-delimited JSON instead: ``turn_start``, one ``event`` per live
activity, then ``turn_finish``. Ctrl+C cancels the turn (it still commits, as cancelled).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from lash.cli.config import Settings
from lash.cli.errors import CliError
from lash.cli.render import finish_frame, frame, tool_line
from lash.cli.runtime import new_session_id, open_core, require_session
from lash.cli.signals import cancel_on_sigint
from lash.errors import LashRuntimeError
from lash.types.events import ToolCallCompleted

__all__ = ["run_print"]

PROTOCOL_VERSION = 1


async def run_print(
    settings: Settings,
    prompt: str,
    *,
    json_mode: bool,
    root: Path,
    resume: str | None = None,
    trace: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the turn; 0 when it finished, 1 when it stopped, 130 when cancelled."""
    out = out or sys.stdout
    err = err or sys.stderr
    core = open_core(settings, root=root, trace=trace, autonomous=True)
    async with core:
        session_id = resume or new_session_id()
        if resume:
            await require_session(core, resume)
        try:
            session = await core.session(session_id).open()
            builder = session.turn(prompt)
            async with builder.stream() as turn:
                stream_id = f"{session_id}:{turn.turn_id}"
                if json_mode:
                    out.write(
                        frame(
                            "turn_start",
                            protocol_version=PROTOCOL_VERSION,
                            stream_id=stream_id,
                            session_id=session_id,
                        )
                    )
                    out.flush()
                with cancel_on_sigint(turn.cancel):
                    async for activity in turn:
                        if json_mode:
                            out.write(frame("event", stream_id=stream_id, activity=activity))
                            out.flush()
                        elif isinstance(activity.event, ToolCallCompleted):
                            print(tool_line(activity.event), file=err, flush=True)
                    result = await turn.result()
        except LashRuntimeError as error:
            raise CliError(str(error)) from None
    if json_mode:
        out.write(finish_frame(stream_id, result))
    else:
        if result.assistant_text:
            print(result.assistant_text, file=out)
        for issue in result.issues:
            print(f"[{issue.kind}] {issue.code or ''} {issue.message}".rstrip(), file=err)
        print(f"[session] {session_id} · {result.outcome.kind} ({result.outcome.reason})", file=err)
    out.flush()
    if result.outcome.reason == "cancelled":
        return 130
    return 0 if result.outcome.kind != "stopped" else 1
