r"""The paper's NTK-parameterized deep fully connected network (spec §2).

.. math::
   x^{(0)} = x,\qquad x^{(h)} = \sqrt{c_\sigma/m}\;\sigma(W^{(h)}x^{(h-1)}),\quad h = 1..H,
   \qquad f(x;\theta) = \langle c, x^{(H)}\rangle,

with :math:`W^{(h)}_{ik} \sim N(0,1)`, :math:`c_i \sim \mathrm{Unif}\{-1,+1\}` (eq. 2),
:math:`c_\sigma = 1/E_{z\sim N(0,1)}[\sigma(z)^2]` (Du et al. 2019's normalization), the output
layer frozen by default, and the re-centred, scaled prediction

.. math::  u(x) = \alpha\,(f(x;\theta) - f(x;\theta_0)),

so that the initial prediction is 0 for every α (spec §2.4–2.5). With H = 1 and c frozen,
p = m·d.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ._errors import GaussNewtonError, check_choice, check_positive, check_positive_int

__all__ = ["ACTIVATIONS", "MLP", "activation_constants"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": nn.functional.softplus,
    "gelu": nn.functional.gelu,
    "erf": torch.erf,
    "relu": torch.relu,
}


def activation_constants(name: str) -> dict[str, float]:
    """Return c_σ = 1/E[σ(z)²] and the bounds σ₀, σ₁, σ₂ of an activation, computed numerically.

    σ₀, σ₁, σ₂ are the sups of |σ|, |σ'|, |σ''| on the real line (∞ if unbounded); the
    expectation over z ~ N(0, 1) uses Gauss–Hermite quadrature, the sups a dense grid.

    Args:
        name: activation name.

    Returns:
        dict[str, float]: ``c_sigma``, ``sigma0``, ``sigma1``, ``sigma2``.

    Example:
        >>> from gaussnewton.models import activation_constants
        >>> {k: round(v, 4) for k, v in activation_constants("tanh").items()}
        {'c_sigma': 2.5362, 'sigma0': 1.0, 'sigma1': 1.0, 'sigma2': 0.7698}
    """
    fn = ACTIVATIONS[check_choice("activation", name, ACTIVATIONS)]
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    z = torch.as_tensor(nodes, dtype=torch.float64)
    second_moment = float((torch.as_tensor(weights) * fn(z) ** 2).sum()) / math.sqrt(2 * math.pi)
    grid = torch.linspace(-20, 20, 40001, dtype=torch.float64, requires_grad=True)
    vals = fn(grid)
    (d1,) = torch.autograd.grad(vals.sum(), grid, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), grid)
    bounded = name not in ("softplus", "gelu", "relu")
    return {
        "c_sigma": 1.0 / second_moment,
        "sigma0": float(vals.detach().abs().max()) if bounded else math.inf,
        "sigma1": float(d1.detach().abs().max()),
        "sigma2": float(d2.detach().abs().max()),
    }


class MLP(nn.Module):
    """The paper's network: NTK scaling, N(0,1) weights, ±1 output layer, re-centring, α.

    Args:
        in_features: input dimension d.
        width: hidden width m.
        depth: number of hidden layers H ≥ 1.
        activation: ``"tanh"`` (default), ``"sigmoid"``, ``"softplus"``, ``"gelu"``, ``"erf"``;
            ``"relu"`` is accepted with a warning (the theory assumes a smooth σ).
        alpha: output scale α > 0.
        train_output_layer: train c as well (Corollary 14); default frozen (§3.1–3.2).
        recenter: subtract f(x; θ_0) so the initial prediction is 0 (a frozen copy of θ_0 is
            kept as buffers).
        c_sigma: use the normalization c_σ = 1/E[σ(z)²] (True, default) or 1 (plain 1/√m).
        seed: seed for the initialization (None: torch's global generator).
        dtype: parameter dtype (default float64).

    Input (N, d), output (N,).

    Example:
        >>> import torch, gaussnewton as gn
        >>> net = gn.MLP(3, width=16, seed=0)
        >>> x = torch.randn(5, 3, dtype=torch.float64)
        >>> net(x).shape
        torch.Size([5])
        >>> sum(q.numel() for q in net.parameters() if q.requires_grad)  # p = m·d (c frozen)
        48
        >>> float(net(x).detach().abs().max())  # re-centred: the initial prediction is 0
        0.0
    """

    c0: torch.Tensor  # frozen copy of the output layer at θ_0 (a buffer; only with recenter)

    def __init__(
        self,
        in_features: int,
        width: int,
        depth: int = 1,
        activation: str = "tanh",
        alpha: float = 1.0,
        train_output_layer: bool = False,
        recenter: bool = True,
        c_sigma: bool = True,
        seed: int | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        d = check_positive_int("in_features", in_features)
        m = check_positive_int("width", width)
        depth = check_positive_int("depth", depth)
        check_choice("activation", activation, ACTIVATIONS)
        if activation == "relu":
            warnings.warn("activation='relu' is not smooth: the paper's theory assumes a smooth σ "
                          "with bounded σ'' (β-smoothness); rates may not hold.", UserWarning, stacklevel=2)
        self.alpha = check_positive("alpha", alpha)
        self.activation = activation
        self.width = m
        self.depth = depth
        self.recenter = bool(recenter)
        self.scale = math.sqrt((activation_constants(activation)["c_sigma"] if c_sigma else 1.0) / m)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        dims = [d] + [m] * depth
        self.hidden = nn.ModuleList()
        layers: list[nn.Linear] = []
        for h in range(depth):
            layer = nn.Linear(dims[h], m, bias=False, dtype=dtype)
            with torch.no_grad():
                layer.weight.copy_(torch.randn(m, dims[h], generator=gen, dtype=dtype))
            self.hidden.append(layer)
            layers.append(layer)
        signs = torch.randint(0, 2, (m,), generator=gen).to(dtype) * 2 - 1
        self.output = nn.Linear(m, 1, bias=False, dtype=dtype)
        with torch.no_grad():
            self.output.weight.copy_(signs[None, :])
        self.output.weight.requires_grad_(bool(train_output_layer))
        if self.recenter:
            for h, layer in enumerate(layers):
                self.register_buffer(f"w0_{h}", layer.weight.detach().clone())
            self.register_buffer("c0", signs.clone())

    def _reference(self, x: torch.Tensor) -> torch.Tensor:
        sigma = ACTIVATIONS[self.activation]
        for h in range(self.depth):
            x = self.scale * sigma(x @ getattr(self, f"w0_{h}").T)
        return x @ self.c0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return α·(f(x;θ) − f(x;θ_0)) (or α·f(x;θ) without re-centring), shape (N,)."""
        if x.ndim != 2 or x.shape[1] != self.hidden[0].in_features:
            raise GaussNewtonError(
                f"`x` must have shape (N, {self.hidden[0].in_features}); got {tuple(x.shape)}."
            )
        sigma = ACTIVATIONS[self.activation]
        h = x
        for layer in self.hidden:  # modules are called (not their weights used directly) so that
            h = self.scale * sigma(layer(h))  # the structured Linear-layer Jacobian applies
        out = self.output(h).squeeze(-1)
        if self.recenter:  # buffers only: constant in θ
            out = out - self._reference(x)
        return self.alpha * out

    def extra_repr(self) -> str:  # noqa: D102
        return (f"width={self.width}, depth={self.depth}, activation={self.activation!r}, "
                f"alpha={self.alpha:g}, recenter={self.recenter}")
