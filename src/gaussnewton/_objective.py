r"""The objective a :class:`~gaussnewton._stepper.Stepper` minimizes, and its linearization.

``cost(θ) = weight · Σ_j ℓ(f(θ)_j, y_j)`` for a problem ``f`` (outputs, Jacobians), a loss ℓ
and targets y. At an iterate the generalized Gauss–Newton model is ``m(s) = ½‖A s + h‖²``
(unweighted) with ``A = BJ``, ``BᵀB = ∂²ℓ`` and ``Bᵀh = ∂ℓ`` (:mod:`gaussnewton.losses`), so

.. math::  m(0) - m(s) = -h^\top A s - \tfrac12\|As\|^2, \qquad \nabla\mathrm{cost} = w\,A^\top h.

Units: ρ in a schedule's units is multiplied by ``unit`` before it enters
``(AᵀA + ρ_int D)``, and Gram eigenvalues are divided by ``unit`` before a schedule sees them.
:func:`~gaussnewton.least_squares` uses ``weight = unit = 1``; :func:`~gaussnewton.fit` uses
``weight = 1/n`` and ``unit = n·α²`` (the paper's Convention A); the optimizer ``weight = 1/n``
and ``unit = n``.

Data parallelism lives here and nowhere else: with an active reducer the cost is summed over
the shards and ``A`` is wrapped in a :class:`~gaussnewton.operators.ShardedOperator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .distributed import Reducer
from .losses import Curvature, Loss
from .operators import DenseOperator, FunctionOperator, LinearOperator, ShardedOperator, as_operator
from .problems.base import Problem

__all__ = ["Linearization", "Objective", "gain_ratio", "predicted_reduction"]


@dataclass
class Linearization:
    """The GN model at an iterate.

    Attributes:
        a: ``A = BJ`` (N, p) as an operator (sharded under data parallelism).
        h: (N,) this holder's rows of ``h``.
        jac: the unweighted ``J`` as an operator (None on the matrix-free path).
        grad: (p,) ``∇cost = weight·Aᵀh + λ·e`` (summed over shards; the penalty once).
        curvature: the loss factor ``B`` at the outputs.
        penalty: ``c = λ/weight``, the weight decay in the units of ``AᵀA`` (0: none).
        decay_e: (p,) ``e = θ − θ_ref`` (None without weight decay).
    """

    a: LinearOperator
    h: torch.Tensor
    jac: LinearOperator | None
    grad: torch.Tensor
    curvature: Curvature
    penalty: float = 0.0
    decay_e: torch.Tensor | None = None


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
        weight_decay: λ ≥ 0 of the Tikhonov term ``λ/2·‖θ − θ_ref‖²`` added to the cost.
        decay_ref: θ_ref (None: 0).
    """

    problem: Problem | None
    loss: Loss
    target: torch.Tensor
    weight: float
    unit: float
    reducer: Reducer = field(default_factory=lambda: Reducer(None))
    weight_decay: float = 0.0
    decay_ref: torch.Tensor | None = None

    def decay_offset(self, theta: torch.Tensor) -> torch.Tensor | None:
        """``e = θ − θ_ref`` (None without weight decay)."""
        if self.weight_decay == 0:
            return None
        return theta if self.decay_ref is None else theta - self.decay_ref

    def penalty(self, theta: torch.Tensor) -> float:
        """``λ/2·‖θ − θ_ref‖²`` (the same on every rank: the parameters are replicated)."""
        e = self.decay_offset(theta)
        return 0.0 if e is None else 0.5 * self.weight_decay * float(e @ e)

    def predicted(self, lin: Linearization, step: torch.Tensor) -> float:
        """Predicted cost reduction of the GN model: ``w·(m(0) − m(s)) − λ(eᵀs + ½‖s‖²)``."""
        slope, curvature = self.model_terms(lin, step)
        return slope - 0.5 * curvature

    def model_terms(self, lin: Linearization, step: torch.Tensor) -> tuple[float, float]:
        """``(−∇costᵀs, sᵀMs)`` of the GN model along s (M = w·AᵀA + λI): predicted = first − ½·second."""
        a, b = model_terms(lin.a, lin.h, step)
        slope, curvature = self.weight * a, self.weight * b
        if lin.decay_e is not None:
            slope -= self.weight_decay * float(lin.decay_e @ step)
            curvature += self.weight_decay * float(step @ step)
        return slope, curvature

    def cost(self, u: torch.Tensor) -> float:
        """The cost of outputs ``u`` (NaN if non-finite), summed over all shards."""
        c = float(self.reducer.sum(self.loss.value(u, self.target).sum())) * self.weight
        return c if math.isfinite(c) else math.nan

    def evaluate(self, theta: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Outputs (detached) and cost at θ."""
        assert self.problem is not None
        u = self.problem.outputs(theta).detach()
        return u, self.cost(u) + self.penalty(theta)

    def linearize(self, theta: torch.Tensor, u: torch.Tensor, dense: bool | None) -> Linearization:
        """Linearize at θ (outputs ``u`` already computed).

        ``dense``: True forms J (factored for Linear-layer networks), False gives products
        (factored J where available, else JVP/VJP), None only the gradient (products).
        """
        assert self.problem is not None
        curv = self.loss.curvature(u, self.target)
        jac: LinearOperator | None
        if dense is not None and getattr(self.problem, "structured", False):  # factored Jacobian
            sj = self.problem.structured_jacobian(theta)  # type: ignore[attr-defined]
            jac = sj
            if curv.sqrt_diag is not None:
                a = sj.scale_rows(curv.sqrt_diag)
            elif curv.blocks is not None:  # cross-entropy: per-sample blocks mix the output gradients
                a = sj.mix_rows(curv.blocks)
            else:
                a = sj
        elif dense:
            j = self.problem.jacobian(theta)
            jac, a = DenseOperator(j), DenseOperator(curv.rows(j))
        else:
            op = self.problem.operator(theta)
            jac = None
            a = FunctionOperator(op.shape, lambda v: curv.apply(op.mv(v)), lambda w: op.rmv(curv.apply_t(w)),
                                 None, op.dtype, op.device)
        return self.linearization(a, jac, curv, theta)

    def linearization(self, a: LinearOperator, jac: LinearOperator | None, curv: Curvature,
                      theta: torch.Tensor) -> Linearization:
        """Wrap local operators for the process group (if any) and form the gradient."""
        if self.reducer.active:
            a = ShardedOperator(a, self.reducer)
            jac = None if jac is None else ShardedOperator(jac, self.reducer)
        grad = self.weight * a.rmv(curv.h)
        e = self.decay_offset(theta)
        if e is None:
            return Linearization(a, curv.h, jac, grad, curv)
        return Linearization(a, curv.h, jac, grad + self.weight_decay * e.to(grad.dtype), curv,
                             self.weight_decay / self.weight, e)


def predicted_reduction(a: torch.Tensor | LinearOperator, h: torch.Tensor, step: torch.Tensor) -> float:
    """m(0) − m(s) for the GN model m(s) = ½‖A s + h‖² (unweighted): −hᵀAs − ½‖As‖²."""
    slope, curvature = model_terms(a, h, step)
    return slope - 0.5 * curvature


def model_terms(a: torch.Tensor | LinearOperator, h: torch.Tensor, step: torch.Tensor) -> tuple[float, float]:
    """``(−hᵀAs, ‖As‖²)``: the slope and curvature of the GN model along s (unweighted).

    Both inner products run over all rows (one all-reduce of two numbers when sharded).
    """
    op = as_operator(a)
    a_s = op.mv(step)
    terms = op.row_sum(torch.stack([h @ a_s, a_s @ a_s]))
    return float(-terms[0]), float(terms[1])


def secant_factor(slope: float, curvature: float, actual: float) -> float:
    """The factor on ρ that makes the damped model's curvature along s match the cost's.

    For the full damped step s = −(M + ρD)⁻¹∇cost, ``slope − curvature = ρ·sᵀDs`` (the damping's
    curvature) and the cost's own curvature along s, from its value, slope and the quadratic
    through them, is ``c = 2(slope − actual)``. The ρ' with ``sᵀMs + ρ'·sᵀDs = c`` is
    ``ρ·(c − curvature)/(slope − curvature)``: at a minimum where J vanishes (r = x² + 5) the GN
    model has no curvature and ρ·D must supply r·r''; Nielsen's cubic rule approaches that ρ only
    linearly. NaN when the quantities do not define it.
    """
    damping_curv = slope - curvature
    if not (math.isfinite(actual) and damping_curv > 0):
        return math.nan
    return (2.0 * (slope - actual) - curvature) / damping_curv


def gain_ratio(actual: float, predicted: float) -> float:
    """Actual / predicted reduction; −inf for a non-finite or non-decreasing trial."""
    if not math.isfinite(actual):
        return -math.inf
    if predicted <= 0:
        return math.inf if actual > 0 else -math.inf
    return actual / predicted
