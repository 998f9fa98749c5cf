"""Kill a worker mid-turn, take over on a fresh one, and commit the turn exactly once.

Offline: a loopback OpenAI-compatible server replays wire scripts to the real adapter, the
store is a fresh SQLite file, and each worker is its own OS process (one is SIGKILLed while
its tool runs). The demo lives in :mod:`lash.cli.demo` and is what ``lash demo`` runs; this
file stays so ``python examples/durable_demo.py`` keeps working.
"""

from __future__ import annotations

import sys

from lash.cli.demo import run

if __name__ == "__main__":
    sys.exit(run())
