"""The linear-solver interface (prepare/solve split), its per-iterate data and shared helpers.

See :mod:`gaussnewton.linsolve` for the forms and their costs.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from ..operators import LinearOperator

__all__ = ["DEFAULT_MEMORY_BUDGET", "LinearSolveInfo", "LinearSolver", "NumericalWarning", "Prepared"]

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
        penalty: ``c ≥ 0`` of a Tikhonov term: ``solve`` then returns the solution of
            ``(AᵀA + ρD + cI) δ = −Aᵀh − c·e`` (weight decay, exact in every form).
        penalty_e: (p,) ``e = θ − θ_ref`` (None when ``penalty`` is 0).
    """

    a: LinearOperator
    h: torch.Tensor
    d_inv_sqrt: torch.Tensor | None
    diag: torch.Tensor | None = None
    gram: torch.Tensor | None = None
    rhs: torch.Tensor | None = None
    eig: tuple[torch.Tensor, torch.Tensor] | None = None
    cache: dict[str, object] = field(default_factory=dict)
    penalty: float = 0.0
    penalty_e: torch.Tensor | None = None

    def set_penalty(self, c: float, e: torch.Tensor | None) -> Prepared:
        """Add the Tikhonov term ``c/2·‖θ + δ − θ_ref‖²`` (``e = θ − θ_ref``) to the system."""
        if c > 0:
            assert e is not None
            self.penalty, self.penalty_e = float(c), e.to(self.h.dtype)
        return self


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


def _scaled(a: LinearOperator, h: torch.Tensor, diag: torch.Tensor | None,
            gram_dtype: torch.dtype | None) -> tuple[LinearOperator, torch.Tensor, torch.Tensor | None]:
    """``Ã = A D^{-1/2}``, ``h`` and ``D^{-1/2}``, cast to ``gram_dtype`` if given."""
    dis = _d_inv_sqrt(diag)
    ad = a.scale_columns(dis)
    if gram_dtype is not None:
        ad, h = ad.to(gram_dtype), h.to(gram_dtype)
        dis = None if dis is None else dis.to(gram_dtype)
    return ad, h, dis


def _factor_solve(prepared: Prepared, rho: float, b: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """Solve ``(gram + ρI) z = b`` (default ``rhs``) by the eigendecomposition if present, else Cholesky."""
    rhs = prepared.rhs if b is None else b
    assert prepared.gram is not None and rhs is not None
    if prepared.eig is not None:
        return _eig_solve(*prepared.eig, rhs, rho), 0.0
    return _cholesky_solve(prepared.gram, rhs, rho, prepared.cache)


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
