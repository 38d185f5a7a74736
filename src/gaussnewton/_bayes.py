r"""Bayesian regularization (MacKay 1992; Foresee & Hagan 1997; MATLAB ``trainbr``).

The network is fitted to ``F(θ) = β·E_D + α·E_W`` with ``E_D = Σ_i r_i²`` (all N residuals) and
``E_W = ‖θ − θ_ref‖²``; the hyper-parameters are re-estimated at every iterate from the
evidence approximation, with the Gauss–Newton Hessian ``H = 2βJᵀJ + 2αI``:

.. math::
   \gamma = p - 2\alpha\,\mathrm{tr}\,H^{-1} = \sum_i \frac{w_i}{w_i + c}, \qquad
   \alpha = \frac{\gamma}{2E_W}, \qquad \beta = \frac{N - \gamma}{2E_D}, \qquad c = \frac{\alpha}{\beta},

where ``w_i`` are the nonzero eigenvalues of ``JᵀJ`` — the ``min(N, p)`` eigenvalues of the
m×m Gram matrix ``G`` the linear solver formed (the N×N kernel when N < p); γ is the effective
number of parameters. Without an eigendecomposition, ``γ = m − c·tr((G + cI)⁻¹)`` from one
Cholesky of ``G + cI`` and its inverse (``cholesky_inverse``): about twice a Cholesky, not an
``eigh``; with one (a schedule that needs λ_min) the eigenvalues are used directly.
In the library's objective ``cost = w·Σ ½r_i² + λ/2·‖θ − θ_ref‖²`` the ratio is
``c = λ/w`` (``fit``: ``λ = c/n``), i.e. Bayesian regularization is weight decay whose λ is
re-estimated before every step. The first iterate starts from ``c = 10⁻³·mean(w_i)`` unless a
``weight_decay`` is given (MATLAB starts from α = 0, which is degenerate when N ≤ p).

Reference: D. Foresee, M. Hagan, "Gauss-Newton approximation to Bayesian learning",
Proc. ICNN 1997; D. MacKay, "Bayesian interpolation", Neural Computation 4 (1992).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._objective import Linearization, Objective
from ._state import SolverState
from .linsolve import LinearSolver, Prepared

__all__ = ["BayesianRegularization"]

_START = 1e-3  # c₀ / mean(w_i) at the first iterate


@dataclass
class BayesianRegularization:
    """Re-estimates α, β (and so the weight decay) at every iterate; remembers the last values.

    Attributes:
        gamma: effective number of parameters γ.
        alpha: α (weight-prior precision).
        beta: β (noise precision).
    """

    gamma: float = math.nan
    alpha: float = math.nan
    beta: float = math.nan

    def update(self, obj: Objective, lin: Linearization, prepared: Prepared, solver: LinearSolver,
               state: SolverState) -> None:
        """New α, β, γ at ``state.theta``; rewrites λ, the cost, the gradient and the penalty of ``lin``."""
        n_res = lin.a.rows_total
        e_full = state.theta if obj.decay_ref is None else state.theta - obj.decay_ref
        e_w = float(e_full @ e_full)
        data_cost = state.cost - obj.penalty(state.theta)
        e_d = 2.0 * data_cost / obj.weight
        gamma, c = _effective_parameters(prepared, solver, obj.weight_decay / obj.weight)
        self.gamma = gamma
        self.alpha = gamma / (2.0 * max(e_w, 1e-300))
        self.beta = max(n_res - gamma, 1e-12 * n_res) / (2.0 * max(e_d, 1e-300))
        c_new = self.alpha / self.beta
        old = obj.weight_decay
        obj.weight_decay = c_new * obj.weight
        state.cost = data_cost + obj.penalty(state.theta)
        lin.grad = lin.grad + (obj.weight_decay - old) * e_full.to(lin.grad.dtype)
        lin.penalty, lin.decay_e = c_new, e_full


def _effective_parameters(prepared: Prepared, solver: LinearSolver, c: float) -> tuple[float, float]:
    """``(γ, c)`` at the ratio ``c`` (0: the documented start ``10⁻³·mean(w_i)``)."""
    gram = prepared.gram
    if prepared.eig is not None or gram is None:  # eigenvalues at hand (or no Gram: lstsq)
        w = solver.spectrum(prepared).double().clamp_min(0.0)
        c = c if c > 0 else _START * float(w.mean())
        return float((w / (w + c)).sum()), c
    m = gram.shape[0]
    if c <= 0:
        c = _START * float(gram.diagonal().double().mean())  # mean(w_i) = tr(G)/m
    mat = gram.double().clone()
    mat.diagonal().add_(c)
    factor = torch.linalg.cholesky(mat)
    return m - c * float(torch.cholesky_inverse(factor).diagonal().sum()), c
