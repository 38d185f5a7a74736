#!/usr/bin/env bash
# Create the benchmark environments (idempotent, quiet):
#   benchmarks/.venv-peers : torch==2.13.0 (local CPU wheel, installed FIRST), this project (-e),
#                            torch-levenberg-marquardt (peer; pulls pytorch-lightning), matplotlib
#   benchmarks/.venv-jax   : jax, jaxlib, optimistix, jaxopt (float64 is enabled in the scripts)
# Never install an unpinned torch: it would fetch a multi-GB CUDA build.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-python3}"
PIP_Q=(--quiet --disable-pip-version-check)

mkvenv() { [ -x "$1/bin/python" ] || "$PY" -m venv "$1"; }

PEERS="$HERE/.venv-peers"
mkvenv "$PEERS"
"$PEERS/bin/python" -m pip install "${PIP_Q[@]}" torch==2.13.0
"$PEERS/bin/python" -m pip install "${PIP_Q[@]}" -e "$ROOT" torch-levenberg-marquardt matplotlib
"$PEERS/bin/python" - <<'PY'
import importlib.metadata as md
for d in ["torch", "numpy", "scipy", "gaussnewton", "torch-levenberg-marquardt", "pytorch-lightning", "matplotlib"]:
    try:
        print(f"  peers: {d}=={md.version(d)}")
    except md.PackageNotFoundError:
        print(f"  peers: {d} MISSING")
PY

if [ "${SKIP_JAX:-0}" != "1" ]; then
  JAXV="$HERE/.venv-jax"
  mkvenv "$JAXV"
  "$JAXV/bin/python" -m pip install "${PIP_Q[@]}" jax jaxlib optimistix jaxopt
  "$JAXV/bin/python" - <<'PY'
import importlib.metadata as md
for d in ["jax", "jaxlib", "optimistix", "jaxopt", "numpy"]:
    print(f"  jax: {d}=={md.version(d)}")
PY
fi
