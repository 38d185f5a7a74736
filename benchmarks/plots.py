"""Plots for RESULTS.md and SCALE.md from the results JSON files (every point is a measured number).

loss_vs_time.png and step_vs_size.png from the newest ``*_cpu.json``; memory_vs_p.png (peak
memory vs p and vs n) and time_vs_n_p.png (s/step vs n and vs p) from the newest ``scale_*.json``.

usage: python benchmarks/plots.py   (needs matplotlib; writes benchmarks/results/*.png)
"""

from __future__ import annotations

import glob
import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
RES = HERE / "results"
sys.path.insert(0, str(HERE))
from _common import fmt_size  # noqa: E402


def latest(pattern: str) -> dict | list | None:
    """The newest (by name) results file matching ``pattern``, parsed, or None."""
    files = sorted(glob.glob(str(RES / pattern)))
    return json.loads(Path(files[-1]).read_text()) if files else None


def loss_vs_time(cpu: dict) -> None:
    """Training loss vs solver wall time, one panel per regime (from a ``*_cpu.json``)."""
    regimes = sorted({r["regime"] for r in cpu["peers"]["runs"]})
    fig, axes = plt.subplots(1, len(regimes), figsize=(6 * len(regimes), 4.2))
    for ax, regime in zip(axes, regimes, strict=True):
        runs = [r for r in cpu["peers"]["runs"] if r["regime"] == regime and r.get("trace")]
        for r in runs:
            setting = ",".join(f"{k}={v}" for k, v in r["setting"].items())
            label = r["solver"] + (" " + setting if setting else "")
            ax.plot(r["trace"]["t"], r["trace"]["loss"], label=label)
        ax.axhline(runs[0]["target"], color="k", ls=":", lw=1, label="target")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlabel("solver wall time [s] (setup excluded)")
        ax.set_ylabel("training loss at each recorded point")
        ax.set_title(f"{regime}: n = {runs[0]['n']}, p = {runs[0]['p']}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("MLP regression: loss vs wall time (one process per solver, idle machine)")
    fig.tight_layout()
    fig.savefig(RES / "loss_vs_time.png", dpi=120)


def step_vs_size(cpu: dict) -> None:
    """Dense GN step time vs its BLAS lower bound over the step grid (from a ``*_cpu.json``)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for dtype, marker in (("float64", "o"), ("float32", "s")):
        rows = [r for r in cpu["step"]["step"] if r["dtype"] == dtype]
        sizes = [max(r["n"], r["p"]) * min(r["n"], r["p"]) ** 2 for r in rows]
        ax.scatter(sizes, [r["lib_s"] for r in rows], marker=marker, label=f"gaussnewton step, {dtype}")
        ax.scatter(sizes, [r["bound_s"] for r in rows], marker=marker, facecolors="none", edgecolors="k",
                   label=f"BLAS bound (GEMM + Cholesky), {dtype}")
        for r, x in zip(rows, sizes, strict=True):
            ax.annotate(f"{r['n']}×{r['p']}", (x, r["lib_s"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Gram-product work max(n,p)·min(n,p)²")
    ax.set_ylabel("time per dense step [s]")
    ax.set_title("Dense GN step vs its BLAS lower bound")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(RES / "step_vs_size.png", dpi=120)


def load_scale() -> dict | None:
    """The newest ``scale_*.json`` as a results document (``bench_scale.py`` layout "scale/2").

    Files written before the p sweep existed (a bare list of n-sweep runs at p = 10⁶) are read
    as a document whose runs all belong to the n sweep and which has no baseline (GiB → GB).
    """
    files = sorted(glob.glob(str(RES / "scale_*.json")))
    if not files:
        return None
    doc = json.loads(Path(files[-1]).read_text())
    if isinstance(doc, list):
        # old layout: peak_rss_gb was ru_maxrss / 2**20, i.e. GiB; convert to GB (10⁹ bytes)
        doc = {"schema": "scale/1", "baseline": None,
               "runs": [{**r, "sweeps": ["n"], "peak_rss_gb": r["peak_rss_gb"] * 2**30 / 1e9} for r in doc]}
    doc["file"] = Path(files[-1]).name
    return doc


def _sweep(doc: dict, sweep: str) -> list[dict]:
    """Successful runs of the "n" or "p" sweep, ordered by the swept variable."""
    return sorted((r for r in doc["runs"] if sweep in r.get("sweeps", []) and "error" not in r), key=lambda r: r[sweep])


def _fixed(rows: list[dict], key: str) -> str:
    """The held-fixed value of a sweep, for titles ("p = 10⁶")."""
    vals = {r[key] for r in rows}
    return f"{key} = {fmt_size(vals.pop())}" if len(vals) == 1 else f"{key} varies"


def _size_axis(ax: plt.Axes, xs: list[float], *, log: bool) -> None:
    """x axis ticked at the measured sizes only: log scale, or linear from 0."""
    if log:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0, 1.08 * max(xs))
    ax.set_xticks(xs, [fmt_size(x) for x in xs], fontsize=8)
    ax.minorticks_off()


def memory_vs_p(doc: dict) -> None:
    """Peak RSS vs p (fixed n) and vs n (fixed p), linear axes, with the 8 GB target and the baseline process."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, sweep, other in ((axes[0], "p", "n"), (axes[1], "n", "p")):
        rows = _sweep(doc, sweep)
        if rows:
            xs = [r[sweep] for r in rows]
            ax.plot(xs, [r["peak_rss_gb"] for r in rows], "o-", label="peak RSS of the run's process")
            for r in rows:
                ax.annotate(f"{r['peak_rss_gb']:.2f}", (r[sweep], r["peak_rss_gb"]), fontsize=7,
                            xytext=(3, 4), textcoords="offset points")
            ax.set_title(f"peak memory vs {sweep} ({_fixed(rows, other)})")
            _size_axis(ax, xs, log=False)
        else:
            ax.text(0.5, 0.5, f"no {sweep} sweep in {doc['file']}", ha="center", va="center", transform=ax.transAxes)
        ax.axhline(8, color="r", ls=":", label="8 GB target")
        if doc.get("baseline"):
            ax.axhline(doc["baseline"]["peak_rss_gb"], color="gray", ls="--", lw=1,
                       label="baseline process (python + torch, no data)")
        ax.set_ylim(0, 9)
        ax.set_xlabel(sweep)
        ax.set_ylabel("peak resident memory [GB]")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Matrix-free CG path (gn.MLP, CG ≤ 30 iterations / step), {doc['file']}")
    fig.tight_layout()
    fig.savefig(RES / "memory_vs_p.png", dpi=120)
    plt.close(fig)


def time_vs_n_p(doc: dict) -> None:
    """s/step vs n (fixed p) and vs p (fixed n), log–log, with a slope-1 reference line."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, sweep, other in ((axes[0], "n", "p"), (axes[1], "p", "n")):
        rows = _sweep(doc, sweep)
        if not rows:
            ax.text(0.5, 0.5, f"no {sweep} sweep in {doc['file']}", ha="center", va="center", transform=ax.transAxes)
            continue
        xs = [r[sweep] for r in rows]
        steady = all("steady_s_per_step" in r for r in rows)  # old files: fit wall / steps only
        ys = [r["steady_s_per_step" if steady else "s_per_step"] for r in rows]
        ax.plot(xs, ys, "o-",
                label="steady s / step (median of steps 2..S)" if steady else "s / step (fit wall / steps)")
        if all("cg_solve_s" in r for r in rows):
            cg = [statistics.median(r["cg_solve_s"][1:] or r["cg_solve_s"]) for r in rows]
            ax.plot(xs, cg, "s--", mfc="none", label="of which CG solve (median of steps 2..S)")
        # slope-1 reference through the largest point
        x0, y0 = xs[-1], ys[-1]
        ref = [min(xs), max(xs)]
        ax.plot(ref, [y0 * x / x0 for x in ref], "k:", lw=1, label="slope 1 (cost ∝ " + sweep + ")")
        ax.set_yscale("log")
        _size_axis(ax, xs, log=True)
        ax.set_xlabel(sweep)
        ax.set_ylabel("seconds per step")
        ax.set_title(f"time per step vs {sweep} ({_fixed(rows, other)})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"Matrix-free CG path, cost per step vs n and p, {doc['file']}")
    fig.tight_layout()
    fig.savefig(RES / "time_vs_n_p.png", dpi=120)
    plt.close(fig)


def main() -> None:
    """Draw every plot whose input file exists."""
    cpu = latest("20*_cpu.json")
    if cpu is not None:
        loss_vs_time(cpu)
        step_vs_size(cpu)
    scale = load_scale()
    if scale:
        memory_vs_p(scale)
        time_vs_n_p(scale)
    print("wrote", sorted(p.name for p in RES.glob("*.png")))


if __name__ == "__main__":
    main()
