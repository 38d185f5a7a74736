"""A black-box residual function ``fun(x) -> r`` as a :class:`~gaussnewton.problems.Problem`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._errors import GaussNewtonError
from ._jacobian import BlackBoxJacobian, RowwiseResidual
from .base import Problem

__all__ = ["FunctionProblem"]


class FunctionProblem(Problem):
    """Residuals ``r = fun(x)`` of a 1-D parameter tensor, with an autodiff or user Jacobian.

    The dense Jacobian uses ``torch.func`` lanes (:mod:`gaussnewton.problems._jacobian`):
    forward mode (the linearized tangent program vmapped over the p basis vectors) or reverse
    mode (one ``vjp`` vmapped over the N basis covectors), chosen by the bytes one lane of
    each measurably writes, in cache-sized chunks within ``memory_budget``. A residual marked
    with :func:`~gaussnewton.problems.rowwise` gets its Jacobian one row at a time.

    Args:
        fun: ``fun(x) -> r``, x of shape (p,), r of shape (N,); torch ops only unless ``jac``
            is given.
        x0: the starting point (used for shapes, dtype and device).
        jac: optional ``jac(x) -> (N, p)`` (tensor or array).
        memory_budget: bytes for the vmapped Jacobian lanes.
    """

    def __init__(
        self,
        fun: Callable[[torch.Tensor], Any],
        x0: torch.Tensor,
        *,
        jac: Callable[[torch.Tensor], Any] | None = None,
        memory_budget: float = 2 * 2**30,
        r0: torch.Tensor | None = None,
    ) -> None:
        if not callable(fun):
            raise GaussNewtonError(f"`fun` must be callable; got {type(fun).__name__}.")
        if jac is not None and not callable(jac):
            raise GaussNewtonError(f"`jac` must be callable or None; got {type(jac).__name__}.")
        self.fun = fun
        self.jac = jac
        self.memory_budget = memory_budget
        self.dtype = x0.dtype
        self.device = x0.device
        self.n_params = int(x0.shape[0])
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        r0 = self.outputs(x0) if r0 is None else self._coerce(r0)
        self._last = (x0.detach().clone(), r0)
        if r0.ndim != 1:
            raise GaussNewtonError(
                f"`fun` must return a 1-D tensor of residuals; got shape {tuple(r0.shape)}."
            )
        self.n_outputs = int(r0.shape[0])
        self.output_shape = (self.n_outputs,)
        if self.n_outputs == 0:
            raise GaussNewtonError("`fun` must return at least one residual; got n = 0.")

    def outputs(self, theta: torch.Tensor) -> torch.Tensor:
        """``fun(θ)``; the last point's value is reused (no two calls at the same θ).

        Under a ``torch.func`` transform (``operator``'s JVP/VJP) ``fun`` is always called.
        """
        plain = not _is_wrapped(theta) and not theta.requires_grad
        last = self._last
        if plain and last is not None and last[0].shape == theta.shape:
            try:
                if torch.equal(last[0], theta):
                    return last[1]
            except RuntimeError:  # a tracing tensor (make_fx, torch.func.linearize) has no values
                plain = False
        # a copy: a residual that writes into its argument must not move the iterate (issue 16, item 5)
        if plain:
            r = self._coerce(self.fun(theta.clone()))
        else:  # under a torch.func transform: say why autodiff failed and what to pass instead
            try:
                r = self._coerce(self.fun(theta))
            except (RuntimeError, TypeError) as exc:
                explained = _explained(exc)
                if explained is exc:
                    raise
                raise explained from exc
        n = getattr(self, "n_outputs", None)
        if n is not None and r.numel() != n:
            raise GaussNewtonError(f"`fun` must return {n} residuals at every x (as at x0); got shape "
                                   f"{tuple(r.shape)}.")
        if plain:
            self._last = (theta.detach().clone(), r.detach())
        return r

    def _coerce(self, r: Any) -> torch.Tensor:
        """A residual return value as a real tensor of this problem's dtype (0-d becomes (1,))."""
        if isinstance(r, torch.Tensor) and r.is_complex():
            raise GaussNewtonError(f"`fun` must return real residuals; got dtype {r.dtype} "
                                   "(split a complex residual into its real and imaginary parts).")
        if not isinstance(r, torch.Tensor):
            try:
                r = torch.as_tensor(np.asarray(r), dtype=self.dtype, device=self.device)
            except (TypeError, ValueError):
                raise GaussNewtonError(
                    f"`fun` must return a tensor or array of residuals; got {type(r).__name__}."
                ) from None
        if r.dtype != self.dtype:  # integer results, or float32 data with a float64 iterate
            r = r.to(self.dtype)
        return r.reshape(1) if r.ndim == 0 else r

    def jacobian(self, theta: torch.Tensor) -> torch.Tensor:  # noqa: D102
        n, p = self.n_outputs, self.n_params
        if self.jac is not None:
            j = self.jac(theta)
            if not isinstance(j, torch.Tensor):
                j = torch.as_tensor(np.asarray(j), dtype=self.dtype, device=self.device)
            if tuple(j.shape) != (n, p):
                raise GaussNewtonError(
                    f"`jac` must return an array of shape (n, p) = ({n}, {p}); "
                    f"got shape {tuple(j.shape)}."
                )
            return j.to(dtype=self.dtype, device=self.device)
        if isinstance(self.fun, RowwiseResidual):
            return self.fun.jacobian(theta)
        if getattr(self, "_lanes", None) is None:  # planned at the first Jacobian, then kept
            self._lanes = BlackBoxJacobian(self.outputs, n, p, self.memory_budget)
        return self._lanes(theta)


_ESCAPES = ("data pointer", "numpy", "Numpy", "functorch", "vmap", "item()", "requires_grad", "in-place")


def _explained(exc: Exception) -> Exception:
    """A GaussNewtonError for an autodiff failure that leaves torch; other errors unchanged."""
    msg = str(exc)
    if not any(k in msg for k in _ESCAPES):
        return exc
    return GaussNewtonError(
        "Automatic differentiation of `fun` failed: it leaves torch (NumPy calls, .item(), .numpy() or "
        f"in-place updates of captured tensors): {msg.splitlines()[0]}. Pass jac='2-point' (finite "
        "differences) or a callable `jac`, or write `fun` with torch operations.")


def _is_wrapped(t: torch.Tensor) -> bool:
    """True for a tensor inside a ``torch.func`` transform (a functorch wrapper)."""
    check = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    return bool(check(t)) if check is not None else True
