"""A worker serving only the ``LashTurn`` workflow's control handlers (for the conformance kit).

The kit drives durable waits and cancel gates over the ingress and never starts a turn, so
the core is never built. ``WORKER_PORT`` is the loopback port; the durable-wait secret is
fixed, so keys minted through one worker process resolve through the next.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import hypercorn.asyncio
import hypercorn.config
import restate

import lash
from lash.durable.restate import turn_services

SECRET = b"effect-host-conformance-secret-0123456789"


async def no_core() -> lash.LashCore:
    raise RuntimeError("the conformance worker never runs a turn")


async def main() -> None:
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{os.environ['WORKER_PORT']}"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 1
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    app = restate.app(services=turn_services(no_core, await_event_secret=SECRET))
    await hypercorn.asyncio.serve(
        app,  # type: ignore[arg-type]
        config,
        shutdown_trigger=stop.wait,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
