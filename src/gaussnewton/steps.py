r"""Step rules: how the trial steps at one iterate are formed, judged and retried.

The :class:`~gaussnewton._stepper.Stepper` computes a direction δ (the damped GN step
``(AᵀA + ρ·unit·D) δ = −Aᵀh``, or the gradient), tries ``θ + t·δ`` and asks the rule:

============================  =========================================  ==================================
rule                          accepts a trial when                       after a rejection
============================  =========================================  ==================================
:class:`TrustRegionStep`      the damping rule accepts the gain ratio    retry with the rule's new ρ
:class:`FixedStep` (GN-DT)    the cost is finite (eq. 13: θ + η·δ)       stop: NONFINITE
:class:`HalvingStep`          the cost decreases                         retry with t/2 (≤ 30 times)
:class:`GradientDescentStep`  the cost is finite (θ − η·∇cost/(w·unit))  stop: NONFINITE
============================  =========================================  ==================================

:data:`METHODS` maps the method names of every front door to a rule and to the kind of
damping it takes; :func:`make_step_rule` resolves a ``(method, damping)`` pair and rejects a
mismatch (a trust-region rule for GN-DT, a schedule for LM, a damping for GD) with one message
for all front doors.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ._errors import GaussNewtonError, check_choice
from .damping import DampingContext, DampingSchedule, Schedule, TrustRegionRule, get_damping
from .result import Termination

if TYPE_CHECKING:
    from ._objective import Linearization, Objective
    from .linsolve import LinearSolver, Prepared

__all__ = ["METHODS", "FixedStep", "GradientDescentStep", "HalvingStep", "Method", "StepRule", "Trial",
           "TrustRegionStep", "infer_method", "make_step_rule"]

MAX_HALVINGS = 30
RHO_MAX_FACTOR = 1e16  # ρ beyond this multiple of max diag(JᵀJ) means "no step helps"

Scale = float | torch.Tensor  # a step size, or one per parameter (the optimizer's per-group lr)


@dataclass(frozen=True)
class Trial:
    """One trial at the current iterate: damping ρ (schedule units) and step scale t."""

    rho: float
    scale: Scale
    retries: int = 0


class StepRule(ABC):
    """Forms and judges trial steps; holds no state (the damping state is passed in and out).

    Attributes:
        damping: the damping rule (None for gradient descent).
        uses_solver: False if the direction needs no linear solve (gradient descent).
        uses_gain_ratio: True if ``judge`` reads the gain ratio (trust regions); the Stepper
            then computes the predicted reduction, and a tiny rejected step counts for ``xtol``.
        shortened_steps_test_ftol: False if ``ftol`` must not stop on a shortened trial (a
            halved GN step's small decrease says nothing about convergence).
        safeguarded: True if no accepted step can raise the cost (trust region, halving); a run
            of an unsafeguarded rule that ends above its initial cost reports
            ``Termination.LOSS_INCREASED`` instead of a success.
    """

    damping: DampingSchedule | None = None
    uses_solver: bool = True
    uses_gain_ratio: bool = False
    shortened_steps_test_ftol: bool = True
    safeguarded: bool = False

    @property
    def needs_spectrum(self) -> bool:
        """True if the damping needs λ_min at every iterate."""
        return self.damping is not None and self.damping.needs_spectrum

    @property
    def scaling(self) -> str:
        """``"diag"`` for MINPACK's D = diag(JᵀJ), else ``"identity"``."""
        return "identity" if self.damping is None else self.damping.scaling

    @abstractmethod
    def start(self, state: Any, ctx: DampingContext) -> tuple[Any, Trial]:
        """The damping state and the first trial at a new iterate (``state`` None: first iterate)."""

    @abstractmethod
    def judge(self, state: Any, ratio: float, trial_cost: float, cost: float,
              secant: float = math.nan) -> tuple[Any, bool]:
        """Return ``(state, accepted)`` for a trial with the given gain ratio and costs.

        ``secant``: the factor on ρ that would match the model's curvature along the step to the
        cost's (:func:`gaussnewton._objective.secant_factor`), for rules that use it.
        """

    @abstractmethod
    def on_reject(self, state: Any, ctx: DampingContext, trial: Trial) -> tuple[Any, Trial | Termination]:
        """The next trial after a rejection, or the reason to stop."""

    def direction(self, solver: LinearSolver, prepared: Prepared | None, lin: Linearization, rho: float,
                  obj: Objective) -> torch.Tensor:
        """δ for damping ρ (schedule units): the damped GN step."""
        assert prepared is not None
        return solver.solve(prepared, rho * obj.unit)[0]


class TrustRegionStep(StepRule):
    """Levenberg–Marquardt: the gain ratio decides; rejected steps are retried with a larger ρ.

    Args:
        damping: a trust-region rule (Nielsen, Marquardt).
        lr: step scale (1: the full LM step; a tensor gives one per parameter).
    """

    uses_gain_ratio = True
    safeguarded = True

    def __init__(self, damping: TrustRegionRule, lr: Scale = 1.0) -> None:
        self.damping: TrustRegionRule = damping
        self.lr = lr

    def start(self, state, ctx):  # noqa: D102
        state = self.damping.init(ctx) if state is None else state
        return state, Trial(self.damping.rho(state), self.lr)

    def judge(self, state, ratio, trial_cost, cost, secant=math.nan):  # noqa: D102
        if self.damping.uses_secant:
            return self.damping.update(state, ratio, secant)
        return self.damping.update(state, ratio)

    def on_reject(self, state, ctx, trial):  # noqa: D102
        rho = self.damping.rho(state)
        # ρ is relative to D = diag(JᵀJ) under "diag" scaling, absolute (a multiple of max diag(AᵀA)) otherwise
        base = 1.0 if self.damping.scaling == "diag" else max(ctx.diag_max, 1e-300)
        if rho > RHO_MAX_FACTOR * base:
            return state, Termination.DAMPING_MAX
        return state, Trial(rho, self.lr, trial.retries + 1)


class FixedStep(StepRule):
    """GN-DT (eq. 13): θ ← θ + η·δ with ρ from a schedule, every finite step taken.

    Args:
        damping: a paper schedule (Constant, DataDependent, Adaptive, Curvature*).
        lr: step size η.
    """

    def __init__(self, damping: Schedule, lr: Scale = 1.0) -> None:
        self.damping: Schedule = damping
        self.lr = lr

    def start(self, state, ctx):  # noqa: D102
        state = self.damping.init(ctx) if state is None else state
        state, rho = self.damping.damping(state, ctx)
        return state, Trial(rho, self.lr)

    def judge(self, state, ratio, trial_cost, cost, secant=math.nan):  # noqa: D102
        return state, math.isfinite(trial_cost)

    def on_reject(self, state, ctx, trial):  # noqa: D102
        return state, Termination.NONFINITE


class HalvingStep(FixedStep):
    """Safeguarded GN: θ ← θ + t·δ with t = 1, 1/2, 1/4, … until the cost decreases.

    ``ftol`` is tested on full steps only: after halvings the decrease is small because the step
    was cut, not because the cost is flat (discrete BVP, n = 100: the run stopped at cost 29.6
    after 4 accepted steps; LM reaches 0.04).
    """

    shortened_steps_test_ftol = False
    safeguarded = True

    def judge(self, state, ratio, trial_cost, cost, secant=math.nan):  # noqa: D102
        return state, math.isfinite(trial_cost) and trial_cost < cost

    def on_reject(self, state, ctx, trial):  # noqa: D102
        if trial.retries >= MAX_HALVINGS:
            return state, Termination.NO_DECREASE
        return state, Trial(trial.rho, 0.5 * trial.scale, trial.retries + 1)


class GradientDescentStep(StepRule):
    """Gradient descent: θ ← θ − η·∇cost/(weight·unit) (in ``fit``: θ − (η/α²)·∇R).

    Args:
        lr: step size η (the Euler Δt of the gradient flow).
    """

    uses_solver = False

    def __init__(self, lr: Scale = 1.0) -> None:
        self.lr = lr

    def start(self, state, ctx):  # noqa: D102
        return state, Trial(math.inf, self.lr)

    def judge(self, state, ratio, trial_cost, cost, secant=math.nan):  # noqa: D102
        return state, math.isfinite(trial_cost)

    def on_reject(self, state, ctx, trial):  # noqa: D102
        return state, Termination.NONFINITE

    def direction(self, solver, prepared, lin, rho, obj):  # noqa: D102
        return -lin.grad / (obj.weight * obj.unit)


@dataclass(frozen=True)
class Method:
    """A method name: its step rule and the kind of damping it takes.

    Attributes:
        rule: ``(damping, lr) ↦ StepRule``.
        damping_kind: ``"trust_region"``, ``"schedule"`` or None (takes no damping).
        summary: one line for messages and docs.
    """

    rule: Callable[[Any, Scale], StepRule]
    damping_kind: str | None
    summary: str


METHODS: dict[str, Method] = {
    "lm": Method(TrustRegionStep, "trust_region", "Levenberg–Marquardt (gain-ratio trust region)"),
    "gn": Method(FixedStep, "schedule", "GN-DT, eq. 13: every finite step taken"),
    "gn_halving": Method(HalvingStep, "schedule", "Gauss–Newton with step halving"),
    "gd": Method(lambda damping, lr: GradientDescentStep(lr), None, "gradient descent / gradient flow"),
}
"""Method name → :class:`Method` (the one table behind ``fit``, ``least_squares`` and the optimizer)."""


def infer_method(damping: DampingSchedule | str | float | None, continuous: bool = False) -> str:
    """The method of a call that names none: ``"gn"`` for a paper schedule or a number, else ``"lm"``.

    ``continuous``: the call integrates a flow (``dynamics="euler"``/``"flow"``), which a trust
    region does not have: ``"gn"`` unless ``damping`` is a trust-region rule.

    Example:
        >>> infer_method(None), infer_method("adaptive"), infer_method(0.1), infer_method("marquardt")
        ('lm', 'gn', 'gn', 'lm')
        >>> infer_method(None, continuous=True)
        'gn'
    """
    if damping is None:
        return "gn" if continuous else "lm"
    return "gn" if isinstance(get_damping(damping, "none"), Schedule) else "lm"


def make_step_rule(method: str, damping: DampingSchedule | str | float | None, *,
                   default: DampingSchedule | str | None, lr: Scale = 1.0, name: str | None = None) -> StepRule:
    """Resolve ``(method, damping)`` to a step rule, rejecting a damping the method cannot use.

    Args:
        method: a key of :data:`METHODS`.
        damping: the user's ``damping`` argument (None: ``default``).
        default: the front door's default damping (a registry name or a rule).
        lr: step scale.
        name: the method as the caller's user named it, for messages (default ``method``;
            ``least_squares`` runs ``"trf"`` as ``"lm"``).

    Returns:
        StepRule: the rule.

    Raises:
        GaussNewtonError: unknown method, or a damping of the wrong kind.
    """
    spec = METHODS[check_choice("method", method, tuple(METHODS))]
    shown = method if name is None else name
    if spec.damping_kind is None:
        if damping is not None:
            raise GaussNewtonError(f"`damping` is not used by method={shown!r} ({spec.summary}); got {damping!r}. "
                                   "Leave it unset, or use method='gn' or 'lm'.")
        return spec.rule(None, lr)
    if damping is None and isinstance(default, DampingSchedule):
        rule = default
    else:
        rule = get_damping(damping, default if isinstance(default, str) else "none")
    if spec.damping_kind == "trust_region" and not isinstance(rule, TrustRegionRule):
        raise GaussNewtonError(f"`damping` for method={shown!r} must be a trust-region rule (Nielsen, Marquardt); "
                               f"got {rule!r}. Use method='gn' for a fixed damping.")
    if spec.damping_kind == "schedule" and not isinstance(rule, Schedule):
        raise GaussNewtonError(f"`damping` {rule!r} is a trust-region rule; use method='lm' with it "
                               f"(method={shown!r} takes a schedule: Constant, Adaptive, ...).")
    return spec.rule(rule, lr)
