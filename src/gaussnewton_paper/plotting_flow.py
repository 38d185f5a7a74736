"""Figure 6 of ``gaussnewton reproduce``: the integrated continuous-time flows (issue #13).

Per data set (one row each):

(a) Δt-convergence: undamped GN, p < n, the smallest α of the ``dt`` experiment: the loss of Euler
    with Δt = 0.1, 0.03, 0.01 and of the error-controlled flow (its singular stop marked);
(b) the Euler error max_t |R_Euler − R_flow|/R₀ against Δt (log–log) with a first-order guide;
(c) Figure 3's undamped GN flows (solid) and gradient flows (dashed) for every α, Euler Δt = 0.1
    faint behind them;
(d) Figure 2's flows with ρ = κλ₀: (R/R₀) against t with the fixed-kernel flow's prediction
    Σ_i c_i e^{−2tλ_i/(λ_i+ρ)} (dotted) — claim 5's finite-window prediction.
"""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from . import theory as th
from .analysis import loss_array
from .claims import DATASETS, Runs
from .flow_claims import dt_convergence
from .plotting import NAMES, STYLE

__all__ = ["figure_flow"]


def _t_loss(rec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    t = np.concatenate([[0.0], np.asarray(rec["history"]["t"], dtype=float)])
    return t, np.concatenate([[rec["summary"]["initial_loss"]], loss_array(rec)])


def _panel_dt(ax: Any, runs: Runs, ds: str) -> None:
    flows = sorted(runs.select("dt", ds, None, "flow"), key=lambda x: x[1]["alpha"])
    if not flows:
        ax.set_visible(False)
        return
    rec_f, row_f = flows[0]
    eulers = sorted(runs.select("dt", ds, lambda r: r["alpha"] == row_f["alpha"]), key=lambda x: -x[1]["lr"])
    shades = matplotlib.colormaps["Oranges"]
    for i, (rec, row) in enumerate(eulers):
        t, lv = _t_loss(rec)
        ax.semilogy(t, lv, color=shades(0.45 + 0.5 * i / max(len(eulers) - 1, 1)), lw=1.1,
                    label=rf"Euler $\Delta t={row['lr']:g}$")
    t, lv = _t_loss(rec_f)
    ax.semilogy(t, lv, color="k", lw=1.6, ls="--", label="flow (DOP853, rtol 1e-10)")
    if row_f["termination"] != "STEPS_DONE":
        ax.axvline(row_f["t_end"], color="tab:red", lw=1, ls=":", label=f"flow stops: {row_f['termination']}, "
                   f"t = {row_f['t_end']:.3g}")
    ax.set_title(rf"{NAMES[ds]}: undamped GN, $\alpha={row_f['alpha']:g}$, $p={row_f['p']}<n={row_f['n']}$")
    ax.set_xlabel("time $t$")
    ax.set_ylabel(r"$R(u_t)$")


def _panel_error(ax: Any, runs: Runs, ds: str) -> None:
    entries = [e for e in dt_convergence(runs) if e["dataset"] == ds and len(e["dts"]) >= 2]
    if not entries:
        ax.set_visible(False)
        return
    for e in entries:
        ax.loglog(e["dts"], e["errors"], "o-", label=rf"$\alpha={e['alpha']:g}$ (orders "
                  + ", ".join(f"{q:.2f}" for q in e["orders"]) + ")")
    dts = np.asarray(entries[0]["dts"])
    ref = entries[0]["errors"][-1] * dts / dts[-1]
    ax.loglog(dts, ref, color="0.5", ls=":", label=r"first order $\propto\Delta t$")
    ax.set_xlabel(r"Euler step $\Delta t$")
    ax.set_ylabel(r"$\max_t |R_{Euler}-R_{flow}|/R_0$")
    ax.set_title("where Euler departs from the flow (t ≤ the flow's stop)")


def _panel_under(ax: Any, runs: Runs, ds: str) -> None:
    gns = sorted(runs.select("fig3", ds, lambda r: r["method"] == "gn", "flow"), key=lambda x: x[1]["alpha"])
    if not gns:
        ax.set_visible(False)
        return
    cmap = matplotlib.colormaps["viridis"]
    for j, (rec, row) in enumerate(gns):
        color = cmap(j / max(len(gns) - 1, 1) * 0.85)
        t, lv = _t_loss(rec)
        t, lv = t[1:], lv[1:]  # log time axis: GF runs ~50× longer than GN
        ax.loglog(t, lv, color=color, label=rf"GN flow $\alpha={row['alpha']:g}$"
                    + ("" if row["termination"] == "STEPS_DONE" else f" ({row['termination']} t={row['t_end']:.2g})"))
        euler = runs.one("fig3", ds, row["name"])
        if euler is not None:
            te, le = _t_loss(euler[0])
            ax.loglog(te[1:], le[1:], color=color, lw=0.8, alpha=0.35)
        gf = runs.one("fig3", ds, f"gf_a{row['alpha']:g}", "flow")
        if gf is not None:
            tg, lg = _t_loss(gf[0])
            ax.loglog(tg[1:], lg[1:], color=color, ls="--", lw=1)
    ax.axhline(gns[-1][1]["R_lin"], color="k", ls=":", lw=1, label=r"$R_{lin}$")
    ax.plot([], [], color="0.4", ls="--", lw=1, label="gradient flow (LSODA)")
    ax.plot([], [], color="0.4", lw=0.8, alpha=0.35, label=r"Euler $\Delta t=0.1$")
    ax.set_title("Figure 3 as flows (Thm 25)")
    ax.set_xlabel("time $t$")
    ax.set_ylabel(r"$R(u_t)$")


def _panel_rate(ax: Any, runs: Runs, ds: str) -> None:
    dd = sorted(runs.select("fig2", ds, lambda r: r["name"].startswith("gn_data_k"), "flow"),
                key=lambda x: x[1]["damping_value"])
    if not dd:
        ax.set_visible(False)
        return
    cmap = matplotlib.colormaps["plasma"]
    for j, (rec, row) in enumerate(dd):
        color = cmap(0.1 + 0.7 * j / max(len(dd) - 1, 1))
        t, lv = _t_loss(rec)
        ax.semilogy(t, lv / lv[0], color=color, label=rf"$\kappa={row['damping_value']:g}$: observed "
                    f"{row['rate_observed']:.3f}, window {row['rate_linear']:.3f}, t→∞ {row['rate_sharp']:.3f}")
        eigs, coef2 = np.asarray(rec["extras"]["eigs0"]), np.asarray(rec["extras"]["coef2"])
        factors = th.flow_factor_gn(eigs, row["damping_value"] * row["lambda0"], 1.0)
        lazy = np.array([th.linearized_loss(coef2, factors, ti) for ti in t])
        ax.semilogy(t, lazy / lazy[0], color=color, ls=":", lw=1.2)
        if np.isfinite(row["fit_t_start"]):
            ax.axvspan(row["fit_t_start"], row["fit_t_end"], color=color, alpha=0.07)
    ax.plot([], [], color="0.4", ls=":", label=r"fixed-kernel flow $\sum_i c_i e^{-2t\lambda_i/(\lambda_i+\rho)}$")
    ax.set_ylim(1e-14, 2)
    ax.set_title(r"Figure 2 flows, $\rho=\kappa\lambda_0$ (claim 5; shaded: fit window)")
    ax.set_xlabel("time $t$")
    ax.set_ylabel(r"$R(u_t)/R(u_0)$")


def figure_flow(runs: Runs) -> Figure | None:
    """Figure 6 (module docstring), or None without any flow run."""
    present = [ds for ds in DATASETS if any(runs.select(e, ds, None, "flow") for e in ("dt", "fig2", "fig3"))]
    if not present:
        return None
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(20, 4.6 * len(present)), layout="constrained")
        grid = fig.subplots(len(present), 4, squeeze=False)
        for i, ds in enumerate(present):
            for draw, ax in zip((_panel_dt, _panel_error, _panel_under, _panel_rate), grid[i], strict=True):
                draw(ax, runs, ds)
                if ax.get_visible():
                    ax.legend(loc="best")
        fig.suptitle("Figure 6 — the integrated flows (fit(..., dynamics='flow')): Euler Δt → 0 against the flow, "
                     "underparameterized GN and gradient flows, and claim 5's rates", fontsize=11)
    return fig
