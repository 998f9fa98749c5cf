#!/usr/bin/env bash
# Set up the environment (idempotent) and run the offline durability demo (`lash demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lash demo
