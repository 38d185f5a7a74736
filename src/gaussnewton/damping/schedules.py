"""The paper's damping schedules (Cayci, arXiv 2412.14031): ρ from the kernel spectrum.

:class:`Constant` (ρ ≥ 0; ρ = 0 is undamped GN), :class:`DataDependent` (ρ = κ·λ_min(K_0)),
:class:`Adaptive` (eq. 14, ρ_t = κ·λ_min(K_t)), and the curvature-aware
:class:`CurvatureGlobal` (eq. 16), :class:`CurvatureLocal` (eq. 17) and
:class:`CurvatureSwitching` (Theorem 10's switch). The driver's step rule (fixed step η or
step halving) decides what happens with the step; see :mod:`gaussnewton.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import GaussNewtonError, check_nonneg, check_positive
from .base import DampingContext, Schedule, register_state

__all__ = ["Adaptive", "Constant", "CurvatureGlobal", "CurvatureLocal", "CurvatureSwitching", "DataDependent",
           "InitialLambda", "Switched"]


@register_state
@dataclass(frozen=True)
class InitialLambda:
    """State of :class:`DataDependent`: λ_0 = λ_min(K(θ_0)) (caller's units)."""

    lambda0: float


@register_state
@dataclass(frozen=True)
class Switched:
    """State of :class:`CurvatureSwitching`: whether the local rule (eq. 17) is in force."""

    switched: bool


class Constant(Schedule):
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


class DataDependent(Schedule):
    """ρ_t ≡ κ·λ_0 with λ_0 = λ_min(K(θ_0)) (Remark 6: the rate becomes independent of λ_0).

    [RECON-H] in the spec: the experiments call it "constant data-based damping".

    Args:
        kappa: κ > 0.
    """

    def __init__(self, kappa: float = 1.0) -> None:
        self.kappa = check_positive("kappa", kappa)

    state_type = InitialLambda

    def init(self, ctx: DampingContext) -> InitialLambda:  # noqa: D102
        return InitialLambda(max(ctx.lambda_min(), 0.0))

    def damping(self, state: InitialLambda, ctx: DampingContext) -> tuple[InitialLambda, float]:  # noqa: D102
        return state, self.kappa * state.lambda0

    def __repr__(self) -> str:
        return f"DataDependent(kappa={self.kappa:g})"


class _KappaTimesLambda(Schedule):
    """Shared shape of the spectrum-based schedules: ρ_t = κ·λ_t for a λ_t read from the context."""

    needs_spectrum = True

    def __init__(self, kappa: float = 1.0) -> None:
        """Validate and store the settings.

        Args:
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


class CurvatureSwitching(Schedule):
    """Eq. 16 until the cost falls below ``switch_at``·(initial cost), then eq. 17.

    Theorem 10's switch is condition (62), which the spec could not recover
    ([UNKNOWN→DEFAULT]); the threshold on the cost ratio is a parameter (default 1e-4, the
    spec's default).

    Args:
        kappa: κ > 0.
        switch_at: cost ratio in (0, 1) at which to switch to the local rule.
    """

    needs_spectrum = True
    state_type = Switched

    def __init__(self, kappa: float = 1.0, switch_at: float = 1e-4) -> None:
        self.kappa = check_positive("kappa", kappa)
        if not 0 < float(switch_at) < 1:
            raise GaussNewtonError(f"`switch_at` must lie in (0, 1); got switch_at = {switch_at!r}.")
        self.switch_at = float(switch_at)
        self._global = CurvatureGlobal(kappa)
        self._local = CurvatureLocal(kappa)

    def init(self, ctx: DampingContext) -> Switched:  # noqa: D102
        return Switched(False)

    def damping(self, state: Switched, ctx: DampingContext) -> tuple[Switched, float]:  # noqa: D102
        switched = state.switched or ctx.progress <= self.switch_at
        rule = self._local if switched else self._global
        return Switched(switched), rule.damping(None, ctx)[1]

    def __repr__(self) -> str:
        return f"CurvatureSwitching(kappa={self.kappa:g}, switch_at={self.switch_at:g})"
