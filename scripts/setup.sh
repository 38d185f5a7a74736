#!/usr/bin/env bash
# Create .venv (if missing) and install the project with its dev extra (pytest, hypothesis, ruff,
# mypy, matplotlib, scikit-learn).
# torch is pinned FIRST to the CPU build 2.13.0 (an unpinned torch could pull a multi-GB CUDA build);
# the package metadata itself only asks for torch>=2.3, which 2.13.0 satisfies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import torch, gaussnewton; print(f'gaussnewton {gaussnewton.__version__}, torch {torch.__version__}')"
