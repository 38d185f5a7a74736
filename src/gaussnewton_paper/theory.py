r"""The spec's predicted rates and conditions (paper_spec.md §5), and rate measurements.

Pure functions on floats and sequences; no torch, no I/O. Units are Convention A of the spec:
``R(u) = (1/n) Σ ½(u_j − y_j)²`` (μ = L = 1 for the quadratic loss), ``K = J Jᵀ/n``,
``G = JᵀJ/n`` with J the Jacobian of the *unscaled* re-centred output F, ρ in
``H_ρ = G + ρI``, and continuous time ``t = k·Δt`` for a run of Euler (or GN-DT) steps of size
Δt. A *rate* c always means: the loss gap decays like ``exp(−c·t)``.

Every constant marked [RECON-H] below is the spec's reconstruction (the paper's constants were
not recovered); the structure is the paper's, the numerical factors are ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "TANH_CONSTANTS",
    "alpha_overparam",
    "alpha_underparam",
    "first_step_below",
    "fitted_rate",
    "gram_radius",
    "kernel_radius",
    "linearized_loss",
    "linearized_steps_to",
    "loglog_slope",
    "mode_factor_gf",
    "mode_factor_gn",
    "rate_bound_adaptive",
    "rate_bound_constant",
    "rate_bound_gf",
    "rate_bound_underparam",
    "rate_from_factor",
    "smoothness_beta",
    "steps_to_fraction",
    "theorem7_factor",
    "width_requirement",
    "edi_consistency",
    "flow_factor_gf",
    "flow_factor_gn",
]

TANH_CONSTANTS = {"sigma0": 1.0, "sigma1": 1.0, "sigma2": 4.0 / (3.0 * math.sqrt(3.0))}
"""Bounds on |σ|, |σ'|, |σ''| for σ = tanh (spec §2.1)."""

_FLOOR = 1e-300  # keeps logs finite
LOG_1E6 = math.log(1e6)


# ----------------------------------------------------------------- width / α conditions


def smoothness_beta(width: int, sigma2: float, c_sigma: float) -> float:
    """β of eq. (8): each output f(x_j; ·) is β-smooth, β = σ₂·√(c_σ/m) (H = 1, ‖x‖ ≤ 1)."""
    return sigma2 * math.sqrt(c_sigma / width)


def width_requirement(n: int, lambda0: float, c_sigma: float, sigma1: float, delta: float = 0.05) -> float:
    """Width m of eq. (9) with the unknown absolute constant set to 1 [RECON-H].

    ``m ≳ c_σ² σ₁⁴ log(n/δ) / λ₀²`` makes ``λ_min(K_0) ≥ λ₀/2`` with probability ≥ 1 − δ.
    """
    return c_sigma**2 * sigma1**4 * math.log(n / delta) / max(lambda0, _FLOOR) ** 2


def kernel_radius(lambda0: float, beta: float) -> float:
    """Radius r of eq. (10): ``λ_min(K(θ)) ≥ λ₀/2`` on the ball B(θ_0, r), r = (1 − 1/√2)√λ₀/β."""
    return (1.0 - 1.0 / math.sqrt(2.0)) * math.sqrt(max(lambda0, 0.0)) / beta


def alpha_overparam(lambda0: float, rho: float, beta: float, delta0: float, mu: float = 1.0, L: float = 1.0) -> float:
    """α_ρ of Lemma 4 (T = ∞ for α ≥ α_ρ), the spec's derived sufficient condition [RECON-H].

    ``α_ρ = (L/μ^{3/2}) √(2Δ_0) √(λ₀/2 + ρ) / ((λ₀/2)·r)`` with r from :func:`kernel_radius`.
    """
    r = kernel_radius(lambda0, beta)
    if r <= 0:
        return math.inf
    return (L / mu**1.5) * math.sqrt(2.0 * delta0) * math.sqrt(lambda0 / 2.0 + rho) / ((lambda0 / 2.0) * r)


def gram_radius(lambda_g: float, beta: float) -> float:
    """Radius r_u of eq. (20): ``σ_min(J/√n) ≥ √λ_G/2`` on B̄(θ_0, r_u), r_u = √λ_G/(2β)."""
    return math.sqrt(max(lambda_g, 0.0)) / (2.0 * beta)


def alpha_underparam(lambda_g: float, beta: float, r0: float, mu: float = 1.0, L: float = 1.0) -> float:
    """α_0 of Theorem 22 (geodesic strong convexity for α ≥ α_0) [RECON-H].

    ``α_0 = 8β √(2L·R(0)) / (μ λ_G)``.
    """
    return 8.0 * beta * math.sqrt(2.0 * L * r0) / (mu * max(lambda_g, _FLOOR))


# ---------------------------------------------------------------------- predicted rates


def rate_bound_constant(lambda0: float, rho: float, mu: float = 1.0) -> float:
    """Lemma 3 / Theorem 5 bound rate for constant ρ: ``μλ₀/(λ₀/2 + ρ)``."""
    return mu * lambda0 / (lambda0 / 2.0 + rho)


def rate_bound_adaptive(kappa: float, mu: float = 1.0) -> float:
    """Corollary 9 rate for ρ_t = κ·λ_min(K_t): ``2μ/(1 + κ)`` (independent of λ₀)."""
    return 2.0 * mu / (1.0 + kappa)


def rate_bound_gf(lambda0: float, mu: float = 1.0) -> float:
    """Remark 6 (Chizat et al.) bound rate of gradient flow: ``μλ₀``."""
    return mu * lambda0


def rate_bound_underparam(mu: float = 1.0) -> float:
    """Theorem 25 rate of undamped GN (p < n) relative to the in-class optimum: ``μ``."""
    return mu


def mode_factor_gn(lam: float | np.ndarray, rho: float, dt: float) -> float | np.ndarray:
    """Residual factor per GN step on a kernel mode λ (lazy, quadratic): ``1 − Δt·λ/(λ+ρ)``.

    For ρ = 0 every mode of range(J) has factor ``1 − Δt`` (the flat limit of Theorem 25).
    """
    lam_arr = np.asarray(lam, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(lam_arr + rho > 0, lam_arr / (lam_arr + rho), 0.0)
    out = 1.0 - dt * frac
    return float(out) if np.ndim(out) == 0 else out


def mode_factor_gf(lam: float | np.ndarray, lr: float) -> float | np.ndarray:
    """Residual factor per gradient-descent step on a kernel mode λ: ``1 − lr·λ``."""
    out = 1.0 - lr * np.asarray(lam, dtype=float)
    return float(out) if np.ndim(out) == 0 else out


def flow_factor_gn(lam: float | np.ndarray, rho: float, dt: float) -> float | np.ndarray:
    """Residual factor of the GN *flow* over a time Δt on a kernel mode λ (lazy): ``exp(−Δt·λ/(λ+ρ))``."""
    lam_arr = np.asarray(lam, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(lam_arr + rho > 0, lam_arr / (lam_arr + rho), 0.0)
    out = np.exp(-dt * frac)
    return float(out) if np.ndim(out) == 0 else out


def flow_factor_gf(lam: float | np.ndarray, dt: float) -> float | np.ndarray:
    """Residual factor of gradient flow over a time Δt on a kernel mode λ: ``exp(−Δt·λ)``."""
    out = np.exp(-dt * np.asarray(lam, dtype=float))
    return float(out) if np.ndim(out) == 0 else out


def edi_consistency(t: Sequence[float], loss: Sequence[float], rate: Sequence[float]) -> float:
    """How well an integrated loss curve obeys its own energy identity: ``R(t) − R(t_1) = ∫ dR/dt``.

    Composite Simpson on the uniform grid t_1, t_2, … (an odd number of points is used; an off-grid
    last point, e.g. a stop time, is dropped): ``max_k |R(t_k) − R(t_1) − ∫_{t_1}^{t_k} dR/dt|``
    over even k, divided by the total decrease ``R(t_1) − min R``.

    Returns:
        float: the relative error (NaN with fewer than 3 grid points or no decrease).
    """
    t_arr, r_arr, d_arr = (np.asarray(v, dtype=float) for v in (t, loss, rate))
    if t_arr.size >= 2:
        h = t_arr[1] - t_arr[0]
        uniform = np.flatnonzero(np.abs(np.diff(t_arr) - h) <= 1e-9 * max(h, 1e-300))
        last = int(uniform[-1]) + 2 if uniform.size and np.all(uniform == np.arange(uniform.size)) else 1
        t_arr, r_arr, d_arr = t_arr[:last], r_arr[:last], d_arr[:last]
    if t_arr.size < 3:
        return math.nan
    h = t_arr[1] - t_arr[0]
    pieces = h / 3.0 * (d_arr[0:-2:2] + 4.0 * d_arr[1:-1:2] + d_arr[2::2])
    integral = np.cumsum(pieces)
    err = np.abs(r_arr[2::2] - r_arr[0] - integral)
    drop = float(r_arr[0] - np.min(r_arr))
    return float(np.max(err) / drop) if drop > 0 else math.nan


def rate_from_factor(factor: float, dt: float) -> float:
    """Loss rate per unit time of a residual factor per step: ``−2 ln|factor| / Δt``."""
    return -2.0 * math.log(max(abs(factor), _FLOOR)) / dt


def theorem7_factor(eta: float, lambda0: float, rho: float, mu: float = 1.0, L: float = 1.0) -> float:
    """Theorem 7 per-step loss factor of GN-DT (spec's derivation).

    ``1 − 2ημ(1 − ηL/2)·(λ₀/2)/(λ₀/2 + ρ)``; ρ = λ₀/2, η = 1, μ = L = 1 gives 1/2.
    """
    return 1.0 - 2.0 * eta * mu * (1.0 - eta * L / 2.0) * (lambda0 / 2.0) / (lambda0 / 2.0 + rho)


# -------------------------------------------------- the lazy (linearized) model's prediction


def linearized_loss(coef2: np.ndarray, factors: np.ndarray, steps: float, floor: float = 0.0) -> float:
    """Loss after ``steps`` steps of a linear iteration on independent kernel modes.

    ``R_k = floor + Σ_i coef2_i · factors_i^{2k}`` with ``coef2_i = (u_iᵀy)²/(2n)`` (the initial
    residual −y expanded on the eigenvectors u_i of K_0) and ``floor = R_lin`` (0 if p ≥ n).
    """
    return float(floor + np.sum(coef2 * np.abs(factors) ** (2.0 * steps)))


def linearized_steps_to(coef2: np.ndarray, factors: np.ndarray, fraction: float, max_steps: float = 1e15) -> float:
    """First k with ``Σ_i coef2_i |f_i|^{2k} ≤ fraction·Σ_i coef2_i`` (bisection; inf if never)."""
    coef2 = np.asarray(coef2, dtype=float)
    factors = np.asarray(factors, dtype=float)
    target = fraction * float(coef2.sum())
    if linearized_loss(coef2, factors, 0) <= target:
        return 0.0
    if linearized_loss(coef2, factors, max_steps) > target:
        return math.inf
    lo, hi = 0.0, 1.0
    while linearized_loss(coef2, factors, hi) > target:
        lo, hi = hi, hi * 2.0
    while hi - lo > 0.5:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if linearized_loss(coef2, factors, mid) > target else (lo, mid)
    return float(math.ceil(hi))


# ----------------------------------------------------------------------- measurements


def first_step_below(losses: Sequence[float], target: float) -> int | None:
    """The first step k ≥ 1 with ``losses[k−1] ≤ target`` (history rows are steps 1..K), or None."""
    for k, value in enumerate(losses, start=1):
        if value <= target:
            return k
    return None


def fitted_rate(
    t: Sequence[float],
    gap: Sequence[float],
    gap0: float,
    *,
    lo: float = 1e-12,
    hi: float = 1e-2,
    tail: float = 0.5,
    min_points: int = 5,
) -> tuple[float, float, float]:
    """Observed geometric rate: least-squares slope of log(gap) against t, negated.

    The window is the last ``tail`` fraction (in t) of the points whose relative gap
    ``gap/gap0`` lies in ``[lo, hi]`` (past the transient, above round-off). If fewer than
    ``min_points`` points qualify, the last quarter of all points with a positive gap is used
    (runs that never reach ``hi``, e.g. gradient flow on an ill-conditioned kernel).

    Args:
        t: times (or step indices) of the points.
        gap: loss gaps R_k − R* (R* = 0 when p ≥ n).
        gap0: the initial gap.
        lo: lower end of the relative window.
        hi: upper end of the relative window.
        tail: fraction of the window kept (the asymptotic part).
        min_points: fewest points for a fit.

    Returns:
        tuple[float, float, float]: (rate, t_start, t_end) of the fitted window; rate is NaN
        if no fit was possible.
    """
    t_arr = np.asarray(t, dtype=float)
    g = np.asarray(gap, dtype=float)
    rel = g / gap0
    idx = np.flatnonzero((rel >= lo) & (rel <= hi) & np.isfinite(rel))
    if idx.size >= min_points:
        t_cut = t_arr[idx[0]] + (1.0 - tail) * (t_arr[idx[-1]] - t_arr[idx[0]])
        idx = idx[t_arr[idx] >= t_cut]
    if idx.size < min_points:
        pos = np.flatnonzero((g > 0) & np.isfinite(g))
        if pos.size < min_points:
            return math.nan, math.nan, math.nan
        idx = pos[int(0.75 * pos.size) :] if pos.size >= 4 * min_points else pos[-min_points:]
    slope = np.polyfit(t_arr[idx], np.log(g[idx]), 1)[0]
    return float(-slope), float(t_arr[idx[0]]), float(t_arr[idx[-1]])


def steps_to_fraction(
    losses: Sequence[float], loss0: float, fraction: float, rate_per_step: float
) -> tuple[float, bool]:
    """Steps until ``loss ≤ fraction·loss0``: measured if reached, else extrapolated.

    The extrapolation continues the last loss at the measured geometric ``rate_per_step``:
    ``K + ln(loss_K / (fraction·loss0)) / rate``. On a fixed kernel the decay rate of the loss
    only decreases with time (log-loss is convex: fast modes die first), so this is a lower
    bound on the true number of steps.

    Returns:
        tuple[float, bool]: (steps, extrapolated).
    """
    target = fraction * loss0
    k = first_step_below(losses, target)
    if k is not None:
        return float(k), False
    last = float(losses[-1])
    if not (rate_per_step > 0 and math.isfinite(rate_per_step)):
        return math.inf, True
    return len(losses) + math.log(last / target) / rate_per_step, True


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (NaN with fewer than two positive pairs)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = (xa > 0) & (ya > 0) & np.isfinite(xa) & np.isfinite(ya)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(xa[ok]), np.log(ya[ok]), 1)[0])
