#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint, type-check and run the whole test suite plus the doctests.
# Extra arguments go to the main pytest run (e.g. `scripts/test.sh -k damping`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check src tests benchmarks examples
echo "== mypy"
.venv/bin/mypy  # files and options: [tool.mypy] in pyproject.toml
echo "== pytest"
.venv/bin/python -m pytest -q -n 2 "$@"
echo "== doctests"
# the >>> examples in the library's docstrings (the deprecated gaussnewton.experiments alias warns
# on import, which pytest turns into an error, so it is left out)
.venv/bin/python -m pytest -q --doctest-modules src/gaussnewton src/gaussnewton_paper \
  --ignore=src/gaussnewton/experiments --ignore=src/gaussnewton/problems/catalogue.py
