"""Figures of ``gaussnewton reproduce`` (the only module that imports matplotlib).

Uses matplotlib's object-oriented API (``matplotlib.figure.Figure``, no pyplot state, Agg
rendering), one style for all figures, mathtext for symbols. Every figure is saved as PNG and
PDF. Inputs are the saved run records (via :class:`~.claims.Runs`), so figures can be redrawn
from a finished output folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless; must precede any canvas creation

import matplotlib.colors  # noqa: E402
import matplotlib.ticker  # noqa: E402
import mpl_toolkits.mplot3d  # noqa: E402,F401  (registers the 3-D projection)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .analysis import loss_array  # noqa: E402
from .claims import DATASETS, Runs, is_alpha_variant  # noqa: E402

__all__ = ["draw_all", "figure1", "figure2", "figure3", "figure_curvature", "figure_sweep", "save"]

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "lines.linewidth": 1.4,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
    "savefig.dpi": 130,
}
NAMES = {"single_index": "single-index (eq. 85)", "california": "California Housing"}
GF_COLOR, GN_COLOR = "tab:red", "tab:blue"


def _log_label(value: float, _pos: Any) -> str:
    if value <= 0:
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) < 1e-9:
        return f"1e{int(round(exponent))}" if abs(exponent) >= 3 else f"{value:g}"
    return f"{value:.2g}"


def _plain_log_ticks(fig: Figure) -> None:
    """Plain-text labels on log axes (mathtext tick labels dominate the drawing time)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log" and not isinstance(
                axis.get_major_formatter(), matplotlib.ticker.FixedFormatter
            ):
                axis.set_major_formatter(matplotlib.ticker.FuncFormatter(_log_label))
                axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def save(fig: Figure, out: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` under ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    _plain_log_ticks(fig)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0])
    fig.set_layout_engine("none")  # keep the constrained layout computed for the PNG
    fig.savefig(paths[1])
    return paths


def _label(row: dict[str, Any]) -> str:
    v = f"{row['damping_value']:g}"
    if row["method"] == "gd":
        if row["lr_rule"] == "fixed":
            return rf"GF, $\Delta t={row['lr']:g}$"
        return rf"GF, lr$={row['lr'] * row['lambda_max0']:.2g}/\lambda_{{max}}$"
    if row["damping"] == "adaptive":
        return rf"GN adaptive $\rho_t=\kappa\lambda_{{min}}(K_t)$, $\kappa={v}$"
    if row["damping"] == "data":
        if row["lr"] >= 1:
            return rf"GN-DT $\eta=1$, $\rho={v}\lambda_0$"
        return rf"GN $\rho=\kappa\lambda_0$, $\kappa={v}$"
    return "GN undamped" if row["damping_value"] == 0 else rf"GN constant $\rho={v}$"


def _steps(rec: dict[str, Any], with_zero: bool = True) -> tuple[np.ndarray, np.ndarray]:
    loss = loss_array(rec)
    if with_zero:
        return np.arange(loss.size + 1), np.concatenate([[rec["summary"]["initial_loss"]], loss])
    return np.arange(1, loss.size + 1), loss


def _best_gf(runs: Runs, ds: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    gfs = runs.select("fig2", ds, lambda row: row["name"].startswith("gf_c"))
    return min(gfs, key=lambda pair: pair[1]["steps_to_1e-6"]) if gfs else None


def _view_along_normal(ax: Any, y: np.ndarray, u_star: np.ndarray, pts: np.ndarray) -> None:
    """Camera on the side of y (azimuth of the normal y − u* minus 30°, elevation 22°), equal scales."""
    normal = y - u_star
    ax.view_init(elev=22, azim=math.degrees(math.atan2(normal[1], normal[0])) - 30)
    ax.set_box_aspect(tuple(np.ptp(pts, axis=0) + 1e-9))


def figure1(runs: Runs, surf: dict[str, Any]) -> Figure | None:
    """One neuron, n = 3, d = 2: M ⊂ R³ with trajectories; parameter space; loss vs t."""
    gn_run, gf_run = runs.one("fig1", "neuron", "gn_undamped"), runs.one("fig1", "neuron", "gf")
    if gn_run is None or gf_run is None:
        return None
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(16, 5.6), layout="constrained")
        spec = fig.add_gridspec(1, 3, width_ratios=(1.3, 1, 1))
        ax3 = fig.add_subplot(spec[0], projection="3d")
        u = np.asarray(surf["u"])
        ax3.plot_surface(
            u[..., 0],
            u[..., 1],
            u[..., 2],
            color="0.75",
            alpha=0.35,
            edgecolor="0.55",
            linewidth=0.15,
            rstride=3,
            cstride=4,
        )
        y = np.asarray(surf["y"])
        for (rec, row), color in ((gn_run, GN_COLOR), (gf_run, GF_COLOR)):
            ut = np.asarray(rec["extras"]["u_traj"])
            ax3.plot(ut[:, 0], ut[:, 1], ut[:, 2], color=color, lw=2, label=_label(row))
        u_star = np.asarray(gn_run[0]["extras"]["u_traj"][-1])
        ax3.scatter(*y, color="k", s=40, marker="*", label="target $y$")
        ax3.scatter(*u_star, color="tab:green", s=40, label=r"in-class optimum $u^*_M$")
        ax3.scatter(0, 0, 0, color="k", s=15, label=r"$u_0 = 0$")
        ax3.plot(*np.stack([y, u_star]).T, color="tab:green", ls=":", lw=1.2, label=r"$y - u^*_M \perp T_{u^*}M$")
        _view_along_normal(ax3, y, u_star, np.concatenate([u.reshape(-1, 3), y[None, :]]))
        ax3.set_xlabel("$u_1$")
        ax3.set_ylabel("$u_2$")
        ax3.zaxis.set_rotate_label(False)
        ax3.set_zlabel("$u_3$")
        ax3.set_title("(a) function space: output manifold $M\\subset\\mathbb{R}^3$")
        ax3.legend(loc="upper left", bbox_to_anchor=(-0.08, 1.0), fontsize=7)

        ax = fig.add_subplot(spec[1])
        w, loss = np.asarray(surf["w"]), np.asarray(surf["loss"])
        levels = np.geomspace(loss.min() * 1.001, loss.max(), 18)
        cs = ax.contourf(
            w[..., 0], w[..., 1], loss, levels=levels, cmap="Greys_r", alpha=0.6, norm=matplotlib.colors.LogNorm()
        )
        fig.colorbar(cs, ax=ax, label=r"$R(w)$ (log scale)", format="%.2g")
        for (rec, row), color in ((gn_run, GN_COLOR), (gf_run, GF_COLOR)):
            th = np.asarray(rec["extras"]["theta_traj"])
            ax.plot(th[:, 0], th[:, 1], color=color, lw=2, label=_label(row))
        w0 = np.asarray(surf["w0"])
        w_star = np.asarray(gn_run[0]["extras"]["theta_traj"][-1])
        ax.scatter(*w0, color="k", s=20, zorder=3, label="$w_0$")
        ax.scatter(*w_star, color="tab:green", s=30, zorder=3, label="$w^*$")
        ax.set_xlabel("$w_1$")
        ax.set_ylabel("$w_2$")
        ax.set_aspect("equal")
        ax.set_title("(b) parameter space $w\\in\\mathbb{R}^2$ (contours of $R$)")
        ax.legend(loc="upper right")

        ax = fig.add_subplot(spec[2])
        r_star = min(float(np.min(loss_array(gn_run[0]))), float(np.min(loss_array(gf_run[0]))))
        for (rec, row), color in ((gn_run, GN_COLOR), (gf_run, GF_COLOR)):
            k, lv = _steps(rec)
            gap = lv - r_star
            ok = gap > 1e-14 * gap[0]
            ax.semilogy(k[ok] * row["lr"], gap[ok], color=color, label=_label(row))
        t = np.linspace(0, gn_run[1]["steps_run"] * gn_run[1]["lr"], 50)
        ax.semilogy(
            t, (gn_run[1]["initial_loss"] - r_star) * np.exp(-t), "k--", lw=1, label=r"Thm 25 bound $e^{-\mu t}$"
        )
        ax.set_xlabel("time $t = k\\,\\Delta t$")
        ax.set_ylabel(r"$R(u_t) - R(u^*_M)$")
        ax.set_title("(c) gap to the in-class optimum")
        ax.legend()
        fig.suptitle(
            "Figure 1 — one neuron ($m=1$, tanh, $\\alpha=1$), $n=3$ points in $d=2$, Euler "
            f"$\\Delta t={gn_run[1]['lr']:g}$: undamped GN is the Riemannian gradient flow on $M$",
            fontsize=11,
        )
    return fig


def _alpha_ticks(ax: Any, alphas: Any) -> None:
    """Plain tick labels at the α values of a log α axis."""
    xs = sorted({float(a) for a in alphas})
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _over_row(fig: Figure, axes: list[Any], runs: Runs, ds: str) -> None:
    main = [
        pair
        for pair in runs.select("fig2", ds, lambda row: row["method"] == "gn" and not is_alpha_variant(row["name"]))
    ]
    best = _best_gf(runs, ds)
    series = sorted(main, key=lambda p: (p[1]["damping"] != "adaptive", p[1]["lr"] >= 1, p[1]["damping_value"]))
    if best is not None:
        series.append(best)
    colors = matplotlib.colormaps["tab10"].colors
    lam0 = series[0][1]["lambda0"]
    for i, (rec, row) in enumerate(series):
        color = GF_COLOR if row["method"] == "gd" else colors[[0, 1, 2, 4, 5, 6, 8, 9][i % 8]]
        k, lv = _steps(rec)
        axes[0].semilogy(k, lv / lv[0], color=color, label=_label(row))
        lam = np.array([np.nan if v is None else v for v in rec["history"]["lambda_min"]], dtype=float)
        ok = np.isfinite(lam)
        style = dict(marker="o", ms=3, ls="-") if row["method"] == "gd" else dict(ls="-")
        axes[1].plot(np.arange(1, lam.size + 1)[ok], lam[ok] / lam0, color=color, **style)
        dist = np.array(rec["history"]["param_distance"], dtype=float)
        axes[2].plot(np.arange(1, dist.size + 1), dist, color=color)
    adaptive = next(row for _, row in series if row["damping"] == "adaptive")
    kk = np.arange(0, int(axes[0].get_xlim()[1]))
    axes[0].semilogy(
        kk,
        np.exp(-2 / (1 + adaptive["damping_value"]) * kk * adaptive["lr"]),
        "k--",
        lw=1,
        label=r"Cor. 9: $e^{-2t/(1+\kappa)}$, $\kappa=1$",
    )
    axes[0].set_ylim(1e-14, 2)
    axes[0].set_ylabel(r"$R(u_k)/R(u_0)$")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[1].legend(
        handles,
        labels,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.15),
        title="methods (panels a–c)",
        title_fontsize=7.5,
    )
    axes[1].set_ylabel(r"$\lambda_{min}(K_k)/\lambda_0$")
    axes[1].axhline(0.5, color="k", ls=":", lw=1)
    axes[1].text(0.02, 0.52, r"$\lambda_0/2$ (Thm 5 floor)", transform=axes[1].get_yaxis_transform(), fontsize=7)
    axes[1].set_ylim(0.4, max(1.35, axes[1].get_ylim()[1]))
    axes[2].set_ylabel(r"$\|\theta_k-\theta_0\|_2$")
    for ax in axes[:3]:
        ax.set_xlabel("step $k$")
    r0 = series[0][1]
    axes[0].set_title(
        f"{NAMES[ds]}: n={r0['n']}, p={r0['p']}, α={r0['alpha']:g}, "
        rf"$\lambda_0$={lam0:.2g}, $\Delta t$={r0['lr']:g}"
    )
    axes[1].set_title("kernel stays non-degenerate (lazy regime)")
    axes[2].set_title("distance travelled in parameter space")
    for prefix, marker, what in (("gn_adaptive", "o", "adaptive"), ("gn_data_k1", "s", r"$\rho=\lambda_0$")):
        pts = [
            (row["alpha"], row["sup_distance"], rec["extras"]["min_norm_gap"])
            for rec, row in runs.select(
                "fig2", ds, lambda row, p=prefix: row["name"] == p or row["name"].startswith(p + "_a")
            )
        ]
        if not pts:
            continue
        a, dist, gap = (np.array(v) for v in zip(*sorted(pts), strict=True))
        axes[3].loglog(a, dist, marker=marker, color="tab:purple", label=rf"$\max_k\|\theta_k-\theta_0\|$, {what}")
        axes[3].loglog(a, gap, marker=marker, color="tab:olive", ls="--", label=f"min-norm gap (Prop. 12), {what}")
        axes[3].loglog(a, dist[0] * a[0] / a, color="0.5", lw=0.8, ls=":")
    _alpha_ticks(
        axes[3], [row["alpha"] for _, row in runs.select("fig2", ds, lambda r: r["name"].startswith("gn_adaptive"))]
    )
    axes[3].set_xlabel(r"output scale $\alpha$")
    axes[3].set_ylabel("distance / relative gap")
    axes[3].set_title(r"$\alpha$-scaling (dotted: $\propto 1/\alpha$)")
    axes[3].legend(loc="upper right")


def figure2(runs: Runs) -> Figure | None:
    """Overparameterized runs: loss, λ_min(K_t)/λ₀, ‖θ_t − θ_0‖, α-scaling; one row per data set."""
    present = [ds for ds in DATASETS if runs.select("fig2", ds)]
    if not present:
        return None
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(19, 4.6 * len(present)), layout="constrained")
        grid = fig.subplots(len(present), 4, squeeze=False)
        for i, ds in enumerate(present):
            _over_row(fig, list(grid[i]), runs, ds)
        fig.suptitle(
            "Figure 2 — overparameterized ($p \\geq n$, tanh MLP, frozen output layer, Euler $\\Delta t$ = 0.1): "
            "GN with adaptive / data-based / constant damping vs gradient flow",
            fontsize=11,
        )
    return fig


def figure3(runs: Runs) -> Figure | None:
    """Underparameterized runs: loss and gap per α, final loss vs α (→ R_lin), movement vs α."""
    present = [ds for ds in DATASETS if runs.select("fig3", ds)]
    if not present:
        return None
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(19, 4.6 * len(present)), layout="constrained")
        grid = fig.subplots(len(present), 4, squeeze=False)
        cmap = matplotlib.colormaps["viridis"]
        for i, ds in enumerate(present):
            axes = grid[i]
            gns = sorted(runs.select("fig3", ds, lambda row: row["method"] == "gn"), key=lambda p: p[1]["alpha"])
            alphas = [row["alpha"] for _, row in gns]
            for j, (rec, row) in enumerate(gns):
                color = cmap(j / max(len(gns) - 1, 1) * 0.85)
                k, lv = _steps(rec)
                axes[0].semilogy(k, lv, color=color, label=rf"GN $\rho=0$, $\alpha={row['alpha']:g}$")
                gf = runs.one("fig3", ds, f"gf_a{row['alpha']:g}")
                if gf is not None:
                    kg, lg = _steps(gf[0])
                    axes[0].semilogy(kg, lg, color=color, ls="--", lw=1)
                gap = lv - row["r_star"]
                ok = gap > 1e-12 * gap[0]
                axes[1].semilogy(k[ok], gap[ok] / gap[0], color=color, label=rf"$\alpha={row['alpha']:g}$")
            r_lin = gns[-1][1]["R_lin"]
            axes[0].axhline(r_lin, color="k", ls=":", lw=1, label=r"$R_{lin}$ (linearized limit)")
            axes[0].plot([], [], color="0.4", ls="--", lw=1, label="GF (same colour = same α)")
            kk = np.arange(0, int(axes[1].get_xlim()[1]))
            dt = gns[0][1]["lr"]
            axes[1].semilogy(kk, (1 - dt) ** (2 * kk), "k--", lw=1, label=r"flat limit $(1-\Delta t)^{2k}$")
            axes[1].semilogy(kk, np.exp(-kk * dt), "k:", lw=1, label=r"Thm 25 bound $e^{-\mu t}$")
            axes[1].set_ylim(1e-13, 2)
            finals = [row["final_loss"] for _, row in gns]
            gf_finals = [
                (row["alpha"], row["final_loss"]) for _, row in runs.select("fig3", ds, lambda r: r["method"] == "gd")
            ]
            axes[2].semilogx(alphas, finals, "o-", color=GN_COLOR, label="GN (ρ = 0), final")
            if gf_finals:
                ga, gl = zip(*sorted(gf_finals), strict=True)
                axes[2].semilogx(ga, gl, "s--", color=GF_COLOR, mfc="none", label="GF, after the same steps")
            axes[2].axhline(r_lin, color="k", ls=":", lw=1, label=r"$R_{lin}=\|(I-P_0)y\|^2/2n$")
            r0 = gns[0][1]["initial_loss"]
            if max(finals) > 3 * r_lin:
                axes[2].set_yscale("log")
                axes[2].axhline(r0, color="0.5", ls="-.", lw=1, label=r"$R(u_0)$")
            dists = [row["sup_distance"] for _, row in gns]
            axes[3].loglog(alphas, dists, "o-", color="tab:purple", label=r"GN $\max_k\|\theta_k-\theta_0\|$")
            axes[3].loglog(
                alphas, dists[-1] * alphas[-1] / np.array(alphas), color="0.5", ls=":", label=r"$\propto 1/\alpha$"
            )
            radius = gns[-1][1]["radius"]
            axes[3].axhline(radius, color="k", ls="--", lw=1, label=r"ball radius $r_u$ (eq. 20)")
            _alpha_ticks(axes[2], alphas)
            _alpha_ticks(axes[3], alphas)
            g0 = gns[0][1]
            axes[0].set_title(
                f"{NAMES[ds]}: n={g0['n']}, p={g0['p']}, " rf"$\lambda_G$={g0['lambda0']:.2g}, $\Delta t$={dt:g}"
            )
            axes[0].set_ylabel(r"$R(u_k)$")
            axes[1].set_ylabel(r"$(R(u_k)-R^*)/(R(u_0)-R^*)$")
            axes[1].set_title("GN: gap to the in-class optimum $R^*$")
            axes[2].set_ylabel("final loss")
            axes[2].set_title(r"self-regularization: final loss vs $\alpha$")
            axes[3].set_ylabel("distance")
            axes[3].set_title(r"movement in parameter space vs $\alpha$")
            for ax in axes[:2]:
                ax.set_xlabel("step $k$")
            for ax in axes[2:]:
                ax.set_xlabel(r"output scale $\alpha$")
            for ax in axes:
                ax.legend(loc="best")
        fig.suptitle(
            "Figure 3 — underparameterized ($p < n$): undamped GN vs gradient flow for several α "
            "(GF at lr = 1.9/λ_max(G))",
            fontsize=11,
        )
    return fig


def figure_sweep(runs: Runs) -> Figure | None:
    """Conditioning sweep: steps to 1e-6 and their ratio vs λ₀ (p ≥ n); rates vs λ_G (p < n)."""
    over = sorted(runs.select("sweep", None, lambda row: row["regime"] == "over"), key=lambda p: p[1]["lambda0"])
    under = runs.select("sweep", None, lambda row: row["regime"] == "under")
    if not over and not under:
        return None
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(16, 4.8), layout="constrained")
        axes = fig.subplots(1, 3)
        groups: dict[str, list[dict[str, Any]]] = {"gn": [], "dt": [], "gf": []}
        for _, row in over:
            groups["gf" if row["method"] == "gd" else ("dt" if row["lr"] >= 1 else "gn")].append(row)
        if groups["gn"]:
            lam = np.array([r["lambda0"] for r in groups["gn"]])
            axes[0].loglog(
                lam,
                [r["steps_to_1e-6"] for r in groups["gn"]],
                "o-",
                color=GN_COLOR,
                label=r"GN adaptive ($\kappa=1$, $\Delta t=0.1$), measured",
            )
            axes[0].loglog(
                lam,
                [r["linear_steps_to_1e-6"] for r in groups["gn"]],
                ":",
                color=GN_COLOR,
                label="GN, lazy-model prediction",
            )
        if groups["dt"]:
            axes[0].loglog(
                [r["lambda0"] for r in groups["dt"]],
                [r["steps_to_1e-6"] for r in groups["dt"]],
                "s-",
                color="tab:green",
                label=r"GN-DT ($\eta=1$, $\rho=\lambda_0/2$), measured",
            )
        if groups["gf"]:
            lam = np.array([r["lambda0"] for r in groups["gf"]])
            axes[0].loglog(
                lam,
                [r["steps_to_1e-6"] for r in groups["gf"]],
                "o--",
                color=GF_COLOR,
                mfc="none",
                label=r"GF (lr $=1.9/\lambda_{max}$), extrapolated lower bound",
            )
            axes[0].loglog(
                lam,
                [r["linear_steps_to_1e-6"] for r in groups["gf"]],
                ":",
                color=GF_COLOR,
                label="GF, lazy-model prediction",
            )
            if groups["gn"]:
                ratio = np.array([f["steps_to_1e-6"] for f in groups["gf"]]) / np.array(
                    [g["steps_to_1e-6"] for g in groups["gn"]]
                )
                axes[1].loglog(lam, ratio, "o-", color="k", label="GF (≥, extrapolated) / GN (measured)")
                lin = np.array([f["linear_steps_to_1e-6"] for f in groups["gf"]]) / np.array(
                    [g["steps_to_1e-6"] for g in groups["gn"]]
                )
                axes[1].loglog(lam, lin, ":", color="k", label="GF (lazy model) / GN (measured)")
                axes[1].axhline(20, color="tab:orange", ls="--", lw=1, label="20× (issue #3 threshold)")
                for x, r, g in zip(lam, ratio, groups["gn"], strict=True):
                    axes[1].annotate(f"n={g['n']}", (x, r), textcoords="offset points", xytext=(4, 4), fontsize=7)
        for ax in axes[:2]:
            ax.set_xlabel(r"$\lambda_0=\lambda_{min}(K_0)$ (more samples $n$ → smaller)")
            ax.invert_xaxis()
            ax.legend(loc="upper left")
        axes[0].set_ylabel(r"steps to $R \leq 10^{-6} R(u_0)$")
        axes[0].set_title(r"(a) $p \geq n$: steps to $10^{-6}$ vs $\lambda_0$")
        axes[1].set_ylabel("step ratio GF / GN")
        axes[1].set_title("(b) advantage of GN grows as $\\lambda_0$ shrinks")
        alphas = sorted({row["alpha"] for _, row in under})
        styles = {a: s for a, s in zip(alphas, ("--", "-", "-."), strict=False)}
        for a in alphas:
            for method, color, what in (
                ("gn", GN_COLOR, r"GN $\rho=0$, $\Delta t=0.1$"),
                ("gd", GF_COLOR, r"GF, lr$=1.9/\lambda_{max}$"),
            ):
                rows = sorted(
                    [row for _, row in under if row["alpha"] == a and row["method"] == method],
                    key=lambda r: r["lambda0"],
                )
                if rows:
                    axes[2].loglog(
                        [r["lambda0"] for r in rows],
                        [r["rate_per_step"] for r in rows],
                        marker="o",
                        ls=styles.get(a, "-"),
                        color=color,
                        label=rf"{what}, $\alpha={a:g}$",
                    )
        if under:
            dt = 0.1
            axes[2].axhline(-2 * math.log(1 - dt), color="k", ls=":", lw=1, label=r"GN flat limit $-2\ln(1-\Delta t)$")
            axes[2].set_xlabel(r"$\lambda_G=\lambda_{min}(G_0)$ (inputs bunched → smaller)")
            axes[2].invert_xaxis()
            axes[2].set_ylabel("observed loss-decay rate per step")
            n_u = under[0][1]["n"]
            axes[2].set_title(f"(c) $p < n$ (n={n_u}, p={under[0][1]['p']}): rate vs $\\lambda_G$")
            low = min(row["rate_per_step"] for _, row in under if row["rate_per_step"] > 0)
            axes[2].set_ylim(low / 30, 1.0)
            axes[2].legend(loc="lower left", ncol=2)
        fig.suptitle(
            "Conditioning sweep (single-index): GN's convergence does not depend on $\\lambda_0$; gradient flow's does",
            fontsize=11,
        )
    return fig


def figure_curvature(runs: Runs) -> Figure | None:
    """Claim 11: heterogeneous curvature c_j ∈ [μ, 1]; GGN with ρ⁽²⁾ vs a preconditioner ignoring Λ."""
    rows = runs.select("curvature")
    if not rows:
        return None
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 4.4), layout="constrained")
        axes = fig.subplots(1, 2)
        mus = sorted({row["loss_mu"] for _, row in rows}, reverse=True)
        cmap = matplotlib.colormaps["plasma"]
        for i, mu in enumerate(mus):
            color = cmap(0.8 * i / max(len(mus) - 1, 1))
            for rec, row in rows:
                if row["loss_mu"] != mu:
                    continue
                k, lv = _steps(rec)
                ggn = row["damping"] == "curvature_local"
                what = r"GGN $J^T\Lambda J$, $\rho^{(2)}$" if ggn else r"ignores $\Lambda$"
                axes[0].semilogy(k, lv / lv[0], color=color, ls="-" if ggn else "--", label=f"{what}, μ={mu:g}")
        axes[0].set_ylim(1e-14, 2)
        axes[0].set_xlabel("step $k$")
        axes[0].set_ylabel(r"$R(u_k)/R(u_0)$")
        axes[0].set_title(r"loss $\frac{1}{n}\sum_j c_j(u_j-y_j)^2/2$, $c_j\in[\mu,1]$ log-uniform")
        axes[0].legend(loc="lower right")
        for damping, marker, color, what in (
            ("curvature_local", "o", GN_COLOR, r"GGN, $\rho_t=\kappa\lambda_{min}(\Lambda^{1/2}K\Lambda^{1/2})$"),
            ("adaptive", "s", GF_COLOR, r"ignores $\Lambda$, $\rho_t=\kappa\lambda_{min}(K)$"),
        ):
            pts = sorted((row["loss_mu"], row["rate_observed"]) for _, row in rows if row["damping"] == damping)
            if pts:
                axes[1].loglog(*zip(*pts, strict=True), marker=marker, color=color, label=what)
        sharp = next(row["rate_sharp"] for _, row in rows if row["damping"] == "curvature_local")
        axes[1].axhline(sharp, color="k", ls=":", lw=1, label=r"Thm 10(2): $2/(1+\kappa)$ (Euler)")
        axes[1].loglog(mus, [sharp * m for m in mus], color="0.5", ls="--", lw=1, label=r"$\propto \mu$")
        _alpha_ticks(axes[1], mus)
        axes[1].set_xlabel(r"$\mu$ (smallest curvature $c_j$)")
        axes[1].set_ylabel("observed rate (per unit time)")
        axes[1].set_title("rate vs $\\mu$")
        axes[1].legend(loc="lower right")
        r0 = rows[0][1]
        fig.suptitle(
            f"Claim 11 (optional, not in the paper) — single-index, n={r0['n']}, p={r0['p']}, "
            f"α={r0['alpha']:g}, κ=1, Δt={r0['lr']:g}",
            fontsize=11,
        )
    return fig


def _figure_flow(runs: Runs) -> Figure | None:
    from .plotting_flow import figure_flow  # it builds on this module's style

    return figure_flow(runs)


def draw_all(runs: Runs, surf: dict[str, Any] | None, out: Path) -> list[Path]:
    """Draw every figure whose runs are present; return the written paths."""
    written: list[Path] = []
    makers = (
        ("fig1_manifold", lambda: figure1(runs, surf) if surf else None),
        ("fig2_overparameterized", lambda: figure2(runs)),
        ("fig3_underparameterized", lambda: figure3(runs)),
        ("fig4_conditioning_sweep", lambda: figure_sweep(runs)),
        ("fig5_curvature", lambda: figure_curvature(runs)),
        ("fig6_flow", lambda: _figure_flow(runs)),
    )
    for stem, make in makers:
        fig = make()
        if fig is not None:
            written += save(fig, out, stem)
    return written
