"""Result objects, termination reasons and the iteration history."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["FitResult", "History", "IterationInfo", "LeastSquaresResult", "Termination"]


class Termination(enum.Enum):
    """Why a solver stopped. ``value`` is the status code (SciPy's codes where they exist).

    ``success`` is True for codes > 0, as in :func:`scipy.optimize.least_squares`.

    Example:
        >>> from gaussnewton import Termination
        >>> Termination(1), Termination(1).success, Termination.NONFINITE.success
        (<Termination.GTOL: 1>, True, False)
    """

    MAX_EVALS = 0
    GTOL = 1
    FTOL = 2
    XTOL = 3
    FTOL_XTOL = 4
    STEPS_DONE = 5
    TARGET = 6
    EARLY_STOP = 7
    NONFINITE = -2
    DAMPING_MAX = -3
    CALLBACK = -4
    NO_DECREASE = -5

    @property
    def message(self) -> str:
        """A human-readable, actionable explanation."""
        return _MESSAGES[self]

    @property
    def success(self) -> bool:
        """True if the stop is a convergence (or completion) criterion."""
        return self.value > 0


_MESSAGES = {
    Termination.MAX_EVALS: "The maximum number of function evaluations is exceeded "
    "(raise `max_nfev`, or the problem may have no minimum nearby).",
    Termination.GTOL: "`gtol` termination condition is satisfied (‖∇cost‖∞ < gtol).",
    Termination.FTOL: "`ftol` termination condition is satisfied (relative cost reduction < ftol).",
    Termination.XTOL: "`xtol` termination condition is satisfied (relative step < xtol).",
    Termination.FTOL_XTOL: "Both `ftol` and `xtol` termination conditions are satisfied.",
    Termination.STEPS_DONE: "The requested number of steps was completed.",
    Termination.TARGET: "The target loss was reached.",
    Termination.NONFINITE: "The residuals, loss or Jacobian became non-finite (NaN/Inf); "
    "stopped and kept the last parameters with a finite cost. Lower the step size `lr`, "
    "use damping, or check the model for overflow.",
    Termination.DAMPING_MAX: "The damping reached its maximum (or the damped system could not be "
    "solved): no step decreases the cost. The point is stationary to working precision, or "
    "the Jacobian is wrong (check a user-supplied `jac`).",
    Termination.CALLBACK: "Stopped by the callback.",
    Termination.EARLY_STOP: "Stopped early: the validation loss did not improve for `patience` accepted "
    "steps; the parameters with the best validation loss were restored.",
    Termination.NO_DECREASE: "Step halving found no decrease of the cost (undamped GN step is "
    "not a descent direction to working precision); try method='lm'.",
}


@dataclass(frozen=True)
class IterationInfo:
    """What a callback receives after each trial step.

    Attributes:
        iteration: trial index (1-based).
        params: current parameters (p,) (the accepted iterate; a detached copy).
        cost: current cost (the caller's convention).
        grad_norm: ‖∇cost‖∞ at the iterate where the step was computed.
        damping: ρ used for the trial (the caller's units).
        step_norm: ‖applied step‖₂.
        accepted: whether the trial step was accepted.
    """

    iteration: int
    params: torch.Tensor
    cost: float
    grad_norm: float
    damping: float
    step_norm: float
    accepted: bool


class History:
    """Equal-length per-iteration records, kept as a dict of lists (``as_dict``)."""

    KEYS = (
        "cost",
        "grad_norm",
        "damping",
        "step_norm",
        "accepted",
        "time",
        "param_distance",
        "lambda_min",
        "lambda_max",
        "nfev",
        "penalty",
        "gamma",
        "bayes_alpha",
        "bayes_beta",
    )
    OPTIONAL = frozenset({"gamma", "bayes_alpha", "bayes_beta"})  # NaN unless recorded

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.rows: dict[str, list[Any]] = {k: [] for k in self.KEYS}

    def record(self, **values: Any) -> None:
        """Append one row; every key of :attr:`KEYS` must be given (NaN for missing optional ones)."""
        values["time"] = time.perf_counter() - self.start
        for k in self.KEYS:
            self.rows[k].append(values[k] if k in values or k not in self.OPTIONAL else float("nan"))

    def __len__(self) -> int:
        return len(self.rows["cost"])

    def elapsed(self) -> float:
        """Seconds since the run began (continued across a resume)."""
        return time.perf_counter() - self.start

    def restore(self, rows: dict[str, list[Any]], elapsed: float) -> None:
        """Continue a saved history: its rows, and its clock at ``elapsed`` seconds."""
        self.rows = {k: list(rows[k]) for k in self.KEYS}
        self.start = time.perf_counter() - elapsed

    def as_dict(self) -> dict[str, list[Any]]:
        """A copy of the records."""
        return {k: list(v) for k, v in self.rows.items()}


@dataclass
class LeastSquaresResult:
    """Result of :func:`gaussnewton.least_squares`, with SciPy's fields and meanings.

    Attributes:
        x: (p,) solution.
        cost: ½‖r(x)‖².
        fun: (N,) residuals at x.
        jac: (N, p) Jacobian at x (None if the matrix-free path was used).
        grad: (p,) gradient Jᵀr at x.
        optimality: ‖grad‖∞.
        nfev: residual evaluations.
        njev: Jacobian evaluations.
        nit: trial steps taken.
        status: :class:`Termination` code (int).
        message: why it stopped.
        success: status > 0.
        termination: the :class:`Termination` member.
        history: per-trial records (dict of equal-length lists).
        penalty: ``weight_decay/2·‖x − x_ref‖²`` at x (0 without weight decay); ``cost``
            includes it.
    """

    x: torch.Tensor
    cost: float
    fun: torch.Tensor
    jac: torch.Tensor | None
    grad: torch.Tensor
    optimality: float
    nfev: int
    njev: int
    nit: int
    status: int
    message: str
    success: bool
    termination: Termination
    history: dict[str, list[Any]] = field(default_factory=dict)
    penalty: float = 0.0


@dataclass
class FitResult:
    """Result of :func:`gaussnewton.fit`.

    Attributes:
        params: (p,) final flat parameters (also written into the model).
        loss: final training loss R(u) = (1/n) Σ ℓ(u_j, y_j).
        initial_loss: loss at the start.
        steps: number of steps taken (accepted + rejected).
        status: :class:`Termination` code.
        message: why it stopped.
        success: status > 0.
        termination: the :class:`Termination` member.
        history: per-step records: ``loss`` (= ``cost``, the objective: data loss plus
            penalty), ``data_loss``, ``penalty`` (λ/2·‖θ_t − θ_ref‖²), ``damping`` (ρ_t, paper
            units), ``step_norm``, ``param_distance`` (‖θ_t − θ_0‖), ``time`` (s), ``accepted``,
            ``grad_norm``, ``lambda_min``/``lambda_max`` of K_t (NaN unless tracked), ``t``
            (continuous time k·lr) for ``dynamics="euler"``, and with ``validation``:
            ``val_loss`` and ``val_metric`` (R² or accuracy) at the current parameters.
        data_loss: the data part of ``loss`` (``loss − penalty``).
        penalty: the weight-decay term at ``params`` (0 without weight decay).
        best_step: with ``validation``: the step whose parameters had the lowest validation
            loss (the returned parameters after an early stop), else None.
        val_loss: validation loss at the returned parameters (None without validation).
    """

    params: torch.Tensor
    loss: float
    initial_loss: float
    steps: int
    status: int
    message: str
    success: bool
    termination: Termination
    history: dict[str, list[Any]] = field(default_factory=dict)
    data_loss: float = float("nan")
    penalty: float = 0.0
    best_step: int | None = None
    val_loss: float | None = None
