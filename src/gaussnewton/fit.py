r"""Full-batch training of a ``torch.nn.Module`` by Gauss–Newton, Levenberg–Marquardt or GD.

Objective (spec Convention A): the empirical risk :math:`R(u) = \frac1n\sum_j \ell(u_j, y_j)`
of the model outputs ``u = model(X)``. With ``J_m`` the Jacobian of the model outputs and α
the output scale (``model.alpha`` for :class:`~gaussnewton.MLP`), the paper's quantities are
``J_F = J_m/α``, ``K = J_F J_Fᵀ/n`` and the GN-DT step (eq. 13)

.. math::
   \theta_{k+1} = \theta_k - \eta\,\alpha^{-2}\,(J_F^\top\Lambda J_F/n + \rho_k I)^{-1}\nabla_\theta R
               = \theta_k - \eta\,(J_m^\top\Lambda J_m + n\alpha^2\rho_k I)^{-1} J_m^\top g,

solved in p×p or n×n form (push-through) as :mod:`gaussnewton.linsolve` decides. ``"gd"`` is
the gradient-flow baseline :math:`\theta_{k+1} = \theta_k - \eta\,\alpha^{-2}\nabla_\theta R`,
whose function-space dynamics is ``u̇ = −K r``. ``dynamics="euler"`` reads the same updates as
Euler steps of the continuous flows (eq. 6) with Δt = ``lr`` and records ``t = k·Δt``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from ._bayes import BayesianRegularization
from ._checkpoint import Checkpointer, model_digest, tensor_digest
from ._errors import GaussNewtonError, check_choice, check_nonneg, check_positive, check_positive_int, to_float_tensor
from ._objective import Objective
from ._state import SolverState
from ._stepper import TABLE_HEADER, Stepper, Stopping, print_row
from ._validation import ValidationMonitor
from .damping import DampingSchedule
from .distributed import Reducer, resolve_group
from .linsolve import DEFAULT_MEMORY_BUDGET, LinearSolver, get_solver
from .losses import Loss, check_labels, get_loss
from .problems.network import NetworkProblem
from .result import FitResult, History, IterationInfo, Termination
from .steps import StepRule, infer_method, make_step_rule

__all__ = ["fit", "prepare_data"]


def _is_integer_array(x: Any) -> bool:
    """True for an integer (not bool) tensor or numpy array: embedding indices."""
    if isinstance(x, torch.Tensor):
        return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer)


def prepare_data(model: nn.Module, x: Any, y: Any, loss: Loss) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and convert ``X`` and ``y`` to the model's dtype and device.

    Args:
        model: the network (its first parameter sets dtype and device).
        x: inputs (n, ...); an integer tensor or array stays integer (indices for
            ``nn.Embedding``), anything else becomes the model's floating dtype.
        y: targets (n,) (or (n, k)); integer class labels for cross-entropy.
        loss: the loss (decides whether y holds class labels).

    Returns:
        tuple[torch.Tensor, torch.Tensor]: X and y as tensors.

    Raises:
        GaussNewtonError: wrong types, shapes or an empty data set.
        NonFiniteError: NaN or Inf in X or y.
    """
    if not isinstance(model, nn.Module):
        raise GaussNewtonError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    first = next(iter(model.parameters()), None)
    if first is None:
        raise GaussNewtonError("`model` has no parameters to train.")
    if not first.is_floating_point():
        raise GaussNewtonError(f"`model` parameters must be floating point; got {first.dtype}.")
    if _is_integer_array(x):  # indices for nn.Embedding: kept as integers (never differentiated)
        xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(first.device).long()
    else:
        xt = to_float_tensor("X", x, dtype=first.dtype, device=first.device)
    if xt.ndim < 1 or xt.shape[0] == 0:
        raise GaussNewtonError(f"`X` must have at least one sample (n >= 1); got shape {tuple(xt.shape)}.")
    if loss.multi_output:
        yt = torch.as_tensor(y.cpu().numpy() if isinstance(y, torch.Tensor) else y)
        if yt.is_floating_point() and not bool(torch.all(yt == yt.round())):
            raise GaussNewtonError("`y` must hold integer class labels for cross-entropy; got non-integer values.")
        yt = yt.long().to(first.device)
        if yt.ndim != 1:
            raise GaussNewtonError(f"`y` must be 1-D class labels of shape ({xt.shape[0]},); got {tuple(yt.shape)}.")
    else:
        yt = to_float_tensor("y", y, dtype=first.dtype, device=first.device)
    if yt.shape[0] != xt.shape[0]:
        raise GaussNewtonError(
            f"`X` and `y` must have the same number of samples; got X with {xt.shape[0]} and y with {yt.shape[0]}."
        )
    return xt, yt


def fit(
    model: nn.Module,
    X: Any,
    y: Any,
    *,
    method: str | None = None,
    damping: DampingSchedule | str | float | None = None,
    lr: float = 1.0,
    steps: int = 100,
    loss: str | Loss = "squared",
    dynamics: str = "discrete",
    callback: Callable[[IterationInfo], bool | None] | None = None,
    track_kernel: bool = False,
    alpha: float | None = None,
    solver: str | LinearSolver = "auto",
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    target_loss: float | None = None,
    params: Iterable[torch.Tensor] | None = None,
    progress: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 10,
    verbose: int = 0,
    process_group: Any = "auto",
    weight_decay: float = 0.0,
    weight_decay_ref: str = "zero",
    validation: tuple[Any, Any] | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    regularization: str | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> FitResult:
    """Train ``model`` on full-batch data (X, y) by GN, LM or gradient descent.

    Args:
        model: any ``nn.Module`` mapping X (n, ...) to outputs (n,) or (n, k); trained in place.
        X: inputs (tensor, array or list), n rows.
        y: targets (n,) (or (n, k)); class labels (n,) for ``loss="cross_entropy"``.
        method: ``"lm"`` (gain-ratio trust region, rejected steps retried, the cost never
            rises; the default, unless ``damping`` is a paper schedule or a number, or
            ``dynamics`` is ``"euler"``/``"flow"``: then ``"gn"``), ``"gn"`` (the paper's
            GN-DT, eq. 13, every finite step accepted), ``"gn_halving"`` (GN-DT with η halved
            until the cost decreases) or ``"gd"`` (gradient descent / gradient flow). A
            ``"gn"``/``"gd"`` run that ends above its initial loss reports
            ``Termination.LOSS_INCREASED`` (success False).
        damping: schedule for ``"gn"``/``"gn_halving"`` (default: ρ = 0 if p < n,
            :class:`Adaptive` (κ = 1) if p ≥ n) or trust-region rule for ``"lm"`` (default
            :class:`Nielsen`); a number means a constant ρ. ρ is in the paper's units
            (Convention A).
        lr: step size η (Euler Δt for ``dynamics="euler"``).
        steps: number of steps (trial steps for ``"lm"``).
        loss: ``"squared"``, ``"pseudo_huber"``, ``"log_cosh"``, ``"logistic"``,
            ``"cross_entropy"`` or a Loss; non-squared losses use the generalized GN matrix
            JᵀΛJ.
        dynamics: ``"discrete"``, ``"euler"`` (records continuous time ``t``) or ``"flow"``: the
            continuous GN/LM (``"gn"``) or gradient (``"gd"``) flow integrated with error control
            and reported at ``t_k = k·lr`` up to ``steps·lr`` (:mod:`gaussnewton.flow`).
        callback: called after each step with an IterationInfo; return True to stop.
        track_kernel: record λ_min, λ_max of K_t (of G_t = J_FᵀJ_F/n if p < n) every step.
        alpha: output scale α for the paper's units (default ``model.alpha`` or 1).
        solver: linear solver (see :func:`gaussnewton.linsolve.get_solver`); ``"truncated_cg"``
            takes inexact steps (Jacobi-preconditioned CG, ≤ 20 iterations): cheaper steps
            whose number grows with the conditioning of the kernel, unlike exact steps (faster
            on well-conditioned problems, slower on the paper's; docs/choosing.md).
        memory_budget: bytes for dense Jacobians and Gram matrices.
        target_loss: stop as soon as the loss ≤ this value.
        params: train only these parameters of ``model`` (default: all with requires_grad).
        progress: show a tqdm progress bar.
        checkpoint: file path; the run state is saved there atomically every
            ``checkpoint_every`` steps and at the end, and a run started with an existing
            checkpoint of the same configuration continues from it (same iterates as an
            uninterrupted run). ``steps`` counts from the original start. A checkpoint of
            another run (other settings, data X and y, model structure or initial parameters
            θ₀; the data by a cheap hash of moments) is refused with an error naming what
            differs. If the run is interrupted (Ctrl-C) or the model raises, the model keeps
            the last accepted parameters and a final checkpoint is written before the
            exception propagates; calling ``fit`` again with the same model resumes.
        checkpoint_every: steps between checkpoints.
        verbose: 0 silent, 1 a final line, 2 a SciPy-style line per step.
        process_group: data parallelism (:mod:`gaussnewton.distributed`): each rank passes its
            own shard of (X, y); ``"auto"`` uses the default group when torch.distributed is
            initialized with more than one process, None trains this process alone.
        weight_decay: λ ≥ 0: minimize ``R + λ/2·‖θ − θ_ref‖²``, built exactly into the damped
            system (``JᵀΛJ/n + λI + α²ρI`` in both regimes and every solver; under data
            parallelism added once). ``loss`` in the result is the whole objective;
            ``data_loss`` and ``penalty`` separate it.
        weight_decay_ref: θ_ref: ``"zero"`` (plain L2) or ``"init"`` (θ₀: stay near the
            initialization, the NTK view of the paper).
        validation: ``(X_val, y_val)``: the validation loss and its metric (R² for regression
            losses, accuracy for ``logistic``/``cross_entropy``) are recorded every step at the
            cost of one forward pass (``history["val_loss"]``, ``["val_metric"]``).
        patience: with ``validation``: stop after this many accepted steps without a lower
            validation loss and return the parameters of the best one
            (``Termination.EARLY_STOP``; MATLAB's ``max_fail``). Default 6 when ``validation``
            is given.
        min_delta: with ``validation``: a step counts as an improvement only if it lowers the
            best validation loss by more than this (scikit-learn's ``tol``).
        regularization: ``"bayesian"``: MacKay / Foresee–Hagan Bayesian regularization
            (MATLAB ``trainbr``): the weight decay λ is re-estimated before every step from
            the effective number of parameters ``γ = Σ w_i/(w_i + c)`` (``w_i`` the
            eigenvalues of the Gram matrix the step factors, ``c = nλ``),
            ``α = γ/(2‖θ − θ_ref‖²)``, ``β = (N − γ)/(2Σr²)``, ``c = α/β``
            (:mod:`gaussnewton._bayes`); history records ``gamma``, ``bayes_alpha``,
            ``bayes_beta``. Squared loss, exact solvers (not ``"cg"``), D = I.
        rtol: relative error tolerance of the ODE solver for ``dynamics="flow"`` (> 0).
        atol: absolute error tolerance on θ of the ODE solver for ``dynamics="flow"`` (> 0).

    Returns:
        FitResult: final parameters, loss, status and per-step history.

    Raises:
        GaussNewtonError: bad arguments (each message names the argument).
        NonFiniteError: NaN/Inf in X, y or the initial loss.

    Example:
        >>> import torch, gaussnewton as gn
        >>> X, y = gn.datasets.single_index(50, 3, seed=0)
        >>> net = gn.MLP(3, width=100, alpha=4.0, seed=0)     # p = 300 > n = 50
        >>> res = gn.fit(net, X, y, method="gn", damping=gn.damping.Adaptive(1.0), steps=20)
        >>> res.loss < 1e-4 * res.initial_loss
        True
    """
    dynamics = check_choice("dynamics", dynamics, ("discrete", "euler", "flow"))
    method = check_choice("method", infer_method(damping, dynamics != "discrete") if method is None else method,
                          ("gn", "gn_halving", "lm", "gd"))
    lr = check_positive("lr", lr)
    steps = check_positive_int("steps", steps)
    if verbose not in (0, 1, 2):
        raise GaussNewtonError(f"`verbose` must be 0, 1 or 2; got {verbose!r}.")
    weight_decay = check_nonneg("weight_decay", weight_decay)
    weight_decay_ref = check_choice("weight_decay_ref", weight_decay_ref, ("zero", "init"))
    if patience is not None and validation is None:
        raise GaussNewtonError("`patience` needs `validation=(X_val, y_val)`; got patience without validation.")
    patience = check_positive_int("patience", 6 if patience is None else patience)
    min_delta = check_nonneg("min_delta", min_delta)
    if method == "gd" and solver != "auto":
        raise GaussNewtonError(f"`solver` is not used by method='gd' (no linear system); got {solver!r}. "
                               "Leave it unset, or use method='gn' or 'lm'.")
    if target_loss is not None and (isinstance(target_loss, bool) or not isinstance(target_loss, (int, float))):
        raise GaussNewtonError(f"`target_loss` must be a real number or None; got {type(target_loss).__name__} "
                               f"{target_loss!r}.")
    if regularization is not None:
        check_choice("regularization", regularization, ("bayesian",))
    loss_fn = get_loss(loss)
    xt, yt = prepare_data(model, X, y, loss_fn)
    problem = NetworkProblem(model, xt, params=params, memory_budget=memory_budget)
    yt = _match_outputs(problem, yt, loss_fn, "y")
    a = check_positive("alpha", alpha if alpha is not None else float(getattr(model, "alpha", 1.0)))
    reducer = Reducer(resolve_group(process_group))
    reducer.check_same(dict(p=problem.n_params, outputs=problem.output_shape[1:], dtype=problem.dtype,
                            method=method, damping=damping, solver=solver, loss=loss_fn, lr=lr, steps=steps,
                            dynamics=dynamics, alpha=a, memory_budget=memory_budget, target_loss=target_loss,
                            weight_decay=weight_decay, weight_decay_ref=weight_decay_ref, regularization=regularization,
                            validation=validation is not None, track_kernel=track_kernel), device=xt.device)
    n = int(reducer.sum(torch.tensor(xt.shape[0], device=xt.device)))  # samples over all shards
    n_rows = int(reducer.sum(torch.tensor(problem.n_outputs, device=xt.device)))  # outputs over all shards
    theta0 = reducer.broadcast(problem.get_flat())  # identical start on every rank
    problem.set_flat(theta0)
    objective = Objective(problem, loss_fn, yt, 1.0 / n, n * a * a, reducer, weight_decay,
                          theta0.clone() if weight_decay_ref == "init" else None)
    monitor = None
    if validation is not None:
        monitor = _validation_monitor(model, validation, loss_fn, params, memory_budget, patience, reducer, min_delta)
        monitor.start(theta0)
    p = problem.n_params
    # the paper's default: undamped GN below the interpolation threshold, adaptive damping above
    default = {"gn": "none" if p < n_rows else "adaptive", "lm": "nielsen"}.get(method.replace("_halving", ""))
    rule = make_step_rule(method, damping, default=default, lr=lr)  # gd: θ − η·∇R/α² (steps.py)
    linsolver = get_solver(solver, n_rows, p, theta0.element_size(), memory_budget) if rule.uses_solver else None
    if dynamics == "flow":  # continuous time: gaussnewton.flow (ODE solver, results at t_k = k·lr)
        from .flow import fit_flow
        return fit_flow(objective, rule, linsolver, problem, dict(dt=lr, steps=steps, rtol=rtol, atol=atol,
                        target_cost=target_loss, callback=callback), checkpoint=checkpoint, validation=validation,
                        regularization=regularization)
    bar = _progress_bar(steps, method) if progress else None

    def on_row(hist: History) -> None:
        if bar is not None:
            _advance(bar, hist)
        if verbose == 2:
            print_row(hist)

    if verbose == 2:
        print(TABLE_HEADER)
    ckpt = None
    if checkpoint is not None:
        fingerprint = dict(data=tensor_digest("X", xt, reducer) + "; " + tensor_digest("y", yt, reducer),
                           model=model_digest(model, problem.layout.names, problem.layout.shapes),
                           theta0=tensor_digest("θ₀", theta0, samples=False),
                           n=n, p=p, outputs=problem.output_shape[1:], method=method, damping=damping,
                           lr=lr, loss=loss_fn, alpha=a, solver=solver, dtype=theta0.dtype, target_loss=target_loss,
                           weight_decay=weight_decay, weight_decay_ref=weight_decay_ref, regularization=regularization,
                           validation=None if validation is None else (patience, min_delta),
                           world=1 if not reducer.active else torch.distributed.get_world_size(reducer.group))
        # the model left at the saved θ (an interrupted run, same model passed again) resumes, except
        # where θ₀ enters the objective (weight_decay_ref="init": the model no longer holds it)
        ckpt = Checkpointer(checkpoint, checkpoint_every, fingerprint, writer=reducer.rank == 0,
                            start=theta0 if weight_decay_ref == "zero" else None)
    bayes = _bayesian(regularization, loss_fn, rule, linsolver)
    stepper = Stepper(rule, linsolver, Stopping(max_steps=steps, target_cost=target_loss), callback=callback,
                      track_kernel=track_kernel, on_row=on_row, monitor=monitor, bayesian=bayes)
    try:
        state = stepper.solve(objective, theta0, start_name="model(X)", checkpointer=ckpt)
    except BaseException:  # Ctrl-C, or the model raised: keep what was accepted, then re-raise
        _keep_last_accepted(problem, stepper.state, ckpt)
        raise
    finally:
        if bar is not None:
            bar.close()
    term, history = state.termination, state.history
    assert term is not None and history is not None
    if term is Termination.EARLY_STOP and monitor is not None and monitor.best_theta is not None:
        state.theta, state.cost = monitor.best_theta, objective.evaluate(monitor.best_theta)[1]
    problem.set_flat(state.theta)
    if verbose >= 1:
        print(f"{term.message} Steps {len(history)}, initial loss {state.cost0:.4e}, final loss {state.cost:.4e}.")
    hist = history.as_dict()
    hist["loss"] = hist["cost"]
    hist["data_loss"] = [c - pen for c, pen in zip(hist["cost"], hist["penalty"], strict=True)]
    if monitor is not None:
        hist.update(monitor.columns(len(history)))
    if dynamics == "euler":
        hist["t"] = [lr * (k + 1) for k in range(len(history))]
    penalty = objective.penalty(state.theta)
    return FitResult(params=state.theta, loss=state.cost, initial_loss=state.cost0, steps=len(history),
                     status=term.value, message=term.message, success=term.success, termination=term, history=hist,
                     data_loss=state.cost - penalty, penalty=penalty,
                     best_step=None if monitor is None else monitor.best_step,
                     val_loss=None if monitor is None else monitor.evaluate(state.theta)[0])


def _keep_last_accepted(problem: NetworkProblem, state: SolverState | None, ckpt: Checkpointer | None) -> None:
    """Write the last accepted θ into the model and (if configured) a final checkpoint.

    Called while an exception (KeyboardInterrupt included) propagates out of the run, so it never
    raises itself: a checkpoint that cannot be written leaves the previous one in place.
    """
    if state is None:  # the run had not started (θ₀ is still in the model)
        return
    problem.set_flat(state.theta)
    if ckpt is not None:
        try:
            ckpt.save(state.to_dict())
        except Exception:  # noqa: BLE001, S110 - the original exception is the one to report
            pass


def _bayesian(regularization: str | None, loss: Loss, rule: StepRule,
              solver: LinearSolver | None) -> BayesianRegularization | None:
    """The Bayesian regularizer, refusing the settings its formulas do not cover."""
    if regularization is None:
        return None
    if loss.name != "squared":
        raise GaussNewtonError(f"`regularization='bayesian'` needs loss='squared' (its β is a Gaussian noise "
                               f"precision); got loss={loss.name!r}.")
    if solver is None or not solver.needs_dense:
        raise GaussNewtonError("`regularization='bayesian'` needs the eigenvalues of an exact solver "
                               f"(solver='normal', 'kernel' or 'auto' within the memory budget); got "
                               f"{'method gd' if solver is None else repr(solver.name)}.")
    if rule.scaling == "diag":
        raise GaussNewtonError("`regularization='bayesian'` needs D = I; got a damping with scaling='diag'.")
    return BayesianRegularization()


def _match_outputs(problem: NetworkProblem, yt: torch.Tensor, loss: Loss, name: str) -> torch.Tensor:
    """Targets reshaped to the model's output shape (class labels stay (n,)), labels in range."""
    k = problem.output_shape[1] if loss.multi_output and len(problem.output_shape) == 2 else None
    check_labels(f"`{name}`", loss, yt, k)
    if loss.multi_output or tuple(yt.shape) == problem.output_shape:
        return yt
    if yt.numel() != problem.n_outputs:
        raise GaussNewtonError(f"`{name}` must match the model output shape {problem.output_shape}; "
                               f"got {tuple(yt.shape)}.")
    return yt.reshape(problem.output_shape)


def _validation_monitor(model: nn.Module, validation: Any, loss: Loss, params: Iterable[torch.Tensor] | None,
                        memory_budget: float, patience: int, reducer: Reducer,
                        min_delta: float) -> ValidationMonitor:
    """The monitor of ``validation=(X_val, y_val)`` (validated like X and y)."""
    if not isinstance(validation, (tuple, list)) or len(validation) != 2:
        size = f" of length {len(validation)}" if isinstance(validation, (tuple, list)) else ""
        raise GaussNewtonError(f"`validation` must be a pair (X_val, y_val); got {type(validation).__name__}{size}.")
    try:
        xv, yv = prepare_data(model, validation[0], validation[1], loss)
    except GaussNewtonError as exc:
        raise GaussNewtonError(f"`validation`: {exc}") from None
    problem = NetworkProblem(model, xv, params=params, memory_budget=memory_budget)
    return ValidationMonitor(problem.outputs, _match_outputs(problem, yv, loss, "validation y"), loss, patience,
                             reducer, min_delta)


def _progress_bar(total: int, method: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"fit[{method}]", leave=False)


def _advance(bar: Any, history: History) -> None:
    bar.update(1)
    bar.set_postfix(loss=f"{history.rows['cost'][-1]:.3e}", refresh=False)
