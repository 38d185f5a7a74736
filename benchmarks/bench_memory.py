"""Peak memory of ``fit`` against n (issue 16, item 1): linear in n, no N×N probe.

A tiny model (``nn.Linear(3, 1)``, p = 4) is trained for 3 LM steps on n = 10⁴ … 10⁶ rows, each
size in a fresh subprocess so that its peak resident memory (``ru_maxrss``) is its own; the
baseline is the same process importing everything and building the data without calling ``fit``.
Before the fix, the eligibility probe built an N×N identity (12.8 GB at n = 40,000; 8 TB asked
at n = 10⁶). Writes ``results/memory_<date>.json`` and prints a table (MB above the baseline,
and MB per 10⁵ rows, which stays flat when memory is linear in n).

Usage: ``.venv/bin/python benchmarks/bench_memory.py [--sizes 10000,100000,1000000]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

CHILD = r"""
import resource, sys, time, torch
from torch import nn
import gaussnewton as gn
n, run = int(sys.argv[1]), sys.argv[2] == "fit"
torch.manual_seed(0)
X = torch.randn(n, 3, dtype=torch.float64)
y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.1 * torch.randn(n, dtype=torch.float64)
model = nn.Linear(3, 1).double()
t0 = time.perf_counter()
if run:
    res = gn.fit(model, X, y[:, None], method="lm", steps=3)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - t0)
"""


def peak_mb(n: int, run: bool) -> tuple[float, float]:
    """(peak resident MB, fit seconds) of a fresh process at n rows."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), "fit" if run else "base"], capture_output=True,
                         text=True, check=True, timeout=600)
    mb, secs = out.stdout.split()
    return float(mb), float(secs)


def main() -> None:
    """Measure and report."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    sizes = [int(s) for s in ap.parse_args().sizes.split(",")]
    rows = []
    print(f"{'n':>9} {'baseline MB':>12} {'fit MB':>9} {'fit − base':>11} {'per 1e5 rows':>13} {'fit s':>7}")
    for n in sizes:
        base, _ = peak_mb(n, False)
        fit, secs = peak_mb(n, True)
        extra = fit - base
        rows.append({"n": n, "baseline_mb": base, "fit_mb": fit, "extra_mb": extra, "seconds": secs})
        print(f"{n:>9,} {base:>12.0f} {fit:>9.0f} {extra:>11.0f} {extra / (n / 1e5):>13.1f} {secs:>7.2f}")
    out = HERE / "results" / f"memory_{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps({"model": "nn.Linear(3, 1), p = 4, 3 LM steps", "rows": rows}, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
