"""Many small fits at once: least_squares_batched vs Python loops over SciPy and gaussnewton.

Two problem families (per problem its own data and start, fixed seeds):

* ``gauss``: Gaussian peak ``a·exp(−½((t−μ)/σ)²) + c``, p = 4, n = 50, noise σ = 0.05;
* ``exp``: exponential decay ``a·exp(−k·t) + c``, p = 3, n = 100, noise σ = 0.02;

start = truth · (1 + 0.1·N(0, 1)) per parameter. For B = 10³, 10⁴, 10⁵ problems it times

* ``batched/autodiff``: ``least_squares_batched(fun, x0s, (y,))`` (Jacobian by vmap(jacfwd));
* ``batched/analytic``: the same with the analytic ``jac``;
* loops of ``scipy.optimize.least_squares`` with method ``"lm"`` (MINPACK) and ``"trf"`` (SciPy's
  default), each with SciPy's default ``"2-point"`` finite-difference Jacobian and with the
  analytic Jacobian;
* a loop of ``gaussnewton.least_squares(fun=..., x0=..., method="lm")`` (autodiff); its
  per-problem time is measured once per family (``--gn-subset`` problems at the first size) and
  extrapolated to every B.

All use ftol = xtol = gtol = 1e-8. The loops run on the first ``--loop-subset`` problems of the
batch; their time is extrapolated linearly to B and
marked ``extrapolated``. Each loop is timed twice, before and after the batched runs, and the
faster pass is kept (the machine is shared; the contention is recorded). Cost agreement: the
fraction of the subset's problems whose batched final cost is within 1e-8 relative of SciPy's
(``lm`` with the analytic Jacobian as the reference; also vs ``trf``), and of the gaussnewton loop.

torch runs with ``--threads`` threads (default 1, like the SciPy loop; on 2 shared cores two
OpenMP threads were 20× slower under load). Writes ``results/batched_<date>.json`` and, with
``--write-md``, ``BATCHED.md``. ``--quick``: B = 10³ only, small subsets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
import scipy.optimize
import torch

import gaussnewton as gn
from gaussnewton.batched import least_squares_batched

from _common import RESULTS, Contention, dump, environment, wait_idle

HERE = Path(__file__).resolve().parent
TOL = {"ftol": 1e-8, "xtol": 1e-8, "gtol": 1e-8}
F64 = torch.float64


class Family:
    """One problem form: torch fun/jac for one problem, NumPy fun/jac for SciPy, data generator."""

    def __init__(self, name: str, n: int, p: int, t_max: float, noise: float) -> None:
        self.name, self.n, self.p, self.noise = name, n, p, noise
        self.t = torch.linspace(0.0, t_max, n, dtype=F64)
        self.t_np = self.t.numpy()

    def fun(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def jac(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fun_np(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def jac_np(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def truth(self, b: int, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def data(self, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        truth = self.truth(b, gen)
        y = torch.vmap(self.fun)(truth, torch.zeros(b, self.n, dtype=F64))
        y = y + self.noise * torch.randn(y.shape, generator=gen, dtype=F64)
        x0 = truth * (1.0 + 0.1 * torch.randn(truth.shape, generator=gen, dtype=F64))
        return x0, y


class Gauss(Family):
    def __init__(self) -> None:
        super().__init__("gauss", n=50, p=4, t_max=1.0, noise=0.05)

    def truth(self, b, gen):
        u = torch.rand(b, 4, generator=gen, dtype=F64)
        return torch.stack([1.0 + u[:, 0], 0.3 + 0.4 * u[:, 1], 0.05 + 0.1 * u[:, 2], 0.1 + 0.2 * u[:, 3]], dim=1)

    def fun(self, x, y):
        return x[0] * torch.exp(-0.5 * ((self.t - x[1]) / x[2]) ** 2) + x[3] - y

    def jac(self, x, y):
        z = (self.t - x[1]) / x[2]
        e = torch.exp(-0.5 * z * z)
        return torch.stack([e, x[0] * e * z / x[2], x[0] * e * z * z / x[2], torch.ones_like(e)], dim=-1)

    def fun_np(self, x, y):
        return x[0] * np.exp(-0.5 * ((self.t_np - x[1]) / x[2]) ** 2) + x[3] - y

    def jac_np(self, x, y):
        z = (self.t_np - x[1]) / x[2]
        e = np.exp(-0.5 * z * z)
        return np.stack([e, x[0] * e * z / x[2], x[0] * e * z * z / x[2], np.ones_like(e)], axis=1)


class Exp(Family):
    def __init__(self) -> None:
        super().__init__("exp", n=100, p=3, t_max=4.0, noise=0.02)

    def truth(self, b, gen):
        u = torch.rand(b, 3, generator=gen, dtype=F64)
        return torch.stack([1.0 + 4.0 * u[:, 0], 0.3 + 1.5 * u[:, 1], 0.1 + 0.4 * u[:, 2]], dim=1)

    def fun(self, x, y):
        return x[0] * torch.exp(-x[1] * self.t) + x[2] - y

    def jac(self, x, y):
        e = torch.exp(-x[1] * self.t)
        return torch.stack([e, -x[0] * self.t * e, torch.ones_like(e)], dim=-1)

    def fun_np(self, x, y):
        return x[0] * np.exp(-x[1] * self.t_np) + x[2] - y

    def jac_np(self, x, y):
        e = np.exp(-x[1] * self.t_np)
        return np.stack([e, -x[0] * self.t_np * e, np.ones_like(e)], axis=1)


FAMILIES: dict[str, Callable[[], Family]] = {"gauss": Gauss, "exp": Exp}


def scipy_loop(fam: Family, x0: np.ndarray, y: np.ndarray, method: str, analytic: bool) -> tuple[float, np.ndarray]:
    costs = np.empty(len(x0))
    t0 = time.perf_counter()
    for b in range(len(x0)):
        res = scipy.optimize.least_squares(fam.fun_np, x0[b], jac=fam.jac_np if analytic else "2-point",
                                           method=method, args=(y[b],), **TOL)
        costs[b] = res.cost
    return time.perf_counter() - t0, costs


def gn_loop(fam: Family, x0: torch.Tensor, y: torch.Tensor) -> tuple[float, np.ndarray]:
    costs = np.empty(len(x0))
    t0 = time.perf_counter()
    for b in range(len(x0)):
        yb = y[b]
        res = gn.least_squares(fun=lambda x, yb=yb: fam.fun(x, yb), x0=x0[b].clone(), method="lm", **TOL)
        costs[b] = float(res.cost)
    return time.perf_counter() - t0, costs


def agreement(ours: np.ndarray, ref: np.ndarray) -> dict:
    rel = np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-300)
    return {"within_1e-8": float(np.mean(rel <= 1e-8)), "within_1e-6": float(np.mean(rel <= 1e-6)),
            "ours_lower_or_equal": float(np.mean(ours <= ref * (1 + 1e-8))), "max_rel_diff": float(rel.max())}


def run_size(fam: Family, b: int, subset: int, gn_subset: int, repeats: int, gn_cache: dict) -> dict:
    x0, y = fam.data(b, seed=b + fam.p)
    s, g = min(subset, b), min(gn_subset, b)
    x0_np, y_np = x0[:s].numpy(), y[:s].numpy()
    loops: dict[tuple[str, bool], list[float]] = {(m, a): [] for m in ("lm", "trf") for a in (False, True)}
    loop_costs: dict[tuple[str, bool], np.ndarray] = {}

    def scipy_pass() -> None:
        for m, a in loops:
            tt, c = scipy_loop(fam, x0_np, y_np, m, a)
            loops[(m, a)].append(tt)
            loop_costs[(m, a)] = c

    with Contention() as cont:
        scipy_pass()  # loops before and after the batched runs: the faster pass is kept
        if not gn_cache:  # per-problem time of the gaussnewton loop: measured at the first size, reused
            gn_cache["time"], gn_cache["costs"], gn_cache["B"] = *gn_loop(fam, x0[:g], y[:g]), b
        gn_time, gn_costs = gn_cache["time"], gn_cache["costs"]
        g = len(gn_costs)
        batched = {}
        for label, jac in (("autodiff", None), ("analytic", fam.jac)):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                res = least_squares_batched(fam.fun, x0, (y,), jac=jac, **TOL)
                times.append(time.perf_counter() - t0)
            batched[label] = (min(times), res)
        if repeats > 1:
            scipy_pass()
    out: dict = {"B": b, "loop_subset": s, "gn_subset": g, "extrapolated": s < b, "contention": cont.record()}
    ref = loop_costs[("lm", True)]
    for label, (tt, res) in batched.items():
        cost = res.cost.numpy()
        out[f"batched_{label}"] = {
            "time_s": tt, "iterations": res.iterations, "counts": res.counts(),
            "mean_nfev": float(res.nfev.double().mean()), "max_nfev": int(res.nfev.max()),
            "agreement_vs_scipy_lm_analytic": agreement(cost[:s], ref),
            "agreement_vs_scipy_trf_analytic": agreement(cost[:s], loop_costs[("trf", True)]),
            "agreement_vs_scipy_lm_2point": agreement(cost[:s], loop_costs[("lm", False)]),
            **({"agreement_vs_gn_loop": agreement(cost[:g], gn_costs)} if gn_cache["B"] == b else {}),
        }
    for (m, a), ts in loops.items():
        key = f"scipy_{m}_{'analytic' if a else '2point'}"
        out[key] = {"subset_time_s": min(ts), "per_problem_s": min(ts) / s, "time_s": min(ts) / s * b,
                    "extrapolated": s < b}
    out["gn_loop_lm"] = {"subset_time_s": gn_time, "per_problem_s": gn_time / g, "time_s": gn_time / g * b,
                         "extrapolated": g < b, "measured_at_B": gn_cache["B"]}
    return out


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        "# Many small fits at once: `least_squares_batched`",
        "",
        "Generated by `benchmarks/bench_batched.py` "
        f"({result['date']}; {env.get('host_cpu')}, {env.get('cpu_count')} cores shared, torch "
        f"{env['versions'].get('torch')} with {result['threads']} thread(s), SciPy {env['versions'].get('scipy')}).",
        "",
        "Time to solve B independent fits to ftol = xtol = gtol = 1e-8. Loops over "
        "`scipy.optimize.least_squares` and `gaussnewton.least_squares` ran on a subset of the batch "
        "(column *subset*) and are **extrapolated linearly** to B; the batched solver always ran on all B. "
        "Speedup = loop time / batched time (autodiff Jacobian for the batched solver and the gaussnewton "
        "loop; SciPy with its default 2-point finite differences, and with the analytic Jacobian). "
        "*agree* = fraction of the subset whose batched (autodiff) final cost is within 1e-8 relative of "
        "SciPy `lm` with the analytic Jacobian.",
        "",
        "| problem | B | batched autodiff (s) | batched analytic (s) | SciPy lm 2-pt (s) | SciPy trf 2-pt (s) "
        "| SciPy lm analytic (s) | gn loop (s) | ×lm 2-pt | ×trf 2-pt | ×lm analytic (vs analytic) | ×gn loop "
        "| agree | subset |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fam, rows in result["problems"].items():
        for r in rows:
            ba, bn = r["batched_autodiff"]["time_s"], r["batched_analytic"]["time_s"]
            lm2, trf2 = r["scipy_lm_2point"]["time_s"], r["scipy_trf_2point"]["time_s"]
            lma, gl = r["scipy_lm_analytic"]["time_s"], r["gn_loop_lm"]["time_s"]
            agree = r["batched_autodiff"]["agreement_vs_scipy_lm_analytic"]["within_1e-8"]
            lines.append(
                f"| {fam} | {r['B']:,} | {ba:.3g} | {bn:.3g} | {lm2:.3g} | {trf2:.3g} | {lma:.3g} | {gl:.3g} "
                f"| {lm2 / ba:.0f}× | {trf2 / ba:.0f}× | {lma / bn:.0f}× | {gl / ba:.0f}× | {agree:.3f} "
                f"| {r['loop_subset']:,} / {r['gn_subset']:,} |")
    lines += [
        "",
        "Per-problem rows in the JSON also give the batched solver's passes, mean/max nfev, status counts, "
        "SciPy `trf` analytic times and cost agreement against every reference "
        f"(`{result['json']}`). Contention (CPU used by other processes during each size) is recorded "
        "there too: the machine is shared, so absolute times vary between runs; the ratios come from "
        "the same run.",
        "",
        "Notes:",
        "",
        "- The issue's target is ≥ 50× over the SciPy loop; the table shows what was measured. Per pass the "
        "batched solver is memory-bound elementwise work (the vmap(jacfwd) Jacobian is 2–4× the cost of an "
        "analytic one); at B = 10³ the fixed cost of a pass (≈ 1 ms, a few dozen small torch calls) and the "
        "passes needed by the slowest problem dominate; at B = 10⁵ the (B, n) state no longer fits in cache.",
        "- Cost disagreements with SciPy (agree < 1) are different local minima from the same start "
        "(`max_rel_diff` and `ours_lower_or_equal` in the JSON), not a loose stop: against the gaussnewton "
        "loop, which follows the same rules, agreement is 1.0 to ~1e-15.",
        "- torch ran single-threaded, like the SciPy loop (`--threads` to change).",
        "- The gaussnewton-loop column times `least_squares(method=\"lm\")` as it stood in the working tree "
        "during its concurrent rewrite (SciPy signature); re-measure it once that has settled.",
        "",
    ]
    return "\n".join(lines)


def summary(name: str, row: dict) -> str:
    ba, lm2, trf2 = (row[k]["time_s"] for k in ("batched_autodiff", "scipy_lm_2point", "scipy_trf_2point"))
    extra = f" (loops extrapolated from {row['loop_subset']}/{row['gn_subset']})" if row["extrapolated"] else ""
    agree = row["batched_autodiff"]["agreement_vs_scipy_lm_analytic"]["within_1e-8"]
    return (f"{name:5s} B={row['B']:>6}: batched autodiff {ba:.3f}s analytic {row['batched_analytic']['time_s']:.3f}s"
            f" | SciPy lm 2-pt {lm2:.2f}s ({lm2 / ba:.0f}x) trf 2-pt {trf2:.2f}s ({trf2 / ba:.0f}x)"
            f" lm analytic {row['scipy_lm_analytic']['time_s']:.2f}s | gn loop {row['gn_loop_lm']['time_s']:.1f}s"
            f"{extra} | agree(1e-8 vs lm) {agree:.3f} | other cores busy {row['contention']['other_busy_cores']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--problems", default="gauss,exp")
    ap.add_argument("--loop-subset", type=int, default=1000, help="problems per SciPy loop (then extrapolated)")
    ap.add_argument("--gn-subset", type=int, default=30,
                    help="problems of the gaussnewton loop (timed once per family, at the first size)")
    ap.add_argument("--repeats", type=int, default=2, help="batched runs per size (minimum kept)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="B = 1000 only, subsets 200/30, one repeat")
    ap.add_argument("--write-md", action="store_true", help="write benchmarks/BATCHED.md")
    ap.add_argument("--out", default=None)
    ap.add_argument("--md-from", default=None, help="only regenerate BATCHED.md from a results JSON")
    args = ap.parse_args()
    if args.md_from:
        (HERE / "BATCHED.md").write_text(markdown(json.loads(Path(args.md_from).read_text())))
        return
    if args.quick:
        args.sizes, args.loop_subset, args.gn_subset, args.repeats = "1000", 200, 30, 1
    torch.set_num_threads(args.threads)
    idle = wait_idle(timeout=20)
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H%M")
    path = Path(args.out) if args.out else RESULTS / f"batched_{stamp}.json"
    result: dict = {"date": stamp, "environment": environment(), "threads": args.threads, "idle_guard": idle,
                    "tolerances": TOL, "scipy": scipy.__version__, "json": path.name,
                    "notes": "loops timed on a subset and extrapolated linearly to B where extrapolated=true; "
                             "SciPy nfev for 'lm' counts finite-difference evaluations, 'trf' does not",
                    "problems": {}}
    t_start = time.perf_counter()
    for name in args.problems.split(","):
        fam = FAMILIES[name]()
        x0w, yw = fam.data(8)
        least_squares_batched(fam.fun, x0w, (yw,), **TOL)  # warm-up (vmap/jacfwd first-use costs)
        rows: list[dict] = []
        gn_cache: dict = {}
        for b in (int(v) for v in args.sizes.split(",")):
            row = run_size(fam, b, args.loop_subset, args.gn_subset, args.repeats, gn_cache)
            rows.append(row)
            print(summary(name, row), flush=True)
        result["problems"][name] = rows
    result["wall_s"] = time.perf_counter() - t_start
    dump(result, path)
    print(f"wrote {path}")
    if args.write_md:
        (HERE / "BATCHED.md").write_text(markdown(result))
        print(f"wrote {HERE / 'BATCHED.md'}")


if __name__ == "__main__":
    main()
