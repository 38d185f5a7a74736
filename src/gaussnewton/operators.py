r"""One linear-operator protocol for Jacobian-like matrices ``A`` (N, p), after lineax.

Every solver and the step driver see ``A`` only through :class:`LinearOperator`:

* ``mv(v)`` = ``A v`` (N,) and ``rmv(u)`` = ``Aᵀ u`` (p,): a JVP and a VJP;
* ``gram(side)``: ``AᵀA`` (p×p, ``side="params"``) or ``AAᵀ`` (N×N, ``side="rows"``);
* ``column_sq_norms()`` = ``diag(AᵀA)`` (or None where only products are available);
* ``to_dense()``, ``scale_columns(d)``, ``to(dtype)``;
* ``row_sum(partial)``: finishes a sum over the rows that each holder computed on its own
  rows (e.g. ``hᵀAs``), and ``gather()`` / ``gather_rows(h)``: all rows in one place.

Three kinds are local: :class:`DenseOperator` (a tensor), :class:`FunctionOperator`
(matrix-free: JVP/VJP closures) and the structured Jacobian of Linear-layer networks
(:class:`~gaussnewton.problems.structured.StructuredJacobian`, built from per-layer factors).
:class:`ShardedOperator` wraps a local operator that holds one rank's rows of a data-parallel
``A`` and does its own reductions: ``rmv``, ``gram("params")``, ``column_sq_norms`` and
``row_sum`` are all-reduced over the process group, ``gather`` all-gathers the rows. Solvers
therefore never see ranks: the same code solves on one process and on many.

:func:`gram_spectrum` is the one helper for "eigenvalues of the smaller Gram matrix".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "DenseOperator",
    "FunctionOperator",
    "JacobianOperator",
    "LinearOperator",
    "ShardedOperator",
    "as_operator",
    "column_sq_norms",
    "diag_max_estimate",
    "gram_spectrum",
    "matvec",
    "rmatvec",
]

_HUTCHINSON_PROBES = 4


class LinearOperator(ABC):
    """A linear map ``A`` of shape (N, p) (N: this holder's rows).

    Attributes:
        shape: (N, p) of the local rows.
        dtype: dtype of the products.
        device: device of the products.
    """

    shape: tuple[int, int]

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype:  # noqa: D102
        ...

    @property
    @abstractmethod
    def device(self) -> torch.device:  # noqa: D102
        ...

    @abstractmethod
    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """``A v`` (N,) for ``v`` (p,)."""

    @abstractmethod
    def rmv(self, u: torch.Tensor) -> torch.Tensor:
        """``Aᵀ u`` (p,) for ``u`` (N,) (summed over all rows, also across shards)."""

    def to_dense(self) -> torch.Tensor:
        """The (local) matrix (N, p); built column by column from ``mv`` unless overridden."""
        eye = torch.eye(self.shape[1], dtype=self.dtype, device=self.device)
        return torch.stack([self.mv(e) for e in eye], dim=1)

    def dense(self) -> torch.Tensor:
        """Alias of :meth:`to_dense`."""
        return self.to_dense()

    def gram(self, side: str) -> torch.Tensor:
        """``AᵀA`` (p, p) for ``side="params"``, ``AAᵀ`` (N_total, N_total) for ``side="rows"``."""
        a = self.gather().to_dense() if side == "rows" else self.to_dense()
        return self.row_sum(gram(a)) if side == "params" else gram(a.T)

    def column_sq_norms(self) -> torch.Tensor | None:
        """``diag(AᵀA)`` (p,), or None if it needs the whole matrix."""
        return None

    def scale_columns(self, d: torch.Tensor | None) -> LinearOperator:
        """``A diag(d)`` (dense), or ``self`` for ``d = None``."""
        if d is None:
            return self
        return DenseOperator(self.to_dense() * d[None, :])

    def to(self, dtype: torch.dtype) -> LinearOperator:
        """The operator with products in ``dtype`` (dense copy by default)."""
        if dtype == self.dtype:
            return self
        return DenseOperator(self.to_dense().to(dtype))

    @property
    def rows_total(self) -> int:
        """N summed over all shards (N for a local operator)."""
        return self.shape[0]

    def row_sum(self, partial: torch.Tensor) -> torch.Tensor:
        """Finish a sum over rows computed on the local rows (identity for a local operator)."""
        return partial

    def finite(self) -> bool:
        """False if a stored entry is NaN/Inf (matrix-free operators store none: True)."""
        return True

    def gather(self) -> LinearOperator:
        """All rows in one local operator (``self`` for a local operator)."""
        return self

    def gather_rows(self, h: torch.Tensor) -> torch.Tensor:
        """All rows of a row vector ``h`` (N,) (``h`` for a local operator)."""
        return h


class DenseOperator(LinearOperator):
    """A dense (N, p) tensor as an operator.

    Args:
        a: the matrix (N, p).
    """

    def __init__(self, a: torch.Tensor) -> None:
        self.a = a
        self.shape = (int(a.shape[0]), int(a.shape[1]))

    @property
    def dtype(self) -> torch.dtype:  # noqa: D102
        return self.a.dtype

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.a.device

    def mv(self, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.a @ v

    def rmv(self, u: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.a.T @ u

    def to_dense(self) -> torch.Tensor:  # noqa: D102
        return self.a

    def column_sq_norms(self) -> torch.Tensor:  # noqa: D102
        return (self.a * self.a).sum(0)

    def finite(self) -> bool:  # noqa: D102
        return bool(torch.isfinite(self.a).all())

    def scale_columns(self, d: torch.Tensor | None) -> LinearOperator:  # noqa: D102
        return self if d is None else DenseOperator(self.a * d[None, :])

    def to(self, dtype: torch.dtype) -> LinearOperator:  # noqa: D102
        return self if dtype == self.dtype else DenseOperator(self.a.to(dtype))


@dataclass(frozen=True)
class FunctionOperator(LinearOperator):
    """A linear map given by its products (matrix-free).

    Attributes:
        shape: (N, p).
        mv_fn: ``v (p,) ↦ A v (N,)`` (a JVP).
        rmv_fn: ``u (N,) ↦ Aᵀ u (p,)`` (a VJP).
        dense_fn: optional ``() ↦ A`` materializing the matrix (N, p).
        dtype_: dtype of the products.
        device_: device of the products.
    """

    shape: tuple[int, int]
    mv_fn: Callable[[torch.Tensor], torch.Tensor]
    rmv_fn: Callable[[torch.Tensor], torch.Tensor]
    dense_fn: Callable[[], torch.Tensor] | None
    dtype_: torch.dtype
    device_: torch.device

    @property
    def dtype(self) -> torch.dtype:  # noqa: D102
        return self.dtype_

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.device_

    def mv(self, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.mv_fn(v)

    def rmv(self, u: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.rmv_fn(u)

    def to_dense(self) -> torch.Tensor:  # noqa: D102
        return self.dense_fn() if self.dense_fn is not None else super().to_dense()


JacobianOperator = FunctionOperator
"""Deprecated alias (0.1 name) of :class:`FunctionOperator`; removed in 0.3."""


class ShardedOperator(LinearOperator):
    """One rank's rows of a data-parallel ``A``; reductions over the process group built in.

    Args:
        local: the operator of this rank's rows.
        reducer: the process-group reducer (:class:`gaussnewton.distributed.Reducer`).
    """

    def __init__(self, local: LinearOperator, reducer: Any) -> None:
        self.local = local
        self.reducer = reducer
        self.shape = local.shape

    @property
    def dtype(self) -> torch.dtype:  # noqa: D102
        return self.local.dtype

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.local.device

    @property
    def rows_total(self) -> int:  # noqa: D102
        return int(self.reducer.sum(torch.tensor(self.shape[0])))

    def mv(self, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.local.mv(v)

    def rmv(self, u: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.reducer.sum(self.local.rmv(u))

    def to_dense(self) -> torch.Tensor:  # noqa: D102
        return self.local.to_dense()

    def column_sq_norms(self) -> torch.Tensor | None:  # noqa: D102
        colsq = self.local.column_sq_norms()
        # every rank takes the same branch: an operator kind without column norms has none anywhere
        return None if colsq is None else self.reducer.sum(colsq)

    def scale_columns(self, d: torch.Tensor | None) -> LinearOperator:  # noqa: D102
        return self if d is None else ShardedOperator(self.local.scale_columns(d), self.reducer)

    def to(self, dtype: torch.dtype) -> LinearOperator:  # noqa: D102
        return self if dtype == self.dtype else ShardedOperator(self.local.to(dtype), self.reducer)

    def row_sum(self, partial: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.reducer.sum(partial)

    def finite(self) -> bool:  # noqa: D102
        # every rank must take the same branch: count the shards with a non-finite entry
        bad = torch.tensor(0.0 if self.local.finite() else 1.0, dtype=self.dtype, device=self.device)
        return float(self.reducer.sum(bad)) == 0.0

    def gather(self) -> LinearOperator:  # noqa: D102
        return DenseOperator(self.reducer.gather_rows(self.local.to_dense()))

    def gather_rows(self, h: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.reducer.gather_rows(h)


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


def as_operator(a: torch.Tensor | LinearOperator) -> LinearOperator:
    """``a`` as a :class:`LinearOperator` (a tensor becomes a :class:`DenseOperator`)."""
    if isinstance(a, LinearOperator):
        return a
    if isinstance(a, torch.Tensor) and a.ndim == 2:
        return DenseOperator(a)
    raise TypeError(f"expected a 2-D tensor or a LinearOperator; got {type(a).__name__}")


def matvec(a: torch.Tensor | LinearOperator, v: torch.Tensor) -> torch.Tensor:
    """``A v``."""
    return a @ v if isinstance(a, torch.Tensor) else a.mv(v)


def rmatvec(a: torch.Tensor | LinearOperator, u: torch.Tensor) -> torch.Tensor:
    """``Aᵀ u``."""
    return a.T @ u if isinstance(a, torch.Tensor) else a.rmv(u)


def column_sq_norms(a: torch.Tensor | LinearOperator) -> torch.Tensor | None:
    """``diag(AᵀA)`` (p,), or None for an operator that cannot give it without forming ``A``."""
    return as_operator(a).column_sq_norms()


def gram_spectrum(a: torch.Tensor | LinearOperator) -> torch.Tensor:
    """Eigenvalues (ascending) of the smaller Gram matrix of ``A``: the ``min(N, p)`` largest.

    ``AAᵀ`` (N×N, all shards' rows) when N ≤ p, else ``AᵀA`` (p×p); one ``eigvalsh``.

    Args:
        a: dense (N, p) or an operator.

    Returns:
        torch.Tensor: (min(N, p),) eigenvalues, ascending.
    """
    op = as_operator(a)
    n, p = op.rows_total, op.shape[1]
    w = torch.linalg.eigvalsh(op.gram("rows" if n <= p else "params"))
    return w[w.shape[0] - min(n, p) :]


def diag_max_estimate(a: torch.Tensor | LinearOperator, colsq: torch.Tensor | None) -> float:
    """Max diag(AᵀA) from the column norms, or (matrix-free) a Hutchinson estimate of trace(AᵀA)/p.

    Args:
        a: dense (N, p) or an operator.
        colsq: (p,) column norms (summed over shards) or None.

    Returns:
        float: the (estimated) largest diagonal entry.
    """
    if colsq is not None:
        return float(colsq.max())
    op = as_operator(a)
    gen = torch.Generator(device="cpu").manual_seed(0)
    p = op.shape[1]
    est = 0.0
    for _ in range(_HUTCHINSON_PROBES):
        z = (torch.randint(0, 2, (p,), generator=gen) * 2 - 1).to(op.dtype).to(op.device)
        az = op.mv(z)
        est += float(op.row_sum(az @ az))
    return est / (_HUTCHINSON_PROBES * p)
