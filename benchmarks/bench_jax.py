"""JAX peers on the bench_peers.py MLP problems: optimistix.LevenbergMarquardt and jaxopt.LevenbergMarquardt.

Same problems, data and θ₀ as bench_peers.py: the parent asks a torch venv (``--torch-python``,
default .venv-peers, then the project .venv) to run ``bench_peers.make_problem`` and save x, y and
θ₀ to an .npz, so nothing is re-implemented; L0 computed here in JAX (x64) is asserted equal to the
L0 of the gaussnewton row of the newest ``results/*_cpu*.json`` to 1e-12 relative.

Model f(θ, x) = tanh(x W₁ᵀ + b₁) W₂ᵀ + b₂ with θ flattened in nn.Sequential's parameter order;
residuals r = (f − y)/√n so that 0.5‖r‖² = L = 0.5·mean((f − y)²), float64 (jax_enable_x64).

Solvers (library defaults, peer-measurements.md §5 pitfalls handled):
* ``optimistix``: ``optx.LevenbergMarquardt(rtol=1e-14, atol=1e-14)`` (default linear solver QR,
  default jac="fwd"), driven through ``solver.init``/``solver.step`` under ``eqx.filter_jit``.
  optimistix evaluates f at a point on the *next* step (the one-step lag of §5); the loss traced
  here is that of the candidate iterate ``state.y_eval`` returned by each step, evaluated outside
  the timed region (the same convention as TLM/Adam in bench_peers.py).
* ``jaxopt``: ``jaxopt.LevenbergMarquardt(residual_fun)`` with defaults (matrix-free CG solve,
  materialize_jac=False, so the §5 materialize_jac/jac_fun bug does not arise); driven through
  ``init_state``/``update`` (jitted by jaxopt); the loss of the returned params is evaluated untimed.

JIT: a warm-up step from θ₀ on a throw-away state (compile + first execution) is timed apart as
``jit_s`` (plus ``init_s`` for the state construction); the measured run then restarts from θ₀.
One process per (regime, solver), one after another, each after the idle guard; contention is
recorded. Runs stop at the target, after ``--cap`` s of solver time, or when the solver says so.

Usage: ``benchmarks/.venv-jax/bin/python benchmarks/bench_jax.py [--cap 20] [--out FILE]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    from _common import Contention, dump, environment, median, wait_idle  # noqa: E402
except ImportError:  # pragma: no cover - fallback: simple /proc/loadavg wait
    Contention = None

    def wait_idle(threshold=0.3, timeout=60.0, settle=1.0):
        t0 = time.monotonic()
        while float(open("/proc/loadavg").read().split()[0]) > threshold and time.monotonic() - t0 < timeout:
            time.sleep(settle)
        return {"idle": time.monotonic() - t0 < timeout, "waited_s": round(time.monotonic() - t0, 2)}

    def median(xs):
        s = sorted(xs)
        return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])

    def environment():
        return {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds")}

    def dump(obj, path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(obj, indent=1, default=float))

REGIMES = {"under": {"n": 4000, "m": 200, "target_rel": 1e-2}, "over": {"n": 1000, "m": 300, "target_rel": 1e-3}}
SOLVERS = ["optimistix", "jaxopt"]

_EXPORT = """
import sys, numpy as np, torch
sys.path.insert(0, {here!r})
from bench_peers import make_problem, loss_of
model, x, y = make_problem({regime!r})
theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
np.savez({path!r}, x=x.numpy(), y=y.numpy(), theta=theta.numpy(), m=model[0].out_features,
         L0_torch=loss_of(model, x, y))
"""


def latest_cpu_json() -> Path | None:
    files = sorted((HERE / "results").glob("*_cpu*.json"))
    return files[-1] if files else None


def reference_L0(regime: str) -> tuple[float, str] | None:
    p = latest_cpu_json()
    if p is None:
        return None
    d = json.loads(p.read_text())
    for r in d["peers"]["runs"]:
        if r.get("regime") == regime and r.get("solver") == "gaussnewton" and "L0" in r:
            return r["L0"], p.name
    return None


# ------------------------------------------------------------------ child
def child(npz: str, regime: str, solver_name: str, cap: float, max_iter: int) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)  # before any array is created
    import jax.numpy as jnp
    import numpy as np

    d = np.load(npz)
    x, y, theta0 = jnp.asarray(d["x"]), jnp.asarray(d["y"]).reshape(-1), jnp.asarray(d["theta"])
    m, n, k = int(d["m"]), x.shape[0], x.shape[1]
    assert x.dtype == jnp.float64 and theta0.dtype == jnp.float64
    sizes = [m * k, m, m, 1]
    offs = np.cumsum([0] + sizes)
    s = 1.0 / math.sqrt(n)

    def model(th, xx):
        w1 = th[offs[0]:offs[1]].reshape(m, k)
        b1 = th[offs[1]:offs[2]]
        w2 = th[offs[2]:offs[3]]
        b2 = th[offs[3]]
        return jnp.tanh(xx @ w1.T + b1) @ w2 + b2

    def residual(th):
        return (model(th, x) - y) * s

    loss_j = jax.jit(lambda th: 0.5 * jnp.sum(residual(th) ** 2))
    l0 = float(loss_j(theta0))
    target = REGIMES[regime]["target_rel"] * l0
    ts, losses, steps = [], [], []
    info = {}

    if solver_name == "optimistix":
        import equinox as eqx
        import optimistix as optx

        solver = optx.LevenbergMarquardt(rtol=1e-14, atol=1e-14)
        fn = lambda th, args: (residual(th), None)  # noqa: E731
        f_struct, aux_struct = jax.eval_shape(lambda: fn(theta0, None))
        tags = frozenset()

        def init():
            return solver.init(fn, theta0, None, {}, f_struct, aux_struct, tags)

        @eqx.filter_jit
        def step(th, state):
            th2, state2, _ = solver.step(fn, th, None, {}, state, tags)
            term, _ = solver.terminate(fn, th2, None, {}, state2, tags)
            return th2, state2, term

        t0 = time.perf_counter()
        state = init()
        info["init_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(step(theta0, state))  # warm-up: compile + first execution, discarded
        info["jit_s"] = time.perf_counter() - t0
        th = theta0
        state = init()
        with Contention() as c:
            elapsed = 0.0
            for _ in range(max_iter):
                t0 = time.perf_counter()
                th, state, term = step(th, state)
                jax.block_until_ready((th, state, term))
                dt_ = time.perf_counter() - t0
                elapsed += dt_
                lo = float(loss_j(state.y_eval))  # untimed: loss of the candidate iterate
                steps.append(dt_), ts.append(elapsed), losses.append(lo)
                if lo <= target or elapsed > cap or not math.isfinite(lo) or bool(term):
                    break
        info["accepted"] = int(state.num_accepted_steps)
        info["terminated_by_solver"] = bool(term)
    else:
        import jaxopt

        solver = jaxopt.LevenbergMarquardt(residual_fun=lambda th: residual(th))
        t0 = time.perf_counter()
        state = solver.init_state(theta0)
        jax.block_until_ready(state)
        info["init_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(solver.update(theta0, state))  # warm-up: compile + first execution
        info["jit_s"] = time.perf_counter() - t0
        th = theta0
        state = solver.init_state(theta0)
        jax.block_until_ready(state)
        with Contention() as c:
            elapsed = 0.0
            for _ in range(max_iter):
                t0 = time.perf_counter()
                th, state = solver.update(th, state)
                jax.block_until_ready((th, state))
                dt_ = time.perf_counter() - t0
                elapsed += dt_
                lo = float(loss_j(th))  # untimed
                steps.append(dt_), ts.append(elapsed), losses.append(lo)
                if lo <= target or elapsed > cap or not math.isfinite(lo):
                    break
        info["settings"] = {"solver": getattr(solver.solver, "__name__", str(solver.solver)),
                            "materialize_jac": solver.materialize_jac}

    kk = len(ts)
    hit = next((i for i, lo in enumerate(losses) if lo <= target), None)
    return {
        "regime": regime, "solver": solver_name, "setting": {"defaults": True}, "n": n, "p": int(theta0.size),
        "L0": l0, "target": target, "iters": kk, "median_step_s": median(steps), "mean_step_s": ts[-1] / kk,
        "first_step_s": steps[0], "time_to_target_s": ts[hit] if hit is not None else None,
        "iters_to_target": hit + 1 if hit is not None else None, "final_loss": losses[-1],
        "best_loss": min(losses), "solver_time_s": ts[-1], "capped": hit is None,
        "setup_s": info.get("jit_s"), "contention": c.record(), **info,
        "jax_devices": [str(dv) for dv in jax.devices()],
        "trace": {"t": ts[:: max(1, kk // 400)], "loss": losses[:: max(1, kk // 400)]},
    }


# ------------------------------------------------------------------ parent
def torch_python(arg: str | None) -> str:
    for c in ([arg] if arg else []) + [str(HERE / ".venv-peers/bin/python"), str(HERE.parent / ".venv/bin/python")]:
        if c and Path(c).exists():
            return c
    raise SystemExit("no torch venv found for the data export (--torch-python)")


def parent(args) -> dict:
    tp = torch_python(args.torch_python)
    tmp = Path(tempfile.mkdtemp(prefix="bench_jax_"))
    rows, l0_checks = [], {}
    for regime in REGIMES:
        npz = tmp / f"{regime}.npz"
        subprocess.run([tp, "-c", _EXPORT.format(here=str(HERE), regime=regime, path=str(npz))], check=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
        ref = reference_L0(regime)
        for solver in SOLVERS:
            guard = wait_idle(timeout=args.idle_timeout)
            cmd = [sys.executable, str(HERE / "bench_jax.py"), "--child", json.dumps([str(npz), regime, solver]),
                   "--cap", str(args.cap), "--max-iter", str(args.max_iter)]
            t0 = time.perf_counter()
            pr = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cap * 4 + 300)
            wall = time.perf_counter() - t0
            if pr.returncode != 0:
                stderr = pr.stderr[-2000:] or "(no stderr; killed, likely out of memory)"
                row = {"regime": regime, "solver": solver, "setting": {"defaults": True},
                       "error": f"exit code {pr.returncode}: {stderr}"}
                print(f"jax {regime} {solver}: ERROR {pr.stderr[-500:]}", flush=True)
            else:
                row = json.loads(pr.stdout.strip().splitlines()[-1])
                if ref is not None:
                    rel = abs(row["L0"] - ref[0]) / abs(ref[0])
                    assert rel <= 1e-12, f"L0 mismatch {regime}: {row['L0']} vs {ref[0]} ({ref[1]}), rel {rel:.2e}"
                    l0_checks[regime] = {"L0_jax": row["L0"], "L0_ref": ref[0], "ref_file": ref[1], "rel_diff": rel}
                ttt = row["time_to_target_s"]
                print(f"jax {regime} {solver}: jit {row['jit_s']:.2f} s, {row['median_step_s']*1e3:.1f} ms/iter, "
                      f"{f'{ttt:.3f} s' if ttt is not None else 'not reached'} to target "
                      f"({row['iters_to_target']} it), best {row['best_loss']:.3g}, "
                      f"other cores {row['contention']['other_busy_cores']:.2f}", flush=True)
            row.update(idle_guard=guard, process_wall_s=wall)
            rows.append(row)
    import jax

    env = environment()
    env["jax_threads"] = {"note": "XLA CPU uses its own thread pool (all cores) unless XLA_FLAGS limits it",
                          "cpu_count": os.cpu_count(), "XLA_FLAGS": os.environ.get("XLA_FLAGS")}
    env["jax_version"] = jax.__version__
    env["jax_x64"] = True
    return {"regimes": REGIMES, "cap_s": args.cap, "max_iter": args.max_iter, "runs": rows,
            "L0_check": l0_checks, "reference_cpu_json": (latest_cpu_json() or Path("-")).name, "environment": env}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", default=None)
    ap.add_argument("--cap", type=float, default=20.0, help="solver-time cap per run (s)")
    ap.add_argument("--max-iter", type=int, default=100000)
    ap.add_argument("--idle-timeout", type=float, default=None)
    ap.add_argument("--torch-python", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.child:
        npz, regime, solver = json.loads(args.child)
        print(json.dumps(child(npz, regime, solver, args.cap, args.max_iter), default=float))
        return None
    if args.idle_timeout is None:
        args.idle_timeout = float(os.environ.get("BENCH_IDLE_TIMEOUT", "60"))
    out = parent(args)
    path = Path(args.out) if args.out else HERE / "results" / f"{dt.date.today().isoformat()}_jax.json"
    dump(out, path)
    print("wrote", path)
    return out


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
