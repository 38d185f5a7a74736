r"""Linear solvers for the damped Gauss–Newton system.

Every solver computes the step :math:`\delta` of

.. math::  (A^\top A + \rho D)\,\delta = -A^\top h,
   \qquad A \in \mathbb R^{N\times p},\; h \in \mathbb R^N,\; D = \mathrm{diag}(d) \succ 0,

the normal equations of the damped linear least-squares problem
:math:`\min_\delta \|A\delta + h\|^2 + \rho\,\delta^\top D\delta`. (For a plain least-squares
problem ``A = J`` and ``h = r``; for a generalized GN step ``A = BJ``, see
:mod:`gaussnewton.losses`.) Three equivalent forms are offered:

* **normal** (p×p): factor :math:`\tilde G = D^{-1/2}A^\top A D^{-1/2}`; cost
  :math:`Np^2 + p^3/3`. Best when N ≥ p.
* **kernel** (N×N, push-through / Woodbury): with :math:`\tilde A = AD^{-1/2}`,
  :math:`\delta = -D^{-1/2}\tilde A^\top(\tilde A\tilde A^\top + \rho I)^{-1}h`; cost
  :math:`N^2p + N^3/3`. Best when N < p (overparameterized networks).
* **cg**: conjugate gradients on :math:`A^\top A + \rho D` using only products with ``A``
  and ``Aᵀ`` (JVP/VJP); ``A`` is never formed.

and **lstsq**, the augmented least-squares reference
:math:`[A;\sqrt{\rho}D^{1/2}]\delta \approx [-h; 0]` solved by ``torch.linalg.lstsq``
(used in tests). With ρ = 0 and a singular Gram matrix the normal and kernel forms return the
minimum-norm solution, like ``lstsq``.

Each solver is split, after lineax, into ``prepare`` (work that depends on ``A`` only: the Gram
matrix and, when asked, its eigendecomposition), done once per iterate, and ``solve(prepared,
rho)``, done once per trial damping. With the eigendecomposition
:math:`\tilde G = V\,\mathrm{diag}(w)\,V^\top` every retry costs :math:`O(m^2)`; without it each
retry costs one Cholesky (the Jacobian is never recomputed for a rejected step). The
eigenvalues double as kernel diagnostics (λ_min, λ_max, cond) for the damping schedules.

A Cholesky that fails (a Gram matrix that is singular to working precision with ρ ≈ 0) is
retried with a diagonal jitter that grows by 100× at each attempt, with a
:class:`NumericalWarning`; the jitter used is reported in :class:`LinearSolveInfo`.
"""

from __future__ import annotations

from ..operators import gram
from .base import DEFAULT_MEMORY_BUDGET, LinearSolveInfo, LinearSolver, NumericalWarning, Prepared
from .cg import CGSolver, lanczos_extremes, truncated_cg
from .direct import KernelSolver, LstsqSolver, NormalSolver
from .select import AutoSolver, get_solver

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "AutoSolver",
    "CGSolver",
    "KernelSolver",
    "LinearSolveInfo",
    "LinearSolver",
    "LstsqSolver",
    "NormalSolver",
    "NumericalWarning",
    "Prepared",
    "get_solver",
    "gram",
    "lanczos_extremes",
    "truncated_cg",
]
