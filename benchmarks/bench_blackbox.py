"""Black-box Jacobian speed (issue #12 part 4): a one-tanh-layer residual passed as a plain function.

Problem: N = 2,500 rows, d = 10 inputs, h = 84 tanh units, p = d·h + 2h = 1,008 parameters,
r(θ) = tanh(X W + b) v − y with y from a teacher network of the same shape plus N(0, 0.01²)
noise (seed 0); the fit starts from another random network (seed 1).

1. Per Jacobian (side by side, ``--repeats`` rounds, median and min): the previous default
   (``vmap`` of ``jvp``, 16 lanes per call), the current ``FunctionProblem.jacobian``
   (linearized lanes planned by the byte model), the opt-in ``rowwise`` per-row Jacobian, and
   the analytic NumPy Jacobian that SciPy gets. Bounds: writing J once (N·p·8 bytes) and the
   bytes the chosen lanes write (``LanePlan.lane_traffic``), both at the STREAM-like copy
   bandwidth measured here (a 256 MiB ``torch`` copy, read + write counted).
2. End to end: ``scipy.optimize.least_squares(method="lm")`` with the analytic Jacobian, capped
   at ``--scipy-nfev`` evaluations (it is still descending there); its final cost is the
   target. Ours (``gaussnewton.least_squares(method="lm")``, autodiff Jacobian only) stops at
   the first iterate whose cost is ≤ that target (SciPy's callback protocol, status −2); the
   ratio is SciPy's time over ours, both to the same cost. Run for the plain black-box
   function and for the ``rowwise``-marked one.

Writes ``benchmarks/results/blackbox_<date>.json``. Run: ``python benchmarks/bench_blackbox.py``
(about 3–4 minutes; ``BENCH_THREADS`` threads for torch and BLAS, default 1;
``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time

THREADS = os.environ.get("BENCH_THREADS", "1")  # MINPACK is single-threaded: same thread count for both sides
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, THREADS)

import numpy as np  # noqa: E402  (after the thread variables)
import scipy.optimize  # noqa: E402
import torch  # noqa: E402

import gaussnewton as gn  # noqa: E402
from gaussnewton.problems import FunctionProblem, rowwise  # noqa: E402

from _common import RESULTS, Contention, environment  # noqa: E402

N, D, H = 2500, 10, 84
P = D * H + 2 * H
NOISE = 0.01


def make_data(n: int = N) -> dict:
    """Teacher-network data and a student start (NumPy, float64)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, D))
    w = rng.standard_normal((D, H)) / np.sqrt(D)
    b, v = 0.1 * rng.standard_normal(H), rng.standard_normal(H) / np.sqrt(H)
    y = np.tanh(x @ w + b) @ v + NOISE * rng.standard_normal(n)
    rng1 = np.random.default_rng(1)
    x0 = np.concatenate([rng1.standard_normal(D * H) / np.sqrt(D), np.zeros(H), rng1.standard_normal(H) / np.sqrt(H)])
    return {"X": x, "y": y, "x0": x0}


def np_fun(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    w, b, v = theta[: D * H].reshape(D, H), theta[D * H : D * H + H], theta[D * H + H :]
    return np.tanh(x @ w + b) @ v - y


def np_jac(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Analytic J = [x_i ⊗ g_i, g_i, a_i] with a = tanh(xW + b), g = (1 − a²)·v."""
    w, b, v = theta[: D * H].reshape(D, H), theta[D * H : D * H + H], theta[D * H + H :]
    a = np.tanh(x @ w + b)
    g = (1 - a * a) * v
    return np.hstack([(x[:, :, None] * g[:, None, :]).reshape(len(x), D * H), g, a])


def torch_fun(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w, b, v = theta[: D * H].reshape(D, H), theta[D * H : D * H + H], theta[D * H + H :]
    return torch.tanh(x @ w + b) @ v - y


def previous_jacobian(fun, theta: torch.Tensor) -> torch.Tensor:
    """The default before this change: vmap of jvp over the p basis vectors, 16 lanes per call."""
    basis = torch.eye(theta.numel(), dtype=theta.dtype)
    return torch.func.vmap(lambda e: torch.func.jvp(fun, (theta,), (e,))[1], chunk_size=16)(basis).T


def copy_bandwidth(repeats: int = 7) -> float:
    """STREAM-like copy: bytes read + written per second for a 256 MiB float64 tensor (median)."""
    a = torch.ones(2**25, dtype=torch.float64)
    b = torch.empty_like(a)
    b.copy_(a)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        b.copy_(a)
        ts.append(time.perf_counter() - t0)
    return 2 * a.numel() * 8 / statistics.median(ts)


def per_jacobian(data: dict, repeats: int) -> dict:
    x, y = torch.as_tensor(data["X"]), torch.as_tensor(data["y"])
    theta = torch.as_tensor(data["x0"]).clone()
    fun = lambda t: torch_fun(t, x, y)  # noqa: E731
    plain = FunctionProblem(fun, theta)
    marked = FunctionProblem(rowwise(torch_fun, x, y), theta)
    t0 = time.perf_counter()
    ref = plain.jacobian(theta)  # the first call also measures the lanes and fixes the plan
    first_call_s = time.perf_counter() - t0
    marked.jacobian(theta)
    jn = np_jac(data["x0"], data["X"], data["y"])
    errors = {"previous": float((previous_jacobian(fun, theta) - ref).abs().max()),
              "rowwise": float((marked.jacobian(theta) - ref).abs().max()),
              "analytic_numpy": float(np.abs(jn - ref.numpy()).max())}
    cands = {"previous_vmap_jvp16": lambda: previous_jacobian(fun, theta), "blackbox": lambda: plain.jacobian(theta),
             "rowwise": lambda: marked.jacobian(theta),
             "analytic_numpy": lambda: np_jac(data["x0"], data["X"], data["y"])}
    times: dict[str, list[float]] = {k: [] for k in cands}
    with Contention() as c:
        for _ in range(repeats):
            for k, f in cands.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    bw = copy_bandwidth()
    plan = plain._lanes.plan
    assert plan is not None
    j_bytes = N * P * 8
    return {
        "times_s": {k: {"median": statistics.median(v), "min": min(v), "all": v} for k, v in times.items()},
        "first_call_s": first_call_s,
        "max_abs_diff_vs_blackbox": errors,
        "plan": plan._asdict(),
        "linearized": plain._lanes.linearize_ok,
        "copy_bandwidth_GBps": bw / 1e9,
        "bound_write_J_s": j_bytes / (bw / 2),  # J written once: N·p·8 bytes at the write half of the copy rate
        "bound_lane_traffic_s": plan.lane_traffic(N, P) / (bw / 2),
        "lane_traffic_GB": plan.lane_traffic(N, P) / 1e9,
        "J_bytes": j_bytes,
        "contention": c.record(),
    }


def _stopper(target: float, reached: list[float]):
    """SciPy-protocol callback: record the time of the first iterate with cost ≤ target, then stop."""

    def stop_at_target(intermediate_result) -> bool:
        if intermediate_result.cost <= target and not reached:
            reached.append(time.perf_counter())
        return bool(reached)

    return stop_at_target


def end_to_end(data: dict, scipy_nfev: int, our_nfev: int) -> dict:
    x_np, y_np, x0 = data["X"], data["y"], data["x0"]
    cost0 = 0.5 * float(np.sum(np_fun(x0, x_np, y_np) ** 2))
    with Contention() as c:
        t0 = time.perf_counter()
        sp = scipy.optimize.least_squares(np_fun, x0, jac=np_jac, method="lm", args=(x_np, y_np), max_nfev=scipy_nfev,
                                          ftol=1e-12, xtol=1e-12, gtol=1e-12)
        scipy_s = time.perf_counter() - t0
    out = {"cost0": cost0, "scipy": {"time_s": scipy_s, "cost": float(sp.cost), "nfev": int(sp.nfev),
                                     "njev": int(sp.njev), "status": int(sp.status), "max_nfev": scipy_nfev,
                                     "contention": c.record()}}
    target = float(sp.cost)
    x, y = torch.as_tensor(x_np), torch.as_tensor(y_np)
    for name, fun in (("blackbox", lambda t: torch_fun(t, x, y)), ("rowwise", rowwise(torch_fun, x, y))):
        reached: list[float] = []
        stop_at_target = _stopper(target, reached)
        with Contention() as c:
            t0 = time.perf_counter()
            res = gn.least_squares(fun, x0=torch.as_tensor(x0).clone(), method="lm", max_nfev=our_nfev, ftol=1e-12,
                                   xtol=1e-12, gtol=1e-12, callback=stop_at_target)
            total = time.perf_counter() - t0
        to_target = (reached[0] - t0) if reached else None
        out[name] = {"time_to_target_s": to_target, "total_s": total, "cost": float(res.cost), "nfev": int(res.nfev),
                     "njev": None if res.njev is None else int(res.njev), "status": int(res.status),
                     "reached_target": bool(reached), "contention": c.record(),
                     "speedup_vs_scipy": (scipy_s / to_target) if to_target else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scipy-nfev", type=int, default=20)
    ap.add_argument("--our-nfev", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="2 repeats, SciPy capped at 8 evaluations")
    args = ap.parse_args()
    torch.set_num_threads(int(THREADS))
    if args.quick:
        args.repeats, args.scipy_nfev = 2, 8
    data = make_data()
    result = {"environment": environment(), "problem": {"N": N, "p": P, "d": D, "h": H, "noise": NOISE},
              "args": vars(args)}
    result["per_jacobian"] = per_jacobian(data, args.repeats)
    pj = result["per_jacobian"]
    print(json.dumps({k: round(v["median"], 4) for k, v in pj["times_s"].items()}),
          f"bounds: J {pj['bound_write_J_s'] * 1e3:.2f} ms, lanes {pj['bound_lane_traffic_s'] * 1e3:.0f} ms",
          f"copy {pj['copy_bandwidth_GBps']:.1f} GB/s", flush=True)
    result["end_to_end"] = e2e = end_to_end(data, args.scipy_nfev, args.our_nfev)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "contention"} if isinstance(v, dict) else v
                      for k, v in e2e.items()}, indent=1))
    stamp = dt.date.today().isoformat()
    path = RESULTS / (f"blackbox_{stamp}.json" if not args.quick else f"blackbox_{stamp}_quick.json")
    path.write_text(json.dumps(result, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
