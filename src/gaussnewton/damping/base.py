"""The two damping interfaces and their typed, serializable states.

* :class:`Schedule` (the paper's schedules): ``init(ctx) -> state``,
  ``damping(state, ctx) -> (state, ρ)``; every finite step is taken (GN-DT, eq. 13) or
  safeguarded by the step rule (step halving).
* :class:`TrustRegionRule` (Nielsen, Marquardt): ``init(ctx) -> TrustState``,
  ``update(state, gain_ratio) -> (state, accepted)``; ρ is part of the state.

Both derive from :class:`DampingSchedule`, the type a ``damping=`` argument accepts. States are
frozen dataclasses (or None) registered with :func:`register_state`, so that
:func:`state_to_dict` / :func:`state_from_dict` turn them into plain numbers for checkpoints
that load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from .._errors import GaussNewtonError

__all__ = ["DampingContext", "DampingSchedule", "Schedule", "TrustRegionRule", "TrustState",
           "register_state", "state_from_dict", "state_to_dict"]

_STATES: dict[str, type] = {}
_T = TypeVar("_T")


def register_state(cls: type[_T]) -> type[_T]:
    """Register a frozen dataclass as a damping state that checkpoints can carry."""
    _STATES[cls.__name__] = cls
    return cls


def state_to_dict(state: Any) -> dict[str, Any] | None:
    """A damping state as plain numbers (``{"type": name, field: value, ...}``), None for None."""
    if state is None:
        return None
    if type(state).__name__ not in _STATES:
        raise GaussNewtonError(f"damping state of type {type(state).__name__} is not registered (register_state).")
    return {"type": type(state).__name__, **asdict(state)}


def state_from_dict(data: dict[str, Any] | None, state_type: type | None = None) -> Any:
    """Inverse of :func:`state_to_dict`; ``state_type`` for a dict saved without its ``"type"``."""
    if data is None:
        return None
    cls = _STATES.get(str(data["type"])) if "type" in data else state_type
    if cls is None:
        raise GaussNewtonError(f"unknown damping state type {data.get('type')!r} in the saved state.")
    return cls(**{f.name: data[f.name] for f in fields(cls)})


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
    """Base type of every damping rule (a :class:`Schedule` or a :class:`TrustRegionRule`).

    Attributes:
        trust_region: True for :class:`TrustRegionRule` (kept for reading; code dispatches on
            the class).
        scaling: ``"identity"`` (D = I) or ``"diag"`` (D = diag(JᵀJ), MINPACK style).
        needs_spectrum: True if ρ depends on λ_min at every iterate (the solver then computes
            an eigendecomposition, which also makes re-solves O(m²)).
        state_type: the class of the rule's state (None for a stateless schedule).
    """

    trust_region: bool = False
    scaling: str = "identity"
    needs_spectrum: bool = False
    state_type: type | None = None

    @abstractmethod
    def init(self, ctx: DampingContext) -> Any:
        """Return the state at the first iterate."""


class Schedule(DampingSchedule):
    """A paper schedule: ρ from the iterate's context; the step rule decides acceptance."""

    @abstractmethod
    def damping(self, state: Any, ctx: DampingContext) -> tuple[Any, float]:
        """Return ``(state, ρ)`` for the current iterate."""


@register_state
@dataclass(frozen=True)
class TrustState:
    """State of a gain-ratio rule: current ρ and Nielsen's growth factor ν."""

    rho: float
    nu: float = 2.0


class TrustRegionRule(DampingSchedule):
    """A gain-ratio rule: ρ lives in its :class:`TrustState`; a trial is accepted or rejected."""

    trust_region = True
    state_type = TrustState
    uses_secant = False  # True: ``update`` takes a third argument, the secant factor on ρ

    @abstractmethod
    def init(self, ctx: DampingContext) -> TrustState:
        """Return the state (ρ_0) at the first iterate."""

    @abstractmethod
    def update(self, state: TrustState, gain_ratio: float, secant: float = math.nan) -> tuple[TrustState, bool]:
        """Return ``(state, accepted)`` after a trial step with the given gain ratio.

        ``secant`` (passed only to rules with ``uses_secant = True``; a rule may omit the
        argument otherwise): the factor on ρ that matches the damped model's curvature along the
        step to the cost's (:func:`gaussnewton._objective.secant_factor`), NaN if undefined.
        """

    def damping(self, state: TrustState, ctx: DampingContext) -> tuple[TrustState, float]:
        """Return ``(state, ρ)``: the current ρ of the state."""
        return state, state.rho

    def rho(self, state: TrustState) -> float:
        """The current ρ stored in ``state``."""
        return state.rho


def accepts(gain_ratio: float, threshold: float) -> bool:
    """True for a finite gain ratio above ``threshold``."""
    return math.isfinite(gain_ratio) and gain_ratio > threshold
