r"""Damping schedules: how ρ is chosen at each iterate, and whether a trial step is accepted.

Two families share one interface (:class:`DampingSchedule`):

* **Schedules** from the paper (Cayci, arXiv 2412.14031), which set ρ from the kernel
  spectrum and accept every step (GN-DT, eq. 13): :class:`Constant` (ρ ≥ 0; ρ = 0 is undamped
  GN), :class:`DataDependent` (ρ = κ·λ_min(K_0)), :class:`Adaptive` (eq. 14,
  ρ_t = κ·λ_min(K_t)), and the curvature-aware :class:`CurvatureGlobal` (eq. 16),
  :class:`CurvatureLocal` (eq. 17) and :class:`CurvatureSwitching` (Theorem 10's switch).
* **Trust-region rules** that adapt ρ from the gain ratio
  ``(actual reduction)/(predicted reduction)`` and reject steps that do not decrease the
  cost: :class:`Nielsen` (Nielsen 1999; Madsen, Nielsen & Tingleff 2004, §3.2) and
  :class:`Marquardt` (Marquardt 1963: fixed up/down factors, optional diag(JᵀJ) scaling).

Units. In :func:`gaussnewton.fit` the kernel is the paper's Convention A,
``K = J_F J_Fᵀ / n`` with ``J_F = ∂F/∂θ`` the Jacobian of the un-scaled output (the model's
Jacobian divided by α), and ρ enters ``H_ρ = J_FᵀJ_F/n + ρI``. In
:func:`gaussnewton.least_squares` the kernel is ``JJᵀ`` and ρ enters ``JᵀJ + ρD``. The
schedules only see λ values in these units through :class:`DampingContext`.

Warning:
    Conventions differ between libraries: MINPACK/SciPy scale the damping by diag(JᵀJ)
    (here ``Marquardt(scaling="diag")``), Nielsen and torch-levenberg-marquardt use ρI;
    Marquardt's factors are 10/10 in the original paper, torch-levenberg-marquardt uses
    ×10/×0.1 with "cost decreased?" acceptance, optimistix uses a gain-ratio trust radius.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ._errors import GaussNewtonError, check_choice, check_nonneg, check_positive

__all__ = [
    "Adaptive",
    "Constant",
    "CurvatureGlobal",
    "CurvatureLocal",
    "CurvatureSwitching",
    "DampingContext",
    "DampingSchedule",
    "DataDependent",
    "Marquardt",
    "Nielsen",
    "SCHEDULES",
    "get_damping",
]


@dataclass(frozen=True)
class DampingContext:
    """What a schedule may look at for the current iterate (all λ in the caller's units).

    Attributes:
        iteration: index of the current iterate (0 at the start).
        lambda_min: () ↦ λ_min of the curvature-weighted Gram matrix being solved (the kernel
            ``Λ^{1/2}KΛ^{1/2}`` if N ≤ p, the parameter Gram ``G`` if N > p); lazy.
        lambda_min_kernel: () ↦ λ_min of the unweighted kernel K (same as ``lambda_min``
            for the squared loss); lazy.
        lambda_min_curvature: smallest eigenvalue of the loss Hessian Λ over the samples.
        diag_max: largest diagonal entry of JᵀΛJ (in the caller's units).
        progress: current cost / initial cost.
    """

    iteration: int
    lambda_min: Callable[[], float]
    lambda_min_kernel: Callable[[], float]
    lambda_min_curvature: float
    diag_max: float
    progress: float


class DampingSchedule(ABC):
    """Chooses ρ and accepts or rejects trial steps.

    Attributes:
        trust_region: True if acceptance depends on the gain ratio (the driver then retries
            rejected steps with the new ρ, reusing the factorization); False for schedules,
            which accept every finite step.
        scaling: ``"identity"`` (D = I) or ``"diag"`` (D = diag(JᵀJ), MINPACK style).
        needs_spectrum: True if ρ depends on λ_min at every iterate (the solver then computes
            an eigendecomposition, which also makes re-solves O(m²)).
    """

    trust_region: bool = False
    scaling: str = "identity"
    needs_spectrum: bool = False

    @abstractmethod
    def init(self, ctx: DampingContext) -> Any:
        """Return the schedule state at the first iterate."""

    @abstractmethod
    def damping(self, state: Any, ctx: DampingContext) -> tuple[Any, float]:
        """Return ``(state, ρ)`` for the current iterate."""

    def update(self, state: Any, gain_ratio: float) -> tuple[Any, bool]:
        """Return ``(state, accepted)`` after a trial step with the given gain ratio.

        Schedules accept every step with a finite gain ratio.
        """
        return state, math.isfinite(gain_ratio)

    def rho(self, state: Any) -> float:
        """The current ρ stored in ``state`` (trust-region rules)."""
        raise NotImplementedError


# ----------------------------------------------------------------- the paper's schedules


class Constant(DampingSchedule):
    """ρ_t ≡ ρ (Lemma 3, Theorem 5 of the paper); ρ = 0 is undamped Gauss–Newton.

    Args:
        rho: damping ρ ≥ 0.
    """

    def __init__(self, rho: float = 0.0) -> None:
        self.rho_value = check_nonneg("rho", rho)

    def init(self, ctx: DampingContext) -> None:  # noqa: D102
        return None

    def damping(self, state: None, ctx: DampingContext) -> tuple[None, float]:  # noqa: D102
        return None, self.rho_value

    def __repr__(self) -> str:
        return f"Constant(rho={self.rho_value:g})"


class DataDependent(DampingSchedule):
    """ρ_t ≡ κ·λ_0 with λ_0 = λ_min(K(θ_0)) (Remark 6: the rate becomes independent of λ_0).

    [RECON-H] in the spec: the experiments call it "constant data-based damping".

    Args:
        kappa: κ > 0.
    """

    def __init__(self, kappa: float = 1.0) -> None:
        self.kappa = check_positive("kappa", kappa)

    def init(self, ctx: DampingContext) -> float:  # noqa: D102
        return max(ctx.lambda_min(), 0.0)

    def damping(self, state: float, ctx: DampingContext) -> tuple[float, float]:  # noqa: D102
        return state, self.kappa * state

    def __repr__(self) -> str:
        return f"DataDependent(kappa={self.kappa:g})"


class _KappaTimesLambda(DampingSchedule):
    """Shared shape of the spectrum-based schedules: ρ_t = κ·λ_t for a λ_t read from the context."""

    needs_spectrum = True

    def __init__(self, kappa: float = 1.0) -> None:
        """Args:
        kappa: κ > 0.
        """
        self.kappa = check_positive("kappa", kappa)

    def _lambda(self, ctx: DampingContext) -> float:
        raise NotImplementedError

    def init(self, ctx: DampingContext) -> None:  # noqa: D102
        return None

    def damping(self, state: None, ctx: DampingContext) -> tuple[None, float]:  # noqa: D102
        return None, self.kappa * max(self._lambda(ctx), 0.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kappa={self.kappa:g})"


class Adaptive(_KappaTimesLambda):
    """ρ_t = κ·λ_min(K_t) (eq. 14; Corollary 9 predicts the rate 2μ/(1+κ)).

    [RECON-L] in the spec: the most plausible reading of eq. 14; κ is a parameter.
    Small λ_min(K_t) → less damping (closer to GN); large → more damping (closer to GF).
    K_t is the unweighted kernel even for non-squared losses; :class:`CurvatureLocal` uses the
    curvature-weighted one.

    Args:
        kappa: κ > 0.
    """

    def _lambda(self, ctx: DampingContext) -> float:
        # the unweighted kernel K_t (eq. 14); for the squared loss it is the solved Gram matrix
        return ctx.lambda_min_kernel()


class CurvatureGlobal(_KappaTimesLambda):
    """ρ_t = κ·λ_min(K_t)·λ_min(Λ_t) (eq. 16, the global phase of Theorem 10).

    [RECON-L] in the spec: reconstructed form; use with the generalized GN preconditioner
    (any loss of :mod:`gaussnewton.losses`). For the squared loss it equals :class:`Adaptive`.

    Args:
        kappa: κ > 0.
    """

    def _lambda(self, ctx: DampingContext) -> float:
        return max(ctx.lambda_min_kernel(), 0.0) * max(ctx.lambda_min_curvature, 0.0)


class CurvatureLocal(_KappaTimesLambda):
    """ρ_t = κ·λ_min(Λ_t^{1/2} K_t Λ_t^{1/2}) (eq. 17, the local phase of Theorem 10).

    [RECON-L] in the spec. Near the optimum the predicted rate is ≈ 2/(1+κ), independent of
    μ, L and λ_0.

    Args:
        kappa: κ > 0.
    """

    def _lambda(self, ctx: DampingContext) -> float:
        return ctx.lambda_min()


class CurvatureSwitching(DampingSchedule):
    """Eq. 16 until the cost falls below ``switch_at``·(initial cost), then eq. 17.

    Theorem 10's switch is condition (62), which the spec could not recover
    ([UNKNOWN→DEFAULT]); the threshold on the cost ratio is a parameter (default 1e-4, the
    spec's default).

    Args:
        kappa: κ > 0.
        switch_at: cost ratio in (0, 1) at which to switch to the local rule.
    """

    needs_spectrum = True

    def __init__(self, kappa: float = 1.0, switch_at: float = 1e-4) -> None:
        self.kappa = check_positive("kappa", kappa)
        if not 0 < float(switch_at) < 1:
            raise GaussNewtonError(f"`switch_at` must lie in (0, 1); got switch_at = {switch_at!r}.")
        self.switch_at = float(switch_at)
        self._global = CurvatureGlobal(kappa)
        self._local = CurvatureLocal(kappa)

    def init(self, ctx: DampingContext) -> bool:  # noqa: D102
        return False  # state: switched yet?

    def damping(self, state: bool, ctx: DampingContext) -> tuple[bool, float]:  # noqa: D102
        switched = state or ctx.progress <= self.switch_at
        rule = self._local if switched else self._global
        return switched, rule.damping(None, ctx)[1]

    def __repr__(self) -> str:
        return f"CurvatureSwitching(kappa={self.kappa:g}, switch_at={self.switch_at:g})"


# ------------------------------------------------------------------ trust-region rules


@dataclass(frozen=True)
class TrustState:
    """State of a gain-ratio rule: current ρ and Nielsen's growth factor ν."""

    rho: float
    nu: float = 2.0


class Nielsen(DampingSchedule):
    r"""Gain-ratio damping update of Nielsen (1999) / Madsen, Nielsen & Tingleff (2004).

    Algorithm (gain ratio ϱ = actual / predicted reduction)::

        ρ_0 = τ · max diag(JᵀJ)            (or rho0)
        if ϱ > accept:  ρ ← ρ · max(1/3, 1 − (2ϱ − 1)³);  ν ← 2     (accept)
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
    """

    trust_region = True

    def __init__(self, tau: float = 1e-3, rho0: float | None = None, accept: float = 0.0,
                 rho_min: float = 0.0, scaling: str = "identity") -> None:
        self.scaling = check_choice("scaling", scaling, ("identity", "diag"))
        self.tau = check_positive("tau", tau)
        self.rho0 = None if rho0 is None else check_positive("rho0", rho0)
        self.accept = check_nonneg("accept", accept)
        self.rho_min = check_nonneg("rho_min", rho_min)

    def init(self, ctx: DampingContext) -> TrustState:  # noqa: D102
        base = 1.0 if self.scaling == "diag" else max(ctx.diag_max, 1e-300)
        rho = self.rho0 if self.rho0 is not None else self.tau * base
        return TrustState(max(rho, self.rho_min))

    def damping(self, state: TrustState, ctx: DampingContext) -> tuple[TrustState, float]:  # noqa: D102
        return state, state.rho

    def rho(self, state: TrustState) -> float:  # noqa: D102
        return state.rho

    def update(self, state: TrustState, gain_ratio: float) -> tuple[TrustState, bool]:  # noqa: D102
        if math.isfinite(gain_ratio) and gain_ratio > self.accept:
            factor = max(1.0 / 3.0, 1.0 - (2.0 * gain_ratio - 1.0) ** 3)
            return TrustState(max(state.rho * factor, self.rho_min), 2.0), True
        return replace(state, rho=state.rho * state.nu, nu=2.0 * state.nu), False

    def __repr__(self) -> str:
        return f"Nielsen(tau={self.tau:g}, scaling={self.scaling!r})"


class Marquardt(DampingSchedule):
    """Marquardt (1963): divide ρ by ``down`` after a successful step, multiply by ``up`` after
    a failed one; optional MINPACK-style scaling D = diag(JᵀJ).

    Args:
        rho0: initial damping (default: τ·max diag(JᵀJ)).
        tau: τ for the default ρ_0.
        up: factor > 1 on rejection (default 10).
        down: factor > 1 on acceptance (default 10).
        scaling: ``"identity"`` (ρI) or ``"diag"`` (ρ·diag(JᵀJ), running maximum as in MINPACK).
        rho_min: floor on ρ.
    """

    trust_region = True

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

    def damping(self, state: TrustState, ctx: DampingContext) -> tuple[TrustState, float]:  # noqa: D102
        return state, state.rho

    def rho(self, state: TrustState) -> float:  # noqa: D102
        return state.rho

    def update(self, state: TrustState, gain_ratio: float) -> tuple[TrustState, bool]:  # noqa: D102
        if math.isfinite(gain_ratio) and gain_ratio > 0:
            return TrustState(max(state.rho / self.down, self.rho_min)), True
        return TrustState(state.rho * self.up), False

    def __repr__(self) -> str:
        return f"Marquardt(up={self.up:g}, down={self.down:g}, scaling={self.scaling!r})"


SCHEDULES: dict[str, Callable[[], DampingSchedule]] = {
    "none": lambda: Constant(0.0),
    "constant": lambda: Constant(1e-3),
    "data_dependent": lambda: DataDependent(1.0),
    "adaptive": lambda: Adaptive(1.0),
    "curvature_global": lambda: CurvatureGlobal(1.0),
    "curvature_local": lambda: CurvatureLocal(1.0),
    "curvature_switching": lambda: CurvatureSwitching(1.0),
    "nielsen": lambda: Nielsen(),
    "marquardt": lambda: Marquardt(),
}
"""Name → factory with default parameters (used by the CLI and the common test battery)."""


def get_damping(damping: DampingSchedule | str | float | None, default: str) -> DampingSchedule:
    """Resolve a damping argument.

    Args:
        damping: a schedule, a registry name, a number (→ :class:`Constant`), or None
            (→ ``default``).
        default: registry name used for None.

    Returns:
        DampingSchedule: the schedule.

    Raises:
        GaussNewtonError: unknown name or wrong type.
    """
    if damping is None:
        return SCHEDULES[default]()
    if isinstance(damping, DampingSchedule):
        return damping
    if isinstance(damping, bool):
        raise GaussNewtonError(f"`damping` must be a schedule, name or number; got {damping!r}.")
    if isinstance(damping, (int, float)):
        return Constant(check_nonneg("damping", damping))
    if isinstance(damping, str):
        return SCHEDULES[check_choice("damping", damping, SCHEDULES)]()
    raise GaussNewtonError(
        "`damping` must be a gaussnewton.damping schedule, one of "
        f"{sorted(SCHEDULES)}, a number >= 0 or None; got {type(damping).__name__}."
    )
