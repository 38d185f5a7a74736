r"""The one Gauss–Newton step that every front door shares.

``fit``, ``least_squares``, the ``torch.optim`` optimizer and the estimators are thin wrappers
around a :class:`Stepper` (modelled on optimistix's init/step/terminate split):

.. code-block:: text

    state ← Stepper.init(objective, θ₀)                    cost at θ₀ (must be finite)
    while state.termination is None:                       Stepper.solve (fit, least_squares)
        state ← Stepper.step(objective, state)             the optimizer: one step per call

One ``step`` at the iterate θ:

1. linearize: ``A = BJ`` (dense, structured or matrix-free), ``h``, ``∇cost = w·Aᵀh``
   (:mod:`gaussnewton._objective`); stop on a non-finite Jacobian (NONFINITE) or
   ``‖∇cost‖∞ < gtol`` (GTOL);
2. prepare the linear solver (ρ-independent work: Gram matrix, factor, spectrum) with
   ``D = I`` or MINPACK's running maximum of ``diag(AᵀA)``;
3. ask the step rule (:mod:`gaussnewton.steps`) for the first trial ``(ρ, t)``; try
   ``θ + t·δ(ρ)``; the rule accepts, or gives the next trial, or a reason to stop; a failed
   factorization (``LinAlgError``) is a rejected trial, so a trust region escalates ρ;
4. record the trial (history, callback) and check the termination tests (SciPy's ftol, xtol
   on accepted steps; target cost; evaluation and step caps).

Every feature (termination reasons, damping maximum, failed-Cholesky escalation, checkpoints,
history, callbacks, distributed reductions) lives here or in the objects it calls, once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from scipy.sparse.linalg import ArpackError

from ._bayes import BayesianRegularization
from ._bounds import BoxConstraints, CLTerms, with_curvature_rows
from ._checkpoint import Checkpointer
from ._errors import GaussNewtonError, NonFiniteError
from ._objective import Linearization, Objective, gain_ratio, secant_factor
from ._state import SolverState
from .damping import DampingContext
from .linsolve import LinearSolver, Prepared
from .operators import diag_max_estimate, gram_spectrum
from .result import History, IterationInfo, Termination
from .steps import StepRule, Trial

__all__ = ["TABLE_HEADER", "Stepper", "Stopping", "check_termination", "print_row"]

_FLAT_EPS = 1e3  # a predicted reduction below 1e3·eps·cost is lost in the rounding of the cost (n-term sums)
_FTOL_RATIO = 0.25  # SciPy's trf: ftol counts only for steps the model predicted well

Callback = Callable[[IterationInfo], bool | None]


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


@dataclass
class _Outcome:
    """One evaluated trial."""

    step: torch.Tensor
    outputs: torch.Tensor
    cost: float
    step_norm: float
    ratio: float
    accepted: bool = False
    predicted: float = math.nan  # the GN model's predicted cost reduction (gain-ratio rules, ftol > 0)
    secant: float = math.nan  # the ρ factor matching the model's curvature along the step to the cost's


class Stepper:
    """Damped Gauss–Newton steps: a step rule + a linear solver + stopping criteria.

    Args:
        rule: how trials are formed and judged (:mod:`gaussnewton.steps`).
        solver: the linear solver for the damped system (None for gradient descent).
        stopping: termination criteria.
        track_kernel: record λ_min, λ_max of the Gram matrix being solved at every iterate.
        callback: called after each trial with an :class:`IterationInfo`; True stops.
        on_row: called with the history after each recorded trial (progress bars, tables).
        max_trials: trials per :meth:`step` (the optimizer's budget); None: until accepted.
        monitor: called with the state after each recorded trial; True stops the run with
            ``Termination.EARLY_STOP`` (validation patience, :mod:`gaussnewton._validation`).
        bayesian: re-estimate the weight decay at every iterate (:mod:`gaussnewton._bayes`); the
            prior's mean is the objective's ``decay_ref``.
        bounds: box constraints (:mod:`gaussnewton._bounds`): Coleman–Li scaling of D, steps cut
            back to the interior, optimality ‖v·∇cost‖∞; θ₀ must be strictly feasible.
        diag: a fixed damping matrix D (p,) (``1/x_scale²``) instead of the rule's scaling.
    """

    def __init__(self, rule: StepRule, solver: LinearSolver | None, stopping: Stopping = Stopping(), *,
                 track_kernel: bool = False, callback: Callback | None = None,
                 on_row: Callable[[History], None] | None = None, max_trials: int | None = None,
                 monitor: Callable[[SolverState], bool] | None = None,
                 bayesian: BayesianRegularization | None = None, bounds: BoxConstraints | None = None,
                 diag: torch.Tensor | None = None) -> None:
        if rule.uses_solver and solver is None:
            raise GaussNewtonError(f"{type(rule).__name__} needs a linear solver; got None.")
        self.rule, self.solver, self.stopping = rule, solver, stopping
        self.track_kernel, self.callback, self.on_row, self.max_trials = track_kernel, callback, on_row, max_trials
        self.monitor, self.bayesian = monitor, bayesian
        self.bounds, self.diag = bounds, diag
        self.state: SolverState | None = None  # the run of solve(), readable if it raises (θ: last accepted)

    @property
    def dense(self) -> bool | None:
        """What the linearization must provide: dense J (True), products (False), a gradient (None)."""
        if not self.rule.uses_solver:
            return True if self.track_kernel else None
        assert self.solver is not None
        return self.solver.needs_dense or self.rule.scaling == "diag"

    def init(self, obj: Objective, theta0: torch.Tensor, start_name: str = "x0", history: bool = True) -> SolverState:
        """The state at θ₀ (its cost must be finite)."""
        theta = theta0.detach().clone()
        u, cost = obj.evaluate(theta)
        if not math.isfinite(cost):
            raise NonFiniteError(f"The cost at `{start_name}` must be finite; got {cost} "
                                 "(check the inputs and the model).")
        return SolverState(theta=theta, theta0=theta.clone(), cost=cost, cost0=cost, outputs=u,
                           history=History() if history else None)

    def resume(self, obj: Objective, saved: dict, device: torch.device | str) -> SolverState:
        """The state saved by :meth:`SolverState.to_dict`; a run that only ran out of steps continues."""
        state = SolverState.from_dict(saved, device)
        if state.termination is Termination.STEPS_DONE:
            state.termination = None
        state.outputs = obj.evaluate(state.theta)[0]
        return state

    def solve(self, obj: Objective, theta0: torch.Tensor, *, start_name: str = "x0",
              checkpointer: Checkpointer | None = None) -> SolverState:
        """Step until a termination reason, saving checkpoints when due and at the end."""
        state = self.init(obj, theta0, start_name)
        saved = checkpointer.load() if checkpointer is not None else None
        if saved is not None:
            state = self.resume(obj, saved, theta0.device)
        self.state = state
        max_steps = self.stopping.max_steps
        while state.termination is None:
            if max_steps is not None and state.nit >= max_steps:
                state.termination = Termination.STEPS_DONE
                break
            if self.stopping.max_nfev is not None and state.nfev >= self.stopping.max_nfev:
                state.termination = Termination.MAX_EVALS  # no trial may exceed the budget
                break
            if checkpointer is not None and state.nit > 0 and checkpointer.due(state.nit):
                checkpointer.save(state.to_dict())
            state = self.step(obj, state)
        if (not self.rule.safeguarded and state.termination.success and state.cost > state.cost0
                and state.termination not in (Termination.TARGET, Termination.EARLY_STOP)):
            state.termination = Termination.LOSS_INCREASED  # never report a diverged run as done
        if checkpointer is not None:
            checkpointer.save(state.to_dict())
        return state

    def step(self, obj: Objective, state: SolverState) -> SolverState:
        """One iterate: linearize, prepare, trial steps until one is accepted or a stop."""
        assert state.outputs is not None
        lin = obj.linearize(state.theta, state.outputs, self.dense)
        state.lin, state.njev = lin, state.njev + 1
        state.accepted, state.trials = False, 0
        if not (lin.a.finite() and bool(torch.isfinite(lin.grad).all())):
            state.termination = Termination.NONFINITE
            return state
        box = self.bounds.local(state.theta, lin.grad) if self.bounds is not None else None
        if box is not None:
            gnorm = box.optimality
        else:
            gnorm = float(lin.grad.abs().max()) if lin.grad.numel() else 0.0
        if gnorm < self.stopping.gtol or state.cost == 0.0:
            state.termination = Termination.GTOL
            return state
        try:
            prepared, ctx, lam, lin = self._prepare(obj, lin, state, box)
            state.damping_state, trial = self.rule.start(state.damping_state, ctx)
        except (torch.linalg.LinAlgError, ArpackError):  # eigh/eigsh of a Gram matrix that overflowed
            state.termination = Termination.NONFINITE
            return state
        first_pred = math.nan  # predicted reduction of the least damped trial at this iterate
        while True:
            out = self._try(obj, lin, prepared, state, trial, max(0.995, 1 - gnorm))
            first_pred = out.predicted if trial.retries == 0 else first_pred
            state.nfev, state.nit, state.trials = state.nfev + 1, state.nit + 1, state.trials + 1
            state.damping_state, out.accepted = self.rule.judge(state.damping_state, out.ratio, out.cost, state.cost,
                                                                out.secant)
            cost_before = state.cost
            if out.accepted:
                state.theta, state.outputs, state.cost = state.theta + out.step, out.outputs, out.cost
            state.rho, state.accepted = trial.rho, out.accepted
            self._record(obj, state, gnorm, trial, out, lam)
            term = self._verdict(state, out, cost_before, gnorm, trial, ctx, first_pred)
            if isinstance(term, Trial):
                trial = term
            elif term is not None:
                state.termination = term
                return state
            else:
                return state
            if self.max_trials is not None and state.trials >= self.max_trials:
                return state

    def _prepare(self, obj: Objective, lin: Linearization, state: SolverState, box: CLTerms | None = None,
                 ) -> tuple[Prepared | None, DampingContext, torch.Tensor | None, Linearization]:
        """D, the prepared solver, the damping context, the spectrum and the trials' linearization.

        The spectrum only with ``track_kernel``; with bounds the linearization has Coleman–Li's
        curvature rows appended to A.
        """
        colsq = lin.a.column_sq_norms()
        diag = None
        if self.diag is not None:
            diag = self.diag
        elif self.rule.scaling == "diag":
            # MINPACK's D from the columns of J itself, not of A = BJ: a loss whose curvature nearly
            # vanishes (a robust loss on outliers) must not shrink the trust region's scale with it
            jsq = colsq if lin.jac is None or lin.curvature.is_identity else lin.jac.column_sq_norms()
            jsq = colsq if jsq is None else jsq
            assert jsq is not None
            run = jsq if state.diag_run is None or state.diag_run.shape != jsq.shape else \
                torch.maximum(state.diag_run, jsq)
            state.diag_run = run
            diag = run.clamp_min(torch.finfo(run.dtype).eps * max(float(run.max()), 1.0))
        if box is not None:  # Coleman–Li: D/v, v the distance to the bound the gradient points at
            diag = (torch.ones_like(box.v) if diag is None else diag) / box.v
            lin = with_curvature_rows(lin, box.c)
        prepared = None
        if self.rule.uses_solver:
            assert self.solver is not None
            prepared = self.solver.prepare(lin.a, lin.h, diag=diag,
                                           spectrum=self.rule.needs_spectrum or self.track_kernel)
            if self.bayesian is not None:  # α, β, γ from the Gram matrix just formed; λ = c·weight
                self.bayesian.update(obj, lin, prepared, self.solver, state)
            prepared.set_penalty(lin.penalty, lin.decay_e)
        lam = None
        if self.track_kernel:
            lam = (self.solver.spectrum(prepared) if prepared is not None and self.solver is not None
                   else gram_spectrum(lin.jac if lin.jac is not None else lin.a)) / obj.unit
        return prepared, self._context(obj, lin, prepared, colsq, state), lam, lin

    def _context(self, obj: Objective, lin: Linearization, prepared: Prepared | None,
                 colsq: torch.Tensor | None, state: SolverState) -> DampingContext:
        """What a damping rule may look at, in its units (λ / unit)."""
        solver, unit = self.solver, obj.unit

        def lam_min() -> float:
            if solver is None or prepared is None:
                raise GaussNewtonError("λ_min is not available without a linear solver.")
            return float(solver.spectrum(prepared)[0]) / unit

        def lam_min_kernel() -> float:
            if lin.curvature.is_identity:
                return lam_min()
            if lin.jac is None:
                raise GaussNewtonError(
                    "This `damping` needs λ_min of the unweighted kernel, which needs a dense Jacobian; "
                    "use solver='normal' or 'kernel' (got the matrix-free 'cg')."
                )
            return float(gram_spectrum(lin.jac)[0]) / unit

        return DampingContext(iteration=state.nit, lambda_min=lam_min, lambda_min_kernel=lam_min_kernel,
                              lambda_min_curvature=obj.reducer.min(lin.curvature.lambda_min),
                              # gradient descent has no damping: skip the (matrix-free: 4 JVPs) estimate
                              diag_max=diag_max_estimate(lin.a, colsq) / unit if self.rule.uses_solver else math.nan,
                              progress=state.progress)

    def _try(self, obj: Objective, lin: Linearization, prepared: Prepared | None, state: SolverState,
             trial: Trial, theta_frac: float = 1.0) -> _Outcome:
        """Evaluate θ + t·δ(ρ) (cut back into the box); a failed factorization gives a zero step, NaN cost."""
        assert state.outputs is not None
        try:
            delta = self.rule.direction(self.solver, prepared, lin, trial.rho, obj)  # type: ignore[arg-type]
            step = (trial.scale * delta).to(state.theta.dtype)  # a float64 Gram may serve a float32 model
            if self.bounds is not None:
                step = self.bounds.cut_back(state.theta, step, theta_frac)
            u, cost = obj.evaluate(state.theta + step)
        except torch.linalg.LinAlgError:
            step, u, cost = torch.zeros_like(state.theta), state.outputs, math.nan
        needs_ratio = self.rule.uses_gain_ratio or self.stopping.ftol > 0
        pred = secant = math.nan
        if needs_ratio:
            slope, curvature = obj.model_terms(lin, step)
            pred = slope - 0.5 * curvature
            full = isinstance(trial.scale, (int, float)) and trial.scale == 1.0 and self.bounds is None
            if full:  # the full damped step: slope − curvature = ρ·sᵀDs
                secant = secant_factor(slope, curvature, state.cost - cost)
        ratio = gain_ratio(state.cost - cost, pred) if needs_ratio else math.nan
        return _Outcome(step, u, cost, float(torch.linalg.vector_norm(step)), ratio, predicted=pred, secant=secant)

    def _record(self, obj: Objective, state: SolverState, gnorm: float, trial: Trial, out: _Outcome,
                lam: torch.Tensor | None) -> None:
        if state.history is None:
            return
        state.history.record(
            cost=state.cost, grad_norm=gnorm, damping=trial.rho, step_norm=out.step_norm, accepted=out.accepted,
            param_distance=float(torch.linalg.vector_norm(state.theta - state.theta0)),
            lambda_min=float(lam[0]) if lam is not None else math.nan,
            lambda_max=float(lam[-1]) if lam is not None else math.nan, nfev=state.nfev,
            penalty=obj.penalty(state.theta),
            **({} if self.bayesian is None else {"gamma": self.bayesian.gamma, "bayes_alpha": self.bayesian.alpha,
                                                 "bayes_beta": self.bayesian.beta}),
        )
        if self.on_row is not None:
            self.on_row(state.history)

    def _verdict(self, state: SolverState, out: _Outcome, cost_before: float, gnorm: float, trial: Trial,
                 ctx: DampingContext, first_pred: float = math.nan) -> Termination | Trial | None:
        """A reason to stop, the next trial at this iterate, or None (accepted, go on).

        A damping that explodes at an optimum is a convergence, not a failure: if even the least
        damped trial at this iterate predicted a reduction below ftol·cost (FTOL, MINPACK's test on
        a rejected step) or below working precision (STATIONARY), no step can reduce the cost.
        """
        st = self.stopping
        x_norm = float(torch.linalg.vector_norm(state.theta))
        nxt: Termination | Trial | None = None
        stop_early = self.monitor is not None and self.monitor(state)
        info = IterationInfo(state.nit, state.theta.clone(), state.cost, gnorm, trial.rho, out.step_norm,
                             out.accepted, state.nfev, state.outputs) if self.callback is not None else None
        if self.callback is not None and self.callback(info):  # type: ignore[arg-type]
            nxt = Termination.CALLBACK
        elif stop_early:
            nxt = Termination.EARLY_STOP
        elif out.accepted:
            if st.target_cost is not None and state.cost <= st.target_cost:
                nxt = Termination.TARGET
            else:
                ftol = st.ftol if trial.retries == 0 or self.rule.shortened_steps_test_ftol else 0.0
                nxt = check_termination(cost_before - state.cost, cost_before, out.step_norm, x_norm, out.ratio,
                                        ftol, st.xtol)
        elif self.rule.uses_gain_ratio and math.isfinite(out.cost) and \
                out.step_norm < st.xtol * (st.xtol + x_norm):
            nxt = Termination.XTOL
        else:
            state.damping_state, nxt = self.rule.on_reject(state.damping_state, ctx, trial)
            if nxt is Termination.DAMPING_MAX:
                nxt = _flat_stop(first_pred, cost_before, state.cost0, st.ftol, state.theta.dtype) or nxt
        if not isinstance(nxt, Termination):
            if st.max_nfev is not None and state.nfev >= st.max_nfev:
                return Termination.MAX_EVALS
            if st.max_steps is not None and state.nit >= st.max_steps and not out.accepted:
                return Termination.STEPS_DONE
        return nxt


def _flat_stop(first_pred: float, cost: float, cost0: float, ftol: float, dtype: torch.dtype) -> Termination | None:
    """FTOL or STATIONARY if no step can lower the cost any more, else None.

    Either the least damped trial predicted (almost) no reduction, or the residuals are at the
    rounding floor of a zero-residual fit: cost ≤ (1e3·eps)²·cost₀, i.e. ‖r‖ ≤ 1e3·eps·‖r₀‖ (the
    model predicts the whole reduction of the last ~1e-26·cost₀, which rounding then denies).
    """
    eps = torch.finfo(dtype).eps
    if cost <= (_FLAT_EPS * eps) ** 2 * cost0:
        return Termination.STATIONARY
    if not math.isfinite(first_pred):
        return None
    if first_pred <= ftol * cost:
        return Termination.FTOL
    if first_pred <= _FLAT_EPS * eps * cost:
        return Termination.STATIONARY
    return None


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
