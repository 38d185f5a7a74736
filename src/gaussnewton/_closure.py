r"""The closure side of :class:`gaussnewton.optim.GaussNewton`.

What an opaque closure returned, its Jacobian by batched reverse mode, and the objective the
shared Stepper minimizes.

The closure reads the module's parameters directly, so the Jacobian of its output with respect
to the optimizer's parameters is built by reverse mode: one batched VJP
(``torch.autograd.grad(..., is_grads_batched=True)``) over the ``N`` output basis vectors,
chunked to a memory budget. For the matrix-free CG solver only products are needed: ``Jᵀu``
is one VJP and ``Jv`` one double-backward VJP (the derivative of ``u ↦ Jᵀu`` in ``u``), so
``J`` is never formed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ._errors import GaussNewtonError
from ._objective import Linearization, Objective
from .distributed import Reducer
from .losses import Curvature, Loss, Squared, check_labels, get_loss
from .operators import DenseOperator, FunctionOperator

__all__ = ["Closure", "closure_jacobian", "closure_operator"]

_LANE_COPIES = 4  # peak bytes per batched-VJP lane ≈ 4 × (p floats): result row + grad buffers

Closure = Callable[[], Any]


def closure_jacobian(output: torch.Tensor, params: Sequence[torch.Tensor], memory_budget: float) -> torch.Tensor:
    """Dense Jacobian of ``output`` (flattened) with respect to ``params`` (concatenated).

    One batched reverse pass per chunk of output basis vectors (``is_grads_batched``); a
    parameter that ``output`` does not depend on gets zero columns.

    Args:
        output: tensor with a graph to ``params``, N entries.
        params: the leaf tensors, p entries in total.
        memory_budget: bytes; bounds the number of basis vectors per batched VJP.

    Returns:
        torch.Tensor: J of shape (N, p).
    """
    n_out = output.numel()
    p = sum(q.numel() for q in params)
    lane = _LANE_COPIES * max(p, 1) * output.element_size()
    chunk = max(1, min(n_out, int(memory_budget // lane)))
    basis = torch.eye(n_out, dtype=output.dtype, device=output.device)
    rows = []
    for start in range(0, n_out, chunk):
        seeds = basis[start : start + chunk].reshape(-1, *output.shape)
        with warnings.catch_warnings():
            # vmap's fallback for an op without a batching rule only costs speed (it loops).
            warnings.filterwarnings("ignore", message=".*performance drop.*")
            grads = torch.autograd.grad(output, params, seeds, retain_graph=True, allow_unused=True,
                                        is_grads_batched=True)
        rows.append(_flat_columns(grads, params, seeds.shape[0]))
    return torch.cat(rows)


def closure_operator(output: torch.Tensor, params: Sequence[torch.Tensor], curvature: Curvature) -> FunctionOperator:
    """``A = BJ`` as a matrix-free operator (for CG): ``Aᵀw`` by a VJP, ``Av`` by double backward.

    ``Jv`` is the derivative of the linear map ``u ↦ Jᵀu`` in ``u`` along ``v``, so a forward
    pass never has to be replayed (the closure is opaque).

    Args:
        output: tensor with a graph to ``params``, N entries.
        params: the leaf tensors, p entries in total.
        curvature: the loss factor ``B`` at ``output``.

    Returns:
        FunctionOperator: shape (N, p).
    """
    p = sum(q.numel() for q in params)
    dummy = torch.zeros_like(output, requires_grad=True)
    jt_dummy = torch.autograd.grad(output, params, dummy, create_graph=True, allow_unused=True)
    live = [(g, q) for g, q in zip(jt_dummy, params, strict=True) if g is not None]

    def jtu(w: torch.Tensor) -> torch.Tensor:
        grads = torch.autograd.grad(output, params, w.reshape(output.shape), retain_graph=True, allow_unused=True)
        return _flat_columns(grads, params, None)

    def jv(v: torch.Tensor) -> torch.Tensor:
        pieces = dict(zip((id(q) for q in params), torch.split(v, [q.numel() for q in params]), strict=True))
        if not live:
            return torch.zeros(output.numel(), dtype=output.dtype, device=output.device)
        (out,) = torch.autograd.grad([g for g, _ in live], dummy, [pieces[id(q)].view_as(q) for _, q in live],
                                     retain_graph=True, allow_unused=True)
        return torch.zeros_like(output).reshape(-1) if out is None else out.reshape(-1)

    return FunctionOperator((output.numel(), p), lambda v: curvature.apply(jv(v)),
                            lambda w: jtu(curvature.apply_t(w)), None, output.dtype, output.device)


def _flat_columns(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor],
                  batch: int | None) -> torch.Tensor:
    """Concatenate per-parameter gradients (None → zeros) into (batch, p) or (p,)."""
    lead = () if batch is None else (batch,)
    parts = [torch.zeros(*lead, q.numel(), dtype=q.dtype, device=q.device) if g is None else g.reshape(*lead, -1)
             for g, q in zip(grads, params, strict=True)]
    return torch.cat(parts, dim=-1)


@dataclass(frozen=True)
class _Evaluation:
    """One closure call: prediction u (n, ...) or (N,), target y, the loss, n samples."""

    u: torch.Tensor
    y: torch.Tensor
    loss: Loss
    n: int

    def cost(self, reducer: Reducer | None = None, n_total: int | None = None) -> float:
        """R = (1/n) Σ_j ℓ(u_j, y_j) (NaN if non-finite), summed over the shards of ``reducer``."""
        total = self.loss.value(self.u.detach(), self.y).sum()
        if reducer is not None:
            total = reducer.sum(total)
        c = float(total) / (n_total or self.n)
        return c if math.isfinite(c) else math.nan


def _evaluate(closure: Closure, grad: bool) -> _Evaluation:
    """Call the closure and validate what it returned (see :class:`GaussNewton`)."""
    with torch.set_grad_enabled(grad):
        out = closure()
    if isinstance(out, torch.Tensor):
        if out.ndim == 0:
            raise GaussNewtonError(
                "`closure` must return the residual vector (prediction − target) of shape (n,) or (n, k), "
                "or a (prediction, target, loss) triple; got a scalar (0-d tensor). Return the residuals, "
                "not the loss, and do not call backward() in the closure."
            )
        loss: Loss = Squared()
        u, y = out, torch.zeros((), dtype=out.dtype, device=out.device)
    elif isinstance(out, (tuple, list)) and len(out) == 3:
        u, y, loss = out[0], out[1], get_loss(out[2])
        if not isinstance(u, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise GaussNewtonError(
                "`closure` must return (prediction, target, loss) with tensors for prediction and target; "
                f"got ({type(u).__name__}, {type(y).__name__}, ...)."
            )
        if u.ndim == 0:
            raise GaussNewtonError("`closure` prediction must have a sample dimension (n,) or (n, k); got a scalar.")
        if loss.multi_output:
            if u.ndim != 2 or y.shape != (u.shape[0],):
                raise GaussNewtonError(
                    f"`closure` for {loss.name} must return logits (n, k) and labels (n,); "
                    f"got prediction {tuple(u.shape)} and target {tuple(y.shape)}."
                )
            k = u.shape[1]
            if y.is_floating_point() and not bool(torch.all(y == y.round())) or (
                    y.numel() and not (0 <= int(y.min()) and int(y.max()) < k)):
                raise GaussNewtonError(
                    f"`closure` labels for {loss.name} must be integers in [0, {k}) (k = {k} logits); "
                    f"got values in [{float(y.min()):g}, {float(y.max()):g}]."
                )
            y = y.long()
        elif y.shape != u.shape:
            if y.numel() != u.numel():
                raise GaussNewtonError(
                    f"`closure` target must have the prediction's shape {tuple(u.shape)}; got {tuple(y.shape)}."
                )
            y = y.reshape(u.shape)
        check_labels("`closure` labels", loss, y)  # logistic: in [0, 1] (cross-entropy is checked above)
        y = y.detach()
    else:
        raise GaussNewtonError(
            "`closure` must return a residual tensor (n,) or (n, k) or a (prediction, target, loss) triple; "
            f"got {type(out).__name__}."
        )
    if not u.is_floating_point():
        raise GaussNewtonError(f"`closure` must return floating-point values; got dtype {u.dtype}.")
    if grad and not u.requires_grad:
        raise GaussNewtonError(
            "`closure` output does not depend on the optimizer's parameters (it does not require grad): "
            "was it computed under torch.no_grad() or detached?"
        )
    return _Evaluation(u, y, loss, int(u.shape[0]))


class _ClosureObjective(Objective):
    """The mean loss of an opaque closure, linearized at the parameters of its last graph.

    ``evaluate`` writes a trial θ into the parameters, calls the closure under no_grad and
    writes the linearization point back at once, so the products of a matrix-free operator
    (which backpropagate through the closure's graph) always see the parameters it was built at.
    """

    def __init__(self, closure: Closure, params: list[torch.Tensor], ev: _Evaluation, n_total: int,
                 reducer: Reducer, memory_budget: float, theta: torch.Tensor, weight_decay: float = 0.0) -> None:
        super().__init__(None, ev.loss, ev.y, 1.0 / n_total, float(n_total), reducer, weight_decay)
        self.closure, self.params, self.ev, self.n_total = closure, params, ev, n_total
        self.memory_budget, self.theta_lin, self.keep_graph = memory_budget, theta, False

    def evaluate(self, theta: torch.Tensor) -> tuple[torch.Tensor, float]:  # noqa: D102
        _write(self.params, theta, self.keep_graph)
        try:
            ev = _evaluate(self.closure, grad=False)
        finally:
            _write(self.params, self.theta_lin, self.keep_graph)
        return ev.u.detach(), ev.cost(self.reducer, self.n_total) + self.penalty(theta)

    def linearize(self, theta: torch.Tensor, u: torch.Tensor, dense: bool | None) -> Linearization:  # noqa: D102
        curv = self.loss.curvature(u, self.target)
        self.keep_graph = not dense  # matrix-free products backpropagate through the closure
        with torch.enable_grad():
            if dense:
                jac = closure_jacobian(self.ev.u, self.params, self.memory_budget)
                return self.linearization(DenseOperator(curv.rows(jac)), DenseOperator(jac), curv, theta)
            return self.linearization(closure_operator(self.ev.u, self.params, curv), None, curv, theta)


def _write(params: Sequence[torch.Tensor], theta: torch.Tensor, keep_graph: bool = False) -> None:
    """Copy the flat vector θ into the parameters (in place).

    With ``keep_graph`` the write goes through ``.data`` so that autograd's version counters
    do not change: the matrix-free operator still backpropagates through the closure's graph,
    which saved these parameters, and every product is taken after θ₀ has been restored.
    """
    for q, v in zip(params, torch.split(theta, [q.numel() for q in params]), strict=True):
        (q.data if keep_graph else q).copy_(v.view_as(q))
