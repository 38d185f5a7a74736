"""Matrix-free access to a Jacobian-like matrix ``A`` (N, p): ``v ↦ A v`` and ``u ↦ Aᵀ u``.

The linear solvers accept either a dense tensor or a :class:`JacobianOperator`; dense solvers
materialize the operator with :meth:`JacobianOperator.dense`, the CG solver only multiplies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["JacobianOperator", "as_dense", "column_sq_norms", "matvec", "rmatvec"]


@dataclass(frozen=True)
class JacobianOperator:
    """A linear map ``A`` of shape (N, p) given by its products.

    Attributes:
        shape: (N, p).
        mv: ``v (p,) ↦ A v (N,)`` (a JVP).
        rmv: ``u (N,) ↦ Aᵀ u (p,)`` (a VJP).
        dense_fn: optional ``() ↦ A`` materializing the matrix (N, p).
        dtype: dtype of the products.
        device: device of the products.
    """

    shape: tuple[int, int]
    mv: Callable[[torch.Tensor], torch.Tensor]
    rmv: Callable[[torch.Tensor], torch.Tensor]
    dense_fn: Callable[[], torch.Tensor] | None
    dtype: torch.dtype
    device: torch.device

    def dense(self) -> torch.Tensor:
        """Return the matrix (N, p), building it column by column if no ``dense_fn`` is set."""
        if self.dense_fn is not None:
            return self.dense_fn()
        eye = torch.eye(self.shape[1], dtype=self.dtype, device=self.device)
        return torch.stack([self.mv(e) for e in eye], dim=1)


def as_dense(a: torch.Tensor | JacobianOperator) -> torch.Tensor:
    """Return ``a`` as a dense (N, p) tensor."""
    return a if isinstance(a, torch.Tensor) else a.dense()


def matvec(a: torch.Tensor | JacobianOperator, v: torch.Tensor) -> torch.Tensor:
    """Return ``A v``."""
    return a @ v if isinstance(a, torch.Tensor) else a.mv(v)


def rmatvec(a: torch.Tensor | JacobianOperator, u: torch.Tensor) -> torch.Tensor:
    """Return ``Aᵀ u``."""
    return a.T @ u if isinstance(a, torch.Tensor) else a.rmv(u)


def column_sq_norms(a: torch.Tensor | JacobianOperator) -> torch.Tensor | None:
    """``diag(AᵀA)`` (p,), or None for an operator that cannot give it without forming ``A``
    (a structured Jacobian computes it from its factors)."""
    if isinstance(a, torch.Tensor):
        return (a * a).sum(0)
    fn = getattr(a, "column_sq_norms", None)
    return None if fn is None else fn()
