"""Run the benchmark rows, each in its own subprocess, and collect their JSON lines.

``python benchmarks/run.py [--with-peers] [--skip-scale] [--out PATH]`` — normally started by
``bash benchmarks/run.sh``, which provides the interpreters. Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LASH_PY = Path(os.environ.get("LASH_PY", ROOT / ".venv" / "bin" / "python"))
PEERS_PY = Path(os.environ.get("PEERS_PY", HERE / ".venv-peers" / "bin" / "python"))

LASH_ROWS = [
    ("lash_turns.py", "memory"),
    ("lash_turns.py", "sqlite"),
    ("lash_turns.py", "postgres"),
    ("restate_turns.py", ""),
]
PEER_ROWS = [
    ("peers/pydantic_ai_turns.py", "mem"),
    ("peers/pydantic_ai_turns.py", "dbos"),
    ("peers/langgraph_turns.py", "none"),
    ("peers/langgraph_turns.py", "sqlite"),
    ("peers/openai_agents_turns.py", "manual"),
    ("peers/openai_agents_turns.py", "sqlite"),
    ("peers/dbos_turns.py", ""),
]
BASELINE_GROWTH_TURNS = 500
# The durable rows re-run as one long session for the growth plot.
GROWTH_ROWS = [
    (LASH_PY, "lash_turns.py", "sqlite"),
    (PEERS_PY, "peers/pydantic_ai_turns.py", "dbos"),
    (PEERS_PY, "peers/langgraph_turns.py", "sqlite"),
    (PEERS_PY, "peers/openai_agents_turns.py", "sqlite"),
    (PEERS_PY, "peers/dbos_turns.py", ""),
]


def run_row(python: Path, script: str, arg: str, env: dict[str, str] | None = None) -> list[dict]:
    """Run one row in a fresh interpreter; return its ``BENCH`` payloads."""
    cmd = [str(python), str(HERE / script)] + ([arg] if arg else [])
    full_env = {**os.environ, **(env or {})}
    label = f"{script} {arg}".strip()
    print(f"  running {label} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=HERE, env=full_env, capture_output=True, text=True, check=False)
    rows = [json.loads(line[6:]) for line in proc.stdout.splitlines() if line.startswith("BENCH ")]
    if proc.returncode != 0 or not rows:
        tail = (proc.stderr or proc.stdout)[-2000:]
        print(f"  FAILED {label} (exit {proc.returncode}):\n{tail}", file=sys.stderr)
        return [{"name": label, "group": "failed", "error": tail}]
    return rows


def pick_median_rounds(rounds: list[list[dict]]) -> tuple[list[dict], dict[str, list[float]]]:
    """Per row, the round whose median is the median of the rounds' medians.

    The rows of one round run back to back, so a noisy minute on a shared machine hits every
    row of that round; keeping each row's middle round drops such minutes without favouring
    anyone. Also returns every round's median per row, for the spread.
    """
    by_name: dict[str, list[dict]] = {}
    order: list[str] = []
    for rows in rounds:
        for row in rows:
            if row["name"] not in by_name:
                order.append(row["name"])
            by_name.setdefault(row["name"], []).append(row)
    picked: list[dict] = []
    spread: dict[str, list[float]] = {}
    for name in order:
        ok = [r for r in by_name[name] if "median_ms" in r]
        if not ok:
            picked.append(by_name[name][0])
            continue
        ok.sort(key=lambda r: r["median_ms"])
        picked.append(ok[(len(ok) - 1) // 2])
        spread[name] = [r["median_ms"] for r in ok]
    return picked, spread


def baseline_env(rev: str | None, revert: list[str]) -> tuple[str, dict[str, str]]:
    """A baseline ``src/`` and the env that imports it.

    Either ``src/`` as of ``rev``, or ``src/`` as of HEAD with the ``src/`` changes of the
    ``revert`` commits undone (isolates those commits from everyone else's work since).
    """

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout

    base = rev or "HEAD"
    sha = git("rev-parse", "--short", base).decode().strip()
    tmp = Path(tempfile.mkdtemp(prefix="lash-baseline-"))
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=git("archive", sha, "src"), check=True)
    for commit in revert:
        patch = git("show", "--format=", commit, "--", "src")
        subprocess.run(["patch", "-p1", "-R", "-s"], cwd=tmp, input=patch, check=True)
    label = f"{sha} minus {', '.join(revert)}" if revert else sha
    return label, {"PYTHONPATH": str(tmp / "src")}


BASELINE_TAG = " [baseline]"


def append_history(results: dict[str, Any], path: Path) -> None:
    """One summary line per full run, so the report can show run-to-run spread."""
    rows = {r["name"]: r for r in results["turns"] if "median_ms" in r}
    lash = next((r for n, r in rows.items() if n.startswith("lash + Sqlite")), None)
    mem = next((r for n, r in rows.items() if n.startswith("lash + Memory")), None)
    peers = [r for r in rows.values() if r.get("group") == "peer" and r.get("durable")]
    if lash is None or not peers:
        return
    best = min(peers, key=lambda r: r["median_ms"])
    line = {
        "date_utc": results["date_utc"],
        "lash_sqlite_ms": lash["median_ms"],
        "lash_memory_ms": mem["median_ms"] if mem else None,
        "fastest_durable_peer": best["name"],
        "peer_ms": best["median_ms"],
        "ratio": round(lash["median_ms"] / best["median_ms"], 3),
        "load1": round(results["machine"]["loadavg_at_start"][0], 2),
        "fsync_wal_ms": results.get("fsync_before", {}).get("commit_median_ms", {}).get("WAL/FULL"),
        "rounds": len(next(iter(results.get("turn_rounds", {}).values()), [None])),
    }
    with path.open("a") as fh:
        fh.write(json.dumps(line) + "\n")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "loadavg_at_start": os.getloadavg(),
    }


def peer_versions() -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({p: m.version(p) for p in ['pydantic-ai-slim', 'langgraph',"
        " 'langgraph-checkpoint-sqlite', 'openai-agents', 'dbos', 'matplotlib']}))"
    )
    out = subprocess.run([str(PEERS_PY), "-c", code], capture_output=True, text=True, check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--with-peers", action="store_true", help="also run the peer rows")
    parser.add_argument("--skip-scale", action="store_true", help="skip the scale benchmark")
    parser.add_argument(
        "--skip-pg-workers",
        action="store_true",
        help="skip the PostgresStore worker-scaling benchmark",
    )
    parser.add_argument("--growth-turns", type=int, default=200)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="run the turn rows this many times, interleaved; each row reports its median round",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument(
        "--baseline-rev",
        help="also run the lash rows on src/ as of this git revision (before/after comparison)",
    )
    parser.add_argument(
        "--baseline-revert",
        help="comma-separated commits: the baseline is HEAD's src/ with these commits undone",
    )
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "date_utc": started.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(["bash benchmarks/run.sh", *sys.argv[1:]]),
        "machine": machine(),
        "workload": {"prompt_bytes": 200, "tool_result_bytes": 400, "answer_bytes": 400},
        "turns": [],
        "growth": [],
        "scale": None,
        "pg_workers": None,
        "profile": None,
        "peer_versions": peer_versions() if args.with_peers else {},
    }
    print("fsync probe", file=sys.stderr)
    results["fsync_before"] = run_row(LASH_PY, "fsync_probe.py", "")[0]
    print("turn benchmark", file=sys.stderr)
    rows: list[tuple[Path, str, str, dict[str, str] | None]] = [
        (LASH_PY, s, a, None) for s, a in LASH_ROWS
    ]
    base_env: dict[str, str] | None = None
    revert = [c for c in (args.baseline_revert or "").split(",") if c]
    if args.baseline_rev or revert:
        try:
            sha, base_env = baseline_env(args.baseline_rev, revert)
        except subprocess.CalledProcessError as err:
            print(f"  baseline skipped: {err}", file=sys.stderr)
        else:
            rows += [(LASH_PY, s, a, base_env) for s, a in LASH_ROWS]
    if args.with_peers:
        rows += [(PEERS_PY, s, a, None) for s, a in PEER_ROWS]
    rounds: list[list[dict]] = []
    for n in range(args.rounds):
        print(f" round {n + 1} of {args.rounds}", file=sys.stderr)
        this_round: list[dict] = []
        for python, script, arg, env in rows:
            for row in run_row(python, script, arg, env):
                if env is not None:  # the baseline's copy of a lash row
                    row["name"] += BASELINE_TAG
                this_round.append(row)
        rounds.append(this_round)
    picked, results["turn_rounds"] = pick_median_rounds(rounds)
    results["turns"] = [r for r in picked if not r["name"].endswith(BASELINE_TAG)]
    if base_env is not None:
        print(f"baseline: one long session at {sha}", file=sys.stderr)
        growth = {**base_env, "BENCH_TURNS": str(BASELINE_GROWTH_TURNS), "BENCH_SESSIONS": "1"}
        results["baseline"] = {
            "rev": sha,
            "rows": [
                {**r, "name": r["name"][: -len(BASELINE_TAG)]}
                for r in picked
                if r["name"].endswith(BASELINE_TAG)
            ],
            "long": run_row(LASH_PY, "lash_turns.py", "sqlite", growth)[0],
            # the same long session on this tree, right after, for a like-for-like pair
            "long_after": run_row(
                LASH_PY,
                "lash_turns.py",
                "sqlite",
                {"BENCH_TURNS": str(BASELINE_GROWTH_TURNS), "BENCH_SESSIONS": "1"},
            )[0],
        }
    if args.with_peers:
        print(f"growth: one session of {args.growth_turns} turns per durable row", file=sys.stderr)
        env = {"BENCH_TURNS": str(args.growth_turns), "BENCH_SESSIONS": "1"}
        for python, script, arg in GROWTH_ROWS:
            results["growth"].extend(run_row(python, script, arg, env))
    if not args.skip_scale:
        print("scale benchmark", file=sys.stderr)
        results["scale"] = run_row(LASH_PY, "scale.py", "")[0]
    if not args.skip_pg_workers:
        print("PostgresStore worker scaling", file=sys.stderr)
        results["pg_workers"] = run_row(LASH_PY, "pg_workers.py", "")[0]
    print("profile of the lash turn", file=sys.stderr)
    results["profile"] = run_row(LASH_PY, "profile_turn.py", "")[0]
    results["fsync_after"] = run_row(LASH_PY, "fsync_probe.py", "")[0]
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    append_history(results, args.out.parent / "history.jsonl")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
