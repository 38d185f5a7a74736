"""The residual/output access layer: outputs f(θ), Jacobian J (N, p), JVP and VJP.

A :class:`Problem` maps a flat parameter vector θ (p,) to outputs (a tensor of ``N`` numbers:
residuals for :func:`~gaussnewton.least_squares`, predictions for :func:`~gaussnewton.fit`).
It knows nothing about losses, damping or linear solvers.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any

import torch

from ..operators import FunctionOperator

__all__ = ["Problem", "chunk_size_for"]


def chunk_size_for(lanes: int, bytes_per_lane: int, memory_budget: float) -> int | None:
    """Number of vmap lanes that fit ``memory_budget`` (None = all at once).

    Args:
        lanes: total lanes (basis vectors or samples).
        bytes_per_lane: estimated peak bytes one lane needs.
        memory_budget: bytes.

    Returns:
        int | None: the chunk size for ``torch.func.vmap(chunk_size=...)``.
    """
    fit = int(memory_budget // max(bytes_per_lane, 1))
    if fit >= lanes:
        return None
    return max(1, fit)


class Problem(ABC):
    """Outputs and first derivatives of a differentiable map θ (p,) ↦ f(θ) (N outputs).

    Attributes:
        n_outputs: N, the number of scalar outputs (residuals or predictions, flattened).
        n_params: p.
        output_shape: shape of :meth:`outputs` (``(N,)``, or ``(n, k)`` for multi-output).
        dtype: floating dtype of θ and the outputs.
        device: device of θ and the outputs.
    """

    n_outputs: int
    n_params: int
    output_shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    @abstractmethod
    def outputs(self, theta: torch.Tensor) -> torch.Tensor:
        """f(θ), shape ``output_shape``."""

    @abstractmethod
    def jacobian(self, theta: torch.Tensor) -> torch.Tensor:
        """Dense Jacobian ∂f/∂θ of the flattened outputs, shape (N, p)."""

    def jvp(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """J v, shape (N,)."""
        return torch.func.jvp(lambda t: self.outputs(t).reshape(-1), (theta,), (v,))[1]

    def vjp(self, theta: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Jᵀ u, shape (p,)."""
        fn = torch.func.vjp(lambda t: self.outputs(t).reshape(-1), theta)[1]
        return fn(u)[0]

    def operator(self, theta: torch.Tensor) -> FunctionOperator:
        """J at θ as a matrix-free operator; each linearization is built on first use and reused.

        ``Jᵀu`` needs one ``torch.func.vjp`` (one forward pass); ``Jv`` a ``torch.func.linearize``
        (a traced forward, several times dearer), so gradient descent, which only takes ``Jᵀh``,
        never pays for it.
        """
        flat = lambda t: self.outputs(t).reshape(-1)  # noqa: E731
        cache: dict[str, Any] = {}

        def jvp_fn(v: torch.Tensor) -> torch.Tensor:
            if "jvp" not in cache:
                with warnings.catch_warnings():
                    # torch.func.linearize's constant folding warns about an internal get_attr
                    # node (harmless, torch 2.13); silence exactly that message.
                    warnings.filterwarnings("ignore", message="Attempted to insert a get_attr Node")
                    cache["jvp"] = torch.func.linearize(flat, theta)[1]
            return cache["jvp"](v)

        def vjp_fn(u: torch.Tensor) -> torch.Tensor:
            if "vjp" not in cache:
                cache["vjp"] = torch.func.vjp(flat, theta)[1]
            return cache["vjp"](u)[0]

        return FunctionOperator(
            shape=(self.n_outputs, self.n_params),
            mv_fn=jvp_fn,
            rmv_fn=vjp_fn,
            dense_fn=lambda: self.jacobian(theta),
            dtype_=self.dtype,
            device_=self.device,
        )
