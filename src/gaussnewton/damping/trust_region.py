"""Trust-region damping rules: ρ adapted from the gain ratio, rejected steps retried.

The gain ratio is ``(actual reduction)/(predicted reduction)`` of the cost;
:class:`Nielsen` (Nielsen 1999; Madsen, Nielsen & Tingleff 2004, §3.2) and :class:`Marquardt`
(Marquardt 1963: fixed up/down factors, optional diag(JᵀJ) scaling).

Warning:
    Conventions differ between libraries: MINPACK/SciPy scale the damping by diag(JᵀJ)
    (here ``scaling="diag"``), Nielsen and torch-levenberg-marquardt use ρI; Marquardt's
    factors are 10/10 in the original paper, torch-levenberg-marquardt uses ×10/×0.1 with
    "cost decreased?" acceptance, optimistix uses a gain-ratio trust radius.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .._errors import GaussNewtonError, check_choice, check_nonneg, check_positive
from .base import DampingContext, TrustRegionRule, TrustState, accepts

__all__ = ["Marquardt", "Nielsen"]

# Nielsen's factor max(1/3, 1 − (2ϱ − 1)³) shrinks ρ at most 3× per step, so near a zero-residual
# solution the damped step stays a fixed fraction off the GN step and convergence is only linear
# (Broyden tridiagonal, n = 100: cost 5.8e-19 at the xtol stop, where SciPy's trf reaches 3.6e-26).
# With ``fast_endgame`` (least_squares' default) ρ shrinks 10× after a well-predicted step
# (ϱ > 3/4, MINPACK's "very successful" threshold): cost 7.1e-23 there, 2.5e-24 on r(x) = x, no
# problem of the NIST/MGH catalogue ends worse. It is off for network training (fit, the
# optimizer): on the MLPs of benchmarks/RESULTS.md it raised the LM iterations to the target from
# 43 to 54 (p > n) and from 39 to 56 (p < n), through rejected trials after too small a ρ.
_GOOD_RATIO = 0.75
_FAST_SHRINK = 0.1


class Nielsen(TrustRegionRule):
    r"""Gain-ratio damping update of Nielsen (1999) / Madsen, Nielsen & Tingleff (2004).

    Algorithm (gain ratio ϱ = actual / predicted reduction)::

        ρ_0 = τ · max diag(JᵀJ)            (or rho0)
        if ϱ > accept:  ρ ← ρ · max(1/3, 1 − (2ϱ − 1)³);  ν ← 2     (accept)
                        (with fast_endgame: ρ ← ρ/10 when ϱ > 3/4)
        else:           ρ ← ρ · ν;  ν ← 2ν                           (reject)

    Args:
        tau: τ > 0 for the initial damping (default 1e-3, Madsen et al.).
        rho0: explicit initial damping (overrides τ).
        accept: gain-ratio threshold for acceptance (default 0: any decrease).
        rho_min: floor on ρ (keeps the system non-singular for p > N).
        scaling: ``"identity"`` (ρI, Nielsen's original) or ``"diag"`` (ρ·diag(JᵀJ) with a
            running maximum, as in MINPACK; then ρ_0 = τ). :func:`least_squares` defaults
            to ``"diag"``: it makes the method invariant to the scale of each parameter
            (NIST Misra1a has x ≈ (250, 5e-4)).
        fast_endgame: shrink ρ 10× (not ≤ 3×) after a step with gain ratio > 3/4: quadratic
            convergence near zero-residual solutions (:func:`least_squares` turns it on; off by
            default, where it costs network training rejected trials).
        secant: after an accepted full step, shrink ρ further when the cost's curvature along
            the step (from the quadratic through its value and slope) is below the damped
            model's: ρ ← ρ·min(Nielsen's factor, max(q, floor)), q the factor that matches the
            two (:func:`gaussnewton._objective.secant_factor`), floor 1/10 with
            ``fast_endgame`` else 1/3. It never raises ρ. At minima where J vanishes
            (r = x² + 5) the damping must supply the curvature r·r'' that the GN model lacks,
            and the cubic rule reaches that ρ only linearly (:func:`least_squares` turns it on).
    """

    def __init__(self, tau: float = 1e-3, rho0: float | None = None, accept: float = 0.0,
                 rho_min: float = 0.0, scaling: str = "identity", fast_endgame: bool = False,
                 secant: bool = False) -> None:
        for name, flag in (("fast_endgame", fast_endgame), ("secant", secant)):
            if not isinstance(flag, bool):
                raise GaussNewtonError(f"`{name}` must be True or False; got {flag!r}.")
        self.fast_endgame = fast_endgame
        self.secant = self.uses_secant = secant
        self.scaling = check_choice("scaling", scaling, ("identity", "diag"))
        self.tau = check_positive("tau", tau)
        self.rho0 = None if rho0 is None else check_positive("rho0", rho0)
        self.accept = check_nonneg("accept", accept)
        self.rho_min = check_nonneg("rho_min", rho_min)

    def init(self, ctx: DampingContext) -> TrustState:  # noqa: D102
        base = 1.0 if self.scaling == "diag" else max(ctx.diag_max, 1e-300)
        rho = self.rho0 if self.rho0 is not None else self.tau * base
        return TrustState(max(rho, self.rho_min))

    def update(self, state: TrustState, gain_ratio: float,  # noqa: D102
               secant: float = math.nan) -> tuple[TrustState, bool]:
        if accepts(gain_ratio, self.accept):
            factor = max(1.0 / 3.0, 1.0 - (2.0 * gain_ratio - 1.0) ** 3)
            if self.fast_endgame and gain_ratio > _GOOD_RATIO:  # the GN model is trusted: let ρ fall fast
                factor = min(factor, _FAST_SHRINK)
            if self.secant and math.isfinite(secant):  # over-damped along the step: match the curvature
                factor = min(factor, max(secant, _FAST_SHRINK if self.fast_endgame else 1.0 / 3.0))
            return TrustState(max(state.rho * factor, self.rho_min), 2.0), True
        return replace(state, rho=state.rho * state.nu, nu=2.0 * state.nu), False

    def __repr__(self) -> str:
        fast = ", fast_endgame=True" if self.fast_endgame else ""
        fast += ", secant=True" if self.secant else ""
        return f"Nielsen(tau={self.tau:g}, scaling={self.scaling!r}{fast})"


class Marquardt(TrustRegionRule):
    """Marquardt (1963): ρ ÷ ``down`` after a successful step, ρ × ``up`` after a failed one.

    Optional MINPACK-style scaling D = diag(JᵀJ).

    Args:
        rho0: initial damping (default: τ·max diag(JᵀJ)).
        tau: τ for the default ρ_0.
        up: factor > 1 on rejection (default 10).
        down: factor > 1 on acceptance (default 10).
        scaling: ``"identity"`` (ρI) or ``"diag"`` (ρ·diag(JᵀJ), running maximum as in MINPACK).
        rho_min: floor on ρ.
    """

    def __init__(self, rho0: float | None = None, tau: float = 1e-3, up: float = 10.0,
                 down: float = 10.0, scaling: str = "identity", rho_min: float = 0.0) -> None:
        self.rho0 = None if rho0 is None else check_positive("rho0", rho0)
        self.tau = check_positive("tau", tau)
        self.up = check_positive("up", up)
        self.down = check_positive("down", down)
        if self.up <= 1 or self.down <= 1:
            raise GaussNewtonError(
                f"`up` and `down` must be > 1; got up = {up!r}, down = {down!r}."
            )
        self.scaling = check_choice("scaling", scaling, ("identity", "diag"))
        self.rho_min = check_nonneg("rho_min", rho_min)

    def init(self, ctx: DampingContext) -> TrustState:  # noqa: D102
        if self.rho0 is not None:
            return TrustState(self.rho0)
        base = 1.0 if self.scaling == "diag" else max(ctx.diag_max, 1e-300)
        return TrustState(max(self.tau * base, self.rho_min))

    def update(self, state: TrustState, gain_ratio: float,  # noqa: D102
               secant: float = math.nan) -> tuple[TrustState, bool]:
        if accepts(gain_ratio, 0.0):
            return TrustState(max(state.rho / self.down, self.rho_min)), True
        return TrustState(state.rho * self.up), False

    def __repr__(self) -> str:
        return f"Marquardt(up={self.up:g}, down={self.down:g}, scaling={self.scaling!r})"
