"""Direct solvers: p×p normal equations, N×N kernel (push-through) form, and the lstsq reference."""

from __future__ import annotations

import math

import torch

from ..operators import DenseOperator, as_operator
from .base import (
    LinearSolveInfo,
    LinearSolver,
    Prepared,
    _cholesky_solve,
    _factor_solve,
    _gram_spectrum,
    _scaled,
    _with_spectrum,
)

__all__ = ["KernelSolver", "LstsqSolver", "NormalSolver"]


class NormalSolver(LinearSolver):
    """p×p normal equations: factor ``D^{-1/2}AᵀAD^{-1/2} + ρI`` (Cholesky or eigh).

    With a sharded operator (data parallelism) ``AᵀA`` and ``Aᵀh`` are sums over the shards
    (one all-reduce each, done by the operator) and every rank factors the same p×p matrix.

    Warning:
        Forming ``AᵀA`` squares the condition number of ``A``; in float64 this is harmless
        unless cond(A) ≳ 1e7. Use :class:`LstsqSolver` as the robust reference.
    """

    name = "normal"

    def __init__(self, gram_dtype: torch.dtype | None = None) -> None:
        """Validate and store the settings.

        Args:
            gram_dtype: dtype in which the Gram matrix is formed and factored (e.g. float64 for
                a float32 Jacobian); None keeps A's dtype.
        """
        self.gram_dtype = gram_dtype

    def prepare(self, a, h, *, diag=None, spectrum=False):  # noqa: D102
        ad, h, dis = _scaled(as_operator(a), h, diag, self.gram_dtype)
        return _with_spectrum(Prepared(ad, h, dis, gram=ad.gram("params"), rhs=-ad.rmv(h)), spectrum)

    def solve(self, prepared, rho):  # noqa: D102
        c, e, dis = prepared.penalty, prepared.penalty_e, prepared.d_inv_sqrt
        if c == 0:
            z, jitter = _factor_solve(prepared, rho)
        elif dis is None:  # (G + (ρ + c)I) z = −Aᵀh − c·e: a shift of ρ
            assert e is not None and prepared.rhs is not None
            z, jitter = _factor_solve(prepared, rho + c, prepared.rhs - c * e)
        else:  # in z = D^{1/2}δ the term is c·D^{-1}: a ρ-independent diagonal, factored apart
            assert e is not None and prepared.gram is not None and prepared.rhs is not None
            if "penalized_gram" not in prepared.cache:
                pg = prepared.gram.clone()
                pg.diagonal().add_(c * dis * dis)
                prepared.cache["penalized_gram"], prepared.cache["penalized"] = pg, {}
            pg, pcache = prepared.cache["penalized_gram"], prepared.cache["penalized"]
            assert isinstance(pg, torch.Tensor) and isinstance(pcache, dict)
            z, jitter = _cholesky_solve(pg, prepared.rhs - c * dis * e, rho, pcache)
        delta = z if dis is None else z * dis
        return delta, LinearSolveInfo(self.name, jitter=jitter)

    def spectrum(self, prepared):  # noqa: D102
        return _gram_spectrum(prepared)


class KernelSolver(LinearSolver):
    """N×N kernel (push-through) form: ``δ = −D^{-1/2}Ãᵀ(ÃÃᵀ + ρI)^{-1}h``, ``Ã = AD^{-1/2}``.

    The identity ``(ÃᵀÃ + ρI)^{-1}Ãᵀ = Ãᵀ(ÃÃᵀ + ρI)^{-1}`` holds for every ρ > 0, and for ρ = 0
    when ``ÃÃᵀ`` is invertible (N ≤ p, full row rank); otherwise the pseudo-inverse is used.
    A sharded operator is first gathered (``A.gather()``: every rank holds all N rows and
    takes the same step).
    """

    name = "kernel"

    def __init__(self, gram_dtype: torch.dtype | None = None) -> None:
        """Validate and store the settings.

        Args:
            gram_dtype: dtype in which the kernel is formed and factored; None keeps A's dtype.
        """
        self.gram_dtype = gram_dtype

    def prepare(self, a, h, *, diag=None, spectrum=False):  # noqa: D102
        op = as_operator(a)
        full, h = op.gather(), op.gather_rows(h)
        # a structured Jacobian (Linear-layer network) forms K from per-layer factors: J never formed
        ad, h, dis = _scaled(full, h, diag, self.gram_dtype)
        return _with_spectrum(Prepared(ad, h, dis, gram=ad.gram("rows"), rhs=h), spectrum)

    def solve(self, prepared, rho):  # noqa: D102
        c, e, dis, a = prepared.penalty, prepared.penalty_e, prepared.d_inv_sqrt, prepared.a
        jitter = 0.0
        if c == 0:
            z, jitter = _factor_solve(prepared, rho)
            delta = -a.rmv(z)
        elif dis is None:  # Woodbury with c' = ρ + c: (ÃᵀÃ + c'I)⁻¹c·e = (c/c')(e − Ãᵀ(K + c'I)⁻¹Ãe)
            assert e is not None
            z, jitter = _factor_solve(prepared, rho + c)
            w, _ = _factor_solve(prepared, rho + c, a.mv(e))
            delta = -a.rmv(z) - (c / (rho + c)) * (e - a.rmv(w))
        else:
            delta = _kernel_diag_penalty(prepared, rho)
        if dis is not None:
            delta = delta * dis
        return delta, LinearSolveInfo(self.name, jitter=jitter)

    def spectrum(self, prepared):  # noqa: D102
        return _gram_spectrum(prepared)


def _kernel_diag_penalty(prepared: Prepared, rho: float) -> torch.Tensor:
    """``z`` of ``(ÃᵀÃ + diag(m)) z = −Ãᵀh − c·D^{-1/2}e`` with ``m = ρ + c·D^{-1}`` (N×N Woodbury).

    ``z = m⁻¹b − m⁻¹Ãᵀ(I + Ãm⁻¹Ãᵀ)⁻¹Ãm⁻¹b``: a new N×N matrix per trial ρ (the Gram cannot be
    reused when the penalty and D differ), so this path costs a kernel product per retry.
    """
    c, e, dis = prepared.penalty, prepared.penalty_e, prepared.d_inv_sqrt
    assert e is not None and dis is not None
    a = prepared.a.to_dense()
    m_inv = 1.0 / (rho + c * dis * dis)
    b = -(a.T @ prepared.h) - c * dis * e
    am = a * m_inv[None, :]
    s = am @ a.T
    s.diagonal().add_(1.0)
    inner = torch.linalg.solve(s, am @ b)
    return m_inv * b - m_inv * (a.T @ inner)


class LstsqSolver(LinearSolver):
    """Reference: solve ``[A; √ρ D^{1/2}] δ ≈ [−h; 0]`` with ``torch.linalg.lstsq``.

    Never squares the condition number; slow (a QR/SVD per trial ρ). Used as the oracle in
    tests and as a last resort for badly conditioned problems. A sharded operator is gathered.
    """

    name = "lstsq"

    def prepare(self, a, h, *, diag=None, spectrum=False):  # noqa: D102
        op = as_operator(a)
        return Prepared(DenseOperator(op.gather().to_dense()), op.gather_rows(h), None, diag=diag)

    def solve(self, prepared, rho):  # noqa: D102
        a = prepared.a.to_dense()
        n, p = a.shape
        d = prepared.diag
        reg = torch.ones(p, dtype=a.dtype, device=a.device) if d is None else d
        aug = torch.cat([a, torch.diag(math.sqrt(rho) * reg.sqrt())]) if rho > 0 else a
        rhs = torch.cat([-prepared.h, torch.zeros(p, dtype=a.dtype, device=a.device)]) if rho > 0 else -prepared.h
        if prepared.penalty > 0:  # rows √c·I with right-hand side −√c·e
            assert prepared.penalty_e is not None
            sc = math.sqrt(prepared.penalty)
            aug = torch.cat([aug, sc * torch.eye(p, dtype=a.dtype, device=a.device)])
            rhs = torch.cat([rhs, -sc * prepared.penalty_e])
        # gelsd (SVD-based) handles rank deficiency and returns the minimum-norm solution; it
        # exists on CPU only, elsewhere the default driver is used.
        driver = "gelsd" if a.device.type == "cpu" else None
        sol = torch.linalg.lstsq(aug, rhs[:, None], driver=driver).solution.squeeze(1)
        return sol, LinearSolveInfo(self.name)

    def spectrum(self, prepared):  # noqa: D102
        s = torch.linalg.svdvals(prepared.a.to_dense())
        return (s**2).flip(0)
