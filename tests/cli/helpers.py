"""Run the real ``lash`` command in a subprocess with an isolated ``LASH_HOME``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROVIDER_VARS = (
    "LASH_PROVIDER",
    "LASH_BASE_URL",
    "LASH_API_KEY",
    "LASH_MODEL",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "OPENROUTER_API_KEY",
)


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The parent environment minus provider settings, with ``LASH_HOME`` and no colour."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}
    env.update({"LASH_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"})
    env.update(extra)
    return env


def lash_argv(*args: str) -> list[str]:
    """``python -m lash.cli ARGS`` with this interpreter."""
    return [sys.executable, "-m", "lash.cli", *args]


async def run_lash(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 60,
    stdin: bytes | None = None,
) -> Run:
    """Run to completion (the event loop stays free, so a loopback server can answer)."""
    proc = await asyncio.create_subprocess_exec(
        *lash_argv(*args),
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def write_steps(path: Path, steps: list[dict[str, Any]]) -> Path:
    """A step file for the hidden scripted provider."""
    path.write_text(json.dumps(steps))
    return path


def assert_one_line_error(run: Run, *needles: str) -> None:
    """A clean failure: non-zero exit, one ``lash: error:`` line, no traceback."""
    assert run.code != 0, run
    assert "Traceback" not in run.err and "Traceback" not in run.out, run.err
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lash: error: "), run.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
