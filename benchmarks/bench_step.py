"""Step efficiency of the dense GN/LM linear algebra, and a per-step breakdown of ``fit``.

Part 1 (``step``): for (n, p) on a grid (n > p uses the p×p normal form, n < p the n×n kernel
form), time one library step ``solver.prepare(A, h)`` + ``solver.solve(prepared, ρ)`` on a
precomputed dense A (Jacobian excluded) against the BLAS lower bound measured in the same run,
interleaved repeat by repeat: ``G = AᵀA`` (or ``AAᵀ``) with torch.matmul plus
``torch.linalg.cholesky(G + ρI)``. Reports the ratio (target ≤ 1.5×) and the achieved GFLOP/s of
the library step as a fraction of the measured GEMM peak (FLOPs counted as performed: full GEMM
for the Gram, m³/3 Cholesky, the matrix–vector products). Also times a retry (second ``solve`` at a
new ρ on the same prepared data) and the MINPACK-style ``diag=`` column scaling.

Part 2 (``breakdown``): one LM step of ``gn.fit`` on the paper's MLP (exact and
``truncated_cg`` steps), split into forward, Jacobian (the structured Linear-layer factors),
gradient/column norms/finite checks, ``prepare`` (Gram or kernel matrix), ``solve`` (Cholesky and
triangular solves, or the CG iterations), trial forward, predicted reduction, and bookkeeping
(= measured fit step − the parts).

Runs on ``BENCH_DEVICE`` (default cpu; with ``BENCH_DEVICE=cuda`` every timing is synchronized and
the fraction of the GPU's measured GEMM peak is reported the same way).
"""

from __future__ import annotations

import argparse
import time

import torch

import gaussnewton as gn
from gaussnewton.linsolve import KernelSolver, NormalSolver
from gaussnewton.problems import NetworkProblem

from _common import Contention, bench_device, median, sync, wait_idle

DEVICE = bench_device()

GRID_QUICK = [(4000, 1000), (4000, 2000), (1000, 4000), (2000, 4000)]
GRID_FULL = [(1000, 1000), (2000, 1000), (4000, 1000), (4000, 2000), (4000, 4000),
             (1000, 2000), (1000, 4000), (2000, 4000)]


def _t(fn) -> float:
    sync(DEVICE)
    t0 = time.perf_counter()
    fn()
    sync(DEVICE)
    return time.perf_counter() - t0


def step_flops(n: int, p: int) -> float:
    if n >= p:  # G = AᵀA (full GEMM), rhs Aᵀh, chol p³/3, 2 triangular solves
        return 2 * n * p * p + 2 * n * p + p**3 / 3 + 2 * p * p
    return 2 * n * n * p + n**3 / 3 + 2 * n * n + 2 * n * p  # K = AAᵀ, chol, solves, Aᵀz


def bench_step_case(n: int, p: int, dtype: torch.dtype, repeats: int, peak: float) -> dict:
    g = torch.Generator().manual_seed(n * 7 + p)
    a = (torch.randn(n, p, dtype=dtype, generator=g) / n**0.5).to(DEVICE)
    h = torch.randn(n, dtype=dtype, generator=g).to(DEVICE)
    diag = (a * a).sum(0)
    rho, rho2 = 1e-3, 1e-2
    solver = NormalSolver() if n >= p else KernelSolver()
    m = min(n, p)
    eye = torch.eye(m, dtype=dtype, device=DEVICE)

    def lib():
        prep = solver.prepare(a, h)
        solver.solve(prep, rho)

    def lib_diag():
        prep = solver.prepare(a, h, diag=diag)
        solver.solve(prep, rho)

    def bound():
        gram = a.T @ a if n >= p else a @ a.T
        torch.linalg.cholesky(gram + rho * eye)

    ga = torch.randn(2048, 2048, dtype=dtype, generator=g).to(DEVICE)
    gc = torch.empty_like(ga)

    def gemm():  # the GEMM peak, re-measured side by side (the header's peak may be contended)
        torch.matmul(ga, ga, out=gc)

    prep_fixed = solver.prepare(a, h)
    solver.solve(prep_fixed, rho)

    def retry():  # a rejected step: new ρ, same prepared data (new Cholesky, no new Gram)
        prep_fixed.cache.clear()
        solver.solve(prep_fixed, rho2)

    for fn in (lib, bound, lib_diag, retry, gemm):  # warm-up
        fn()
    ts = {"lib": [], "bound": [], "lib_diag": [], "retry": [], "gemm": []}
    for _ in range(repeats):  # interleaved: the ratio is measured side by side
        ts["lib"].append(_t(lib))
        ts["bound"].append(_t(bound))
        ts["lib_diag"].append(_t(lib_diag))
        ts["retry"].append(_t(retry))
        ts["gemm"].append(_t(gemm))
    med = {k: median(v) for k, v in ts.items()}
    flops = step_flops(n, p)
    gf = flops / med["lib"] / 1e9
    peak_here = 2 * 2048**3 / med["gemm"] / 1e9
    if peak_here > peak:  # the header's peak was measured under contention: use the side-by-side one
        peak = peak_here
    return {
        "n": n, "p": p, "dtype": str(dtype).replace("torch.", ""), "form": solver.name, "repeats": repeats,
        "lib_s": med["lib"], "bound_s": med["bound"], "lib_diag_s": med["lib_diag"], "retry_s": med["retry"],
        "ratio": med["lib"] / med["bound"], "ratio_diag": med["lib_diag"] / med["bound"],
        "ratio_best": min(ts["lib"]) / min(ts["bound"]),
        "flops": flops, "gflops": gf, "peak_gflops": peak, "gemm_side_by_side_gflops": peak_here,
        "frac_peak": gf / peak,
        "bound_frac_peak": flops / med["bound"] / 1e9 / peak,
    }


def breakdown(n: int, d: int, m: int, repeats: int, solver_name: str = "auto") -> dict:
    """Time the parts of one LM step of fit() on gn.MLP(d, width=m) with n samples, through the
    same library calls the driver makes (structured Jacobian factors for this Linear-layer net)."""
    from gaussnewton.linsolve import get_solver
    from gaussnewton.operators import column_sq_norms, matvec, rmatvec

    X, y = gn.datasets.single_index(n, d, seed=0)
    X, y = X.to(DEVICE), y.to(DEVICE)
    net = gn.MLP(d, width=m, alpha=1.0, seed=0).to(DEVICE)
    prob = NetworkProblem(net, X)
    theta = prob.get_flat()
    p = theta.numel()
    solver = get_solver(solver_name, n, p, 8)
    yt = y.reshape(-1)
    jac_of = prob.structured_jacobian if prob.structured else prob.jacobian
    jac_of(theta)  # first-call costs excluded
    parts: dict[str, list[float]] = {k: [] for k in ("forward", "jacobian", "grad_colnorm", "prepare", "solve",
                                                     "trial_forward_cost", "predicted_reduction")}
    for _ in range(repeats):
        sync(DEVICE)
        t0 = time.perf_counter()
        u = prob.outputs(theta).detach()
        sync(DEVICE)
        t1 = time.perf_counter()
        jac = jac_of(theta)
        sync(DEVICE)
        t2 = time.perf_counter()
        r = u - yt
        grad = rmatvec(jac, r) / n
        colsq = column_sq_norms(jac)
        bool(torch.isfinite(grad).all())
        float(colsq.max())
        t3 = time.perf_counter()
        prep = solver.prepare(jac, r)
        sync(DEVICE)
        t4 = time.perf_counter()
        delta, _ = solver.solve(prep, 1e-3 * n)
        sync(DEVICE)
        t5 = time.perf_counter()
        uu = prob.outputs(theta + delta).detach()
        float(0.5 * ((uu - yt) ** 2).mean())
        t6 = time.perf_counter()
        a_s = matvec(jac, delta)
        float(-(r @ a_s) - 0.5 * (a_s @ a_s))
        t7 = time.perf_counter()
        for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6), strict=True):
            parts[k].append(v)
    med = {k: median(v) for k, v in parts.items()}
    # the real thing: fit(method="lm") per-step wall time (history['time'] differences)
    steps = repeats + 1
    res = gn.fit(gn.MLP(d, width=m, alpha=1.0, seed=0).to(DEVICE), X, y, method="lm", steps=steps, solver=solver_name)
    tt = res.history["time"]
    per_step = median([b - a for a, b in zip(tt[:-1], tt[1:], strict=True)])
    acc = sum(res.history["accepted"])
    parts_sum = sum(med.values())
    return {"n": n, "d": d, "m": m, "p": p, "form": solver_name if solver_name != "auto" else solver.name,
            "structured": prob.structured, "repeats": repeats, "parts_s": med,
            "parts_sum_s": parts_sum, "fit_step_s": per_step, "bookkeeping_s": per_step - parts_sum,
            "fit_steps": len(tt), "fit_accepted": acc}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--peak64", type=float, required=True)
    ap.add_argument("--peak32", type=float, required=True)
    ap.add_argument("--out", default=None, help="write the JSON here")
    args = ap.parse_args(argv)
    grid = GRID_FULL if args.full else GRID_QUICK
    reps = args.repeats or (9 if args.full else 5)
    out: dict = {"threads": torch.get_num_threads(), "step": [], "breakdown": []}
    for dtype, peak in ((torch.float64, args.peak64), (torch.float32, args.peak32)):
        for n, p in grid:
            guard = wait_idle()
            with Contention() as c:
                row = bench_step_case(n, p, dtype, reps, peak)
            row.update(idle_guard=guard, contention=c.record())
            out["step"].append(row)
            print(f"step {row['dtype']} n={n} p={p} {row['form']}: lib {row['lib_s']*1e3:.1f} ms, bound "
                  f"{row['bound_s']*1e3:.1f} ms, ratio {row['ratio']:.2f} (diag {row['ratio_diag']:.2f}), "
                  f"{row['gflops']:.0f} GF/s = {100*row['frac_peak']:.0f}% peak, other cores {c.other_cores:.2f}",
                  flush=True)
    # p = 2000 < n = 4000 ; p = 4000 > n = 1000; exact (auto) and inexact (truncated_cg) steps
    cases = [(4000, 8, 250, "auto"), (1000, 8, 500, "auto"),
             (4000, 8, 250, "truncated_cg"), (1000, 8, 500, "truncated_cg")]
    for n, d, m, name in cases:
        guard = wait_idle()
        with Contention() as c:
            row = breakdown(n, d, m, reps, name)
        row.update(idle_guard=guard, contention=c.record())
        out["breakdown"].append(row)
        print(f"breakdown n={n} p={row['p']} ({row['form']}): fit step {row['fit_step_s']*1e3:.1f} ms; "
              + ", ".join(f"{k} {v*1e3:.1f}" for k, v in row["parts_s"].items())
              + f"; bookkeeping {row['bookkeeping_s']*1e3:.1f} ms", flush=True)
    if args.out:
        from pathlib import Path

        from _common import dump

        dump(out, Path(args.out))
    return out


if __name__ == "__main__":
    main()
