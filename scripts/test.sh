#!/usr/bin/env bash
# The whole test suite: install (idempotent), lint, check generated stubs, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check seguro tests benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
