#!/usr/bin/env bash
# The whole test suite: install (idempotent), lint, check the layering contracts, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check seguro tests benchmarks ansible
.venv/bin/lint-imports --no-logo --no-cache   # pyproject.toml [tool.importlinter]: layers, a pure core, no cycles
(cd ansible && PATH="$PWD/../.venv/bin:$PATH" ../.venv/bin/ansible-lint -q)   # ansible/.ansible-lint: production profile
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
