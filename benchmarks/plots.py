"""Plots for RESULTS.md from the results JSON files (every point is a measured number).

usage: python benchmarks/plots.py   (needs matplotlib; writes benchmarks/results/*.png)
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
RES = HERE / "results"


def latest(pattern: str) -> dict | list | None:
    files = sorted(glob.glob(str(RES / pattern)))
    return json.loads(Path(files[-1]).read_text()) if files else None


def loss_vs_time(cpu: dict) -> None:
    regimes = sorted({r["regime"] for r in cpu["peers"]["runs"]})
    fig, axes = plt.subplots(1, len(regimes), figsize=(6 * len(regimes), 4.2))
    for ax, regime in zip(axes, regimes, strict=True):
        runs = [r for r in cpu["peers"]["runs"] if r["regime"] == regime and r.get("trace")]
        for r in runs:
            label = r["solver"] + ("" if not r["setting"] else " " + ",".join(f"{k}={v}" for k, v in r["setting"].items()))
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


def memory_vs_n(scale: list) -> None:
    fig, ax1 = plt.subplots(figsize=(6, 4))
    ns = [r["n"] for r in scale]
    ax1.plot(ns, [r["peak_rss_gb"] for r in scale], "o-", label="peak memory [GB]")
    ax1.axhline(8, color="r", ls=":", label="8 GB target")
    ax1.set_xlabel("n (p = 10⁶)")
    ax1.set_ylabel("peak resident memory [GB]")
    ax2 = ax1.twinx()
    ax2.plot(ns, [r["s_per_step"] for r in scale], "s--", color="C1", label="s / step")
    ax2.set_ylabel("seconds per step", color="C1")
    ax1.set_title("Matrix-free CG path, p = 10⁶ parameters")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RES / "memory_vs_n.png", dpi=120)


def main() -> None:
    cpu = latest("20*_cpu.json")
    if cpu is not None:
        loss_vs_time(cpu)
        step_vs_size(cpu)
    scale = latest("scale_*.json")
    if scale:
        memory_vs_n(scale)
    print("wrote", sorted(p.name for p in RES.glob("*.png")))


if __name__ == "__main__":
    main()
