"""Per-run theory check: the rate the spec's theorems predict next to the observed rate.

:func:`analyze` turns one saved run record into one row of the theory-check table
(``theory_check.csv`` and the table in ``report.md``). Everything is recomputed from the
record, so ``--resume`` reproduces the same table without rerunning anything.

Columns (rates per unit time t = k·Δt; a rate c means the gap decays like exp(−c·t)):

* ``theorem``: the result whose rate is checked (Cor. 9, Lemma 3/Thm 5, Thm 7, Remark 6, Thm 25);
* ``rate_bound``: the theorem's guaranteed rate (from the measured λ₀, κ, ρ; μ = L = 1);
* ``rate_sharp``: the lazy-regime slowest-mode rate of the discrete iteration actually run
  (``−2 ln(1 − Δt·λ/(λ+ρ))/Δt`` with λ the tracked λ_min(K_t); GF: ``−2 ln(1 − lr·λ)/lr``;
  undamped GN for p < n: ``−2 ln(1 − Δt)/Δt``); for a flow run (``dynamics="flow"``) the
  continuous t → ∞ rate ``2λ/(λ+ρ)`` (GF ``2λ``, undamped p < n: 2);
* ``edi_err`` (flows): :func:`~.theory.edi_consistency` of the integrated loss and its recorded dR/dt;
* ``rate_linear``: the slope of the linearized (fixed-kernel K_0) model's loss curve over the
  same window as the observed fit (all modes, not just the slowest);
* ``rate_observed``: fitted slope of log(gap) over the asymptotic window;
* conditions: width m vs eq. (9), α vs Lemma 4 / Theorem 22, sup‖θ_t − θ_0‖ vs the radius
  of eq. (10) / (20), and min_t λ_min(K_t)/λ₀ (≥ 1/2, or ≥ 1/4 for G when p < n).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import theory as th
from .config import RunConfig
from .io import nan_list

__all__ = ["analyze", "in_class_optimum", "loss_array", "time_array"]

FRACTION = 1e-6  # "steps to reach 1e-6 of the initial loss" (issue #3)
WINDOW_HI = 1e-2  # fitted-rate window: relative gap in [lo, 1e-2] (past the transient)
WINDOW_LO_OVER = 1e-12  # above round-off of the loss (p ≥ n, R* = 0)
WINDOW_LO_UNDER = 1e-9  # the gap R − R* loses digits earlier: R* ≈ 1e-3 is subtracted


def loss_array(rec: dict[str, Any]) -> np.ndarray:
    """The loss history as floats (NaN for missing)."""
    return np.asarray(nan_list(rec["history"]["loss"]), dtype=float)


def time_array(rec: dict[str, Any]) -> np.ndarray:
    """t_k = k·lr for k = 1..K."""
    return np.asarray(rec["history"]["t"], dtype=float)


def in_class_optimum(rec: dict[str, Any]) -> float:
    """R* of an undamped GN run with p < n: its lowest loss, refined by the polish steps if any."""
    return min(float(np.nanmin(loss_array(rec))), float(rec["extras"].get("r_star_polish", math.inf)))


def _lazy_rho(cfg: RunConfig, lam: float) -> float:
    if cfg.damping in ("adaptive", "data", "curvature_local"):
        return cfg.damping_value * lam
    return cfg.damping_value


def _bound(cfg: RunConfig, lam0: float, lr: float) -> tuple[str, float]:
    if cfg.loss != "squared":  # claim 11: Theorem 10(1)'s global rate 2μ/((1+κ)L), L = 1
        if cfg.damping == "curvature_local":
            return "Thm 10", 2.0 * cfg.loss_mu / (1.0 + cfg.damping_value)
        return "— (Λ ignored)", math.nan
    if cfg.regime == "under":
        return ("Thm 25", th.rate_bound_underparam()) if cfg.method == "gn" else ("— (Rem. 26)", math.nan)
    if cfg.method == "gd":
        return "Remark 6", th.rate_bound_gf(lam0)
    if cfg.damping == "adaptive":
        return "Cor. 9", th.rate_bound_adaptive(cfg.damping_value)
    rho = _lazy_rho(cfg, lam0)
    if lr >= 1.0 and cfg.dynamics == "euler":  # GN-DT: Theorem 7's per-step loss factor, as a rate per unit time
        return "Thm 7", -math.log(th.theorem7_factor(lr, lam0, rho)) / lr
    return "Lemma 3/Thm 5", th.rate_bound_constant(lam0, rho)


def analyze(rec: dict[str, Any], r_star: float | None = None) -> dict[str, Any]:
    """The theory-check row of one run (see the module docstring).

    Args:
        rec: a run record (as saved by :func:`gaussnewton_paper.io.save_run`).
        r_star: the in-class optimal loss R* for p < n (default: the run's own minimum for
            GN, R_lin for GF); ignored for p ≥ n (R* = 0).

    Returns:
        dict[str, Any]: the row.
    """
    cfg = RunConfig(**rec["config"])
    s, h, ex = rec["summary"], rec["history"], rec["extras"]
    loss, t = loss_array(rec), time_array(rec)
    lr, r0, lam0 = float(s["lr"]), float(s["initial_loss"]), float(s["lambda0"])
    over = cfg.regime == "over"
    if over:
        r_star = 0.0
    elif r_star is None:
        r_star = in_class_optimum(rec) if cfg.method == "gn" else float(s["R_lin"])
    gap, gap0 = loss - r_star, r0 - r_star
    lo = WINDOW_LO_OVER if over else WINDOW_LO_UNDER
    rate, t_a, t_b = th.fitted_rate(t, gap, gap0, lo=lo, hi=WINDOW_HI)

    lam_track = np.asarray(nan_list(h.get("lambda_min", [])), dtype=float)
    in_window = (t >= t_a) & (t <= t_b) if math.isfinite(t_a) else np.zeros_like(t, dtype=bool)
    window_lams = lam_track[in_window & np.isfinite(lam_track)] if lam_track.size == t.size else np.array([])
    lam_ref = float(np.mean(window_lams)) if window_lams.size else lam0

    eigs, coef2 = np.asarray(ex["eigs0"], dtype=float), np.asarray(ex["coef2"], dtype=float)
    flow = cfg.dynamics == "flow"  # the flow's factor over a time lr is exp(−lr·gain): same formulas, t = k·lr
    factor_gn = th.flow_factor_gn if flow else th.mode_factor_gn
    factor_gf = th.flow_factor_gf if flow else th.mode_factor_gf
    if cfg.method == "gd":
        factors = factor_gf(eigs, lr)
        rate_sharp = th.rate_from_factor(factor_gf(lam_ref, lr), lr)
    elif over:
        factors = factor_gn(eigs, _lazy_rho(cfg, lam0), lr)
        rate_sharp = th.rate_from_factor(factor_gn(lam_ref, _lazy_rho(cfg, lam_ref), lr), lr)
    else:
        factors = factor_gn(eigs, cfg.damping_value, lr)
        rate_sharp = th.rate_from_factor(factor_gn(1.0, cfg.damping_value, lr), lr)
    squared = cfg.loss == "squared"
    if not squared:  # the lazy model above is the quadratic loss's; Thm 10(2): local rate 2/(1+κ)
        local = factor_gn(1.0, cfg.damping_value, lr)
        rate_sharp = th.rate_from_factor(local, lr) if cfg.damping == "curvature_local" else math.nan
    rate_linear = math.nan
    if squared and math.isfinite(t_a) and t_b > t_a:
        ks = np.linspace(t_a / lr, t_b / lr, 20)
        lin = np.array([th.linearized_loss(coef2, factors, k) for k in ks])
        if np.all(lin > 0):
            rate_linear = float(-np.polyfit(ks * lr, np.log(lin), 1)[0])
    theorem, rate_bound = _bound(cfg, lam0, lr)

    c_sigma = float(s["c_sigma"])
    beta = th.smoothness_beta(cfg.width, th.TANH_CONSTANTS["sigma2"], c_sigma)
    sup_dist = float(np.nanmax(nan_list(h["param_distance"]))) if h["param_distance"] else 0.0
    finite = lam_track[np.isfinite(lam_track)]
    lam_ratio_min = float(finite.min() / lam0) if finite.size and lam0 > 0 else math.nan
    if over:
        m_req = th.width_requirement(cfg.n, lam0, c_sigma, th.TANH_CONSTANTS["sigma1"])
        radius = th.kernel_radius(lam0, beta)
        alpha_req = th.alpha_overparam(lam0, _lazy_rho(cfg, lam0), beta, r0) if cfg.method == "gn" else math.nan
        lam_floor = 0.5
    else:
        m_req = math.nan
        radius = th.gram_radius(lam0, beta)
        alpha_req = th.alpha_underparam(lam0, beta, r0)
        lam_floor = 0.25
    width_ok = None if math.isnan(m_req) else cfg.width >= m_req
    alpha_ok = None if math.isnan(alpha_req) else cfg.alpha >= alpha_req
    ball_ok = sup_dist <= radius
    kernel_ok = None if math.isnan(lam_ratio_min) else lam_ratio_min >= lam_floor
    conditions = [c for c in (width_ok, alpha_ok, ball_ok) if c is not None]

    steps_1e6, extrapolated = (math.nan, False)
    lin_steps_1e6 = math.nan
    if over:
        steps_1e6, extrapolated = th.steps_to_fraction(loss.tolist(), r0, FRACTION, rate * lr)
        lin_steps_1e6 = th.linearized_steps_to(coef2, factors, FRACTION) if squared else math.nan
    bound_ok = None
    if math.isfinite(rate_bound):
        bound_ok = bool(np.all(gap <= gap0 * np.exp(-rate_bound * t) * (1 + 1e-9) + 1e-300))
    increases = np.diff(np.concatenate([[r0], loss]))
    edi = th.edi_consistency(t, loss, nan_list(h["dloss_dt"])) if flow and "dloss_dt" in h else math.nan
    return {
        "dynamics": cfg.dynamics,
        "termination": s.get("termination", ""),
        "t_end": float(t[-1]) if t.size else 0.0,
        "ode_method": s.get("ode_method", ""),
        "nfev": int(s.get("nfev", 0)),
        "edi_err": edi,
        "key": rec["key"],
        "experiment": cfg.experiment,
        "dataset": cfg.dataset,
        "name": cfg.name,
        "label": cfg.label(),
        "regime": cfg.regime,
        "method": cfg.method,
        "n": cfg.n,
        "p": cfg.p,
        "width": cfg.width,
        "alpha": cfg.alpha,
        "damping": cfg.damping,
        "damping_value": cfg.damping_value,
        "spread": cfg.spread,
        "lr": lr,
        "lr_rule": cfg.lr_rule,
        "loss": cfg.loss,
        "loss_mu": cfg.loss_mu,
        "steps_run": int(s["steps_run"]),
        "lambda0": lam0,
        "lambda_max0": float(s["lambda_max0"]),
        "initial_loss": r0,
        "final_loss": float(s["final_loss"]),
        "r_star": r_star,
        "R_lin": float(s["R_lin"]),
        "theorem": theorem,
        "rate_bound": rate_bound,
        "rate_sharp": rate_sharp,
        "rate_linear": rate_linear,
        "rate_observed": rate,
        "rate_per_step": rate * lr,
        "fit_t_start": t_a,
        "fit_t_end": t_b,
        "lambda_ref": lam_ref,
        "bound_respected": bound_ok,
        "steps_to_1e-6": steps_1e6,
        "steps_extrapolated": extrapolated,
        "linear_steps_to_1e-6": lin_steps_1e6,
        "beta": beta,
        "width_required": m_req,
        "width_ok": width_ok,
        "alpha_required": alpha_req,
        "alpha_ok": alpha_ok,
        "radius": radius,
        "sup_distance": sup_dist,
        "ball_ok": ball_ok,
        "lambda_ratio_min": lam_ratio_min,
        "kernel_ok": kernel_ok,
        "conditions_hold": bool(conditions) and all(conditions),
        "max_loss_increase": float(np.nanmax(increases)) / r0 if increases.size else 0.0,
        "wall_time_s": float(s["wall_time_s"]),
    }
