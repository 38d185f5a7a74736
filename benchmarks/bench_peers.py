"""End-to-end MLP regression: gaussnewton vs torch-levenberg-marquardt, SciPy lm, Adam, L-BFGS.

Problem (peer-measurements.md §3, scaled up so that p ≥ 2,000): f(x) = a·tanh(Wx + b) + c
(``nn.Linear(8, m) → tanh → nn.Linear(m, 1)``, PyTorch default init, torch.manual_seed(0), so every
process starts from the same θ₀), x ~ N(0, I₈)/√8, y = tanh(3 w*·x) + 0.1·N(0, 1), ‖w*‖ = √8.
Loss L = 0.5·mean((f − y)²), float64, torch threads as found (2 here).

* ``under``: n = 4000, m = 200, p = 2001 (p < n). Target 1e-2·L0 (the noise floor
  0.5σ²(1 − p/n) ≈ 2.5e-3 makes 1e-3·L0 unreachable).
* ``over``:  n = 1000, m = 300, p = 3001 (p > n). Target 1e-3·L0.

Fairness: the parent runs every (regime, solver, setting) in its own fresh process, one at a
time, each after an idle-CPU guard; the child measures the CPU used by other processes during
its run. One-off costs (torch.func's first vmap/jacrev call, imports) run in a warm-up on a
copy of the model and are reported apart as ``setup_s``. Solver time excludes the untimed loss
evaluation that this script adds for solvers that do not report the loss of the new iterate
(TLM, Adam, L-BFGS); gaussnewton and SciPy evaluate it themselves, inside their timed loop.
Runs stop at the target, at ``--cap`` seconds of solver time (``--scipy-cap`` for SciPy), or at
the iteration cap. gaussnewton runs twice: the default exact LM step (``solver="auto"``: Cholesky
of the p×p or N×N Gram matrix) and ``solver="truncated_cg"`` (inexact steps: ≤ 20 iterations of
Jacobi-preconditioned CG on the structured Jacobian's JVP/VJP).

Usage: ``python bench_peers.py --out FILE [--full] [--cap S] [--scipy-cap S]`` (parent; needs .venv-peers)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import Contention, dump, environment, median, wait_idle  # noqa: E402

REGIMES = {
    "under": {"n": 4000, "m": 200, "target_rel": 1e-2},
    "over": {"n": 1000, "m": 300, "target_rel": 1e-3},
}


# ------------------------------------------------------------------ problem (child side)
def make_problem(regime: str):
    import torch
    from torch import nn

    cfg = REGIMES[regime]
    n, m, d = cfg["n"], cfg["m"], 8
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    w = w / w.norm() * math.sqrt(d)
    y = (torch.tanh(3 * x @ w) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64))[:, None]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(d, m), nn.Tanh(), nn.Linear(m, 1)).double()
    return model, x, y


def loss_of(model, x, y) -> float:
    import torch

    with torch.no_grad():
        return float(0.5 * ((model(x) - y) ** 2).mean())


class Trace:
    """Cumulative solver time and loss after each iteration; stops at target/cap."""

    def __init__(self, target: float, cap: float) -> None:
        self.target, self.cap = target, cap
        self.t, self.loss, self.step_s = [], [], []
        self.elapsed = 0.0
        self.t_target = None
        self.it_target = None

    def add(self, dt: float, loss: float) -> bool:
        self.elapsed += dt
        self.step_s.append(dt)
        self.t.append(self.elapsed)
        self.loss.append(loss)
        if self.t_target is None and loss <= self.target:
            self.t_target, self.it_target = self.elapsed, len(self.t)
        return self.t_target is not None or self.elapsed > self.cap or not math.isfinite(loss)


def run_gn(model, x, y, trace: Trace, setting: dict, max_iter: int) -> dict:
    import gaussnewton as gn

    t0 = time.perf_counter()
    gn.fit(copy.deepcopy(model), x, y, method=setting["method"], solver=setting.get("solver", "auto"),
           steps=2)  # warm-up (torch.func first call)
    setup = time.perf_counter() - t0
    cb_state = {"t0": None}

    def cb(info):  # stop on the time cap (the callback's own cost is negligible)
        if cb_state["t0"] is None:
            cb_state["t0"] = time.perf_counter()
        return time.perf_counter() - cb_state["t0"] > trace.cap

    res = gn.fit(model, x, y, method=setting["method"], solver=setting.get("solver", "auto"), steps=max_iter,
                 target_loss=trace.target, callback=cb)
    h = res.history
    prev = 0.0
    best = math.inf
    for tt, lo in zip(h["time"], h["loss"], strict=True):
        best = min(best, lo)
        trace.add(tt - prev, lo)
        prev = tt
    acc = sum(bool(a) for a in h["accepted"])
    return {"setup_s": setup, "accepted": acc, "status": res.status}


def run_tlm(model, x, y, trace: Trace, setting: dict, max_iter: int) -> dict:
    import torch_levenberg_marquardt as tlm

    def mk(mod):
        return tlm.training.LevenbergMarquardtModule(model=mod, solve_method=setting["solve"])

    t0 = time.perf_counter()
    w = mk(copy.deepcopy(model))
    w.training_step(x, y)
    setup = time.perf_counter() - t0
    lm = mk(model)
    for _ in range(max_iter):
        t0 = time.perf_counter()
        _, _, stop, _ = lm.training_step(x, y)
        dt = time.perf_counter() - t0
        if trace.add(dt, loss_of(model, x, y)) or stop:
            break
    return {"setup_s": setup, "accepted": len(trace.t)}


def run_adam(model, x, y, trace: Trace, setting: dict, max_iter: int) -> dict:
    import torch

    t0 = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), lr=setting["lr"])
    m2 = copy.deepcopy(model)
    (0.5 * ((m2(x) - y) ** 2).mean()).backward()
    setup = time.perf_counter() - t0
    for _ in range(max_iter):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if trace.add(dt, loss_of(model, x, y)):
            break
    return {"setup_s": setup}


def run_lbfgs(model, x, y, trace: Trace, setting: dict, max_iter: int) -> dict:
    import torch

    # max_eval: torch's default for max_iter=1 is 1, which leaves the strong-Wolfe search no
    # evaluation beyond its first trial (a failed trial then freezes the iterate for good)
    opt = torch.optim.LBFGS(model.parameters(), lr=setting["lr"], max_iter=1, max_eval=25, history_size=50,
                            line_search_fn="strong_wolfe")
    nfe = [0]

    def closure():
        nfe[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(max_iter):
        t0 = time.perf_counter()
        opt.step(closure)
        dt = time.perf_counter() - t0
        if trace.add(dt, loss_of(model, x, y)):
            break
    return {"setup_s": 0.0, "nfev": nfe[0]}


def run_scipy(model, x, y, trace: Trace, setting: dict, max_iter: int) -> dict:
    import scipy.optimize as so
    import torch
    from torch.func import functional_call, jacrev, vmap

    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    n = x.shape[0]
    s = 1.0 / math.sqrt(n)  # residuals scaled so that 0.5‖r‖² = L

    def unflat(t):
        return {k: v.reshape(sh) for k, v, sh in zip(names, torch.split(t, sizes), shapes, strict=True)}

    def single(t, xi):
        return functional_call(model, unflat(t), (xi[None],))[0, 0]

    jac_fn = vmap(jacrev(single), in_dims=(None, 0))

    class Stop(Exception):
        pass

    clock = {"t": None, "last": None}

    def fun(th):
        if clock["t"] is None:
            clock["t"] = clock["last"] = time.perf_counter()
        with torch.no_grad():
            r = (functional_call(model, unflat(torch.from_numpy(th)), (x,)) - y).reshape(-1) * s
        r = r.numpy()
        now = time.perf_counter()
        if trace.add(now - clock["last"], 0.5 * float(r @ r)):
            raise Stop
        clock["last"] = now
        return r

    def jac(th):
        return (jac_fn(torch.from_numpy(th), x) * s).numpy()

    t0 = time.perf_counter()
    jac(theta0.numpy())
    setup = time.perf_counter() - t0
    status = None
    try:
        r = so.least_squares(fun, theta0.numpy(), jac=jac, method="lm", ftol=1e-12, xtol=1e-12, gtol=1e-12,
                             max_nfev=max_iter)
        status = r.status
    except Stop:
        status = "stopped (target or cap)"
    return {"setup_s": setup, "status": status, "note": "iterations = function evaluations"}


RUNNERS = {"gaussnewton": run_gn, "tlm": run_tlm, "adam": run_adam, "lbfgs": run_lbfgs, "scipy_lm": run_scipy}


def child(regime: str, solver: str, setting: dict, cap: float, max_iter: int) -> dict:
    import torch

    model, x, y = make_problem(regime)
    l0 = loss_of(model, x, y)
    p = sum(q.numel() for q in model.parameters())
    trace = Trace(REGIMES[regime]["target_rel"] * l0, cap)
    with Contention() as c:
        extra = RUNNERS[solver](model, x, y, trace, setting, max_iter)
    k = len(trace.t)
    return {
        "regime": regime, "solver": solver, "setting": setting, "n": x.shape[0], "p": p, "L0": l0,
        "target": trace.target, "threads": torch.get_num_threads(), "iters": k,
        "median_step_s": median(trace.step_s) if k else None, "mean_step_s": trace.elapsed / k if k else None,
        "time_to_target_s": trace.t_target, "iters_to_target": trace.it_target,
        "final_loss": trace.loss[-1] if k else None, "best_loss": min(trace.loss) if k else None,
        "solver_time_s": trace.elapsed, "capped": trace.t_target is None, "contention": c.record(), **extra,
        "trace": {"t": trace.t[:: max(1, k // 400)], "loss": trace.loss[:: max(1, k // 400)]},
    }


# ------------------------------------------------------------------ parent
def plan(full: bool) -> list[tuple[str, str, dict]]:
    """(regime, solver, setting) in run order. Quick mode runs the best Adam/L-BFGS lr of the full grid."""
    adam_lrs = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2] if full else [1e-2]
    lbfgs_lrs = [1.0, 0.3] if full else [1.0]
    runs = []
    for regime in REGIMES:
        runs.append((regime, "gaussnewton", {"method": "lm"}))
        runs.append((regime, "gaussnewton", {"method": "lm", "solver": "truncated_cg"}))
        if full:
            runs.append((regime, "gaussnewton", {"method": "gn"}))
        runs.append((regime, "tlm", {"solve": "cholesky"}))
        if full:
            runs.append((regime, "tlm", {"solve": "qr"}))
        if regime == "under":  # scipy's lm (MINPACK) refuses p > n
            runs.append((regime, "scipy_lm", {}))
        runs += [(regime, "adam", {"lr": lr}) for lr in adam_lrs]
        runs += [(regime, "lbfgs", {"lr": lr}) for lr in lbfgs_lrs]
    return runs


def parent(args) -> dict:
    py = sys.executable
    rows = []
    for regime, solver, setting in plan(args.full):
        guard = wait_idle(timeout=args.idle_timeout)
        # SciPy's MINPACK takes seconds per iteration here: a longer cap, so that a missed target
        # still bounds its time-to-target ratio from below by cap / gaussnewton's time
        cap = max(args.cap, args.scipy_cap) if solver == "scipy_lm" else args.cap
        cmd = [py, str(HERE / "bench_peers.py"), "--child", json.dumps([regime, solver, setting]),
               "--cap", str(cap), "--max-iter", str(args.max_iter)]
        t0 = time.perf_counter()
        pr = subprocess.run(cmd, capture_output=True, text=True, timeout=cap * 4 + 300)
        wall = time.perf_counter() - t0
        if pr.returncode != 0:
            row = {"regime": regime, "solver": solver, "setting": setting, "error": pr.stderr[-2000:]}
        else:
            row = json.loads(pr.stdout.strip().splitlines()[-1])
        row.update(idle_guard=guard, process_wall_s=wall)
        rows.append(row)
        if "error" in row:
            print(f"peers {regime} {solver} {setting}: ERROR {row['error'][-300:]}", flush=True)
        else:
            ttt = row["time_to_target_s"]
            print(f"peers {regime} {solver} {setting}: {row['median_step_s']*1e3:.2f} ms/iter, "
                  f"{f'{ttt:.3f} s' if ttt is not None else 'not reached'} to target ({row['iters_to_target']} it), "
                  f"best {row['best_loss']:.3g}, other cores {row['contention']['other_busy_cores']:.2f}", flush=True)
    return {"regimes": REGIMES, "cap_s": args.cap, "scipy_cap_s": max(args.cap, args.scipy_cap),
            "max_iter": args.max_iter, "runs": rows,
            "environment_peers": environment()}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", default=None)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--cap", type=float, default=15.0, help="solver-time cap per run (s)")
    ap.add_argument("--scipy-cap", type=float, default=60.0, help="solver-time cap of the SciPy runs (s)")
    ap.add_argument("--max-iter", type=int, default=100000)
    ap.add_argument("--idle-timeout", type=float, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.child:
        regime, solver, setting = json.loads(args.child)
        print(json.dumps(child(regime, solver, setting, args.cap, args.max_iter), default=float))
        return None
    out = parent(args)
    if args.out:
        dump(out, Path(args.out))
    return out


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
