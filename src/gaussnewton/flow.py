r"""Continuous-time Gauss–Newton, Levenberg–Marquardt and gradient flows (``fit(..., dynamics="flow")``).

The paper's dynamics (eq. 6, Convention A of the spec) is the ODE

.. math::
   \dot\theta_t = -\eta\,\alpha^{-2} H_{\rho_t}(\theta_t)^{-1}\nabla_\theta R(\theta_t), \qquad
   H_\rho = J_F^\top\Lambda J_F/n + \rho I,

with η = 1: the vector field is exactly the GN-DT direction of :mod:`gaussnewton.steps`,
``v(θ) = δ(θ) = −(AᵀA + ρ·unit·I)⁻¹Aᵀh`` (``solver.solve(prepared, ρ·unit)``, A = BJ of the
Objective), so an Euler step of size Δt is ``fit(..., method="gn", lr=Δt)``. ρ > 0 is the
LM flow, ρ = 0 undamped GN; gradient flow is ``v(θ) = −α⁻²∇R`` (``method="gd"``). Every damping
schedule is evaluated as a function of θ (Adaptive: ρ = κλ_min(K(θ)); DataDependent: κλ_0
fixed at θ_0); a schedule with memory (CurvatureSwitching) updates its state at grid points.

Function space (u = αF, quadratic loss, K = J_FJ_Fᵀ/n): ``u̇ = −K(K + ρI)⁻¹r`` and the energy
identities (EDI, Lemmas 2 and 16)

.. math::
   \frac{dR}{dt} = \nabla R\cdot\dot\theta = -\tfrac1n r^\top K(K+\rho I)^{-1} r
   \;\;(= -\tfrac1n\|P r\|^2 \text{ for } \rho = 0,\ p < n), \qquad
   \frac{dR}{dt} = -\tfrac1n r^\top K r \text{ (gradient flow)},

recorded along the flow as the history column ``dloss_dt`` (``∇R·v``, the library's own field).

Integrator (``scipy.integrate``, error-controlled, dense output on the reporting grid
``t_k = k·lr``): the linearized GN flow has function-space eigenvalues ``−λ_i/(λ_i+ρ) ∈ [−1, 0]``
whatever the conditioning of K, so it is **non-stiff**: ``DOP853`` (explicit order 8) is the
cheapest at the tight tolerances needed to follow 12 decades of loss. Gradient flow has
eigenvalues ``−λ_i(K)`` spread over λ_max/λ_min = 10⁴–10⁶: **stiff** once t ≫ 1/λ_max, so it uses
``LSODA`` (Adams while non-stiff, BDF after it detects stiffness) with the Gauss–Newton Jacobian
``∂v/∂θ ≈ −AᵀA/unit`` (exact at zero residual; an implicit method uses it only in its Newton
iteration, so it sets the cost, not the accuracy). Errors are controlled on θ
(``atol + rtol·|θ_i|``); near convergence v ∝ r, so the steps grow and the loss stays resolved.

Stops (a :class:`~gaussnewton.result.Termination`): ``STEPS_DONE`` at ``t = steps·lr``;
``TARGET`` (loss ≤ target at a grid point); ``CALLBACK``; ``NONFINITE``; ``SINGULAR`` when
ρ = 0 and λ_min of the Gram matrix being solved (G = J_FᵀJ_F/n if p < n, K if p ≥ n) falls to
``singular_tol`` (checked at every accepted step and grid point) or the factorization fails at
any stage — the flow is undefined there; the stop time is in the message and the last row is
the last accepted point; ``INTEGRATOR_FAILED`` when the ODE solver
gives up (step size below the spacing of floats) or needs more than
``MAX_NFEV_PER_POINT·steps + 10⁴`` evaluations of the vector field — a flow that is stiff in
parameter space: an undamped GN flow far from the lazy regime with an ill-conditioned G (λ_G ≈ 1e-11,
α = 16 in the reproduction's sweep) made DOP853 take steps of ≈ 4e-7.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.integrate
import torch

from ._errors import GaussNewtonError, check_choice, check_positive
from ._objective import Objective
from ._stepper import Stepper
from .operators import gram_spectrum
from .result import FitResult, IterationInfo, Termination
from .steps import FixedStep, GradientDescentStep, HalvingStep, StepRule

if TYPE_CHECKING:
    from .problems.network import NetworkProblem

__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "ODE_METHODS", "SINGULAR_TOL", "choose_method", "fit_flow", "integrate",
           "linear_flow_residual"]

ODE_METHODS = ("auto", "DOP853", "RK45", "RK23", "LSODA", "Radau", "BDF")
IMPLICIT = frozenset({"LSODA", "Radau", "BDF"})
DEFAULT_RTOL = 1e-8
DEFAULT_ATOL = 1e-10
SINGULAR_TOL = 1e-12  # λ_min of the solved Gram matrix (paper units) at which undamped GN is undefined
MAX_NFEV_PER_POINT = 250  # vector-field evaluations allowed per grid point (+ a fixed 10⁴): then INTEGRATOR_FAILED
NFEV_BASE = 10_000


def choose_method(rule: StepRule | str) -> str:
    """The ODE method for a flow: LSODA (stiff) for gradient flow, DOP853 for GN/LM flows (module docstring).

    Args:
        rule: the step rule, or ``fit``'s method name (``"gd"`` is gradient flow).

    Returns:
        str: a ``scipy.integrate`` solver name.
    """
    gradient = rule == "gd" if isinstance(rule, str) else isinstance(rule, GradientDescentStep)
    return "LSODA" if gradient else "DOP853"


def linear_flow_residual(coef: np.ndarray, lam: np.ndarray, rho: float | None, t: float) -> np.ndarray:
    """Residual modes of the linear-model flow at time t (closed form, fixed kernel).

    ``r_i(t) = r_i(0)·exp(−t·λ_i/(λ_i+ρ))`` for the GN/LM flow (ρ = 0: ``exp(−t)`` on range(K)),
    ``r_i(0)·exp(−t·λ_i)`` for gradient flow (``rho=None``).

    Args:
        coef: (k,) initial residual on the kernel's eigenvectors.
        lam: (k,) kernel eigenvalues (paper units).
        rho: damping, or None for gradient flow.
        t: time.

    Returns:
        np.ndarray: (k,) residual modes at t.
    """
    lam = np.asarray(lam, dtype=float)
    gain = lam if rho is None else np.where(lam + rho > 0, lam / np.maximum(lam + rho, 1e-300), 0.0)
    return np.asarray(coef, dtype=float) * np.exp(-t * gain)


class _Stop(Exception):  # noqa: N818 - control flow, never escapes this module
    """Raised inside the vector field to end the integration with a termination reason."""

    def __init__(self, term: Termination, t: float, detail: str = "") -> None:
        super().__init__(term.name)
        self.term, self.t, self.detail = term, t, detail


@dataclass
class _Point:
    """The flow at one θ: the field, the loss and what the history records."""

    theta: torch.Tensor
    v: torch.Tensor
    cost: float
    rho: float
    grad: torch.Tensor
    lam: torch.Tensor | None
    ctx: Any


class _Field:
    """v(θ) from the Stepper's own machinery (linearize → prepare → schedule → rule.direction)."""

    def __init__(self, obj: Objective, stepper: Stepper, theta0: torch.Tensor, singular_tol: float) -> None:
        self.obj, self.stepper, self.singular_tol = obj, stepper, singular_tol
        self.rule = stepper.rule
        self.state = stepper.init(obj, theta0, history=False)
        self.dtype, self.device = theta0.dtype, theta0.device
        self.nfev, self.max_nfev = 0, 0

    def at(self, theta: torch.Tensor, t: float, spectrum: bool, check: bool = True) -> _Point:
        obj, st = self.obj, self.state
        u, cost = obj.evaluate(theta)
        if not math.isfinite(cost):
            raise _Stop(Termination.NONFINITE, t)
        st.theta, st.outputs, st.cost = theta, u, cost
        self.stepper.track_kernel = spectrum
        lin = obj.linearize(theta, u, self.stepper.dense)
        if not (lin.a.finite() and bool(torch.isfinite(lin.grad).all())):
            raise _Stop(Termination.NONFINITE, t)
        prepared, ctx, lam, lin = self.stepper._prepare(obj, lin, st)
        _, trial = self.rule.start(st.damping_state, ctx)
        if check and lam is not None and self.rule.uses_solver and trial.rho == 0.0:  # undamped: H = G (or K)
            lam_min = float(lam[0])  # ... itself must be invertible
            if not lam_min > self.singular_tol:
                raise _Stop(Termination.SINGULAR, t, f"λ_min = {lam_min:.3g} ≤ singular_tol = {self.singular_tol:g}")
        try:
            v = self.rule.direction(self.stepper.solver, prepared, lin, trial.rho, obj)  # type: ignore[arg-type]
        except torch.linalg.LinAlgError:
            if not check:
                v = torch.full_like(theta, math.nan)
                return _Point(theta, v, cost, trial.rho, lin.grad, lam, ctx)
            raise _Stop(Termination.SINGULAR, t, "the damped system could not be factored") from None
        if check and not bool(torch.isfinite(v).all()):
            raise _Stop(Termination.NONFINITE, t)
        if lam is None and spectrum:
            lam = gram_spectrum(lin.jac if lin.jac is not None else lin.a) / obj.unit
        return _Point(theta, v.to(self.dtype), cost, trial.rho, lin.grad, lam, ctx)

    def fun(self, t: float, y: np.ndarray) -> np.ndarray:
        self.nfev += 1
        if self.nfev > self.max_nfev:
            raise _Stop(Termination.INTEGRATOR_FAILED, t, f"more than {self.max_nfev} vector-field evaluations: the "
                        "flow is stiff or nearly singular here (try damping)")
        # no eigendecomposition at the stages (a failed factorization still stops: SINGULAR); λ_min is
        # checked at every accepted step and grid point instead
        return self.at(self._theta(y), t, False).v.detach().cpu().numpy().astype(np.float64)

    def jac(self, t: float, y: np.ndarray) -> np.ndarray:
        """GN Jacobian of the gradient-flow field: ∂v/∂θ ≈ −AᵀA/unit (dense, p×p)."""
        theta = self._theta(y)
        u, _ = self.obj.evaluate(theta)
        lin = self.obj.linearize(theta, u, True)
        a = lin.a.to_dense()
        return -(a.T @ a).detach().cpu().numpy().astype(np.float64) / self.obj.unit

    def _theta(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(y, dtype=torch.float64).to(device=self.device, dtype=self.dtype)


def integrate(obj: Objective, rule: StepRule, solver: Any, theta0: torch.Tensor, *, dt: float, steps: int,
              rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, method: str = "auto",
              singular_tol: float = SINGULAR_TOL, target_cost: float | None = None,
              callback: Callable[[IterationInfo], bool | None] | None = None) -> FitResult:
    """Integrate the flow of ``rule`` from θ₀ and report it at ``t_k = k·dt``, k = 1..steps.

    Args:
        obj: the objective (:class:`~gaussnewton._objective.Objective`; ``fit``'s Convention A units).
        rule: :class:`~gaussnewton.steps.FixedStep` (GN/LM flow with a damping schedule) or
            :class:`~gaussnewton.steps.GradientDescentStep` (gradient flow).
        solver: the linear solver of the damped system (None for gradient flow).
        theta0: (p,) start.
        dt: spacing of the reporting grid (``fit``'s ``lr``).
        steps: number of grid points; the flow runs to ``t = steps·dt``.
        rtol: relative error tolerance of the ODE solver (> 0).
        atol: absolute error tolerance on θ (> 0).
        method: ``"auto"`` (:func:`choose_method`) or a ``scipy.integrate.solve_ivp`` method.
        singular_tol: ρ = 0 and λ_min of the solved Gram matrix ≤ this stops with ``SINGULAR``.
        target_cost: stop at the first grid point with cost ≤ this.
        callback: called at each grid point; True stops (``CALLBACK``).

    Returns:
        FitResult: history rows at the grid points (``t``, ``loss``, ``damping`` ρ(t),
        ``lambda_min``/``lambda_max`` of K_t (G_t if p < n), ``param_distance`` ‖θ_t − θ₀‖,
        ``dloss_dt`` = ∇R·θ̇, ``nfev`` vector-field evaluations, ``ode_steps``), final θ.

    Raises:
        GaussNewtonError: a bad argument, or a rule without a flow (a trust region).
    """
    rtol, atol = check_positive("rtol", rtol), check_positive("atol", atol)
    singular_tol = check_positive("singular_tol", singular_tol)
    method = check_choice("ode_method", method, ODE_METHODS)
    if not isinstance(rule, (FixedStep, GradientDescentStep)) or isinstance(rule, HalvingStep):
        raise GaussNewtonError(f"`dynamics='flow'` needs method 'gn' (a damping schedule; ρ > 0 is the LM flow) or "
                               f"'gd'; got a {type(rule).__name__} (a trust region has no continuous-time flow).")
    if obj.reducer.active:
        raise GaussNewtonError("`dynamics='flow'` runs in one process; got an active `process_group`.")
    method = choose_method(rule) if method == "auto" else method
    stepper = Stepper(rule, solver, track_kernel=True)
    field = _Field(obj, stepper, theta0.detach().clone(), singular_tol)
    field.max_nfev = MAX_NFEV_PER_POINT * steps + NFEV_BASE
    grid = dt * np.arange(1, steps + 1, dtype=float)
    t_end = float(grid[-1])
    rows: dict[str, list[Any]] = {k: [] for k in _COLUMNS}
    start = time.perf_counter()
    term, detail, t_stop = Termination.STEPS_DONE, "", t_end
    prev = theta0.detach().clone()
    try:
        first = field.at(prev, 0.0, True)
        field.state.damping_state, _ = rule.start(None, first.ctx)
        cost0 = first.cost
        undamped = rule.uses_solver and first.rho == 0.0  # λ_min(G_t) is checked at each accepted step
        kwargs: dict[str, Any] = {"jac": field.jac} if method in IMPLICIT and isinstance(rule, GradientDescentStep) \
            else {}
        ode = getattr(scipy.integrate, method)(field.fun, 0.0, prev.cpu().numpy().astype(np.float64), t_end,
                                               rtol=rtol, atol=atol, **kwargs)
    except _Stop as stop:
        raise GaussNewtonError(f"the flow cannot start at θ₀: {stop.term.message} {stop.detail}") from None
    k, n_steps = 0, 0
    while k < steps:
        try:
            ode.step()
        except _Stop as stop:
            term, detail, t_stop = stop.term, stop.detail, stop.t
            break
        n_steps += 1
        if ode.status == "failed":
            term, detail, t_stop = Termination.INTEGRATOR_FAILED, str(ode.message), float(ode.t)
            break
        if undamped:
            try:
                field.at(field._theta(ode.y), float(ode.t), True)
            except _Stop as stop:
                term, detail, t_stop = stop.term, stop.detail, stop.t
                break
        dense = ode.dense_output() if ode.t_old is not None else None
        stop_here = None
        while k < steps and (grid[k] <= ode.t * (1 + 1e-14) or ode.status == "finished"):
            y = ode.y if dense is None or grid[k] >= ode.t else dense(grid[k])
            try:
                pt = field.at(field._theta(y), float(grid[k]), True)
            except _Stop as stop:
                term, detail, t_stop, stop_here = stop.term, stop.detail, stop.t, stop.term
                break
            field.state.damping_state, _ = rule.start(field.state.damping_state, pt.ctx)
            _row(rows, pt, prev, theta0, float(grid[k]), field.nfev, n_steps, obj, start)
            prev, k = pt.theta, k + 1
            info = IterationInfo(k, pt.theta.clone(), pt.cost, float(pt.grad.abs().max()), pt.rho,
                                 float(rows["step_norm"][-1]), True, field.nfev)
            if callback is not None and callback(info):
                stop_here = term = Termination.CALLBACK
            elif target_cost is not None and pt.cost <= target_cost:
                stop_here = term = Termination.TARGET
            if stop_here is not None:
                t_stop = float(grid[k - 1])
                break
        if stop_here is not None:
            break
    if term in (Termination.SINGULAR, Termination.INTEGRATOR_FAILED, Termination.NONFINITE):
        last = field._theta(ode.y)  # the last accepted point of the ODE solver
        if float(ode.t) > (rows["t"][-1] if rows["t"] else 0.0):
            try:
                pt = field.at(last, float(ode.t), True, check=False)
                _row(rows, pt, prev, theta0, float(ode.t), field.nfev, n_steps, obj, start)
                prev = last
            except _Stop:
                pass
    theta = prev
    cost = float(rows["cost"][-1]) if rows["cost"] else cost0
    message = term.message if term is Termination.STEPS_DONE else \
        f"{term.message} Stopped at t = {t_stop:.6g}{f' ({detail})' if detail else ''}."
    penalty = obj.penalty(theta)
    hist = dict(rows)
    hist["loss"] = list(rows["cost"])
    hist["data_loss"] = [c - p for c, p in zip(rows["cost"], rows["penalty"], strict=True)]
    return FitResult(params=theta, loss=cost, initial_loss=cost0, steps=len(rows["cost"]), status=term.value,
                     message=message, success=term.success, termination=term, history=hist,
                     data_loss=cost - penalty, penalty=penalty)


def fit_flow(obj: Objective, rule: StepRule, solver: Any, problem: NetworkProblem, args: dict[str, Any],
             **refused: Any) -> FitResult:
    """``fit(..., dynamics="flow")``: :func:`integrate` from the model's θ, result written into the model.

    Args:
        obj: ``fit``'s objective.
        rule: ``fit``'s step rule.
        solver: ``fit``'s linear solver (None for gradient flow).
        problem: the network problem (its parameters receive the final θ).
        args: keyword arguments of :func:`integrate`.
        **refused: ``fit`` options a flow does not support (each must be None).

    Returns:
        FitResult: as :func:`integrate`.

    Raises:
        GaussNewtonError: an unsupported option was given.
    """
    for name, value in refused.items():
        if value is not None:
            raise GaussNewtonError(f"`{name}` is not supported with dynamics='flow'; got {value!r}. "
                                   "Leave it unset, or use dynamics='euler'.")
    res = integrate(obj, rule, solver, problem.get_flat(), **args)
    problem.set_flat(res.params)
    return res


_COLUMNS = ("cost", "grad_norm", "damping", "step_norm", "accepted", "time", "param_distance", "lambda_min",
            "lambda_max", "nfev", "penalty", "t", "dloss_dt", "ode_steps")


def _row(rows: dict[str, list[Any]], pt: _Point, prev: torch.Tensor, theta0: torch.Tensor, t: float, nfev: int,
         n_steps: int, obj: Objective, start: float) -> None:
    """Append one grid point to the history."""
    lam = pt.lam
    values = dict(cost=pt.cost, grad_norm=float(pt.grad.abs().max()) if pt.grad.numel() else 0.0,
                  damping=pt.rho, step_norm=float(torch.linalg.vector_norm(pt.theta - prev)), accepted=True,
                  time=time.perf_counter() - start, param_distance=float(torch.linalg.vector_norm(pt.theta - theta0)),
                  lambda_min=float(lam[0]) if lam is not None else math.nan,
                  lambda_max=float(lam[-1]) if lam is not None else math.nan, nfev=nfev, penalty=obj.penalty(pt.theta),
                  t=t, dloss_dt=float(pt.grad @ pt.v.to(pt.grad.dtype)), ode_steps=n_steps)
    for key, value in values.items():
        rows[key].append(value)
