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

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ._errors import GaussNewtonError, check_choice, check_positive, check_positive_int
from .operators import DenseOperator, LinearOperator, ShardedOperator, as_operator, gram_spectrum

__all__ = [
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
    "truncated_cg",
]

DEFAULT_MEMORY_BUDGET = 4 * 2**30  # bytes; dense Jacobian + Gram above this → matrix-free CG
_JITTER_GROWTH = 100.0
_MAX_JITTER_TRIES = 8


class NumericalWarning(UserWarning):
    """A numerical safeguard acted (jitter added to a Cholesky factorization, etc.)."""


@dataclass(frozen=True)
class LinearSolveInfo:
    """What a solve did.

    Attributes:
        method: "normal", "kernel", "cg" or "lstsq".
        jitter: diagonal jitter added to make the factorization succeed (0 if none).
        iterations: CG iterations (0 for direct solvers).
        converged: False if CG hit its iteration cap before its tolerance.
    """

    method: str
    jitter: float = 0.0
    iterations: int = 0
    converged: bool = True


@dataclass
class Prepared:
    """Per-iterate data of a solver (produced by ``prepare``; solver-specific fields).

    Attributes:
        a: the matrix or operator ``A`` (N, p), scaled by ``D^{-1/2}`` for dense forms.
        h: (N,) right-hand-side vector.
        d_inv_sqrt: (p,) ``D^{-1/2}`` or None for ``D = I`` (dense forms).
        diag: (p,) the diagonal ``D`` itself or None (matrix-free and lstsq forms).
        gram: (m, m) Gram matrix of the chosen form, or None (CG).
        rhs: right-hand side in the chosen form.
        eig: ``(w, V)`` eigendecomposition of ``gram`` or None.
        cache: solver-private cache (e.g. the last Cholesky factor and its ρ).
    """

    a: LinearOperator
    h: torch.Tensor
    d_inv_sqrt: torch.Tensor | None
    diag: torch.Tensor | None = None
    gram: torch.Tensor | None = None
    rhs: torch.Tensor | None = None
    eig: tuple[torch.Tensor, torch.Tensor] | None = None
    cache: dict[str, object] = field(default_factory=dict)


class LinearSolver(ABC):
    """Solves ``(AᵀA + ρD) δ = −Aᵀh`` in a prepare/solve split.

    Attributes:
        name: the method name reported in :class:`LinearSolveInfo`.
        needs_dense: True if ``prepare`` needs ``A`` as a dense tensor.
    """

    name: str = ""
    needs_dense: bool = True

    @abstractmethod
    def prepare(
        self,
        a: torch.Tensor | LinearOperator,
        h: torch.Tensor,
        *,
        diag: torch.Tensor | None = None,
        spectrum: bool = False,
    ) -> Prepared:
        """Do the ρ-independent work for one iterate.

        Args:
            a: ``A``, dense (N, p) or an operator.
            h: (N,) vector.
            diag: (p,) positive diagonal of ``D``; None means ``D = I``.
            spectrum: also compute the eigendecomposition (enables :meth:`spectrum` and
                O(m²) re-solves).

        Returns:
            Prepared: the per-iterate data.
        """

    @abstractmethod
    def solve(self, prepared: Prepared, rho: float) -> tuple[torch.Tensor, LinearSolveInfo]:
        """Return the step δ (p,) for damping ``rho`` ≥ 0 and what the solve did."""

    @abstractmethod
    def spectrum(self, prepared: Prepared) -> torch.Tensor:
        """Eigenvalues (ascending) of the smaller Gram matrix ``ÃÃᵀ`` or ``ÃᵀÃ``.

        Only the ``min(N, p)`` largest are returned (the others are structurally zero).
        """


def _d_inv_sqrt(diag: torch.Tensor | None) -> torch.Tensor | None:
    if diag is None:
        return None
    return diag.clamp_min(torch.finfo(diag.dtype).tiny).rsqrt()


def _eig_solve(w: torch.Tensor, v: torch.Tensor, b: torch.Tensor, rho: float) -> torch.Tensor:
    """Solve ``(V diag(w) Vᵀ + ρI) z = b``; with ρ = 0 drop near-zero w (pseudo-inverse)."""
    c = v.T @ b
    denom = w + rho
    cutoff = w.shape[0] * torch.finfo(w.dtype).eps * float(w.abs().max().clamp_min(1e-300))
    safe = denom > cutoff
    scaled = torch.where(safe, c / torch.where(safe, denom, torch.ones_like(denom)), torch.zeros_like(c))
    return v @ scaled


def _cholesky_solve(
    gram: torch.Tensor, b: torch.Tensor, rho: float, cache: dict[str, object]
) -> tuple[torch.Tensor, float]:
    """Solve ``(gram + ρI) z = b`` by Cholesky, escalating a jitter on failure."""
    if cache.get("rho") == rho and "factor" in cache:
        factor = cache["factor"]
        assert isinstance(factor, torch.Tensor)
        return torch.cholesky_solve(b[:, None], factor).squeeze(1), float(cache["jitter"])  # type: ignore[arg-type]
    m = gram.shape[0]
    eye_diag = torch.arange(m, device=gram.device)
    scale = float(gram.diagonal().abs().mean()) if m else 1.0
    jitter = 0.0
    mat = gram.clone()
    mat[eye_diag, eye_diag] += rho
    factor, info = torch.linalg.cholesky_ex(mat)
    tries = 0
    while int(info) != 0:
        tries += 1
        if tries > _MAX_JITTER_TRIES or not math.isfinite(scale):
            raise torch.linalg.LinAlgError(
                f"Cholesky of the {m}×{m} damped Gram matrix failed even with jitter {jitter:.3g}; "
                "the matrix is not positive definite (non-finite Jacobian entries, or ρ = 0 with "
                "a rank-deficient Jacobian). Use damping > 0 or solver='lstsq'."
            )
        jitter = max(scale, 1e-300) * torch.finfo(gram.dtype).eps * _JITTER_GROWTH ** (tries - 1) * m
        mat = gram.clone()
        mat[eye_diag, eye_diag] += rho + jitter
        factor, info = torch.linalg.cholesky_ex(mat)
    if jitter > 0:
        warnings.warn(
            f"Cholesky of the damped Gram matrix failed at ρ = {rho:.3g}; added jitter "
            f"{jitter:.3g} to its diagonal (the Gram matrix is singular to working precision).",
            NumericalWarning,
            stacklevel=4,
        )
    cache.update(rho=rho, factor=factor, jitter=jitter)
    return torch.cholesky_solve(b[:, None], factor).squeeze(1), jitter


_SYM_BLOCKS = 4  # column blocks for the symmetric Gram product (measured: 0.29 s vs 0.40 s for a
_SYM_MIN_SIZE = 1024  # 4000×2000 float64 AᵀA here); below this size one GEMM is faster


def gram(a: torch.Tensor) -> torch.Tensor:
    """``AᵀA`` (p, p) computing only the upper block triangle (≈ 5/8 of a full GEMM's FLOPs).

    torch exposes no ``syrk``; splitting the columns in ``_SYM_BLOCKS`` blocks and mirroring the
    off-diagonal blocks does the same job with ordinary GEMMs, and returns an exactly symmetric
    matrix.

    Args:
        a: (N, p) matrix.

    Returns:
        torch.Tensor: (p, p) Gram matrix.
    """
    p = a.shape[1]
    if p < _SYM_MIN_SIZE:
        return a.T @ a
    edges = [round(k * p / _SYM_BLOCKS) for k in range(_SYM_BLOCKS + 1)]
    out = a.new_empty(p, p)
    for i in range(_SYM_BLOCKS):
        lo, hi = edges[i], edges[i + 1]
        left = a[:, lo:hi]
        for j in range(i, _SYM_BLOCKS):
            blk = left.T @ a[:, edges[j] : edges[j + 1]]
            if j == i:  # a GEMM's diagonal block is symmetric only up to rounding
                blk = 0.5 * (blk + blk.T)
            out[lo:hi, edges[j] : edges[j + 1]] = blk
            if j > i:
                out[edges[j] : edges[j + 1], lo:hi] = blk.T
    return out


def _scaled(a: LinearOperator, h: torch.Tensor, diag: torch.Tensor | None,
            gram_dtype: torch.dtype | None) -> tuple[LinearOperator, torch.Tensor, torch.Tensor | None]:
    """``Ã = A D^{-1/2}``, ``h`` and ``D^{-1/2}``, cast to ``gram_dtype`` if given."""
    dis = _d_inv_sqrt(diag)
    ad = a.scale_columns(dis)
    if gram_dtype is not None:
        ad, h = ad.to(gram_dtype), h.to(gram_dtype)
        dis = None if dis is None else dis.to(gram_dtype)
    return ad, h, dis


def _factor_solve(prepared: Prepared, rho: float) -> tuple[torch.Tensor, float]:
    """Solve ``(gram + ρI) z = rhs`` by the eigendecomposition if present, else Cholesky."""
    assert prepared.gram is not None and prepared.rhs is not None
    if prepared.eig is not None:
        return _eig_solve(*prepared.eig, prepared.rhs, rho), 0.0
    return _cholesky_solve(prepared.gram, prepared.rhs, rho, prepared.cache)


def _gram_spectrum(prepared: Prepared) -> torch.Tensor:
    """The ``min(N, p)`` largest eigenvalues of the prepared Gram matrix (eigh once, cached)."""
    if prepared.eig is None:
        assert prepared.gram is not None
        prepared.eig = torch.linalg.eigh(prepared.gram)
    w = prepared.eig[0]
    return w[w.shape[0] - min(prepared.a.rows_total, prepared.a.shape[1]) :]


def _with_spectrum(prep: Prepared, spectrum: bool) -> Prepared:
    if spectrum:
        assert prep.gram is not None
        prep.eig = torch.linalg.eigh(prep.gram)
    return prep


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
        """Args:
        gram_dtype: dtype in which the Gram matrix is formed and factored (e.g. float64 for
            a float32 Jacobian); None keeps A's dtype.
        """
        self.gram_dtype = gram_dtype

    def prepare(self, a, h, *, diag=None, spectrum=False):  # noqa: D102
        ad, h, dis = _scaled(as_operator(a), h, diag, self.gram_dtype)
        return _with_spectrum(Prepared(ad, h, dis, gram=ad.gram("params"), rhs=-ad.rmv(h)), spectrum)

    def solve(self, prepared, rho):  # noqa: D102
        z, jitter = _factor_solve(prepared, rho)
        delta = z if prepared.d_inv_sqrt is None else z * prepared.d_inv_sqrt
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
        """Args:
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
        z, jitter = _factor_solve(prepared, rho)
        delta = -prepared.a.rmv(z)
        if prepared.d_inv_sqrt is not None:
            delta = delta * prepared.d_inv_sqrt
        return delta, LinearSolveInfo(self.name, jitter=jitter)

    def spectrum(self, prepared):  # noqa: D102
        return _gram_spectrum(prepared)


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
        # gelsd (SVD-based) handles rank deficiency and returns the minimum-norm solution; it
        # exists on CPU only, elsewhere the default driver is used.
        driver = "gelsd" if a.device.type == "cpu" else None
        sol = torch.linalg.lstsq(aug, rhs[:, None], driver=driver).solution.squeeze(1)
        return sol, LinearSolveInfo(self.name)

    def spectrum(self, prepared):  # noqa: D102
        s = torch.linalg.svdvals(prepared.a.to_dense())
        return (s**2).flip(0)


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
        """Args:
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
        self.recompute_every = int(check_positive_int("recompute_every", recompute_every))  # type: ignore[arg-type]
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
        a, b, d = prepared.a, prepared.rhs, prepared.diag
        assert b is not None

        def op(v: torch.Tensor) -> torch.Tensor:
            return a.rmv(a.mv(v)) + rho * (v if d is None else d * v)

        colsq = prepared.cache.get("colsq")
        m_inv = None
        if colsq is not None:
            m_diag = colsq + rho * (1.0 if d is None else d)  # type: ignore[operator]
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


class AutoSolver:
    """Chooses normal, kernel or CG once per run from N, p and a memory budget.

    Rule (documented in docs/choosing.md):
      1. if a dense ``A`` plus its smaller Gram matrix would exceed ``memory_budget``
         bytes → :class:`CGSolver` (matrix-free);
      2. else if N < p → :class:`KernelSolver` (N×N);
      3. else → :class:`NormalSolver` (p×p).
    """

    def __init__(self, memory_budget: float = DEFAULT_MEMORY_BUDGET) -> None:
        """Args:
        memory_budget: bytes allowed for the dense Jacobian and Gram matrix.
        """
        self.memory_budget = check_positive("memory_budget", memory_budget)

    def select(self, n: int, p: int, itemsize: int) -> LinearSolver:
        """Return the concrete solver for an (N, p) problem with ``itemsize``-byte floats."""
        need = n * p * itemsize + min(n, p) ** 2 * max(itemsize, 8)
        if need > self.memory_budget:
            return CGSolver()
        return KernelSolver() if n < p else NormalSolver()


def truncated_cg() -> CGSolver:
    """The inexact GN solver behind ``solver="truncated_cg"``: Jacobi-preconditioned CG stopped at
    ``rtol = 1e-2`` or 20 iterations (at most 20 products with ``A`` and 20 with ``Aᵀ`` per trial
    step instead of a Gram matrix and its factorization; the trust-region test guards the
    inexact step). Its iteration count, unlike an exact step's, grows with the conditioning of
    the Gram matrix (docs/choosing.md)."""
    return CGSolver(rtol=1e-2, max_iter=20, preconditioner="jacobi")


_SOLVERS: dict[str, Callable[[], LinearSolver]] = {
    "normal": NormalSolver,
    "kernel": KernelSolver,
    "cg": CGSolver,
    "truncated_cg": truncated_cg,
    "lstsq": LstsqSolver,
}


def get_solver(
    solver: str | LinearSolver, n: int, p: int, itemsize: int,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
) -> LinearSolver:
    """Resolve ``solver`` (a name, ``"auto"`` or an instance) for an (N, p) problem.

    Args:
        solver: ``"auto"``, ``"normal"``, ``"kernel"``, ``"cg"``, ``"truncated_cg"``, ``"lstsq"`` or a
            LinearSolver.
        n: number of rows N of ``A``.
        p: number of parameters.
        itemsize: bytes per float of ``A``.
        memory_budget: bytes, for ``"auto"``.

    Returns:
        LinearSolver: the solver to use.

    Raises:
        GaussNewtonError: unknown name or wrong type.
    """
    if isinstance(solver, LinearSolver):
        return solver
    if not isinstance(solver, str):
        raise GaussNewtonError(
            "`solver` must be 'auto', 'normal', 'kernel', 'cg', 'truncated_cg', 'lstsq' or a LinearSolver; "
            f"got {type(solver).__name__}."
        )
    check_choice("solver", solver, ("auto", *_SOLVERS))
    if solver == "auto":
        return AutoSolver(memory_budget).select(n, p, itemsize)
    return _SOLVERS[solver]()
