"""Precision variants of ``gn.fit(method="lm")`` on ``gn.MLP`` (California Housing), 10 LM steps.

Variants, same seed / data / θ₀ (the float32 model is the float64 one cast down):
* ``f64``: float64 model, data, Jacobian, Gram and factorization.
* ``f32+gram64``: float32 model, data and Jacobian; the Gram matrix is formed and factored in
  float64 (``KernelSolver(gram_dtype=torch.float64)`` for p > n, ``NormalSolver(...)`` for p < n).
* ``f32``: float32 everywhere (same solver class, no gram_dtype).

Regimes: ``over``  = gn.MLP(8, width=375) on california_housing(n=1000) (p = 3000 > n);
         ``under`` = gn.MLP(8, width=100) on california_housing(n=4000) (p = 800 < n).
Reported: final loss, relative difference of the final parameters vs f64 (‖θ − θ_f64‖/‖θ_f64 − θ₀‖,
i.e. relative to the distance travelled, and ‖θ − θ_f64‖/‖θ_f64‖), median time per step (history
times; a 2-step warm-up on a copy runs first so torch.func's first call is excluded), accepted steps.
One process per (regime, variant), one after another, after the idle guard.

Usage: ``.venv/bin/python benchmarks/bench_precision.py [--out FILE]``
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import Contention, dump, environment, median, wait_idle  # noqa: E402

REGIMES = {"over": {"n": 1000, "width": 375}, "under": {"n": 4000, "width": 100}}
VARIANTS = ["f64", "f32+gram64", "f32"]
STEPS = 10


def child(regime: str, variant: str, out: str) -> dict:
    import numpy as np
    import torch

    import gaussnewton as gn
    from gaussnewton.linsolve import KernelSolver, NormalSolver

    cfg = REGIMES[regime]
    x, y = gn.datasets.california_housing(n=cfg["n"], seed=0)
    net = gn.MLP(8, width=cfg["width"], seed=0)
    dtype = torch.float64 if variant == "f64" else torch.float32
    if dtype == torch.float32:
        net32 = gn.MLP(8, width=cfg["width"], seed=0, dtype=torch.float32)
        net32.load_state_dict({k: v.to(torch.float32) for k, v in net.state_dict().items()})
        net = net32
        x, y = x.to(torch.float32), y.to(torch.float32)
    params = [p for p in net.parameters() if p.requires_grad]
    p = sum(q.numel() for q in params)
    cls = KernelSolver if p > cfg["n"] else NormalSolver
    solver = cls(gram_dtype=torch.float64) if variant == "f32+gram64" else cls()
    theta0 = torch.cat([q.detach().reshape(-1) for q in params]).double()
    t0 = time.perf_counter()
    gn.fit(copy.deepcopy(net), x, y, method="lm", steps=2, solver=solver)  # warm-up
    setup = time.perf_counter() - t0
    with Contention() as c:
        res = gn.fit(net, x, y, method="lm", steps=STEPS, solver=solver)
    h = res.history
    times = list(h["time"])
    step_s = [b - a for a, b in zip([0.0] + times[:-1], times, strict=False)]  # [] when no step ran
    theta = torch.cat([q.detach().reshape(-1) for q in params]).double()
    np.save(out, theta.numpy())
    return {
        "regime": regime, "variant": variant, "n": cfg["n"], "p": p, "width": cfg["width"], "solver": cls.__name__,
        "gram_dtype": "float64" if variant == "f32+gram64" else str(dtype).replace("torch.", ""),
        "model_dtype": str(dtype).replace("torch.", ""), "steps": len(times),
        "accepted": int(sum(bool(a) for a in h["accepted"])),
        "initial_loss": float(h["loss"][0]) if len(h["loss"]) else None,
        "final_loss": float(res.loss) if getattr(res, "loss", None) is not None else float(h["loss"][-1]),
        "history_loss": [float(v) for v in h["loss"]], "median_step_s": median(step_s), "step_s": step_s,
        "setup_s": setup, "status": str(getattr(res, "status", None)), "contention": c.record(),
        "theta0_norm": float(theta0.norm()), "threads": torch.get_num_threads(),
    }


def parent(args) -> dict:
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="bench_prec_"))
    rows = []
    for regime in REGIMES:
        thetas = {}
        for variant in VARIANTS:
            guard = wait_idle(timeout=args.idle_timeout)
            npy = tmp / f"{regime}_{variant.replace('+', '_')}.npy"
            pr = subprocess.run([sys.executable, str(HERE / "bench_precision.py"), "--child",
                                 json.dumps([regime, variant, str(npy)])], capture_output=True, text=True, timeout=900)
            if pr.returncode != 0:
                row = {"regime": regime, "variant": variant, "error": pr.stderr[-2000:]}
                print(f"precision {regime} {variant}: ERROR {pr.stderr[-500:]}", flush=True)
            else:
                row = json.loads(pr.stdout.strip().splitlines()[-1])
                thetas[variant] = np.load(npy)
            row["idle_guard"] = guard
            rows.append(row)
        for row in rows:
            if row["regime"] != regime or "error" in row or "f64" not in thetas:
                continue
            ref, th = thetas["f64"], thetas[row["variant"]]
            row["rel_diff_params_vs_f64"] = float(np.linalg.norm(th - ref) / np.linalg.norm(ref))
            row["rel_diff_update_vs_f64"] = None  # filled below from θ₀
        # distance travelled: reconstruct θ₀ in this process (cheap) for the update-relative metric
        try:
            import torch

            import gaussnewton as gn

            net = gn.MLP(8, width=REGIMES[regime]["width"], seed=0)
            th0 = torch.cat([q.detach().reshape(-1) for q in net.parameters() if q.requires_grad]).numpy()
            for row in rows:
                if row["regime"] == regime and "error" not in row and "f64" in thetas:
                    row["rel_diff_update_vs_f64"] = float(np.linalg.norm(thetas[row["variant"]] - thetas["f64"])
                                                          / np.linalg.norm(thetas["f64"] - th0))
        except Exception as e:  # noqa: BLE001
            print("update-relative metric skipped:", e)
        for row in rows:
            if row["regime"] == regime and "error" not in row:
                print(f"precision {regime} {row['variant']}: final loss {row['final_loss']:.6g}, "
                      f"{row['median_step_s']*1e3:.1f} ms/step, Δθ/‖θ‖ {row.get('rel_diff_params_vs_f64', 0):.2e}, "
                      f"Δθ/‖θ−θ₀‖ {row.get('rel_diff_update_vs_f64') or 0:.2e}, "
                      f"accepted {row['accepted']}/{row['steps']}, "
                      f"other cores {row['contention']['other_busy_cores']:.2f}", flush=True)
    return {"regimes": REGIMES, "steps": STEPS, "variants": VARIANTS, "runs": rows, "environment": environment()}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", default=None)
    ap.add_argument("--idle-timeout", type=float, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.child:
        regime, variant, out = json.loads(args.child)
        print(json.dumps(child(regime, variant, out), default=float))
        return None
    out = parent(args)
    path = Path(args.out) if args.out else HERE / "results" / f"{dt.date.today().isoformat()}_precision.json"
    dump(out, path)
    print("wrote", path)
    return out


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
