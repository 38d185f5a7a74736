#!/usr/bin/env bash
# Quick benchmark suite (< 10 min on the 2-core CPU box): GEMM peak, dense step vs BLAS bound,
# peers (torch-levenberg-marquardt, SciPy, Adam, L-BFGS), precision, JAX peers. Writes
# results/<date>_<time>_cpu.json and regenerates RESULTS.md. FULL=1 runs the larger grids (longer
# caps, lr grids) and adds bench_firstorder.py --full (about 1 h) and bench_scale.py (about 5 min);
# their quick versions run on their own: bench_firstorder.py --quick (about 5 min), bench_scale.py --quick.
# Needs benchmarks/setup.sh first (uses benchmarks/.venv-peers).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
PY="$HERE/.venv-peers/bin/python"
[ -x "$PY" ] || { echo "run benchmarks/setup.sh first" >&2; exit 1; }
export PYTHONWARNINGS=ignore
STAMP="$(date +%Y-%m-%d_%H%M)"
TMP="$(mktemp -d)"
FULLFLAG=""; CAP="${CAP:-20}"; SCIPY_CAP="${SCIPY_CAP:-60}"
if [ "${FULL:-0}" = "1" ]; then FULLFLAG="--full"; CAP="${CAP_FULL:-60}"; SCIPY_CAP="${SCIPY_CAP_FULL:-600}"; fi
echo "== machine (GEMM peak) =="
"$PY" machine.py > "$TMP/machine.json"
P64=$("$PY" -c "import json;print(json.load(open('$TMP/machine.json'))['gemm_peak']['float64']['gflops'])")
P32=$("$PY" -c "import json;print(json.load(open('$TMP/machine.json'))['gemm_peak']['float32']['gflops'])")
echo "peak f64 $P64 GFLOP/s, f32 $P32 GFLOP/s"
echo "== step efficiency =="
"$PY" bench_step.py --peak64 "$P64" --peak32 "$P32" --out "$TMP/step.json" $FULLFLAG
echo "== peers (one process per run) =="
"$PY" bench_peers.py --out "$TMP/peers.json" --cap "$CAP" --scipy-cap "$SCIPY_CAP" $FULLFLAG
echo "== precision (float64 vs float32 + float64 Gram vs float32) =="
"$PY" bench_precision.py --out "$TMP/precision.json"
JAXPY="$HERE/.venv-jax/bin/python"
if [ -x "$JAXPY" ]; then
  echo "== JAX peers (same problems, .venv-jax) =="
  "$JAXPY" bench_jax.py --out "$TMP/jax.json" --cap "$CAP" --torch-python "$PY"
else
  echo "== JAX peers skipped (no benchmarks/.venv-jax; see setup.sh) =="
fi
SUFFIX=""; [ "${FULL:-0}" = "1" ] && SUFFIX="_full"
OUT="results/${STAMP}_cpu${SUFFIX}.json"
"$PY" - "$TMP" "$OUT" <<'PY'
import json, sys
tmp, out = sys.argv[1], sys.argv[2]
d = json.load(open(f"{tmp}/machine.json"))
d["step"] = json.load(open(f"{tmp}/step.json"))
d["peers"] = json.load(open(f"{tmp}/peers.json"))
for key in ("jax", "precision"):
    try:
        d[key] = json.load(open(f"{tmp}/{key}.json"))
    except FileNotFoundError:
        pass
json.dump(d, open(out, "w"), indent=1)
print("wrote", out)
PY
if [ "${FULL:-0}" = "1" ]; then  # the long ones: first-order baselines on the paper's problems, p = 10⁶ scale
  echo "== first-order baselines (bench_firstorder.py --full) =="
  "$PY" bench_firstorder.py --full
  echo "== scale (bench_scale.py) =="
  "$PY" bench_scale.py
fi
"$PY" plots.py
"$PY" report.py
rm -rf "$TMP"
