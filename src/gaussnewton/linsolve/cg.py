"""Matrix-free solvers: (preconditioned) conjugate gradients, truncated CG, Lanczos extremes."""

from __future__ import annotations

import torch

from .._errors import GaussNewtonError, check_choice, check_positive, check_positive_int
from ..operators import LinearOperator, ShardedOperator, as_operator, gram_spectrum
from .base import LinearSolveInfo, LinearSolver, Prepared

__all__ = ["CGSolver", "lanczos_extremes", "truncated_cg"]


class CGSolver(LinearSolver):
    """Matrix-free conjugate gradients on ``(AᵀA + ρD) δ = −Aᵀh`` (JVP/VJP products only).

    Each iteration costs one product with ``A`` and one with ``Aᵀ`` (with a sharded operator
    the ``Aᵀ`` product is one all-reduce of p numbers). Started from δ = 0, CG stays in
    range(Aᵀ) + range(D-scaled), so with ρ = 0 it converges to the minimum-norm solution of a
    consistent singular system.

    Differs from the textbook algorithm (Hestenes–Stiefel) in:
      * the residual is recomputed from scratch every ``recompute_every`` iterations to stop
        rounding drift (as lineax's CG does);
      * the stopping test is ``‖r_k‖ ≤ rtol·‖b‖ + atol``;
      * with ``preconditioner="jacobi"`` it runs preconditioned CG with
        ``M = diag(AᵀA) + ρ·d`` (the column norms of ``A`` come from the operator, e.g. the
        structured Jacobian of a Linear-layer network, at the cost of one pass over its
        factors). It pays with the diag(AᵀA) scaling ``D`` (then ``M ∝ D``); with ``D = I``, N < p
        and a tiny ρ it can be slower than plain CG (it spreads the ρ-cluster of eigenvalues).
        A Jacobi-preconditioned CG no longer returns the Euclidean minimum-norm solution of a
        singular system with ρ = 0.

    With a loose ``rtol`` and a small ``max_iter`` it is an inexact (truncated) Gauss–Newton
    solver (``solver="truncated_cg"``, see :func:`truncated_cg`): every CG iterate started at 0
    is a descent direction that lowers the damped model, and the trust-region test decides
    whether the step is taken.
    """

    name = "cg"
    needs_dense = False

    def __init__(
        self, *, rtol: float = 1e-10, atol: float = 0.0, max_iter: int | None = None,
        recompute_every: int = 50, preconditioner: str | None = None,
    ) -> None:
        """Validate and store the settings.

        Args:
            rtol: relative tolerance on the CG residual.
            atol: absolute tolerance on the CG residual.
            max_iter: iteration cap; None means 2·p (default of scipy's cg is 10·p).
            recompute_every: recompute the true residual this often.
            preconditioner: None or ``"jacobi"`` (diagonal of ``AᵀA + ρD``; needs a dense ``A``
                or an operator with ``column_sq_norms``, else CG runs unpreconditioned).
        """
        self.rtol = check_positive("rtol", rtol)
        if atol < 0:
            raise GaussNewtonError(f"`atol` must be >= 0; got atol = {atol!r}.")
        self.atol = float(atol)
        self.max_iter = check_positive_int("max_iter", max_iter, allow_none=True)
        self.recompute_every = check_positive_int("recompute_every", recompute_every)
        if preconditioner is not None:
            check_choice("preconditioner", preconditioner, ("jacobi",))
        self.preconditioner = preconditioner

    def prepare(self, a, h, *, diag=None, spectrum=False):  # noqa: D102
        op = as_operator(a)
        prep = Prepared(op, h, None, diag=diag, rhs=-op.rmv(h))
        if self.preconditioner == "jacobi":
            prep.cache["colsq"] = op.column_sq_norms()
        return prep

    def solve(self, prepared, rho):  # noqa: D102
        a, b, d, c = prepared.a, prepared.rhs, prepared.diag, prepared.penalty
        assert b is not None
        if c > 0:  # weight decay: + c·v in the operator, − c·e on the right-hand side
            assert prepared.penalty_e is not None
            b = b - c * prepared.penalty_e

        def op(v: torch.Tensor) -> torch.Tensor:
            return a.rmv(a.mv(v)) + rho * (v if d is None else d * v) + c * v

        colsq = prepared.cache.get("colsq")
        m_inv = None
        if colsq is not None:
            m_diag = colsq + rho * (1.0 if d is None else d) + c
            tiny = torch.finfo(b.dtype).eps * max(float(m_diag.max()), torch.finfo(b.dtype).tiny)
            m_inv = 1.0 / m_diag.clamp_min(tiny)
        p = b.shape[0]
        max_iter = self.max_iter or 2 * p
        x = torch.zeros_like(b)
        r = b.clone()
        z = r if m_inv is None else m_inv * r
        pdir = z.clone()
        rz = torch.dot(r, z)
        target = self.rtol * float(torch.linalg.vector_norm(b)) + self.atol
        it = 0
        converged = float(torch.linalg.vector_norm(r)) <= target
        while not converged and it < max_iter:
            ap = op(pdir)
            curv = torch.dot(pdir, ap)
            if float(curv) <= 0:  # zero direction: the system is singular along pdir
                break
            step = rz / curv
            x = x + step * pdir
            it += 1
            r = b - op(x) if it % self.recompute_every == 0 else r - step * ap
            converged = float(torch.linalg.vector_norm(r)) <= target
            z = r if m_inv is None else m_inv * r
            rz_new = torch.dot(r, z)
            pdir = z + (rz_new / rz) * pdir
            rz = rz_new
        return x, LinearSolveInfo(self.name, iterations=it, converged=converged)

    def spectrum(self, prepared):  # noqa: D102
        return lanczos_extremes(prepared.a)


def lanczos_extremes(a: torch.Tensor | LinearOperator) -> torch.Tensor:
    """λ_min and λ_max of the smaller Gram matrix of ``A`` by Lanczos (scipy ``eigsh``).

    Args:
        a: dense (N, p) or operator.

    Returns:
        torch.Tensor: ``[λ_min, λ_max]`` (float64, CPU).

    Raises:
        GaussNewtonError: the row-space Lanczos (N ≤ p) of a sharded operator (not available).
    """
    import numpy as np
    from scipy.sparse.linalg import LinearOperator as ScipyOperator
    from scipy.sparse.linalg import eigsh

    op = as_operator(a)
    n, p = op.rows_total, op.shape[1]
    m = min(n, p)
    if m <= 2:
        w = gram_spectrum(op).double().cpu()
        return torch.stack([w[0], w[-1]])
    if n <= p and isinstance(op, ShardedOperator):
        raise GaussNewtonError("Kernel eigenvalues on the matrix-free path are not available with a process group "
                               "when N <= p; use solver='normal' or 'kernel' for schedules that need λ_min.")

    def mv(x: np.ndarray) -> np.ndarray:
        v = torch.as_tensor(np.ascontiguousarray(x).ravel(), dtype=op.dtype, device=op.device)
        out = op.mv(op.rmv(v)) if n <= p else op.rmv(op.mv(v))
        return out.detach().cpu().double().numpy()

    lin = ScipyOperator((m, m), matvec=mv, dtype=np.float64)
    lam_max = float(eigsh(lin, k=1, which="LA", return_eigenvectors=False, tol=1e-8)[0])
    # λ_min via the largest eigenvalue of the shifted operator λ_max·I − G (converges far
    # faster than which="SA" on clustered small eigenvalues).
    shifted = ScipyOperator((m, m), matvec=lambda x: lam_max * x - mv(x), dtype=np.float64)
    top = float(eigsh(shifted, k=1, which="LA", return_eigenvectors=False, tol=1e-10)[0])
    return torch.tensor([max(lam_max - top, 0.0), lam_max], dtype=torch.float64)


def truncated_cg() -> CGSolver:
    """The inexact GN solver behind ``solver="truncated_cg"``.

    Jacobi-preconditioned CG stopped at ``rtol = 1e-2`` or 20 iterations (at most 20 products
    with ``A`` and 20 with ``Aᵀ`` per trial step instead of a Gram matrix and its factorization;
    the trust-region test guards the inexact step). Its iteration count, unlike an exact step's,
    grows with the conditioning of the Gram matrix (docs/choosing.md).
    """
    return CGSolver(rtol=1e-2, max_iter=20, preconditioner="jacobi")
