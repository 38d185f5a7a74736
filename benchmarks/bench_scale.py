"""Scale: cost and peak memory of the matrix-free (CG) path vs n and vs p.

Each point trains ``gn.MLP(D, width=W)`` (hidden layer trained, output layer frozen, so
p = D·W) on ``gn.datasets.single_index(n, D)`` with
``fit(method="gn", damping=1e-3, solver=CGSolver(rtol=1e-6, max_iter=30), steps=S)`` in a fresh
process, so ``ru_maxrss`` of that process is the run's peak resident memory. Two sweeps share
the (n = 5000, p = 10⁶) point:

* vs n at p = 10⁶ (W = 10 000): n ∈ {2500, 5000, 10 000} (quick: the largest is dropped);
* vs p at n = 5000: W ∈ {1250, 2500, 5000, 10 000} → p = 1.25·10⁵ … 10⁶.

Recorded per point: the wall time of every step (callback timestamps); the first step includes
``fit``'s one-time setup (model validation: forward passes, two exact Jacobian rows, the
structured-Jacobian check), so the per-step cost is the *steady* s/step = median of steps 2..S,
normalized as s/step/(n·p); CG iterations and CG time of every solve (a recording ``CGSolver``
subclass; ``fit`` does not keep them); peak RSS; RSS after data + model were built; loss ratio;
torch threads; and the CPU used by other processes during the point (``_common.Contention``; a
point disturbed by more than 0.3 cores is run again, ``--retries`` times at most). A
baseline process (python + torch + gaussnewton imported, no data) gives the RSS that is not
attributable to the run.

Writes ``results/scale_<date>_<HHMM>.json`` (older files are kept) and ``SCALE.md``; ``--smoke``
runs tiny sizes and writes nothing unless ``--out``/``--md`` are given.

usage: python benchmarks/bench_scale.py [--quick | --smoke] [--steps 3] [--out FILE] [--md FILE]
       python benchmarks/bench_scale.py --render results/scale_<...>.json [--md FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Contention, dump, environment, fmt_size, wait_idle  # noqa: E402

HERE = Path(__file__).resolve().parent
D = 100  # input dimension; p = D·width
DAMPING, RTOL, MAX_ITER = 1e-3, 1e-6, 30
GB = 1e9  # memory is reported in decimal GB (10⁹ bytes), the unit of the 8 GB target
TARGET_GB = 8.0
CONTENDED = 0.3  # other-process cores above which a point's times count as disturbed

# (n values at fixed width, fixed width) and (fixed n, widths) per mode
SWEEPS: dict[str, dict[str, Any]] = {
    "full": {"n": ([2500, 5000, 10_000], 10_000), "p": (5000, [1250, 2500, 5000, 10_000])},
    "quick": {"n": ([2500, 5000], 10_000), "p": (5000, [1250, 2500, 5000, 10_000])},
    "smoke": {"n": ([250, 500], 200), "p": (500, [50, 100, 200])},
}


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------- child processes
def baseline() -> dict[str, Any]:
    """RSS of a process that imported python + torch + gaussnewton and holds no data."""
    import torch

    import gaussnewton  # noqa: F401
    from gaussnewton.linsolve import CGSolver  # noqa: F401

    return {"peak_rss_gb": _peak_rss_bytes() / GB, "threads": torch.get_num_threads()}


def one(n: int, width: int, steps: int) -> dict[str, Any]:
    """Train one (n, p = D·width) point and return its measurements (run in a fresh process)."""
    import torch

    import gaussnewton as gn
    from gaussnewton.linsolve import CGSolver, LinearSolveInfo, Prepared

    class RecordingCG(CGSolver):
        """CGSolver that keeps the iteration count, convergence flag and wall time of each solve."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.log: list[dict[str, Any]] = []

        def solve(self, prepared: Prepared, rho: float) -> tuple[torch.Tensor, LinearSolveInfo]:
            t0 = time.perf_counter()
            x, info = super().solve(prepared, rho)
            self.log.append({"iterations": info.iterations, "converged": info.converged,
                             "s": time.perf_counter() - t0})
            return x, info

    X, y = gn.datasets.single_index(n, D, seed=0)
    net = gn.MLP(D, width=width, alpha=4.0, seed=0)
    p = sum(t.numel() for t in net.parameters() if t.requires_grad)
    rss_setup = _peak_rss_bytes()
    solver = RecordingCG(rtol=RTOL, max_iter=MAX_ITER)
    marks: list[float] = []
    t0 = time.perf_counter()
    res = gn.fit(net, X, y, method="gn", damping=DAMPING, steps=steps, solver=solver,
                 callback=lambda _info: marks.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    step_times = [b - a for a, b in zip([t0, *marks[:-1]], marks, strict=True)]
    steady = step_times[1:] or step_times
    cg_iters = [s["iterations"] for s in solver.log]
    cg_s = sum(s["s"] for s in solver.log)
    peak = _peak_rss_bytes()
    return {
        "n": n, "width": width, "p": p, "steps": res.steps, "wall_s": wall,
        "s_per_step": wall / res.steps, "step_times_s": step_times,
        "first_step_s": step_times[0], "steady_s_per_step": statistics.median(steady),
        "cg_iterations": cg_iters, "cg_converged": [s["converged"] for s in solver.log],
        "cg_solve_s": [s["s"] for s in solver.log], "cg_s": cg_s, "cg_s_per_iter": cg_s / max(sum(cg_iters), 1),
        "loss_ratio": res.loss / res.initial_loss, "termination": res.termination.name,
        "peak_rss_gb": peak / GB, "rss_after_setup_gb": rss_setup / GB,
        "threads": torch.get_num_threads(),
    }


def _child(args: list[str], idle_timeout: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Run this script with ``args`` in a fresh process; (its JSON record, idle guard, contention)."""
    idle = wait_idle(timeout=idle_timeout)
    with Contention() as cont:
        proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:  # e.g. killed for memory: a result, not a crash of the sweep
        rec: dict[str, Any] = {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
    else:
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
    return rec, idle, cont.record()


# ---------------------------------------------------------------- sweep
def points(mode: str) -> list[tuple[int, int, list[str]]]:
    """The (n, width, sweeps it belongs to) points of ``mode``, shared points listed once."""
    ns, w_fixed = SWEEPS[mode]["n"]
    n_fixed, widths = SWEEPS[mode]["p"]
    tags: dict[tuple[int, int], list[str]] = {}
    for n in ns:
        tags.setdefault((n, w_fixed), []).append("n")
    for w in widths:
        tags.setdefault((n_fixed, w), []).append("p")
    return sorted(((n, w, t) for (n, w), t in tags.items()), key=lambda r: r[0] * r[1])


def run_sweep(mode: str, steps: int, idle_timeout: float, retries: int) -> dict[str, Any]:
    """Baseline process, then one fresh process per point; returns the results document.

    A point during which other processes used more than ``CONTENDED`` cores is run again, up
    to ``retries`` times; the disturbed attempts are kept under ``contended_attempts``.
    """
    base, _, _ = _child(["--baseline"], idle_timeout)
    print("baseline", base, flush=True)
    runs = []
    for n, width, sweeps in points(mode):
        discarded: list[dict[str, Any]] = []
        while True:
            rec, idle, cont = _child(["--one", str(n), str(width), "--steps", str(steps)], idle_timeout)
            if cont["other_busy_cores"] <= CONTENDED or len(discarded) >= retries:
                break
            print(f"n={n} width={width}: other processes used {cont['other_busy_cores']} cores; again", flush=True)
            discarded.append({**rec, "idle_guard": idle, "contention": cont})
        if discarded:
            rec["contended_attempts"] = discarded
        rec.setdefault("n", n)
        rec.setdefault("width", width)
        rec.setdefault("p", D * width)
        rec["sweeps"] = sweeps
        rec["idle_guard"] = idle
        rec["contention"] = cont
        if "error" not in rec:
            rec["steady_s_per_step_per_np"] = rec["steady_s_per_step"] / (rec["n"] * rec["p"])
            rec["cg_s_per_iter_per_np"] = rec["cg_s_per_iter"] / (rec["n"] * rec["p"])
            rec["rss_above_baseline_gb"] = rec["peak_rss_gb"] - base["peak_rss_gb"]
        runs.append(rec)
        hidden = ("step_times_s", "cg_converged", "contended_attempts")
        print({k: v for k, v in rec.items() if k not in hidden}, flush=True)
    ns, w_fixed = SWEEPS[mode]["n"]
    n_fixed, widths = SWEEPS[mode]["p"]
    return {
        "schema": "scale/2",
        "mode": mode,
        "environment": environment(),
        "config": {"D": D, "model": f"gn.MLP({D}, width=W, alpha=4.0, seed=0), output layer frozen",
                   "data": f"gn.datasets.single_index(n, {D}, seed=0)", "method": "gn", "damping": DAMPING,
                   "solver": f"CGSolver(rtol={RTOL}, max_iter={MAX_ITER})", "steps": steps, "dtype": "float64",
                   "sweep_n": {"p": D * w_fixed, "n": ns}, "sweep_p": {"n": n_fixed, "p": [D * w for w in widths]}},
        "baseline": base,
        "runs": runs,
    }


# ---------------------------------------------------------------- analysis and SCALE.md
def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y vs log x (nan for fewer than two points)."""
    if len(xs) < 2:
        return math.nan
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def sweep_rows(doc: dict[str, Any], sweep: str) -> list[dict[str, Any]]:
    """Successful runs of one sweep ("n" or "p"), ordered by the swept variable."""
    rows = [r for r in doc["runs"] if sweep in r.get("sweeps", []) and "error" not in r]
    return sorted(rows, key=lambda r: r[sweep])


def linearity(doc: dict[str, Any]) -> dict[str, float]:
    """Spread of steady s/step/(n·p) and CG s/iter/(n·p), and log–log slopes vs n and vs p."""
    ok = [r for r in doc["runs"] if "error" not in r]
    per = [r["steady_s_per_step_per_np"] for r in ok]
    cg = [r["cg_s_per_iter_per_np"] for r in ok]
    rn, rp = sweep_rows(doc, "n"), sweep_rows(doc, "p")
    return {
        "per_np_min": min(per), "per_np_max": max(per), "per_np_spread": max(per) / min(per),
        "cg_per_np_min": min(cg), "cg_per_np_max": max(cg), "cg_per_np_spread": max(cg) / min(cg),
        "slope_n": loglog_slope([r["n"] for r in rn], [r["steady_s_per_step"] for r in rn]),
        "slope_p": loglog_slope([r["p"] for r in rp], [r["steady_s_per_step"] for r in rp]),
        "cg_slope_n": loglog_slope([r["n"] for r in rn], [r["cg_s_per_iter"] for r in rn]),
        "cg_slope_p": loglog_slope([r["p"] for r in rp], [r["cg_s_per_iter"] for r in rp]),
    }


def _table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown table of one sweep."""
    out = ["| n | p | first step [s] | steady s / step | steady s / step / (n·p) [ns] | CG iterations per solve "
           "| CG s / iteration / (n·p) [ns] | peak RSS [GB] | above baseline [GB] | loss ratio | other-process cores |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        conv = "" if all(r["cg_converged"]) else " (cap hit)"
        out.append(f"| {r['n']} | {fmt_size(r['p'])} | {r['first_step_s']:.1f} | {r['steady_s_per_step']:.2f} | "
                   f"{r['steady_s_per_step_per_np'] * 1e9:.2f} | {', '.join(map(str, r['cg_iterations']))}{conv} | "
                   f"{r['cg_s_per_iter_per_np'] * 1e9:.3f} | {r['peak_rss_gb']:.2f} | "
                   f"{r['rss_above_baseline_gb']:.2f} | "
                   f"{r['loss_ratio']:.3g} | {r['contention']['other_busy_cores']:.2f} |")
    return out


def render(doc: dict[str, Any], json_name: str) -> str:
    """SCALE.md text: setup, two tables, the linearity check and the 8 GB check."""
    env, cfg, base = doc["environment"], doc["config"], doc["baseline"]
    p_fixed, n_fixed = cfg["sweep_n"]["p"], cfg["sweep_p"]["n"]
    lines = [
        "# Scale: matrix-free CG path vs n and vs p (generated by bench_scale.py)", "",
        f"`fit(method='gn', damping={cfg['damping']}, solver={cfg['solver']}, steps={cfg['steps']})` on "
        f"`{cfg['model']}` (p = {cfg['D']}·W), data `{cfg['data']}`, float64; structured Linear-layer "
        "JVP/VJP, J never formed. One fresh process per point; peak RSS = its `ru_maxrss`, in GB = 10⁹ bytes. "
        "*First step* includes `fit`'s one-time setup (model validation: forward passes, two exact Jacobian rows, "
        "structured-Jacobian check); *steady s / step* = median wall time of steps 2..S (linearization + CG + "
        f"trial evaluation). Mode `{doc['mode']}`, data: `results/{json_name}`.", "",
        f"Machine: {env['host_cpu']}, {env['cpu_count']} CPUs, torch {env['versions'].get('torch')} "
        f"({env.get('torch_threads')} threads, {env.get('torch_blas')}), git {env.get('git_sha')}"
        f"{' (src dirty)' if env.get('src_dirty') else ''}, {env['date']}. Baseline process (python + torch + "
        f"gaussnewton imported, no data): {base['peak_rss_gb']:.2f} GB peak RSS. \"other-process cores\" = CPU "
        "used by other processes during the point (> 0.3: times disturbed; such a point is run once more).", "",
        f"## vs n at p = {fmt_size(p_fixed)}", "", *_table(sweep_rows(doc, "n")), "",
        f"## vs p at n = {n_fixed}", "", *_table(sweep_rows(doc, "p")), "",
    ]
    n_head = len(lines)
    for r in doc["runs"]:
        for att in r.get("contended_attempts", []):
            busy = att["contention"]["other_busy_cores"]
            lines.append(f"Re-run: n = {r['n']}, p = {fmt_size(r['p'])}: an attempt with {busy:.2f} "
                         "other-process cores was discarded (kept in the JSON under `contended_attempts`).")
    errors = [r for r in doc["runs"] if "error" in r]
    for r in errors:
        last = r["error"].strip().splitlines()[-1] if r["error"].strip() else ""
        lines.append(f"Failed: n = {r['n']}, p = {fmt_size(r['p'])}: {last}")
    if len(lines) > n_head:
        lines.append("")
    lines += ["## Checks", ""]
    if len(doc["runs"]) > len(errors):
        lin = linearity(doc)
        lines += [
            f"**Cost linear in n·p.** Over the {len(doc['runs']) - len(errors)} points the steady s / step / (n·p) "
            f"lies in [{lin['per_np_min'] * 1e9:.2f}, {lin['per_np_max'] * 1e9:.2f}] ns (max/min = "
            f"{lin['per_np_spread']:.2f}); the log–log slope of steady s / step is {lin['slope_n']:.2f} vs n "
            f"(p = {fmt_size(p_fixed)}) and {lin['slope_p']:.2f} vs p (n = {n_fixed}), where 1 is linear. "
            "One CG iteration "
            f"(one product with J and one with Jᵀ) costs [{lin['cg_per_np_min'] * 1e9:.3f}, "
            f"{lin['cg_per_np_max'] * 1e9:.3f}] ns per n·p (max/min = {lin['cg_per_np_spread']:.2f}; slopes "
            f"{lin['cg_slope_n']:.2f} vs n, {lin['cg_slope_p']:.2f} vs p).", "",
        ]
    big = [r for r in doc["runs"] if r["n"] == 10_000 and r["p"] == 1_000_000]
    if big and "error" not in big[0]:
        r = big[0]
        ok = r["peak_rss_gb"] <= TARGET_GB
        lines.append(f"**8 GB at n = 10⁴, p = 10⁶.** Peak RSS {r['peak_rss_gb']:.2f} GB "
                     f"({r['rss_above_baseline_gb']:.2f} GB above the baseline process): "
                     f"{'within' if ok else 'OVER'} the 8 GB target; steady {r['steady_s_per_step']:.1f} s / step, "
                     f"first step {r['first_step_s']:.1f} s.")
    elif big:
        lines.append(f"**8 GB at n = 10⁴, p = 10⁶.** The run failed: {big[0]['error'][-300:]}")
    else:
        lines.append("**8 GB at n = 10⁴, p = 10⁶.** Not run in this mode (run without `--quick`).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", type=int, nargs=2, metavar=("N", "WIDTH"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=3, help="GN steps per point (>= 2: step 1 holds the setup)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="drop n = 10⁴ from the n sweep")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes; writes files only with --out/--md")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="idle guard wait per point, s")
    parser.add_argument("--retries", type=int, default=1,
                        help=f"re-runs of a point disturbed by > {CONTENDED} other cores")
    parser.add_argument("--out", type=Path, help="results JSON (default results/scale_<date>_<HHMM>.json)")
    parser.add_argument("--md", type=Path, help="markdown output (default SCALE.md)")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only re-render the markdown from a results JSON")
    args = parser.parse_args()
    if args.render:
        md = args.md or HERE / "SCALE.md"
        md.write_text(render(json.loads(args.render.read_text()), args.render.name))
        print("wrote", md)
        return
    if args.baseline:
        print(json.dumps(baseline()))
        return
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.steps)))
        return
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    doc = run_sweep(name, args.steps, args.idle_timeout, args.retries)
    out = args.out or (None if args.smoke else HERE / "results" / f"scale_{dt.datetime.now():%Y-%m-%d_%H%M}.json")
    md = args.md or (None if args.smoke else HERE / "SCALE.md")
    text = render(doc, out.name if out else "(not written)")
    if out:
        dump(doc, out)
        print("wrote", out)
    if md:
        md.write_text(text)
        print("wrote", md)
    else:
        print(text)


if __name__ == "__main__":
    main()
