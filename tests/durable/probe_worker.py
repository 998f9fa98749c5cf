"""A worker serving ``LashProbe``: one ``RestateEffectHost`` driven directly by a workflow.

The probe exercises host mechanics on a real server without a whole turn: a sleep effect (a
durable timer, optionally raced with a cancel request) and a journaled effect whose envelope
changes on the next attempt. Each attempt appends a line to ``marks`` (a JSON object per
line), and the first attempt fails on purpose after its effect, so Restate replays it.
``WORKER_PORT`` is the loopback port.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, cast

import hypercorn.asyncio
import hypercorn.config
import restate

from lash.durable.restate import CANCEL_PROMISE, JournalingContext, RestateEffectHost
from lash.durable.restate.service import replay_failure
from lash.durable.restate.waits import resolve_gate
from lash.errors import LashRuntimeError
from lash.runtime.scope import ExecutionScope
from lash.types import CancellationEvidence

probe = restate.Workflow("LashProbe")


def _append(marks: Path, mark: dict[str, Any]) -> None:
    with marks.open("a") as out:
        out.write(json.dumps(mark) + "\n")


async def _no_local_sleep(seconds: float) -> None:
    raise AssertionError("a handler-level sleep must be a Restate timer")


@probe.main(name="run")
async def run(ctx: restate.WorkflowContext, request: dict[str, Any]) -> dict[str, Any]:
    marks = Path(request["marks"])
    attempt = len(marks.read_text().splitlines()) if marks.exists() else 0
    host = RestateEffectHost(
        cast(JournalingContext, ctx), workflow=ctx, cancel_promise=CANCEL_PROMISE
    )
    scope = ExecutionScope.turn("probe-session", ctx.key())
    mark: dict[str, Any] = {"attempt": attempt}
    try:
        if request["mode"] == "sleep":
            started = time.monotonic()
            await host.sleep(
                scope, "probe:attempt:1:sleep", request["seconds"], local=_no_local_sleep
            )
            mark["slept_s"] = time.monotonic() - started
        elif request["mode"] == "sleep_cancel":
            fired = host.turn_control.register("probe-session", ctx.key())
            sleeper = asyncio.ensure_future(
                host.sleep(scope, "probe:attempt:1:sleep", 300, local=_no_local_sleep)
            )
            stop = asyncio.ensure_future(fired.wait())
            await asyncio.wait({sleeper, stop}, return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            gate = host.turn_control.peek("probe-session", ctx.key())
            mark["cancelled_by"] = None if gate.evidence is None else gate.evidence.request_id
            _append(marks, mark)
            return mark
        else:
            envelope = {"system": request["system"] + (" changed" if attempt else "")}

            async def answer() -> str:
                return "model answer"

            mark["value"] = await host.run_effect(
                scope, "llm_call", "probe:llm", envelope, answer, result_type=str
            )
    except LashRuntimeError as err:
        mark["error"] = str(err)
        _append(marks, mark)
        raise replay_failure(host, err) from err
    _append(marks, mark)
    if attempt == 0:
        raise RuntimeError("the first attempt fails after its effect, so Restate replays it")
    return mark


@probe.handler(name="cancel")
async def cancel(ctx: restate.WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
    gate = await resolve_gate(ctx, CancellationEvidence(request_id=request["request_id"]))
    return {"status": gate.status}


async def main() -> None:
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{os.environ['WORKER_PORT']}"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 1
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await hypercorn.asyncio.serve(
        restate.app(services=[probe]),  # type: ignore[arg-type]
        config,
        shutdown_trigger=stop.wait,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
