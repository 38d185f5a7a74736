r"""A NumPy residual function ``fun(x) -> r`` as a :class:`~gaussnewton.problems.Problem`.

SciPy's contract: ``fun`` receives a float64 ndarray x of shape (p,) and returns something
``np.atleast_1d`` turns into (N,) floats. The Jacobian is a user ``jac(x)`` (ndarray, a
``scipy.sparse`` matrix or a ``scipy.sparse.linalg.LinearOperator``) or finite differences by
SciPy's own :func:`scipy.optimize._numdiff.approx_derivative`, so the step rules are SciPy's:

* ``"2-point"``: h_j = √ε·max(1, |x_j|)·sign(x_j) (forward), error O(h);
* ``"3-point"``: h_j = ε^{1/3}·max(1, |x_j|) (central), error O(h²), twice the evaluations;
* ``"cs"``: complex step, Im f(x + i h e_j)/h, exact to rounding, needs a complex-safe ``fun``;
* ``diff_step`` replaces the relative factor (√ε or ε^{1/3}); steps are flipped to stay inside
  the bounds; with ``jac_sparsity`` columns that share no row are perturbed together (Curtis,
  Powell & Reid 1974), so a banded Jacobian costs a few evaluations instead of p.

The last evaluated point is cached: the driver evaluates ``fun`` once per trial point and the
finite differences reuse that f(x) (SciPy's ``f0``), so ``nfev`` counts every call to ``fun``
made outside the finite differences, as SciPy's ``trf`` reports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._errors import GaussNewtonError
from ..operators import FunctionOperator
from .base import Problem

__all__ = ["NumpyFunctionProblem", "as_residual_array"]

FD_METHODS = ("2-point", "3-point", "cs")


def as_residual_array(r: Any, name: str = "fun", keep_dtype: bool = False) -> np.ndarray:
    """``np.atleast_1d`` of a residual return value, checked to be 1-D and real (float64 unless kept)."""
    if isinstance(r, torch.Tensor):
        r = r.detach().cpu().numpy()
    arr = np.atleast_1d(np.asarray(r))
    if arr.ndim != 1:
        raise GaussNewtonError(f"`{name}` must return at most 1-d array_like; got shape {arr.shape}.")
    if np.iscomplexobj(arr):
        raise GaussNewtonError(f"`{name}` must return real residuals; got dtype {arr.dtype} "
                               "(split a complex residual into its real and imaginary parts).")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise GaussNewtonError(f"`{name}` must return numbers; got dtype {arr.dtype}.")
    if keep_dtype and np.issubdtype(arr.dtype, np.floating):
        return arr
    return arr.astype(np.float64, copy=False)


class _AtLeast1d:
    """``np.atleast_1d(fun(x))``, picklable when ``fun`` is (SciPy's ``workers`` pools pickle it)."""

    def __init__(self, fun: Callable[[np.ndarray], Any]) -> None:
        self.fun = fun

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.atleast_1d(self.fun(x))


class NumpyFunctionProblem(Problem):
    """Residuals of a NumPy function, with a user or finite-difference Jacobian.

    Args:
        fun: ``fun(x) -> r`` on float64 ndarrays (args/kwargs already bound).
        x0: the starting point (float64 tensor; its device holds the tensors the solver sees).
        jac: a callable ``jac(x)`` or one of ``"2-point"``, ``"3-point"``, ``"cs"``.
        diff_step: SciPy's relative finite-difference step (None: the method's default).
        bounds: ``(lb, ub)`` ndarrays for bound-aware steps, or None.
        jac_sparsity: (N, p) sparsity structure for grouped finite differences, or None.
        workers: SciPy's ``workers`` for parallel finite differences (None: serial).
        r0: ``fun(x0)`` if already evaluated (it is then not evaluated again).
    """

    def __init__(self, fun: Callable[[np.ndarray], Any], x0: torch.Tensor, *, jac: Any = "2-point",
                 diff_step: Any = None, bounds: tuple[np.ndarray, np.ndarray] | None = None,
                 jac_sparsity: Any = None, workers: Any = None, r0: np.ndarray | None = None) -> None:
        if not callable(fun):
            raise GaussNewtonError(f"`fun` must be callable; got {type(fun).__name__}.")
        self.fun, self.jac, self.diff_step = fun, jac, diff_step
        self.bounds, self.jac_sparsity, self.workers = bounds, jac_sparsity, workers
        self.dtype, self.device = torch.float64, x0.device
        self.n_params = int(x0.shape[0])
        self.calls = 0
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._jac_cache: tuple[np.ndarray, Any] | None = None
        self._kind: str | None = None
        x = x0.detach().cpu().numpy().astype(np.float64)
        if r0 is None:
            r0 = self._call(x)
        self._last = (x.copy(), r0)
        self.n_outputs = int(r0.shape[0])
        self.output_shape = (self.n_outputs,)
        if self.n_outputs == 0:
            raise GaussNewtonError("`fun` must return at least one residual; got n = 0.")

    @property
    def jac_kind(self) -> str:
        """What the user's ``jac`` returns at x0: ``"dense"``, ``"sparse"`` or ``"operator"``."""
        if self._kind is None:
            assert self._last is not None
            self._jacobian_np(self._last[0])
        assert self._kind is not None
        return self._kind

    @property
    def linear_operator(self) -> bool:
        """True when the user's ``jac`` returns a ``LinearOperator`` (matrix-free only)."""
        return self.jac_kind == "operator"

    def _call(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        # x.copy(): a residual that writes into its argument must not move the iterate; a float32
        # result is kept so that SciPy picks float32 difference steps
        return as_residual_array(self.fun(x.copy()), keep_dtype=True)

    def _f(self, x: np.ndarray) -> np.ndarray:
        """f(x), from the cache when x is the last evaluated point."""
        if self._last is not None and np.array_equal(self._last[0], x):
            return self._last[1]
        r = self._call(x)
        if r.shape != (self.n_outputs,):
            raise GaussNewtonError(f"`fun` must return {self.n_outputs} residuals at every x; got shape {r.shape}.")
        self._last = (x.copy(), r)
        return r

    def outputs(self, theta: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = theta.detach().cpu().numpy().astype(np.float64)
        return torch.as_tensor(self._f(x).astype(np.float64), dtype=self.dtype).to(self.device)

    def _jacobian_np(self, x: np.ndarray) -> tuple[Any, bool]:
        """(J at x as ndarray / LinearOperator, is_linear_operator), cached for the last x."""
        if self._jac_cache is not None and np.array_equal(self._jac_cache[0], x):
            return self._jac_cache[1]
        from scipy.sparse import issparse
        from scipy.sparse.linalg import LinearOperator

        n, p = self.n_outputs, self.n_params
        if callable(self.jac):
            j = self.jac(x)
        else:
            from scipy.optimize._numdiff import approx_derivative  # SciPy's step rules (private, stable since 1.1)

            extra = {} if self.workers is None else {"workers": self.workers}
            lb, ub = self.bounds if self.bounds is not None else (-np.inf, np.inf)
            j = approx_derivative(_AtLeast1d(self.fun), x, method=self.jac,
                                  rel_step=self.diff_step, f0=self._f(x), bounds=(lb, ub),
                                  sparsity=self.jac_sparsity, **extra)
        is_op = isinstance(j, LinearOperator)
        if self._kind is None:
            self._kind = "operator" if is_op else "sparse" if issparse(j) and callable(self.jac) else "dense"
        if issparse(j):
            j = j.toarray()
        elif not is_op:
            j = np.atleast_2d(np.asarray(j))
            if np.iscomplexobj(j):
                raise GaussNewtonError(f"`jac` must return a real matrix; got dtype {j.dtype}.")
            j = j.astype(np.float64, copy=False)
        if tuple(j.shape) != (n, p):
            raise GaussNewtonError(f"The return value of `jac` has wrong shape: expected {(n, p)}, "
                                   f"actual {tuple(j.shape)}.")
        self._jac_cache = (x.copy(), (j, is_op))
        return j, is_op

    def jacobian(self, theta: torch.Tensor) -> torch.Tensor:  # noqa: D102
        j, is_op = self._jacobian_np(theta.detach().cpu().numpy().astype(np.float64))
        if is_op:
            raise GaussNewtonError("`jac` returns a LinearOperator, which has no dense form: use a matrix-free "
                                   "solver (tr_solver='lsmr' or solver='cg'), not tr_solver='exact'.")
        return torch.as_tensor(j, dtype=self.dtype).to(self.device)

    def jvp(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.operator(theta).mv(v)

    def vjp(self, theta: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.operator(theta).rmv(u)

    def operator(self, theta: torch.Tensor) -> FunctionOperator:
        """J at θ from the user's matrix, LinearOperator or finite differences (one J per θ)."""
        j, is_op = self._jacobian_np(theta.detach().cpu().numpy().astype(np.float64))
        dev, dt = self.device, self.dtype

        def to_t(a: Any) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(-1), dtype=dt).to(dev)

        if is_op:
            return FunctionOperator((self.n_outputs, self.n_params),
                                    lambda v: to_t(j.matvec(v.detach().cpu().numpy())),
                                    lambda u: to_t(j.rmatvec(u.detach().cpu().numpy())),
                                    None, dt, dev)
        jt = torch.as_tensor(j, dtype=dt).to(dev)
        return FunctionOperator((self.n_outputs, self.n_params), lambda v: jt @ v, lambda u: jt.T @ u,
                                lambda: jt, dt, dev)
