#!/usr/bin/env bash
# The one benchmark command. Not part of the test run.
#
#   bash benchmarks/run.sh                 # lash rows + scale benchmark (project .venv only)
#   bash benchmarks/run.sh --with-peers    # also install the peers into benchmarks/.venv-peers
#                                          # (PyPI: pydantic-ai, LangGraph, OpenAI Agents, DBOS,
#                                          # matplotlib) and run them side by side, then write
#                                          # docs/performance.md and docs/performance-turn-cost.png
#
# The lash rows include PostgresStore (needs PostgreSQL binaries: Debian's 'postgresql'; a
# throw-away cluster with fsync=on is started) and lash on Restate (needs restate-server in
# .restate/ and the restate extra, both from scripts/setup.sh).
#
# Extra flags go to benchmarks/run.py: --rounds N (turn rows, interleaved; default 3),
# --skip-scale, --skip-pg-workers, --growth-turns N, --baseline-rev REV or --baseline-revert C1,C2 (before/after).
# Results: benchmarks/results/latest.json (+ a line in history.jsonl); report: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
with_peers=0
for arg in "$@"; do [ "$arg" = "--with-peers" ] && with_peers=1; done
if [ "$with_peers" = 1 ]; then
  if [ ! -x benchmarks/.venv-peers/bin/python ]; then
    python3 -m venv benchmarks/.venv-peers
  fi
  benchmarks/.venv-peers/bin/pip install -q --disable-pip-version-check -r benchmarks/requirements-peers.txt
fi
.venv/bin/python benchmarks/run.py "$@"
if [ "$with_peers" = 1 ]; then
  benchmarks/.venv-peers/bin/python benchmarks/report.py benchmarks/results/latest.json
else
  .venv/bin/python benchmarks/report.py --no-plot benchmarks/results/latest.json
fi
