#!/usr/bin/env bash
# Create .venv and install the project with its development extras (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# PostgreSQL binaries for the Postgres store tests (they start a throw-away server).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
fi
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
# The Restate server for the durable-host tests: the npm package, kept in the project-local,
# gitignored .restate/ (tests/durable/test_restate_e2e.py; CI fails without it).
if ! ls .restate/node_modules/@restatedev/restate-server-*/bin/restate-server >/dev/null 2>&1; then
    if command -v npm >/dev/null 2>&1; then
        npm install --prefix .restate --no-audit --no-fund --loglevel=error \
            @restatedev/restate-server@1.7.12 >/dev/null
    fi
fi
# The trace viewer test renders a page in headless Chromium. CI (root, CI set) installs
# Debian's package; elsewhere that one test skips with its reason when the browser is absent.
if [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ] && ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
