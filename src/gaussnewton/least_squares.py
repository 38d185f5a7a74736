r"""SciPy-like nonlinear least squares: minimize cost(x) = ½‖r(x)‖².

``method="lm"`` is Levenberg–Marquardt with a gain-ratio trust region: each iterate solves

.. math::  (J^\top J + \rho D)\,\delta = -J^\top r

and accepts the step when the gain ratio (actual / predicted reduction of the cost) is
positive; the damping rule (Nielsen by default) updates ρ from the gain ratio. Rejected steps
re-solve with the new ρ without recomputing J. ``method="gn"`` is undamped Gauss–Newton with a
step-halving safeguard. Unlike MINPACK, both work when N < p: the kernel (N×N) form of the
system is used and, with ρ = 0, the minimum-norm step.

Termination follows SciPy: ``ftol`` (relative cost reduction), ``xtol`` (relative step),
``gtol`` (‖Jᵀr‖∞), ``max_nfev``; status codes and messages are those of
:class:`~gaussnewton.result.Termination`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from ._errors import GaussNewtonError, check_choice, check_nonneg, check_positive_int, to_float_tensor
from ._objective import Objective
from ._stepper import TABLE_HEADER, Stepper, Stopping, print_row
from .damping import DampingSchedule, Nielsen
from .distributed import Reducer, resolve_group
from .linsolve import DEFAULT_MEMORY_BUDGET, LinearSolver, get_solver
from .losses import Squared
from .problems.functional import FunctionProblem
from .result import IterationInfo, LeastSquaresResult
from .steps import make_step_rule

__all__ = ["least_squares"]


def least_squares(
    fun: Callable[[torch.Tensor], Any],
    x0: Any,
    *,
    method: str = "lm",
    jac: Callable[[torch.Tensor], Any] | None = None,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
    max_nfev: int | None = None,
    damping: DampingSchedule | str | float | None = None,
    solver: str | LinearSolver = "auto",
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    callback: Callable[[IterationInfo], bool | None] | None = None,
    verbose: int = 0,
    process_group: Any = "auto",
    weight_decay: float = 0.0,
    weight_decay_ref: str = "zero",
) -> LeastSquaresResult:
    """Minimize ½‖fun(x)‖² by Levenberg–Marquardt or Gauss–Newton.

    Args:
        fun: ``fun(x) -> r``: x a 1-D tensor (p,), r a 1-D tensor (N,). Written with torch ops
            so the Jacobian can be taken by automatic differentiation, unless ``jac`` is given.
        x0: starting point, tensor / numpy array / list of p numbers. Computation is float64
            unless ``x0`` is a float tensor of another dtype (its dtype and device are kept).
        method: ``"lm"`` (Levenberg–Marquardt, trust region) or ``"gn"`` (undamped GN with
            step halving).
        jac: optional ``jac(x) -> (N, p)`` Jacobian (tensor or array).
        ftol: relative cost-reduction tolerance (SciPy's definition); 0 disables.
        xtol: relative step tolerance; 0 disables.
        gtol: tolerance on ‖Jᵀr‖∞; 0 disables.
        max_nfev: maximum number of evaluations of ``fun`` (default 100·max(p, 10)).
        damping: for ``"lm"``: a trust-region rule (default
            ``Nielsen(scaling="diag")``: Nielsen's gain-ratio update of ρ with MINPACK's
            diag(JᵀJ) scaling; ``"nielsen"`` for ρI, ``"marquardt"`` for ×10/÷10 factors).
            For ``"gn"``: a paper schedule or a number ρ ≥ 0 (default 0: undamped); a
            trust-region rule is refused (use ``"lm"``), as in :func:`fit`.
        solver: ``"auto"`` (p×p if N ≥ p, N×N if N < p, CG beyond ``memory_budget``),
            ``"normal"``, ``"kernel"``, ``"cg"``, ``"truncated_cg"`` (inexact steps by
            Jacobi-preconditioned CG, ≤ 20 iterations), ``"lstsq"`` or a LinearSolver.
        memory_budget: bytes allowed for the dense Jacobian and its Gram matrix.
        callback: called after each trial step with an
            :class:`~gaussnewton.result.IterationInfo`; return True to stop.
        verbose: 0 silent, 1 final report, 2 a line per trial step (SciPy-style table).
        process_group: for residuals that are sums over data shards: each rank's ``fun``
            returns its own rows of r; ``"auto"`` uses the default torch.distributed group
            when initialized with more than one process (see :mod:`gaussnewton.distributed`).

        weight_decay: λ ≥ 0: minimize ``½‖r(x)‖² + λ/2·‖x − x_ref‖²`` (Tikhonov), built
            exactly into the damped system ``(JᵀJ + ρD + λI)δ = −Jᵀr − λ(x − x_ref)``;
            ``cost`` includes the term, ``penalty`` reports it, ``grad`` is the whole gradient.
        weight_decay_ref: x_ref: ``"zero"`` or ``"init"`` (``x0``).

    Returns:
        LeastSquaresResult: ``x, cost, fun, jac, grad, optimality, nfev, njev, status,
        message, success`` with SciPy's meanings, plus ``history``.

    Raises:
        GaussNewtonError: bad arguments (each message names the argument).
        NonFiniteError: ``x0`` or ``fun(x0)`` contains NaN/Inf.

    Example:
        >>> import torch, gaussnewton as gn
        >>> t = torch.linspace(0, 1, 20, dtype=torch.float64)
        >>> y = 2.0 * torch.exp(-1.5 * t)
        >>> res = gn.least_squares(lambda x: x[0] * torch.exp(-x[1] * t) - y, [1.0, 1.0])
        >>> bool(res.success), [round(v, 6) for v in res.x.tolist()]
        (True, [2.0, 1.5])
    """
    check_choice("method", method, ("lm", "gn"))
    if isinstance(x0, torch.Tensor) and x0.is_floating_point():
        x = to_float_tensor("x0", x0, ndim=1)
    else:
        x = to_float_tensor("x0", x0, ndim=1, dtype=torch.float64)
    if x.numel() == 0:
        raise GaussNewtonError("`x0` must have at least one entry; got shape (0,).")
    ftol, xtol, gtol = (check_nonneg(n, v) for n, v in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)))
    eps = torch.finfo(x.dtype).eps
    for name, tol in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)):
        if 0 < tol < eps:
            warnings.warn(f"`{name}` = {tol} is below machine epsilon ({eps:.3g}) and effectively disables that test.",
                          UserWarning, stacklevel=2)
    if ftol == 0 and xtol == 0 and gtol == 0 and max_nfev is None:
        raise GaussNewtonError("At least one of `ftol`, `xtol`, `gtol` must be > 0, or `max_nfev` set; "
                               "got all tolerances 0.")
    check_positive_int("max_nfev", max_nfev, allow_none=True)
    if verbose not in (0, 1, 2):
        raise GaussNewtonError(f"`verbose` must be 0, 1 or 2; got {verbose!r}.")

    reducer = Reducer(resolve_group(process_group))
    x = reducer.broadcast(x)
    problem = FunctionProblem(fun, x, jac=jac, memory_budget=memory_budget)
    n, p = int(reducer.sum(torch.tensor(problem.n_outputs))), problem.n_params
    # the method table of every front door (gaussnewton.steps): "gn" here is GN with step halving
    rule = make_step_rule("lm" if method == "lm" else "gn_halving", damping,
                          default=Nielsen(scaling="diag") if method == "lm" else "none")
    linsolver = get_solver(solver, n, p, x.element_size(), memory_budget)
    stopping = Stopping(ftol=ftol, xtol=xtol, gtol=gtol,
                        max_nfev=max_nfev if max_nfev is not None else 100 * max(p, 10))
    weight_decay = check_nonneg("weight_decay", weight_decay)
    ref = check_choice("weight_decay_ref", weight_decay_ref, ("zero", "init"))
    objective = Objective(problem, Squared(), torch.zeros((), dtype=x.dtype, device=x.device), 1.0, 1.0, reducer,
                          weight_decay, x.clone() if ref == "init" else None)
    if verbose == 2:
        print(TABLE_HEADER)
    stepper = Stepper(rule, linsolver, stopping, callback=callback, on_row=print_row if verbose == 2 else None)
    out = stepper.solve(objective, x, start_name="fun(x0)")
    assert out.history is not None and out.outputs is not None and out.termination is not None
    lin = out.lin
    # the last linearization may be one step behind the returned x; refresh J and ∇ then
    hist = out.history.as_dict()
    njev = out.njev
    if lin is None or (hist["accepted"] and hist["accepted"][-1]):
        jac_final = problem.jacobian(out.theta) if linsolver.needs_dense else None
        njev += jac_final is not None  # counted like SciPy: every Jacobian evaluation
        grad = (jac_final.T @ out.outputs) if jac_final is not None else problem.vjp(out.theta, out.outputs)
        grad = reducer.sum(grad)
        e = objective.decay_offset(out.theta)
        if e is not None:
            grad = grad + weight_decay * e
    else:
        jac_final, grad = (None if lin.jac is None else lin.jac.to_dense()), lin.grad
    term = out.termination
    if verbose >= 1:
        print(f"{term.message} Function evaluations {out.nfev}, initial cost {out.cost0:.4e}, "
              f"final cost {out.cost:.4e}, first-order optimality {float(grad.abs().max()):.2e}.")
    return LeastSquaresResult(
        x=out.theta, cost=out.cost, fun=out.outputs, jac=jac_final, grad=grad,
        optimality=float(grad.abs().max()), nfev=out.nfev, njev=njev, nit=out.nit,
        status=term.value, message=term.message, success=term.success, termination=term,
        history=hist, penalty=objective.penalty(out.theta),
    )
