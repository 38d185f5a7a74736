"""Result objects, termination reasons and the iteration history."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, fields
from typing import Any

import torch

__all__ = ["FitResult", "History", "IterationInfo", "LeastSquaresResult", "Termination"]


class Termination(enum.Enum):
    """Why a solver stopped. ``value`` is the status code (SciPy's codes where they exist).

    ``success`` is True for codes > 0, as in :func:`scipy.optimize.least_squares`. Codes 0–4
    and −2 (the callback stopped the run) are SciPy's; 5–8 and −3 … −8 are this library's
    own (SciPy has no such stops; −1, MINPACK's "improper input", is raised as an error here);
    −7 and −8 end a continuous-time flow (``fit(..., dynamics="flow")``, :mod:`gaussnewton.flow`).

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
    STATIONARY = 8
    CALLBACK = -2
    DAMPING_MAX = -3
    NONFINITE = -4
    NO_DECREASE = -5
    LOSS_INCREASED = -6
    SINGULAR = -7
    INTEGRATOR_FAILED = -8

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
    Termination.NONFINITE: "The residuals, loss or Jacobian became non-finite (NaN/Inf), or the Gram matrix "
    "JᵀJ overflowed so that its eigendecomposition failed; "
    "stopped and kept the last parameters with a finite cost. Lower the step size `lr`, "
    "use damping, or check the model for overflow.",
    Termination.DAMPING_MAX: "The damping reached its maximum (or the damped system could not be "
    "solved): no step decreases the cost. The point is stationary to working precision, or "
    "the Jacobian is wrong (check a user-supplied `jac`).",
    Termination.STATIONARY: "No step decreases the cost further: even the least damped step predicted a "
    "reduction below working precision (≈ 1e3·eps·cost), so the point is a minimum to working precision.",
    Termination.CALLBACK: "Stopped because `callback` function raised `StopIteration` or returned `True`.",
    Termination.EARLY_STOP: "Stopped early: the validation loss did not improve for `patience` accepted "
    "steps; the parameters with the best validation loss were restored.",
    Termination.NO_DECREASE: "Step halving found no decrease of the cost (undamped GN step is "
    "not a descent direction to working precision); try method='lm'.",
    Termination.LOSS_INCREASED: "Every step was taken (GN-DT / gradient descent accept any finite step) and the "
    "final cost is above the initial cost: the run diverged or oscillated. Use method='lm' (trust region) "
    "or 'gn_halving', a smaller `lr`, or more damping.",
    Termination.SINGULAR: "The undamped flow reached a point where H_ρ is singular (ρ = 0 and λ_min of the "
    "Gram matrix fell to `singular_tol`, or it could not be factored): θ̇ is undefined there. Use damping "
    "ρ > 0 (the LM flow) or a larger output scale α.",
    Termination.INTEGRATOR_FAILED: "The ODE solver could not continue: its step size fell below the spacing "
    "of floating-point numbers, or it used up its budget of vector-field evaluations; the flow is stiff or "
    "(nearly) singular there. Use damping ρ > 0, or loosen `rtol`/`atol`.",
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
        nfev: cost evaluations so far.
        outputs: the outputs (residuals) at ``params``, or None.
    """

    iteration: int
    params: torch.Tensor
    cost: float
    grad_norm: float
    damping: float
    step_norm: float
    accepted: bool
    nfev: int = 0
    outputs: torch.Tensor | None = None


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


class _MappingAccess:
    """Read access by key as well as by attribute, like :class:`scipy.optimize.OptimizeResult`."""

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str) or key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.keys()

    def keys(self) -> list[str]:
        """The field names (as ``dict.keys``)."""
        return [f.name for f in fields(self)]  # type: ignore[arg-type]

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]`` if present, else ``default``."""
        return getattr(self, key) if key in self else default

    def items(self) -> list[tuple[str, Any]]:
        """(name, value) pairs of the fields."""
        return [(k, getattr(self, k)) for k in self.keys()]


@dataclass
class LeastSquaresResult(_MappingAccess):
    """Result of :func:`gaussnewton.least_squares`, with SciPy's fields and meanings.

    Arrays are NumPy arrays when the problem was posed in NumPy (``x0`` an ndarray, or a list
    or number with a NumPy ``fun``), else torch tensors. Fields can also be read by key
    (``res["x"]``), as with SciPy's ``OptimizeResult``.

    Attributes:
        x: (p,) solution.
        cost: the cost at x: ½‖r(x)‖² for ``loss="linear"``, else ½·Σ f_scale²·ρ((r/f_scale)²)
            (SciPy's definition), plus the weight-decay penalty.
        fun: (N,) residuals at x.
        jac: (N, p) Jacobian at x (for a robust loss the modified Jacobian, as SciPy's, whose
            JᵀJ is the GN Hessian of the cost); None if the matrix-free path was used.
        grad: (p,) gradient of the cost at x.
        optimality: first-order optimality: ‖grad‖∞, or with bounds ‖v·grad‖∞ (SciPy's
            Coleman–Li scaled gradient).
        active_mask: (p,) ints: 0 free, −1 at the lower bound, +1 at the upper bound
            (SciPy's tolerance: within xtol·max(1, |bound|)).
        nfev: residual evaluations (not counting those of finite differences, as SciPy's
            ``trf``).
        njev: Jacobian evaluations (None for ``method="lm"`` with finite differences, as SciPy).
        nit: trial steps taken.
        status: :class:`Termination` code (int).
        message: why it stopped.
        success: status > 0.
        termination: the :class:`Termination` member.
        history: per-trial records (dict of equal-length lists).
        penalty: ``weight_decay/2·‖x − x_ref‖²`` at x (0 without weight decay); ``cost``
            includes it.
    """

    x: Any
    cost: float
    fun: Any
    jac: Any
    grad: Any
    optimality: float
    nfev: int
    njev: int | None
    nit: int
    status: int
    message: str
    success: bool
    termination: Termination
    history: dict[str, list[Any]] = field(default_factory=dict)
    penalty: float = 0.0
    active_mask: Any = None

    @property
    def dof(self) -> int:
        """Degrees of freedom N − p of the residual variance."""
        return int(self.fun.shape[0]) - int(self.x.shape[0])

    def covariance(self, absolute: bool = False) -> Any:
        """Covariance of the parameters from the final Jacobian, ``(JᵀJ)⁺`` (SVD, rank tolerance).

        Args:
            absolute: False (default): scaled by the residual variance ``s² = 2·cost/(N − p)``
                (``curve_fit``'s default, NIST's certified values); True: ``(JᵀJ)⁺`` as is,
                for residuals already divided by known standard deviations.

        Returns:
            (p, p) array of the type of ``x``; all inf (with an ``OptimizeWarning``) when it
            cannot be estimated (N ≤ p, no Jacobian).

        Raises:
            GaussNewtonError: no dense Jacobian was kept (matrix-free solve).
        """
        from ._errors import GaussNewtonError
        from ._uncertainty import covariance

        if self.jac is None:
            raise GaussNewtonError("`covariance` needs the final Jacobian; this result has jac=None "
                                   "(matrix-free solver): rerun with solver='normal'.")
        jac = self.jac if isinstance(self.jac, torch.Tensor) else torch.as_tensor(self.jac)
        cov = covariance(jac.to(torch.float64), float(self.cost - self.penalty), absolute=absolute)
        return cov.to(self.x.dtype) if isinstance(self.x, torch.Tensor) else cov.numpy()

    def standard_errors(self, absolute: bool = False) -> Any:
        """Standard errors of the parameters: the square root of the covariance's diagonal.

        Args:
            absolute: as in :meth:`covariance`.

        Returns:
            (p,) array of the type of ``x``.
        """
        cov = self.covariance(absolute)
        return cov.diagonal() ** 0.5


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
