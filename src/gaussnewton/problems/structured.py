r"""Structured Jacobians of networks whose trainable parameters all live in ``nn.Linear`` layers.

For a layer ``z = W a + b`` evaluated once per sample, the Jacobian row of output ``u_j``
with respect to ``W`` is the outer product ``g_j ⊗ a_j`` of the output gradient
``g_j = ∂u_j/∂z_j`` and the layer input ``a_j`` (Novak, Sohl-Dickstein & Schoenholz 2022,
"Fast Finite Width Neural Tangent Kernel"). Hence, with ``A_l`` (N, d_in) the inputs and
``G_l`` (N, d_out) the output gradients of layer l,

.. math::
   K = JJ^\top = \sum_l (G_lG_l^\top)\odot(A_lA_l^\top + \mathbb 1[\text{bias}]),\qquad
   (J^\top u)_{W_l} = G_l^\top\,\mathrm{diag}(u)\,A_l,\qquad
   (Jv)_j = \sum_l g_{lj}^\top V_l a_{lj} + g_{lj}^\top v_{b_l},

costing about ``N²·(d_in + d_out)`` per layer for K instead of ``N²·d_in·d_out``, and
``N·p`` for the dense J (no per-sample autodiff). One forward pass with hooks gives the
``A_l``; one backward pass per output column gives the ``G_l``.

Eligibility (checked by :meth:`NetworkProblem`): every trainable parameter is the weight or
bias of an ``nn.Linear`` called exactly once per forward on 2-D input, and the structured
rows agree with per-sample autodiff on two samples (which catches cross-sample coupling such
as batch-norm). Otherwise the generic ``torch.func`` path is used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

__all__ = ["LayerFactor", "StructuredJacobian", "linear_layers"]


@dataclass(frozen=True)
class LayerFactor:
    """One ``nn.Linear`` layer's factors.

    Attributes:
        a: (N, d_in) layer inputs, one row per output row (samples repeated k times).
        g: (N, d_out) gradients of each output row with respect to the layer output.
        w_offset: offset of the weight in θ, or -1 if the weight is not trained.
        b_offset: offset of the bias in θ, or -1 if there is no trained bias.
    """

    a: torch.Tensor
    g: torch.Tensor
    w_offset: int
    b_offset: int


@dataclass(frozen=True)
class StructuredJacobian:
    """``diag(s)·J`` for a Linear-layer network, from per-layer factors (never forms J unless asked).

    Attributes:
        factors: per-layer factors.
        shape: (N, p).
        row_scale: (N,) row scaling ``s`` (the loss factor B for elementwise losses) or None.
    """

    factors: tuple[LayerFactor, ...]
    shape: tuple[int, int]
    row_scale: torch.Tensor | None = None

    @property
    def dtype(self) -> torch.dtype:  # noqa: D102
        return self.factors[0].g.dtype

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.factors[0].g.device

    def scale_rows(self, s: torch.Tensor) -> StructuredJacobian:
        """Return ``diag(s)·self``."""
        return replace(self, row_scale=s if self.row_scale is None else self.row_scale * s)

    def _scaled(self, rows: torch.Tensor) -> torch.Tensor:
        return rows if self.row_scale is None else rows * self.row_scale

    def dense(self, rows: int | None = None) -> torch.Tensor:
        """The matrix (N, p), or only its first ``rows`` rows."""
        n = self.shape[0] if rows is None else min(rows, self.shape[0])
        jac = torch.zeros(n, self.shape[1], dtype=self.dtype, device=self.device)
        for f in self.factors:
            g, a = f.g[:n], f.a[:n]
            if f.w_offset >= 0:
                width = g.shape[1] * a.shape[1]
                jac[:, f.w_offset : f.w_offset + width] = (g[:, :, None] * a[:, None, :]).reshape(n, width)
            if f.b_offset >= 0:
                jac[:, f.b_offset : f.b_offset + g.shape[1]] = g
        if self.row_scale is not None:
            jac *= self.row_scale[:n, None]
        return jac

    def kernel(self) -> torch.Tensor:
        """``(diag(s)J)(diag(s)J)ᵀ`` (N, N) from the factors."""
        n = self.shape[0]
        k = torch.zeros(n, n, dtype=self.dtype, device=self.device)
        for f in self.factors:
            gg = f.g @ f.g.T
            if f.w_offset >= 0:
                k += gg * (f.a @ f.a.T)
            if f.b_offset >= 0:
                k += gg
        if self.row_scale is not None:
            k *= self.row_scale[:, None] * self.row_scale[None, :]
        return k

    def column_sq_norms(self) -> torch.Tensor:
        """diag((diag(s)J)ᵀ(diag(s)J)), (p,), without forming J."""
        out = torch.zeros(self.shape[1], dtype=self.dtype, device=self.device)
        w2 = None if self.row_scale is None else self.row_scale**2
        for f in self.factors:
            g2 = f.g**2 if w2 is None else f.g**2 * w2[:, None]
            d_out, d_in = f.g.shape[1], f.a.shape[1]
            if f.w_offset >= 0:
                out[f.w_offset : f.w_offset + d_out * d_in] = (g2.T @ f.a**2).reshape(-1)
            if f.b_offset >= 0:
                out[f.b_offset : f.b_offset + d_out] = g2.sum(0)
        return out

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """``diag(s)J v`` (N,)."""
        out = torch.zeros(self.shape[0], dtype=self.dtype, device=self.device)
        for f in self.factors:
            d_out, d_in = f.g.shape[1], f.a.shape[1]
            if f.w_offset >= 0:
                w = v[f.w_offset : f.w_offset + d_out * d_in].view(d_out, d_in)
                out += ((f.a @ w.T) * f.g).sum(1)
            if f.b_offset >= 0:
                out += f.g @ v[f.b_offset : f.b_offset + d_out]
        return self._scaled(out)

    def rmv(self, u: torch.Tensor) -> torch.Tensor:
        """``(diag(s)J)ᵀ u`` (p,)."""
        u = self._scaled(u)
        out = torch.zeros(self.shape[1], dtype=self.dtype, device=self.device)
        for f in self.factors:
            d_out, d_in = f.g.shape[1], f.a.shape[1]
            gu = f.g * u[:, None]
            if f.w_offset >= 0:
                out[f.w_offset : f.w_offset + d_out * d_in] = (gu.T @ f.a).reshape(-1)
            if f.b_offset >= 0:
                out[f.b_offset : f.b_offset + d_out] = gu.sum(0)
        return out


def linear_layers(model: nn.Module, trained: set[str]) -> list[tuple[str, nn.Linear]] | None:
    """The ``nn.Linear`` modules holding every trained parameter, or None if some trained
    parameter lives elsewhere."""
    owners: dict[str, tuple[str, nn.Linear]] = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            for pname in ("weight", "bias"):
                full = f"{mod_name}.{pname}" if mod_name else pname
                if full in trained:
                    owners[full] = (mod_name, mod)
    if set(owners) != trained:
        return None
    seen: dict[str, nn.Linear] = {}
    for mod_name, mod in owners.values():
        seen[mod_name] = mod
    return list(seen.items())
