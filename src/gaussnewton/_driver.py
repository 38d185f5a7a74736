r"""The driver loop shared by :func:`least_squares` and :func:`fit`.

One iterate: evaluate → linearize (``A = BJ``, ``h``; see :mod:`gaussnewton.losses`) →
prepare the linear solver → ask the damping schedule for ρ → trial step(s) → accept/reject →
termination checks. The math of each part lives in small pure functions
(:func:`predicted_reduction`, :func:`gain_ratio`, :func:`check_termination`).

Units: the objective is ``cost = weight · Σ_j ℓ(u_j, y_j)``; ρ in the schedule's units is
multiplied by ``unit`` before it enters ``(AᵀA + ρ_int D)``, and Gram eigenvalues are divided
by ``unit`` before a schedule sees them. :func:`least_squares` uses ``weight = unit = 1``;
:func:`fit` uses ``weight = 1/n`` and ``unit = n·α²`` (the paper's Convention A).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._checkpoint import Checkpointer
from ._errors import GaussNewtonError, NonFiniteError
from .damping import DampingContext, DampingSchedule
from .distributed import Reducer
from .linsolve import LinearSolver, Prepared
from .losses import Curvature, Loss
from .operators import JacobianOperator, column_sq_norms, matvec, rmatvec
from .problems.base import Problem
from .result import History, IterationInfo, Termination

__all__ = ["Objective", "StepRule", "Stopping", "check_termination", "gain_ratio", "predicted_reduction", "run"]

_MAX_HALVINGS = 30
_RHO_MAX_FACTOR = 1e16  # ρ beyond this multiple of max diag(JᵀJ) means "no step helps"
_FTOL_RATIO = 0.25  # SciPy's trf: ftol counts only for steps the model predicted well


class StepRule(enum.Enum):
    """How a trial step is accepted."""

    TRUST_REGION = "trust_region"  # gain ratio decides; rejected steps retried with new ρ
    FIXED = "fixed"  # θ ← θ + η·δ, always accepted if finite (GN-DT, eq. 13)
    HALVING = "halving"  # θ ← θ + t·δ with t = 1, 1/2, 1/4, … until the cost decreases


@dataclass(frozen=True)
class Stopping:
    """Stopping criteria (SciPy's definitions for ftol, xtol, gtol).

    Attributes:
        ftol: stop when the actual reduction < ftol·cost (and gain ratio > 1/4).
        xtol: stop when ‖step‖ < xtol·(xtol + ‖θ‖).
        gtol: stop when ‖∇cost‖∞ < gtol.
        max_nfev: cap on cost evaluations (None: no cap).
        max_steps: cap on trial steps (None: no cap).
        target_cost: stop when cost ≤ target (None: off).
    """

    ftol: float = 0.0
    xtol: float = 0.0
    gtol: float = 0.0
    max_nfev: int | None = None
    max_steps: int | None = None
    target_cost: float | None = None


@dataclass
class Objective:
    """cost(θ) = weight · Σ_j ℓ(f(θ)_j, y_j) for a problem, a loss and targets.

    Attributes:
        problem: outputs and Jacobians.
        loss: the per-sample loss.
        target: y, broadcastable against the outputs.
        weight: factor on the summed loss.
        unit: factor from the schedules' ρ to the unnormalized system.
        reducer: sums over the data shards of a process group (identity by default).
    """

    problem: Problem
    loss: Loss
    target: torch.Tensor
    weight: float
    unit: float
    reducer: Reducer = field(default_factory=lambda: Reducer(None))

    def cost(self, u: torch.Tensor) -> float:
        """The cost of outputs ``u`` (NaN if non-finite), summed over all shards."""
        c = float(self.reducer.sum(self.loss.value(u, self.target).sum())) * self.weight
        return c if math.isfinite(c) else math.nan


@dataclass
class Linearization:
    """``A = BJ`` (dense or operator), ``h``, the unweighted J (dense path), ∇cost, curvature."""

    a: torch.Tensor | JacobianOperator
    h: torch.Tensor
    jac: torch.Tensor | Any | None
    grad: torch.Tensor
    curvature: Curvature


def linearize(obj: Objective, theta: torch.Tensor, u: torch.Tensor, dense: bool) -> Linearization:
    """Linearize the objective at θ (outputs ``u`` already computed)."""
    curv = obj.loss.curvature(u, obj.target)
    if getattr(obj.problem, "structured", False):  # Linear-layer networks: factored Jacobian
        sj = obj.problem.structured_jacobian(theta)  # type: ignore[attr-defined]
        jac = sj
        if curv.is_identity:
            a = sj
        elif curv.sqrt_diag is not None:
            a = sj.scale_rows(curv.sqrt_diag)
        else:
            a = curv.rows(sj.dense())
    elif dense:
        jac = obj.problem.jacobian(theta)
        a: torch.Tensor | JacobianOperator = curv.rows(jac)
    else:
        jac = None
        op = obj.problem.operator(theta)
        a = JacobianOperator(op.shape, lambda v: curv.apply(op.mv(v)),
                             lambda w: op.rmv(curv.apply_t(w)), None, op.dtype, op.device)
    grad = obj.reducer.sum(obj.weight * rmatvec(a, curv.h))
    return Linearization(a, curv.h, jac, grad, curv)


def predicted_reduction(a: torch.Tensor | JacobianOperator, h: torch.Tensor, step: torch.Tensor) -> float:
    """m(0) − m(s) for the GN model m(s) = ½‖A s + h‖² (unweighted): −hᵀAs − ½‖As‖²."""
    a_s = matvec(a, step)
    return float(-(h @ a_s) - 0.5 * (a_s @ a_s))


def _predicted_reduction(obj: Objective, lin: Linearization, step: torch.Tensor) -> float:
    """:func:`predicted_reduction` summed over the shards of a process group."""
    if not obj.reducer.active:
        return predicted_reduction(lin.a, lin.h, step)
    a_s = matvec(lin.a, step)
    terms = obj.reducer.sum(torch.stack([lin.h @ a_s, a_s @ a_s]))
    return float(-terms[0] - 0.5 * terms[1])


def gain_ratio(actual: float, predicted: float) -> float:
    """actual / predicted reduction; −inf for a non-finite or non-decreasing trial."""
    if not math.isfinite(actual):
        return -math.inf
    if predicted <= 0:
        return math.inf if actual > 0 else -math.inf
    return actual / predicted


def check_termination(actual: float, cost: float, step_norm: float, x_norm: float, ratio: float,
                      ftol: float, xtol: float) -> Termination | None:
    """SciPy's ``check_termination``: FTOL, XTOL, both, or None."""
    ftol_ok = actual < ftol * cost and ratio > _FTOL_RATIO
    xtol_ok = step_norm < xtol * (xtol + x_norm)
    if ftol_ok and xtol_ok:
        return Termination.FTOL_XTOL
    if ftol_ok:
        return Termination.FTOL
    if xtol_ok:
        return Termination.XTOL
    return None


def _diag_max(a: torch.Tensor | JacobianOperator, colsq: torch.Tensor | None) -> float:
    if colsq is not None:
        return float(colsq.max())
    # matrix-free: Hutchinson estimate of trace(AᵀA)/p as a proxy for max diag (4 probes)
    gen = torch.Generator(device="cpu").manual_seed(0)
    p = a.shape[1]
    est = 0.0
    for _ in range(4):
        z = (torch.randint(0, 2, (p,), generator=gen) * 2 - 1).to(a.dtype).to(a.device)
        az = matvec(a, z)
        est += float(az @ az)
    return est / (4 * p)


@dataclass
class RunOutput:
    """What :func:`run` returns to the public wrappers."""

    theta: torch.Tensor
    outputs: torch.Tensor
    cost: float
    initial_cost: float
    lin: Linearization | None
    termination: Termination
    history: History
    nfev: int
    njev: int
    nit: int


def run(
    obj: Objective,
    theta0: torch.Tensor,
    schedule: DampingSchedule,
    solver: LinearSolver,
    *,
    rule: StepRule,
    lr: float = 1.0,
    stopping: Stopping,
    callback: Callable[[IterationInfo], bool | None] | None = None,
    track_kernel: bool = False,
    on_row: Callable[[History], None] | None = None,
    start_name: str = "x0",
    checkpointer: Checkpointer | None = None,
) -> RunOutput:
    """Run the damped Gauss–Newton loop (see the module docstring)."""
    theta = theta0.detach().clone()
    u = obj.problem.outputs(theta).detach()
    cost = obj.cost(u)
    if not math.isfinite(cost):
        raise NonFiniteError(f"The cost at `{start_name}` must be finite; got {cost} (check the inputs and the model).")
    cost0 = cost
    history = History()
    nfev, njev, nit = 1, 0, 0
    sched_state = None
    diag_run: torch.Tensor | None = None
    lin: Linearization | None = None
    term: Termination | None = None
    saved = checkpointer.load() if checkpointer is not None else None
    if saved is not None:
        dev = theta.device
        theta, theta0 = saved["theta"].to(dev), saved["theta0"].to(dev)
        cost, cost0, sched_state = saved["cost"], saved["cost0"], saved["sched_state"]
        diag_run = None if saved["diag_run"] is None else saved["diag_run"].to(dev)
        nfev, njev, nit = saved["nfev"], saved["njev"], saved["nit"]
        history.restore(saved["history"], saved["elapsed"])
        # a run that only ran out of steps continues when given more steps
        done = saved["termination"]
        term = None if done in (None, Termination.STEPS_DONE.name) else Termination[done]
        u = obj.problem.outputs(theta).detach()

    def snapshot() -> dict[str, object]:
        return {"theta": theta, "theta0": theta0, "cost": cost, "cost0": cost0, "sched_state": sched_state,
                "diag_run": diag_run, "nfev": nfev, "njev": njev, "nit": nit, "history": history.as_dict(),
                "elapsed": history.elapsed(), "termination": None if term is None else term.name}

    dense = solver.needs_dense or schedule.scaling == "diag"
    while term is None:
        if stopping.max_steps is not None and nit >= stopping.max_steps:
            term = Termination.STEPS_DONE
            break
        if checkpointer is not None and nit > 0 and checkpointer.due(nit):
            checkpointer.save(snapshot())
        lin = linearize(obj, theta, u, dense)
        njev += 1
        a_ok = bool(torch.isfinite(lin.a).all()) if isinstance(lin.a, torch.Tensor) else True
        if not a_ok or not bool(torch.isfinite(lin.grad).all()):
            term = Termination.NONFINITE
            break
        gnorm = float(lin.grad.abs().max()) if lin.grad.numel() else 0.0
        if gnorm < stopping.gtol or cost == 0.0:
            term = Termination.GTOL
            break
        colsq = column_sq_norms(lin.a)
        if colsq is not None:
            colsq = obj.reducer.sum(colsq)
        diag = None
        if schedule.scaling == "diag":
            assert colsq is not None
            diag_run = colsq if diag_run is None else torch.maximum(diag_run, colsq)
            diag = diag_run.clamp_min(torch.finfo(colsq.dtype).eps * max(float(diag_run.max()), 1.0))
        prepared = solver.prepare(lin.a, lin.h, diag=diag, spectrum=schedule.needs_spectrum or track_kernel)
        ctx = _context(obj, lin, solver, prepared, colsq, nit, cost / cost0 if cost0 > 0 else 0.0)
        if sched_state is None:
            sched_state = schedule.init(ctx)
        sched_state, rho = schedule.damping(sched_state, ctx)
        lam = (solver.spectrum(prepared) / obj.unit) if track_kernel else None
        rho_max = _RHO_MAX_FACTOR * max(ctx.diag_max, 1e-300)
        scale = lr if rule is StepRule.FIXED else 1.0
        halvings = 0
        while True:  # trial steps at this iterate
            try:
                delta, _ = solver.solve(prepared, rho * obj.unit)
                step = (scale * delta).to(theta.dtype)  # a float64 Gram may serve a float32 model
                trial = theta + step
                trial_u = obj.problem.outputs(trial).detach()
                trial_cost = obj.cost(trial_u)
            except torch.linalg.LinAlgError:
                step, trial_cost = torch.zeros_like(theta), math.nan
                trial_u = u
            nfev += 1
            nit += 1
            actual = cost - trial_cost
            ratio = gain_ratio(actual, obj.weight * _predicted_reduction(obj, lin, step))
            if rule is StepRule.TRUST_REGION:
                sched_state, accepted = schedule.update(sched_state, ratio)
            elif rule is StepRule.FIXED:
                accepted = math.isfinite(trial_cost)
            else:
                accepted = math.isfinite(trial_cost) and trial_cost < cost
            step_norm = float(torch.linalg.vector_norm(step))
            if accepted:
                theta, u, cost_before, cost = trial, trial_u, cost, trial_cost
            history.record(
                cost=cost, grad_norm=gnorm, damping=rho, step_norm=step_norm, accepted=accepted,
                param_distance=float(torch.linalg.vector_norm(theta - theta0)),
                lambda_min=float(lam[0]) if lam is not None else math.nan,
                lambda_max=float(lam[-1]) if lam is not None else math.nan, nfev=nfev,
            )
            if on_row is not None:
                on_row(history)
            if callback is not None and callback(IterationInfo(nit, theta.clone(), cost, gnorm, rho, step_norm, accepted)):
                term = Termination.CALLBACK
            elif accepted:
                if stopping.target_cost is not None and cost <= stopping.target_cost:
                    term = Termination.TARGET
                else:
                    term = check_termination(cost_before - cost, cost_before, step_norm,
                                             float(torch.linalg.vector_norm(theta)), ratio,
                                             stopping.ftol, stopping.xtol)
            elif rule is StepRule.FIXED:
                term = Termination.NONFINITE
            elif rule is StepRule.TRUST_REGION:
                if math.isfinite(trial_cost) and step_norm < stopping.xtol * (stopping.xtol + float(torch.linalg.vector_norm(theta))):
                    term = Termination.XTOL
                elif schedule.rho(sched_state) > rho_max:
                    term = Termination.DAMPING_MAX
            if term is None and stopping.max_nfev is not None and nfev >= stopping.max_nfev:
                term = Termination.MAX_EVALS
            if term is None and stopping.max_steps is not None and nit >= stopping.max_steps and not accepted:
                term = Termination.STEPS_DONE
            if accepted or term is not None:
                break
            if rule is StepRule.TRUST_REGION:
                sched_state, rho = schedule.damping(sched_state, ctx)
            else:  # halving
                halvings += 1
                if halvings > _MAX_HALVINGS:
                    term = Termination.NO_DECREASE
                    break
                scale *= 0.5
    if checkpointer is not None:
        checkpointer.save(snapshot())
    return RunOutput(theta, u, cost, cost0, lin, term, history, nfev, njev, nit)


TABLE_HEADER = (f"{'Iteration':>10} {'nfev':>6} {'Cost':>14} {'Cost reduction':>15} {'Step norm':>11} "
                f"{'Optimality':>11} {'Damping':>10}")


def print_row(history: History) -> None:
    """Print the last history row as a SciPy-style table line (``verbose=2``)."""
    rows = history.rows
    k = len(history) - 1
    red = "" if k == 0 else f"{rows['cost'][k - 1] - rows['cost'][k]:.2e}"
    print(f"{k + 1:>10} {rows['nfev'][k]:>6} {rows['cost'][k]:>14.6e} {red:>15} "
          f"{rows['step_norm'][k]:>11.2e} {rows['grad_norm'][k]:>11.2e} {rows['damping'][k]:>10.2e}"
          f"{'' if rows['accepted'][k] else '  (rejected)'}")


def _context(obj: Objective, lin: Linearization, solver: LinearSolver, prepared: Prepared,
             colsq: torch.Tensor | None, iteration: int, progress: float) -> DampingContext:
    unit = obj.unit

    def lam_min() -> float:
        return float(solver.spectrum(prepared)[0]) / unit

    def lam_min_kernel() -> float:
        if lin.curvature.is_identity:
            return lam_min()
        if obj.reducer.active:
            raise GaussNewtonError("CurvatureGlobal damping with a non-squared loss is not supported with a process group.")
        jac = lin.jac
        if jac is None:
            raise GaussNewtonError(
                "CurvatureGlobal damping needs λ_min of the unweighted kernel, which needs a dense "
                "Jacobian; use solver='normal' or 'kernel' (got the matrix-free 'cg')."
            )
        n, p = jac.shape
        if hasattr(jac, "kernel") and n <= p:
            g = jac.kernel()
        else:
            dense_j = jac if isinstance(jac, torch.Tensor) else jac.dense()
            g = dense_j @ dense_j.T if n <= p else dense_j.T @ dense_j
        return float(torch.linalg.eigvalsh(g)[max(g.shape[0] - min(n, p), 0)]) / unit

    return DampingContext(
        iteration=iteration,
        lambda_min=lam_min,
        lambda_min_kernel=lam_min_kernel,
        lambda_min_curvature=lin.curvature.lambda_min,
        diag_max=_diag_max(lin.a, colsq) / unit,
        progress=progress,
    )
