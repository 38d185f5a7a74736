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

SciPy's call surface (``scipy.optimize.least_squares``): the same positional order, ``fun``
written in NumPy (Jacobian from ``jac`` or SciPy's finite differences,
:mod:`gaussnewton.problems.numpy_function`) or in torch (automatic differentiation), ``args``/
``kwargs``, ``bounds`` (Coleman–Li interior trust region, :mod:`gaussnewton._bounds`), robust
``loss``/``f_scale`` (:class:`~gaussnewton.losses.RobustLoss`), ``x_scale``, ``diff_step``,
``tr_solver``, ``jac_sparsity``, SciPy's callback protocol and result fields. ``method``
``"trf"``, ``"dogbox"`` and ``"lm"`` all run this trust-region LM (``"lm"`` keeps SciPy's
refusals: no bounds, linear loss only); ``"gn"`` is the undamped GN of the paper.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._bounds import BoxConstraints, parse_bounds
from ._errors import (
    GaussNewtonError,
    check_choice,
    check_finite_tensor,
    check_nonneg,
    check_positive,
    check_working_dtype,
)
from ._objective import Objective
from ._stepper import TABLE_HEADER, Stepper, Stopping, print_row
from .damping import DampingSchedule, Nielsen
from .distributed import Reducer, resolve_group
from .linsolve import DEFAULT_MEMORY_BUDGET, CGSolver, LinearSolver, get_solver
from .losses import RobustLoss, Squared
from .problems.functional import FunctionProblem
from .problems.numpy_function import FD_METHODS, NumpyFunctionProblem, as_residual_array
from .result import IterationInfo, LeastSquaresResult
from .steps import make_step_rule

__all__ = ["least_squares"]

_METHODS = ("trf", "dogbox", "lm", "gn")
_LSMR_OPTIONS = ("atol", "btol", "conlim", "maxiter", "regularize", "damp", "show")


def least_squares(
    fun: Callable[..., Any],
    x0: Any,
    jac: Callable[..., Any] | str | None = None,
    bounds: Any = (-np.inf, np.inf),
    method: str = "trf",
    ftol: float | None = 1e-8,
    xtol: float | None = 1e-8,
    gtol: float | None = 1e-8,
    x_scale: Any = None,
    loss: str | Callable[[np.ndarray], Any] = "linear",
    f_scale: float = 1.0,
    diff_step: Any = None,
    tr_solver: str | None = None,
    tr_options: dict[str, Any] | None = None,
    jac_sparsity: Any = None,
    max_nfev: int | None = None,
    verbose: int = 0,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    callback: Callable[..., Any] | None = None,
    workers: Any = None,
    *,
    damping: DampingSchedule | str | float | None = None,
    solver: str | LinearSolver = "auto",
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    process_group: Any = "auto",
    weight_decay: float = 0.0,
    weight_decay_ref: str = "zero",
) -> LeastSquaresResult:
    """Minimize ½‖fun(x)‖² (or a robust cost) by Levenberg–Marquardt or Gauss–Newton.

    SciPy's signature and meanings (``scipy.optimize.least_squares``), so SciPy code runs
    unchanged; the keyword-only arguments after ``workers`` are this library's.

    Args:
        fun: ``fun(x, *args, **kwargs) -> r`` (N residuals; a number or an (N,) array). Written
            with torch ops, its Jacobian is taken by automatic differentiation; written with
            NumPy (it returns an ndarray, or fails on a tensor), it receives float64 ndarrays
            and the Jacobian comes from ``jac``.
        x0: starting point (p numbers; a scalar is shape (1,)). A tensor keeps its dtype and
            device, and the result holds tensors; an ndarray gives NumPy results (a list or a
            number: NumPy results for a NumPy ``fun``, tensors for a torch ``fun``).
        jac: None (automatic differentiation for a torch ``fun``, ``"2-point"`` for a NumPy
            one), ``"2-point"``, ``"3-point"``, ``"cs"`` (SciPy's finite differences), or a
            callable ``jac(x, *args, **kwargs)`` returning the (N, p) Jacobian as an array,
            tensor, ``scipy.sparse`` matrix or ``LinearOperator``.
        bounds: ``(lb, ub)`` (scalars or arrays, ±inf allowed) or ``scipy.optimize.Bounds``;
            iterates stay strictly feasible (an ``x0`` on a bound is moved inside by 1e-10
            relative, as SciPy's ``trf``); ``active_mask`` reports the bounds reached.
        method: ``"trf"`` (default), ``"dogbox"``, ``"lm"``: the trust-region LM of this
            library (``"lm"`` refuses bounds and robust losses, as SciPy's; unlike MINPACK it
            works when N < p); ``"gn"``: undamped Gauss–Newton with step halving.
        ftol: relative cost-reduction tolerance (SciPy's definition); None or 0 disables.
        xtol: relative step tolerance; None or 0 disables.
        gtol: tolerance on the first-order optimality (‖grad‖∞; ‖v·grad‖∞ with bounds).
        x_scale: None, ``"jac"`` (MINPACK's running maximum of the column norms of J) or
            positive numbers (p,): the trust region in the variables x / x_scale. None: ``"jac"``
            for p ≤ 32 (models with a few parameters of different units: NIST Misra1a has
            x ≈ (250, 5e-4)), 1 (ρI) for p > 32 (networks and discretized fields, whose
            columns share one kind; the running maximum over-damps a network, whose column
            norms change by decades as units saturate). SciPy's trf uses 1 for every p.
        loss: ``"linear"``, ``"soft_l1"``, ``"huber"``, ``"cauchy"``, ``"arctan"`` or a callable
            ``loss(z) -> (3, N)`` (:class:`~gaussnewton.losses.RobustLoss`).
        f_scale: the soft margin C of the robust loss (> 0).
        diff_step: relative finite-difference step (SciPy's).
        tr_solver: None, ``"exact"`` (dense factorizations; ``solver`` picks which) or
            ``"lsmr"`` (matrix-free: conjugate gradients on the damped normal equations; the
            default when ``jac`` returns a sparse matrix too large to densify or a
            LinearOperator).
        tr_options: for ``"lsmr"``: ``maxiter`` (CG iterations), ``atol``/``btol`` (its
            tolerance); SciPy's other lsmr keys are accepted and have no effect.
        jac_sparsity: (N, p) sparsity structure of J for grouped finite differences.
        max_nfev: maximum evaluations of ``fun`` (default 100·max(p, 10)); finite-difference
            evaluations are not counted (as SciPy's trf).
        verbose: 0 silent, 1 final report, 2 a line per trial step (SciPy-style table).
        args: extra positional arguments of ``fun`` and ``jac``.
        kwargs: extra keyword arguments of ``fun`` and ``jac``.
        callback: SciPy's protocol, called after every trial step (accepted or not):
            ``callback(intermediate_result)`` (a parameter of that name) receives an
            ``OptimizeResult`` with ``x, fun, nit, nfev, cost``; any other
            callable receives x (an :class:`~gaussnewton.result.IterationInfo` when the
            problem is posed in torch). Returning True or raising ``StopIteration`` stops
            with status −2.
        workers: SciPy's ``workers`` for parallel finite differences (a map-like callable or
            an int; SciPy ≥ 1.16).
        damping: the LM trust-region rule (default ``Nielsen(scaling="diag", fast_endgame=True,
            secant=True)``; ``Nielsen(fast_endgame=True, secant=True)`` (ρI) with an explicit
            ``x_scale`` array or, when ``x_scale`` is None, for p > 32), or for ``"gn"`` a paper
            schedule or a number ρ ≥ 0.
        solver: ``"auto"`` (p×p if N ≥ p, N×N if N < p, CG beyond ``memory_budget``),
            ``"normal"``, ``"kernel"``, ``"cg"``, ``"truncated_cg"``, ``"lstsq"`` or a LinearSolver.
        memory_budget: bytes allowed for the dense Jacobian and its Gram matrix.
        process_group: for residuals that are sums over data shards: each rank's ``fun``
            returns its own rows of r; ``"auto"`` uses the default torch.distributed group
            when initialized with more than one process (see :mod:`gaussnewton.distributed`).
        weight_decay: λ ≥ 0: minimize ``cost + λ/2·‖x − x_ref‖²`` (Tikhonov), built exactly into
            the damped system ``(JᵀJ + ρD + λI)δ = −Jᵀr − λ(x − x_ref)``; ``cost`` includes
            the term, ``penalty`` reports it, ``grad`` is the whole gradient.
        weight_decay_ref: x_ref: ``"zero"`` or ``"init"`` (``x0``).

    Returns:
        LeastSquaresResult: ``x, cost, fun, jac, grad, optimality, active_mask, nfev, njev,
        status, message, success`` with SciPy's meanings (also by key), plus ``nit``,
        ``history``, ``penalty``, ``covariance()`` and ``standard_errors()``.

    Raises:
        ValueError: (:class:`~gaussnewton.GaussNewtonError`) bad arguments, with SciPy's
            conditions (infeasible ``x0``, ``lb ≥ ub``, all tolerances below machine epsilon,
            wrong shapes of ``fun``/``jac`` results, ...); each message names the argument.
        TypeError: unknown ``tr_options``.
        NonFiniteError: ``x0`` or ``fun(x0)`` contains NaN/Inf.

    Example:
        >>> import numpy as np, gaussnewton as gn
        >>> t = np.linspace(0, 1, 20)
        >>> y = 2.0 * np.exp(-1.5 * t)
        >>> res = gn.least_squares(lambda x: x[0] * np.exp(-x[1] * t) - y, [1.0, 1.0])
        >>> bool(res.success), np.round(res.x, 6).tolist()
        (True, [2.0, 1.5])
    """
    if not callable(fun):
        raise GaussNewtonError(f"`fun` must be callable; got {type(fun).__name__}.")
    check_choice("method", method, _METHODS)
    if jac is not None and not callable(jac):
        check_choice("jac", jac, FD_METHODS)
    if tr_solver is not None:
        check_choice("tr_solver", tr_solver, ("exact", "lsmr"))
    if not callable(loss):
        check_choice("loss", loss, RobustLoss.NAMES)
    if method == "lm" and loss != "linear":
        raise GaussNewtonError(f"method='lm' supports only 'linear' loss function; got loss={loss!r}.")
    if verbose not in (0, 1, 2):
        raise GaussNewtonError(f"`verbose` must be 0, 1 or 2; got {verbose!r}.")
    if max_nfev is not None and (isinstance(max_nfev, bool) or not isinstance(max_nfev, numbers.Integral)
                                 or max_nfev <= 0):
        raise GaussNewtonError(f"`max_nfev` must be None or a positive integer; got max_nfev = {max_nfev!r}.")
    if not isinstance(args, tuple):
        args = (args,) if not isinstance(args, list) else tuple(args)
    kwargs = {} if kwargs is None else dict(kwargs)
    if tr_options is None:
        tr_options = {}
    if not isinstance(tr_options, dict):
        raise GaussNewtonError(f"`tr_options` must be a dict or None; got {type(tr_options).__name__}.")
    unknown = sorted(set(tr_options) - set(_LSMR_OPTIONS))
    if unknown:
        raise TypeError(f"`tr_options` got unexpected keyword(s) {unknown}; allowed: {list(_LSMR_OPTIONS)}.")

    x, kind = _starting_point(x0)
    p = int(x.shape[0])
    box = parse_bounds(bounds, p, x.dtype, x.device)
    if box is not None:
        if method == "lm":
            raise GaussNewtonError("Method 'lm' doesn't support bounds; use method='trf'.")
        if not box.contains(x):
            raise GaussNewtonError("Initial guess is outside of provided bounds: `x0` must satisfy lb <= x0 <= ub.")
        x = box.strictly_feasible(x)
    ftol, xtol, gtol = _tolerances(ftol, xtol, gtol, x.dtype)

    f_bound = _Bound(fun, args, kwargs) if args or kwargs else fun  # unwrapped: a rowwise() residual stays one
    jac_bound = _Bound(jac, args, kwargs) if callable(jac) else jac
    problem, numpy_mode = _problem(f_bound, jac_bound, x, kind, diff_step, box, jac_sparsity, workers,
                                   method, memory_budget)
    jac_kind = problem.jac_kind if isinstance(problem, NumpyFunctionProblem) else "dense"
    is_op = jac_kind == "operator"
    if jac_kind != "dense" and method == "lm":
        raise GaussNewtonError(f"method='lm' works only with dense Jacobian matrices; `jac` returns a {jac_kind} "
                               "matrix (use method='trf').")
    if jac_kind != "dense" and tr_solver == "exact":
        raise GaussNewtonError(f"tr_solver='exact' works only with dense Jacobian matrices; `jac` returns a "
                               f"{jac_kind} matrix (use tr_solver='lsmr', or return an ndarray).")
    if jac_sparsity is not None and tr_solver == "exact":
        raise GaussNewtonError("tr_solver='exact' is incompatible with `jac_sparsity`.")

    reducer = Reducer(resolve_group(process_group))
    reducer.check_same(dict(p=p, dtype=x.dtype, method=method, loss=loss, f_scale=f_scale, damping=damping,
                            solver=solver, tr_solver=tr_solver, jac=jac_kind, bounds=box is not None, ftol=ftol,
                            xtol=xtol, gtol=gtol, max_nfev=max_nfev, memory_budget=memory_budget,
                            weight_decay=weight_decay, weight_decay_ref=weight_decay_ref), device=x.device)
    if box is not None and reducer.active:
        raise GaussNewtonError("`bounds` are not supported with a process group (data-parallel residuals); "
                               "got bounds and an initialized torch.distributed group (pass process_group=None).")
    x = reducer.broadcast(x)
    n = int(reducer.sum(torch.tensor(problem.n_outputs)))
    diag, scale_default = _x_scale(x_scale, x, is_op)
    default_rule = Nielsen(scaling="diag" if scale_default == "jac" else "identity", fast_endgame=True,
                           secant=True)
    rule = make_step_rule("lm" if method != "gn" else "gn_halving", damping,
                          default=default_rule if method != "gn" else "none", name=method)
    if tr_solver == "lsmr" or (is_op and tr_solver is None):
        maxiter = tr_options.get("maxiter")
        linsolver: LinearSolver = CGSolver(rtol=float(tr_options.get("atol") or 1e-12), max_iter=maxiter) \
            if solver == "auto" else get_solver(solver, n, p, x.element_size(), memory_budget)
    else:
        linsolver = get_solver(solver, n, p, x.element_size(), memory_budget)
    stopping = Stopping(ftol=ftol, xtol=xtol, gtol=gtol,
                        max_nfev=max_nfev if max_nfev is not None else 100 * max(p, 10))
    weight_decay = check_nonneg("weight_decay", weight_decay)
    ref = check_choice("weight_decay_ref", weight_decay_ref, ("zero", "init"))
    loss_fn = Squared() if loss == "linear" else RobustLoss(loss, f_scale)
    check_positive("f_scale", f_scale)  # validated for every loss, as SciPy does
    objective = Objective(problem, loss_fn, torch.zeros((), dtype=x.dtype, device=x.device), 1.0, 1.0, reducer,
                          weight_decay, x.clone() if ref == "init" else None)
    if verbose == 2:
        print(TABLE_HEADER)
    stepper = Stepper(rule, linsolver, stopping, callback=_wrap_callback(callback, numpy_mode),
                      on_row=print_row if verbose == 2 else None, bounds=box, diag=diag)
    try:
        out = stepper.solve(objective, x, start_name="fun(x0)")
    except BaseException as exc:  # fun raised, or Ctrl-C: hand the last accepted x to the caller
        state = stepper.state
        if state is not None:
            exc.x = _to_numpy(state.theta) if numpy_mode else state.theta.clone()  # type: ignore[attr-defined]
            note = getattr(exc, "add_note", None)  # Python ≥ 3.11
            if note is not None:
                note(f"gaussnewton.least_squares: stopped after {state.nit} trial steps; the last accepted "
                     f"x (cost {state.cost:.6g}) is this exception's `x` attribute.")
        raise
    assert out.history is not None and out.outputs is not None and out.termination is not None
    hist = out.history.as_dict()
    njev = out.njev
    lin = out.lin
    if lin is None or (hist["accepted"] and hist["accepted"][-1]):  # J and ∇ one step behind x: refresh
        dense = linsolver.needs_dense and not is_op
        jac_final = problem.jacobian(out.theta) if dense else None
        njev += 1
        curv = loss_fn.curvature(out.outputs, objective.target)
        if jac_final is not None:
            jac_final = curv.rows(jac_final)
            grad = jac_final.T @ curv.h
        else:
            grad = problem.vjp(out.theta, curv.apply_t(curv.h))
        grad = reducer.sum(grad)
        e = objective.decay_offset(out.theta)
        if e is not None:
            grad = grad + weight_decay * e
    else:
        jac_final, grad = (None if lin.jac is None or is_op else lin.a.to_dense()), lin.grad
    optimality = box.optimality(out.theta, grad) if box is not None else float(grad.abs().max())
    active = box.active_mask(out.theta, xtol) if box is not None else torch.zeros(p, dtype=torch.int64)
    term = out.termination
    if term.success and out.cost > 0 and not any(hist["accepted"]):
        _warn_if_no_progress_from_a_wrong_jacobian(f_bound, jac_bound, x, problem)
    if verbose >= 1:
        print(f"{term.message} Function evaluations {out.nfev}, initial cost {out.cost0:.4e}, "
              f"final cost {out.cost:.4e}, first-order optimality {optimality:.2e}.")
    conv = _to_numpy if numpy_mode else (lambda t: t)
    jac_out: Any = None if jac_final is None else conv(jac_final)
    if jac_kind == "sparse" and jac_out is not None:  # returned in the user's format, as SciPy does
        from scipy.sparse import csr_matrix

        jac_out = csr_matrix(np.asarray(_to_numpy(jac_final) if isinstance(jac_final, torch.Tensor) else jac_out))
    fd_lm = method == "lm" and not callable(jac) and isinstance(problem, NumpyFunctionProblem)
    return LeastSquaresResult(
        x=conv(out.theta), cost=out.cost, fun=conv(out.outputs), jac=jac_out,
        grad=conv(grad), optimality=optimality, nfev=out.nfev, njev=None if fd_lm else njev,
        nit=out.nit,
        status=term.value, message=term.message, success=term.success, termination=term,
        history=hist, penalty=objective.penalty(out.theta), active_mask=conv(active),
    )


def _warn_if_no_progress_from_a_wrong_jacobian(fun: Callable[[Any], Any], jac: Any, x0: torch.Tensor,
                                               problem: Any) -> None:
    """A "converged" run that never moved: check J·v against central differences and say so.

    A sign-flipped ``jac`` or a residual that hides from autodiff (``.item()``, NumPy inside a
    torch function) makes the first step useless, and the tolerances then report success at x0.
    """
    from ._check import check_jacobian

    if isinstance(problem, NumpyFunctionProblem) and not callable(jac):
        return  # finite differences: consistent with fun by construction
    try:
        err = check_jacobian(fun, x0, jac if callable(jac) else None)
    except GaussNewtonError as exc:
        err, why = math.inf, str(exc)
    else:
        why = f"relative error {err:.2g} of J·v against central differences"
    if err > 1e-4:
        warnings.warn(f"The run reports success but never left x0, and the Jacobian disagrees with `fun` there "
                      f"({why}): check `jac` (gaussnewton.check_jacobian), or pass jac='2-point'.",
                      UserWarning, stacklevel=3)


class _Bound:
    """``fun(x, *args, **kwargs)``, picklable when ``fun`` is (SciPy's ``workers`` pools pickle it)."""

    def __init__(self, fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fun, self.args, self.kwargs = fun, args, kwargs

    def __call__(self, x: Any) -> Any:
        return self.fun(x, *self.args, **self.kwargs)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _starting_point(x0: Any) -> tuple[torch.Tensor, str]:
    """x0 as a 1-D float tensor, and its kind: ``"tensor"``, ``"ndarray"`` or ``"other"``."""
    if isinstance(x0, torch.Tensor):
        if x0.is_complex():
            raise GaussNewtonError(f"`x0` must be real; got complex dtype {x0.dtype}.")
        if x0.ndim > 1:
            raise GaussNewtonError(f"`x0` must have at most 1 dimension; got shape {tuple(x0.shape)}.")
        x = x0.detach().reshape(-1).clone()
        x = x if x.is_floating_point() else x.to(torch.float64)
        check_working_dtype("`x0`", x.dtype)
        kind = "tensor"
    else:
        if np.iscomplexobj(x0):
            raise GaussNewtonError("`x0` must be real; got a complex value.")
        try:
            arr = np.atleast_1d(np.asarray(x0, dtype=float))
        except (TypeError, ValueError):
            raise GaussNewtonError(f"`x0` must be a number, an array or a tensor; got {type(x0).__name__}.") from None
        if arr.ndim > 1:
            raise GaussNewtonError(f"`x0` must have at most 1 dimension; got shape {arr.shape}.")
        x = torch.as_tensor(arr.copy(), dtype=torch.float64)
        kind = "ndarray" if isinstance(x0, np.ndarray) else "other"
    if x.numel() == 0:
        raise GaussNewtonError("`x0` must have at least one entry; got shape (0,).")
    check_finite_tensor("x0", x)
    return x, kind


def _tolerances(ftol: float | None, xtol: float | None, gtol: float | None,
                dtype: torch.dtype) -> tuple[float, float, float]:
    """SciPy's rules: None means 0; below ε warns (once); all below ε is an error."""
    eps = float(np.finfo(float).eps)
    work_eps = torch.finfo(dtype).eps
    out = []
    low = []
    for name, tol in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)):
        value = 0.0 if tol is None else check_nonneg(name, tol)
        if 0 < value < max(eps, work_eps):
            low.append(f"`{name}` = {value:g}")
        out.append(value)
    if all(v < eps for v in out):
        raise GaussNewtonError(f"At least one of the tolerances must be higher than machine epsilon ({eps:.2e}); "
                               f"got ftol = {ftol}, xtol = {xtol}, gtol = {gtol}.")
    if low:
        work = "float64" if work_eps == eps else str(dtype).replace("torch.", "")
        warnings.warn(f"{', '.join(low)} below the machine epsilon of {work} ({max(eps, work_eps):.2e}) effectively "
                      "disables the corresponding termination condition.", UserWarning, stacklevel=3)
    return out[0], out[1], out[2]


def _problem(fun: Callable[[Any], Any], jac: Any, x: torch.Tensor, kind: str, diff_step: Any,
             box: BoxConstraints | None, jac_sparsity: Any, workers: Any, method: str,
             memory_budget: float) -> tuple[FunctionProblem | NumpyFunctionProblem, bool]:
    """The problem for ``fun``: autodiff for a torch function, SciPy's machinery for a NumPy one.

    The first call decides: with a tensor ``x0`` ``fun`` is called on a tensor, otherwise on an
    ndarray (SciPy's contract); a tensor result means a torch function. A non-tensor ``x0``
    whose call fails is retried on a tensor (a torch function given a list).
    """
    bounds_np = None if box is None else (_to_numpy(box.lb), _to_numpy(box.ub))
    x_np = _to_numpy(x).astype(np.float64)
    first_error: Exception | None = None
    r0: Any = None
    if kind == "tensor":
        r0 = fun(x)
    else:
        try:
            r0 = fun(x_np.copy())
        except Exception as exc:  # a torch function given an ndarray: try a tensor  # noqa: BLE001
            first_error = exc
            try:
                r0 = fun(x.clone())
            except Exception:  # noqa: BLE001
                raise first_error from None
            if not isinstance(r0, torch.Tensor):
                raise first_error from None
    torch_fun = isinstance(r0, torch.Tensor)
    fd = isinstance(jac, str)
    if jac_sparsity is not None:
        if method == "lm":
            raise GaussNewtonError("method='lm' does not support `jac_sparsity`.")
        if callable(jac) or (jac is None and torch_fun):
            jac_sparsity = None  # SciPy ignores it with an analytic Jacobian
    if torch_fun and not fd:  # FunctionProblem casts the residuals to x's dtype and explains autodiff failures
        problem = FunctionProblem(fun, x, jac=jac, memory_budget=memory_budget, r0=r0.detach().to(x.device))
        return problem, kind == "ndarray"
    f_np: Callable[[Any], Any]
    if torch_fun:  # finite differences asked for a torch function: call it on tensors
        def f_np(z: Any) -> Any:
            return as_residual_array(fun(torch.as_tensor(z, dtype=x.dtype, device=x.device)))
        numpy_mode = kind == "ndarray"
    else:
        f_np = fun
        numpy_mode = kind != "tensor"
    r0_np = as_residual_array(r0, keep_dtype=True)
    jac_arg = jac if jac is not None else "2-point"
    return NumpyFunctionProblem(f_np, x, jac=jac_arg, diff_step=diff_step, bounds=bounds_np,
                                jac_sparsity=_sparsity(jac_sparsity, r0_np.shape[0], x.shape[0]),
                                workers=workers, r0=r0_np), numpy_mode


def _sparsity(jac_sparsity: Any, n: int, p: int) -> Any:
    """Validate ``jac_sparsity`` (shape (N, p)); SciPy's grouping happens in approx_derivative."""
    if jac_sparsity is None:
        return None
    from scipy.sparse import csr_matrix, issparse

    mat = jac_sparsity if issparse(jac_sparsity) else np.atleast_2d(np.asarray(jac_sparsity))
    if tuple(mat.shape) != (n, p):
        raise GaussNewtonError(f"`jac_sparsity` has wrong shape: expected {(n, p)}, got {tuple(mat.shape)}.")
    from scipy.optimize._numdiff import group_columns

    mat = csr_matrix(mat)
    return mat, group_columns(mat)


_JAC_SCALING_MAX_P = 32  # x_scale=None: MINPACK's diag(JᵀJ) scaling up to this many parameters, ρI beyond


def _x_scale(x_scale: Any, x: torch.Tensor, is_op: bool) -> tuple[torch.Tensor | None, str]:
    """(fixed D = 1/x_scale², or None) and the default-rule choice ``"jac"``/``"fixed"``.

    With ``x_scale=None``, "jac" for p ≤ 32, ρI beyond (measured in docs/choosing.md: on the 42
    NIST/MGH problems, p ≤ 11, diag scaling reaches the best cost on 39 and ρI on 38 (ρI stops
    at xtol after tiny first steps on Misra1a from both starts; diag misses BoxBOD start 1); on
    eight standard problems with
    p = 50–100 and on networks ρI takes as many or fewer evaluations, and on the p = 1,008 tanh
    network of benchmarks/BLACKBOX.md the diag scaling does not reach SciPy's cost in 150).
    """
    if x_scale is None:
        return None, "fixed" if is_op or x.shape[0] > _JAC_SCALING_MAX_P else "jac"
    if isinstance(x_scale, str):
        if x_scale != "jac":
            raise GaussNewtonError(f"`x_scale` must be 'jac' or array_like with positive numbers; got {x_scale!r}.")
        if is_op:
            raise GaussNewtonError("x_scale='jac' can't be used when `jac` returns LinearOperator.")
        return None, "jac"
    try:
        arr = np.asarray(x_scale.detach().cpu() if isinstance(x_scale, torch.Tensor) else x_scale)
        valid = not np.iscomplexobj(arr) and bool(np.all(np.isfinite(arr.astype(float))) and np.all(arr > 0))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise GaussNewtonError(f"`x_scale` must be 'jac' or array_like with positive numbers; got {x_scale!r}.")
    arr = arr.astype(float)
    if arr.ndim == 0:
        arr = np.full(x.shape[0], float(arr))
    if arr.shape != tuple(x.shape):
        raise GaussNewtonError(f"Inconsistent shapes between `x_scale` {arr.shape} and `x0` {tuple(x.shape)}.")
    scale = torch.as_tensor(arr, dtype=x.dtype, device=x.device)
    return 1.0 / scale ** 2, "fixed"


def _wrap_callback(callback: Callable[..., Any] | None,
                   numpy_mode: bool) -> Callable[[IterationInfo], bool] | None:
    """SciPy's callback protocol on top of :class:`IterationInfo` (True or StopIteration stops)."""
    if callback is None:
        return None
    if not callable(callback):
        raise GaussNewtonError(f"`callback` must be callable or None; got {type(callback).__name__}.")
    try:
        params = set(inspect.signature(callback).parameters)
    except (TypeError, ValueError):
        params = set()
    new_style = params == {"intermediate_result"}

    def wrapped(info: IterationInfo) -> bool:
        conv = _to_numpy if numpy_mode else (lambda t: t)
        if new_style:
            from scipy.optimize import OptimizeResult

            arg: Any = OptimizeResult(x=conv(info.params), fun=None if info.outputs is None else conv(info.outputs),
                                      nit=info.iteration, nfev=info.nfev, cost=info.cost)
        else:
            arg = conv(info.params) if numpy_mode else info
        try:
            return bool(callback(arg))
        except StopIteration:
            return True

    return wrapped
