r"""Many independent least-squares fits at once: batched Levenberg–Marquardt.

B problems of one form (one curve per pixel, per spectrum, per sensor: Gpufit's use case).
Problem b has parameters ``x_b`` (p,), data ``a_b`` (one slice of each batched argument) and
residuals ``r_b = fun(x_b, a_b)`` (n,); it minimizes ``cost_b = ½‖r_b‖²`` on its own. The B
problems share nothing but the code of ``fun``, so every quantity below carries a batch index
and every reduction runs over the n or p dimensions, never over b.

The damped system. At the iterate ``x_b`` with ``J_b = ∂r_b/∂x_b`` (n, p), ``g_b = J_bᵀr_b``
and ``G_b = J_bᵀJ_b``, the Levenberg–Marquardt step solves

.. math::  (G_b + \rho_b D_b)\,\delta_b = -g_b, \qquad b = 1, \dots, B,

with MINPACK's scaling ``D_b = diag(max_{k ≤ t} diag(G_b^{(k)}))`` (the running maximum of the
squared column norms of J over the iterates; floored at ``eps·max(max D_b, 1)``). In the
variables ``z = D^{1/2}δ`` the matrix ``D^{-1/2}GD^{-1/2} + ρI`` is positive definite for every
ρ > 0, so all B systems are one batched Cholesky factorization of a (B, p, p) tensor
(``torch.linalg.cholesky_ex``, whose per-matrix ``info`` marks a failed factorization without
raising) and one batched triangular solve.

The gain ratio. The GN model ``m_b(δ) = ½‖r_b + J_bδ‖²`` predicts the reduction

.. math::  \mathrm{pred}_b = m_b(0) - m_b(\delta_b) = -g_b^\top\delta_b - \tfrac12\,\delta_b^\top G_b\,\delta_b,

the trial gives ``actual_b = cost_b(x_b) − cost_b(x_b + δ_b)``, and ``gain_ratio_b =
actual_b / pred_b`` (−∞ for a non-finite trial cost or a failed factorization; ±∞ for
``pred_b ≤ 0`` as in :func:`gaussnewton._objective.gain_ratio`). Each problem then takes
Nielsen's update (:class:`gaussnewton.damping.Nielsen` with ``scaling="diag", fast_endgame=True,
secant=True``, ρ₀ = τ, as :func:`gaussnewton.least_squares`):

.. code-block:: text

    accepted (0 < gain_ratio < ∞):  x ← x + δ;  ρ ← ρ·max(1/3, 1 − (2·gain_ratio − 1)³);  ν ← 2
                                    (ρ ← ρ·min(that factor, 1/10) when gain_ratio > 3/4)
                                    (ρ ← ρ·min(that factor, max(q, 1/10)), q the secant factor)
    rejected:                       ρ ← ρ·ν;  ν ← 2ν      (J, G, g kept: only the solve is redone)

Termination, per problem, with SciPy's definitions and the codes of
:class:`~gaussnewton.result.Termination`, in the order of the single-problem solver:

* after a Jacobian evaluation: non-finite ``J`` or ``g`` → NONFINITE; ``‖g‖∞ < gtol`` or
  ``cost = 0`` → GTOL;
* after an accepted trial: ``actual < ftol·cost`` (with gain_ratio > 1/4) → FTOL,
  ``‖δ‖ < xtol·(xtol + ‖x‖)`` → XTOL, both → FTOL_XTOL;
* after a rejected trial with a finite cost: ``‖δ‖ < xtol·(xtol + ‖x‖)`` → XTOL; else
  ``ρ > 10¹⁶`` (relative to D) → DAMPING_MAX;
* otherwise ``nfev ≥ max_nfev`` → MAX_EVALS (also before the first Jacobian: no trial ever
  exceeds the budget).

Per-problem masks. Two boolean (B,) masks drive the loop: ``active`` (no status yet) and
``relinearize`` (the last trial was accepted, or it is the first iterate: J is needed at the
new point). One loop iteration

1. evaluates ``J`` for ``active & relinearize`` only, forms ``G``, ``g``, ``D`` and applies the
   Jacobian tests;
2. for every still-active problem solves the damped system, evaluates ``fun`` at the trial
   point, computes the gain ratio and applies the Nielsen update and the termination tests.

Problems with a status are frozen: they are left out of every evaluation and their results
are never written again, so an expensive straggler costs only its own evaluations, and a NaN
or Inf in one problem's residuals (or a failed factorization) is confined to that problem:
it becomes a rejected trial (larger ρ) or a NONFINITE status there, and nothing else reads it.
A problem whose residuals at ``x0`` are non-finite gets status NONFINITE at once (the
single-problem solver raises instead; here the others go on).

Why a separate loop and not B calls of the shared :class:`~gaussnewton._stepper.Stepper`:
the Stepper works on one problem and turns ρ, the gain ratio and every termination test into
Python numbers and branches (one host synchronization per decision). Here each of those is
a (B,) tensor and each branch a mask, so one pass of the loop is a fixed number of batched
tensor operations whatever B is, on CPU or GPU. The rules are the same as
``least_squares(..., method="lm")`` with its default damping; ``tests/test_batched.py`` checks
that, problem by problem, both give the same x, cost and status (and evaluation counts).

Differs from the single-problem solver in:

* the predicted reduction is formed from ``G`` (``−gᵀδ − ½δᵀGδ``) instead of ``Jδ``, so that
  J (B, n, p) need not be kept between iterations (only G, B·p²): equal up to rounding;
* a failed Cholesky factorization is a rejected trial at once (the single solver first retries
  with a jitter on the diagonal); with ρ > 0 and finite G this does not happen in practice;
* non-finite residuals at ``x0`` give status NONFINITE instead of an exception;
* no bounds, robust losses, weight decay, callbacks or history.

References:
    Moré (1978), "The Levenberg–Marquardt algorithm: implementation and theory" (MINPACK's
    scaling); Madsen, Nielsen & Tingleff (2004), "Methods for non-linear least squares
    problems", §3.2 (the damping update); Przybylski et al. (2017), "Gpufit" (the use case).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.func import jacfwd, jvp, vmap

from ._errors import (
    GaussNewtonError,
    _describe,
    check_choice,
    check_nonneg,
    check_positive,
    check_positive_int,
    to_float_tensor,
)
from .result import Termination

__all__ = ["BatchedLeastSquaresResult", "least_squares_batched"]

_RUNNING = -100  # status of a problem that has not stopped (never a Termination value)
_FTOL_RATIO = 0.25  # SciPy's trf and the single-problem Stepper: ftol counts only for well-predicted steps
# Nielsen's update, as gaussnewton.damping.Nielsen.update (pinned against it in tests/test_batched.py)
_SHRINK_MIN = 1.0 / 3.0  # ρ shrinks by at most a factor of 3 after an accepted step ...
_GOOD_RATIO = 0.75  # ... except after a well-predicted one (MINPACK's "very successful" threshold) ...
_FAST_SHRINK = 0.1  # ... where it shrinks at least 10× (fast endgame near zero-residual solutions)
_NU0 = 2.0  # Nielsen's initial growth factor ν
_RHO_MAX = 1e16  # gaussnewton.steps.RHO_MAX_FACTOR: ρ (relative to D = diag(JᵀJ)) beyond this means no step helps
# default chunk: Jacobians of about 4 MiB per vectorized call (cache-sized: on CPU 2-4x faster than
# one call over B = 1e5 problems; measured with vmap(jacfwd) and an analytic jac, n = 50, p = 4)
_JAC_BYTES = 2**22

ArrayLike = Any  # torch.Tensor | np.ndarray | nested lists


@dataclass
class BatchedLeastSquaresResult:
    """Result of :func:`least_squares_batched`: one entry per problem along the first axis.

    Arrays are torch tensors, or NumPy arrays when ``x0`` was a NumPy array (or a list).

    Attributes:
        x: (B, p) solutions.
        cost: (B,) ``½‖r_b(x_b)‖²``.
        fun: (B, n) residuals at ``x``.
        status: (B,) :class:`~gaussnewton.result.Termination` codes (int).
        success: (B,) ``status > 0``.
        nfev: (B,) residual evaluations per problem (the one at ``x0`` included).
        njev: (B,) Jacobian evaluations per problem.
        nit: (B,) trial steps per problem (accepted and rejected).
        iterations: passes of the batched loop (the largest ``nit``, plus one when the last
            pass only evaluated Jacobians).
    """

    x: Any
    cost: Any
    fun: Any
    status: Any
    success: Any
    nfev: Any
    njev: Any
    nit: Any
    iterations: int

    def __len__(self) -> int:
        return int(self.status.shape[0])

    def termination(self, i: int) -> Termination:
        """The :class:`~gaussnewton.result.Termination` member of problem ``i``.

        Args:
            i: problem index in ``[-B, B)``.

        Returns:
            Termination: why problem ``i`` stopped.

        Raises:
            IndexError: if ``i`` is out of range.
        """
        b = len(self)
        if not -b <= i < b:
            raise IndexError(f"problem index {i} is out of range for a batch of B = {b} problems.")
        return Termination(int(self.status[i]))

    def message(self, i: int) -> str:
        """Why problem ``i`` stopped (the message of its :class:`~gaussnewton.result.Termination`).

        Args:
            i: problem index in ``[-B, B)``.

        Returns:
            str: the message.
        """
        return self.termination(i).message

    def messages(self) -> dict[int, str]:
        """The message of every status that occurs in the batch.

        Returns:
            dict[int, str]: status code → message, for the codes present.
        """
        codes = sorted({int(s) for s in np.asarray(_to_numpy(self.status)).tolist()})
        return {c: Termination(c).message for c in codes}

    def counts(self) -> dict[str, int]:
        """How many problems stopped for each reason.

        Returns:
            dict[str, int]: Termination name → number of problems, for the reasons present.
        """
        values, freq = np.unique(np.asarray(_to_numpy(self.status)), return_counts=True)
        return {Termination(int(v)).name: int(c) for v, c in zip(values, freq, strict=True)}


def _to_numpy(a: Any) -> Any:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a


class _Evaluator:
    """Residuals and Jacobians of a subset of the B problems, in chunks of problems.

    Args:
        fun: the user's residual function.
        jac: the user's Jacobian function or None (forward-mode autodiff).
        args: batched data, each with leading dimension B.
        vectorized: whether ``fun``/``jac`` take the whole batch themselves.
        chunk: problems per vectorized call.
    """

    def __init__(self, fun: Callable[..., Any], jac: Callable[..., Any] | None, args: tuple[torch.Tensor, ...],
                 vectorized: bool, chunk: int) -> None:
        self.args, self.chunk = args, chunk
        if vectorized:
            self._fun = fun
            self._jac = jac if jac is not None else _batched_jacfwd(fun)
        else:
            self._fun = vmap(fun)
            # forward mode: p lanes per problem; the single-problem solver also uses forward mode for n ≥ p
            self._jac = vmap(jac if jac is not None else jacfwd(fun))

    def _chunks(self, x: torch.Tensor, idx: torch.Tensor | None) -> list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]]:
        m = x.shape[0]
        out = []
        for lo in range(0, m, self.chunk):
            hi = min(lo + self.chunk, m)
            if idx is None:
                data = tuple(a[lo:hi] for a in self.args) if (lo, hi) != (0, m) else self.args
            else:
                sel = idx[lo:hi]
                data = tuple(a.index_select(0, sel) for a in self.args)
            out.append((x[lo:hi] if (lo, hi) != (0, m) else x, data))
        return out

    def residuals(self, x: torch.Tensor, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, n) residuals of the problems ``idx`` (None: all B) at ``x`` (m, p), and their (m,) costs.

        The costs are summed chunk by chunk, while each chunk's residuals are still in cache.
        """
        rs, cs = [], []
        for xc, data in self._chunks(x, idx):
            r = _as_tensor_output("fun", self._fun(xc, *data), x)
            rs.append(r)
            cs.append(_cost(r))
        if len(rs) == 1:
            return rs[0], cs[0]
        return torch.cat(rs), torch.cat(cs)

    def linearize(self, x: torch.Tensor, r: torch.Tensor,
                  idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``G = JᵀJ`` (m, p, p) and ``g = Jᵀr`` (m, p) of the problems ``idx`` at ``x`` (m, p).

        J is reduced chunk by chunk, so at most one chunk of Jacobians is held at a time.
        """
        grams, grads = [], []
        lo = 0
        for xc, data in self._chunks(x, idx):
            j = _as_tensor_output("jac", self._jac(xc, *data), x)
            m = xc.shape[0]
            if j.shape != (m, r.shape[1], x.shape[1]):
                raise GaussNewtonError(f"`jac` must return the (n, p) = {(r.shape[1], x.shape[1])} Jacobian of each "
                                       f"problem; got a batch of shape {tuple(j.shape)} for {m} problems.")
            grams.append(j.mT @ j)
            grads.append((j.mT @ r[lo:lo + m, :, None]).squeeze(-1))
            lo += m
        if len(grams) == 1:
            return grams[0], grads[0]
        return torch.cat(grams), torch.cat(grads)


def _batched_jacfwd(fun: Callable[..., Any]) -> Callable[..., torch.Tensor]:
    """Jacobians (m, n, p) of a vectorized ``fun(X (m, p), *data) -> (m, n)`` by p forward passes.

    Problem b's residuals depend on ``X[b]`` only, so the tangent ``e_k`` in every row gives
    column k of all m Jacobians at once.
    """

    def jac(x: torch.Tensor, *data: torch.Tensor) -> torch.Tensor:
        p = x.shape[1]
        tangents = torch.eye(p, dtype=x.dtype, device=x.device)[:, None, :].expand(p, x.shape[0], p)

        def column(v: torch.Tensor) -> torch.Tensor:
            return jvp(lambda z: fun(z, *data), (x,), (v,))[1]

        return vmap(column)(tangents).permute(1, 2, 0)

    return jac


def _as_tensor_output(name: str, out: Any, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise GaussNewtonError(f"`{name}` must return a torch tensor (it is evaluated under torch.func.vmap); "
                               f"got {type(out).__name__}.")
    return out if out.dtype == x.dtype else out.to(x.dtype)


def _batch_args(args: Any, batch: int | None, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], int]:
    """Validate ``args`` (each with leading dimension B) and return them as tensors, and B."""
    if not isinstance(args, (tuple, list)):
        raise GaussNewtonError(f"`args` must be a tuple of arrays, each with a leading batch dimension; "
                               f"got {type(args).__name__}.")
    out = []
    for k, a in enumerate(args):
        name = f"args[{k}]"
        if isinstance(a, torch.Tensor):
            t = a
            if t.device != x.device:
                raise GaussNewtonError(f"`{name}` must be on the device of `x0` ({x.device}); got {t.device}. "
                                       "Move it with .to(x0.device).")
        elif isinstance(a, (np.ndarray, list, tuple)):
            arr = np.asarray(a)
            if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
                raise GaussNewtonError(f"`{name}` must be a numeric array; got {_describe(a)}.")
            t = torch.as_tensor(arr, device=x.device)
            if t.is_floating_point():
                t = t.to(x.dtype)
        else:
            raise GaussNewtonError(f"`{name}` must be a tensor or array with a leading batch dimension of size B; got "
                                   f"{type(a).__name__}. Data shared by all problems belongs in the closure of `fun`.")
        if t.ndim == 0:
            raise GaussNewtonError(f"`{name}` must have a leading batch dimension (one entry per problem); got a "
                                   "0-dimensional value. Data shared by all problems belongs in the closure of `fun`.")
        if batch is None:
            batch = int(t.shape[0])
        elif t.shape[0] != batch:
            raise GaussNewtonError(f"`{name}` must have a leading batch dimension of size B = {batch} (one entry per "
                                   f"problem, as `x0`{'' if k == 0 else ' and args[0]'}); got shape {tuple(t.shape)}. "
                                   "Data shared by all problems belongs in the closure of `fun`.")
        out.append(t)
    if batch is None:
        raise GaussNewtonError(f"`x0` must be 2-dimensional (B, p) when no batched `args` give B; got shape "
                               f"{tuple(x.shape)}.")
    return tuple(out), batch


def least_squares_batched(
    fun: Callable[..., torch.Tensor],
    x0: ArrayLike,
    args: Sequence[ArrayLike] = (),
    *,
    jac: Callable[..., torch.Tensor] | None = None,
    method: str = "lm",
    ftol: float | None = 1e-8,
    xtol: float | None = 1e-8,
    gtol: float | None = 1e-8,
    max_nfev: int | None = None,
    tau: float = 1e-3,
    vectorized: bool = False,
    chunk_size: int | None = None,
) -> BatchedLeastSquaresResult:
    """Solve B independent problems ``min ½‖fun(x_b, *args_b)‖²`` by batched Levenberg–Marquardt.

    Each problem follows the rules of ``gaussnewton.least_squares(..., method="lm")`` for
    p ≤ 32 (Nielsen damping with MINPACK's diag(JᵀJ) scaling at every p here, SciPy's
    ftol/xtol/gtol) and stops on its own;
    the B damped systems are solved by one batched Cholesky factorization per pass. See the
    module docstring for the algorithm.

    Args:
        fun: ``fun(x, *args) -> r`` for ONE problem: x of shape (p,), each ``args[k]`` one
            problem's slice (``args[k][b]``), r of shape (n,). Torch operations only; it is
            vectorized over the problems with :func:`torch.func.vmap` (so no data-dependent
            Python branches on tensor values; use ``torch.where``). Data shared by all
            problems (e.g. a common time grid) belongs in its closure. With
            ``vectorized=True`` it takes the whole batch instead: x (m, p), data (m, ...),
            returns (m, n).
        x0: (B, p) starting points, or (p,) for the same start for every problem (then B comes
            from ``args``). Tensor, NumPy array or list; float64 unless a floating tensor of
            another dtype (its dtype and device are kept).
        args: batched data: a tuple of tensors/arrays, each with leading dimension B (NumPy
            arrays are moved to the device of ``x0``; floating ones to its dtype).
        jac: optional ``jac(x, *args) -> (n, p)`` with the convention of ``fun`` (vmapped;
            ``(m, n, p)`` with ``vectorized=True``). Default: forward-mode autodiff
            (``vmap(jacfwd(fun))``).
        method: ``"lm"`` (the only method).
        ftol: relative cost-reduction tolerance (SciPy's definition); 0 or None disables.
        xtol: relative step tolerance; 0 or None disables.
        gtol: tolerance on ‖Jᵀr‖∞; 0 or None disables. At least one of the three must
            exceed machine epsilon (SciPy's rule).
        max_nfev: evaluations of ``fun`` per problem (default 100·max(p, 10), as
            :func:`gaussnewton.least_squares`).
        tau: initial damping ρ₀ > 0 (in units of D = diag(JᵀJ); default 1e-3, Madsen et al.).
        vectorized: ``fun`` (and ``jac``) already take a batch of problems (see ``fun``).
        chunk_size: problems per vectorized call of ``fun``/``jac`` (bounds memory: one chunk of
            Jacobians is held at a time). Default: as many as fit 4 MiB of Jacobians (cache-sized).

    Returns:
        BatchedLeastSquaresResult: per problem ``x, cost, fun, status, success, nfev, njev,
        nit``; NumPy arrays if ``x0`` was not a tensor.

    Raises:
        GaussNewtonError: bad arguments (each message names the argument), or a ``fun``/``jac``
            that cannot be vectorized or returns the wrong shape.
        NonFiniteError: ``x0`` contains NaN/Inf.

    Example:
        >>> import torch
        >>> from gaussnewton.batched import least_squares_batched
        >>> t = torch.linspace(0, 1, 20, dtype=torch.float64)
        >>> amp = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        >>> y = amp[:, None] * torch.exp(-1.5 * t)              # B = 3 curves
        >>> res = least_squares_batched(lambda x, yb: x[0] * torch.exp(-x[1] * t) - yb,
        ...                             torch.ones(3, 2, dtype=torch.float64), (y,))
        >>> res.success.tolist(), [round(v, 6) for v in res.x[:, 0].tolist()]
        ([True, True, True], [1.0, 2.0, 3.0])
    """
    x, batch, p, numpy_out, tensors, tols, budget = _validate(fun, x0, args, jac, method, ftol, xtol, gtol,
                                                              max_nfev, tau, vectorized, chunk_size)
    ftol, xtol, gtol = tols
    n = _probe(fun, x, tensors, vectorized)
    chunk = chunk_size if chunk_size is not None else max(1, _JAC_BYTES // (n * p * x.element_size()))
    ev = _Evaluator(fun, jac, tensors, vectorized, chunk)
    r, cost = ev.residuals(x, None)
    max_nfev = budget if budget is not None else 100 * max(p, 10)
    state = _State.start(x, r, cost, tau, max_nfev)
    iterations = 0
    while True:
        lin = state.active() & state.relinearize
        if bool(lin.any()):
            _linearize(ev, state, lin, gtol)
        active = state.active()
        if not bool(active.any()):
            break
        iterations += 1
        _trial(ev, state, active, ftol, xtol, max_nfev)
    res = BatchedLeastSquaresResult(
        x=state.x, cost=state.cost, fun=state.r, status=state.status, success=state.status > 0,
        nfev=state.nfev, njev=state.njev, nit=state.nit, iterations=iterations,
    )
    if numpy_out:
        for f in ("x", "cost", "fun", "status", "success", "nfev", "njev", "nit"):
            setattr(res, f, _to_numpy(getattr(res, f)))
    return res


def _validate(fun: Any, x0: Any, args: Any, jac: Any, method: str, ftol: float | None, xtol: float | None,
              gtol: float | None,
              max_nfev: int | None, tau: float, vectorized: bool,
              chunk_size: int | None) -> tuple[torch.Tensor, int, int, bool, tuple[torch.Tensor, ...],
                                               tuple[float, float, float], int | None]:
    """Check every argument (messages name it) and bring x0 to (B, p) with its batched data."""
    if not callable(fun):
        raise GaussNewtonError(f"`fun` must be callable; got {type(fun).__name__}.")
    if jac is not None and not callable(jac):
        raise GaussNewtonError(f"`jac` must be callable or None; got {type(jac).__name__}. "
                               "(Finite-difference names such as '2-point' are not supported here: the "
                               "default is forward-mode autodiff.)")
    check_choice("method", method, ("lm",))
    if not isinstance(vectorized, bool):
        raise GaussNewtonError(f"`vectorized` must be True or False; got {vectorized!r}.")
    tols = _tolerances(ftol, xtol, gtol)
    budget = check_positive_int("max_nfev", max_nfev, allow_none=True)
    check_positive("tau", tau)
    check_positive_int("chunk_size", chunk_size, allow_none=True)
    numpy_out = not isinstance(x0, torch.Tensor)
    if isinstance(x0, torch.Tensor) and x0.is_floating_point():
        x = to_float_tensor("x0", x0, ndim=(1, 2))
    else:
        x = to_float_tensor("x0", x0, ndim=(1, 2), dtype=torch.float64)
    if x.shape[-1] == 0:
        raise GaussNewtonError(f"`x0` must have at least one parameter per problem; got shape {tuple(x.shape)}.")
    tensors, batch = _batch_args(args, int(x.shape[0]) if x.ndim == 2 else None, x)
    if batch == 0:
        raise GaussNewtonError(f"the batch must hold at least one problem; got B = 0 (`x0` of shape "
                               f"{tuple(x.shape)}).")
    x = x.detach().clone() if x.ndim == 2 else x.detach().expand(batch, -1).clone()
    return x, batch, int(x.shape[1]), numpy_out, tensors, tols, budget


def _tolerances(ftol: float | None, xtol: float | None, gtol: float | None) -> tuple[float, float, float]:
    """SciPy's rules, as :func:`gaussnewton.least_squares`: None means 0; all below ε is an error."""
    eps = float(np.finfo(float).eps)
    values = tuple(0.0 if v is None else check_nonneg(name, v) for name, v in (("ftol", ftol), ("xtol", xtol),
                                                                               ("gtol", gtol)))
    if all(v < eps for v in values):
        raise GaussNewtonError(f"At least one of the tolerances must be higher than machine epsilon ({eps:.2e}); "
                               f"got ftol = {ftol}, xtol = {xtol}, gtol = {gtol}.")
    return values[0], values[1], values[2]


def _probe(fun: Callable[..., Any], x: torch.Tensor, args: tuple[torch.Tensor, ...], vectorized: bool) -> int:
    """n, from ``fun`` on the first problem; a failure to vectorize becomes a message saying what to do."""
    x1, a1 = x[:1], tuple(a[:1] for a in args)
    try:
        r = fun(x1, *a1) if vectorized else vmap(fun)(x1, *a1)
    except GaussNewtonError:
        raise
    except (RuntimeError, TypeError, ValueError) as exc:
        how = ("with `vectorized=True` it receives x of shape (B, p) and each argument's whole batch"
               if vectorized else
               "it is applied to one problem (x of shape (p,)) under torch.func.vmap, so it must use torch "
               "operations only, without Python branches on tensor values (use torch.where) or .item()")
        raise GaussNewtonError(f"`fun` could not be evaluated on the batch: {type(exc).__name__}: {exc}. "
                               f"Note: {how}.") from exc
    r = _as_tensor_output("fun", r, x)
    if r.ndim != 2 or r.shape[0] != 1:
        per = tuple(r.shape[1:]) if r.ndim >= 1 else ()
        raise GaussNewtonError(f"`fun` must return a 1-D tensor of n residuals per problem; got per-problem "
                               f"shape {per}.")
    if r.shape[1] == 0:
        raise GaussNewtonError("`fun` must return at least one residual per problem; got n = 0.")
    return int(r.shape[1])


@dataclass
class _State:
    """Per-problem state of the batched loop: every field has leading dimension B."""

    x: torch.Tensor  # (B, p) current (accepted) parameters
    r: torch.Tensor  # (B, n) residuals at x
    cost: torch.Tensor  # (B,) ½‖r‖²
    gram: torch.Tensor  # (B, p, p) G = JᵀJ at the last linearization
    grad: torch.Tensor  # (B, p) g = Jᵀr there
    diag_run: torch.Tensor  # (B, p) MINPACK's running maximum of diag(G)
    rho: torch.Tensor  # (B,) damping ρ
    nu: torch.Tensor  # (B,) Nielsen's growth factor ν
    nfev: torch.Tensor  # (B,) int64
    njev: torch.Tensor  # (B,) int64
    nit: torch.Tensor  # (B,) int64
    status: torch.Tensor  # (B,) int64: a Termination value, or _RUNNING
    relinearize: torch.Tensor  # (B,) bool: J needed at x (first iterate, or last trial accepted)

    @staticmethod
    def start(x: torch.Tensor, r: torch.Tensor, cost: torch.Tensor, tau: float, max_nfev: int) -> _State:
        """The state at x0: NONFINITE where ``r(x0)`` is, MAX_EVALS where ``max_nfev`` ≤ 1."""
        b, p = x.shape
        dt, dev = x.dtype, x.device
        status = torch.full((b,), _RUNNING, dtype=torch.int64, device=dev)
        if max_nfev <= 1:  # the evaluation at x0 spent the budget (the single solver checks before each step)
            status.fill_(Termination.MAX_EVALS.value)
        status[~torch.isfinite(cost)] = Termination.NONFINITE.value
        return _State(
            x=x, r=r, cost=cost, gram=torch.zeros(b, p, p, dtype=dt, device=dev),
            grad=torch.zeros(b, p, dtype=dt, device=dev), diag_run=torch.zeros(b, p, dtype=dt, device=dev),
            rho=torch.full((b,), tau, dtype=dt, device=dev), nu=torch.full((b,), _NU0, dtype=dt, device=dev),
            nfev=torch.ones(b, dtype=torch.int64, device=dev), njev=torch.zeros(b, dtype=torch.int64, device=dev),
            nit=torch.zeros(b, dtype=torch.int64, device=dev), status=status,
            relinearize=torch.ones(b, dtype=torch.bool, device=dev),
        )

    def active(self) -> torch.Tensor:
        """(B,) bool: problems without a status."""
        return self.status == _RUNNING


def _cost(r: torch.Tensor) -> torch.Tensor:
    """(m,) ½‖r‖² per row; NaN where non-finite (as the single-problem objective)."""
    c = 0.5 * (r * r).sum(dim=1)
    return torch.where(torch.isfinite(c), c, torch.full_like(c, float("nan")))


def _subset(mask: torch.Tensor) -> torch.Tensor | None:
    """Indices of ``mask``, or None when it selects every problem (no gather needed)."""
    if bool(mask.all()):
        return None
    return mask.nonzero().squeeze(1)


def _take(t: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    return t if idx is None else t.index_select(0, idx)


def _put(t: torch.Tensor, idx: torch.Tensor | None, value: torch.Tensor) -> None:
    if idx is None:
        t.copy_(value)
    else:
        t.index_copy_(0, idx, value)


def _linearize(ev: _Evaluator, s: _State, mask: torch.Tensor, gtol: float) -> None:
    """J at x for the problems of ``mask``: G, g, D and the Jacobian tests (NONFINITE, GTOL)."""
    idx = _subset(mask)
    x, r = _take(s.x, idx), _take(s.r, idx)
    gram, grad = ev.linearize(x, r, idx)
    finite = torch.isfinite(gram).all(dim=2).all(dim=1) & torch.isfinite(grad).all(dim=1)
    gnorm = grad.abs().amax(dim=1)
    cost = _take(s.cost, idx)
    status = torch.full(cost.shape, _RUNNING, dtype=torch.int64, device=cost.device)
    status = torch.where(finite & ((gnorm < gtol) | (cost == 0)), Termination.GTOL.value, status)
    status = torch.where(finite, status, Termination.NONFINITE.value)
    # a non-finite G is stored too: its problem is frozen (NONFINITE) and nothing reads it again
    _put(s.gram, idx, gram)
    _put(s.grad, idx, grad)
    _put(s.diag_run, idx, torch.maximum(_take(s.diag_run, idx), gram.diagonal(dim1=1, dim2=2)))
    _put(s.njev, idx, _take(s.njev, idx) + 1)
    _put(s.status, idx, status)
    _put(s.relinearize, idx, torch.zeros_like(finite))


def _damped_steps(gram: torch.Tensor, grad: torch.Tensor, diag_run: torch.Tensor,
                  rho: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """δ (m, p) solving ``(G + ρD)δ = −g`` per problem, and a (m,) bool: factorization succeeded.

    Solved as ``(D^{-1/2}GD^{-1/2} + ρI) z = −D^{-1/2}g``, ``δ = D^{-1/2}z`` with one batched
    Cholesky; a failed factorization gives δ = 0 there (and False).
    """
    eps = torch.finfo(diag_run.dtype).eps
    floor = eps * diag_run.amax(dim=1, keepdim=True).clamp_min(1.0)
    dis = diag_run.clamp_min(floor).rsqrt()  # D^{-1/2}, floored as the single-problem solver
    mat = gram * dis[:, :, None] * dis[:, None, :]
    mat.diagonal(dim1=1, dim2=2).add_(rho[:, None])
    factor, info = torch.linalg.cholesky_ex(mat)
    ok = info == 0
    if bool(ok.all()):
        return torch.cholesky_solve((-grad * dis)[:, :, None], factor).squeeze(-1) * dis, ok
    factor = torch.where(ok[:, None, None], factor, torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device))
    z = torch.cholesky_solve((-grad * dis)[:, :, None], factor).squeeze(-1)
    return torch.where(ok[:, None], z * dis, torch.zeros_like(z)), ok


def _gain_ratio(actual: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Elementwise :func:`gaussnewton._objective.gain_ratio`: actual / predicted, ±∞ by its rules."""
    inf = torch.full_like(actual, float("inf"))
    ratio = torch.where(predicted <= 0, torch.where(actual > 0, inf, -inf), actual / predicted)
    return torch.where(torch.isfinite(actual), ratio, -inf)


def _nielsen_update(rho: torch.Tensor, nu: torch.Tensor, ratio: torch.Tensor, accepted: torch.Tensor,
                    secant: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-problem ``gaussnewton.damping.Nielsen.update`` (``secant=True``): the new (ρ, ν), each (m,).

    Args:
        rho: (m,) current damping.
        nu: (m,) current growth factor.
        ratio: (m,) gain ratios of the trials.
        accepted: (m,) whether each trial was accepted (``0 < ratio < ∞``).
        secant: (m,) secant factors (:func:`gaussnewton._objective.secant_factor`), NaN where
            undefined; None: none.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ρ and ν after the trials.
    """
    shrink = (1.0 - (2.0 * ratio - 1.0) ** 3).clamp_min(_SHRINK_MIN)
    shrink = torch.where(ratio > _GOOD_RATIO, shrink.clamp_max(_FAST_SHRINK), shrink)
    if secant is not None:  # over-damped along the step: ρ falls to match the cost's curvature
        shrink = torch.where(torch.isfinite(secant), torch.minimum(shrink, secant.clamp_min(_FAST_SHRINK)), shrink)
    return torch.where(accepted, rho * shrink, rho * nu), torch.where(accepted, torch.full_like(nu, _NU0), 2.0 * nu)


def _trial(ev: _Evaluator, s: _State, mask: torch.Tensor, ftol: float, xtol: float, max_nfev: int) -> None:
    """One trial step for the problems of ``mask``: solve, evaluate, accept/reject, test, update ρ."""
    idx = _subset(mask)
    x, cost, gram, grad = _take(s.x, idx), _take(s.cost, idx), _take(s.gram, idx), _take(s.grad, idx)
    rho, nu = _take(s.rho, idx), _take(s.nu, idx)
    delta, solved = _damped_steps(gram, grad, _take(s.diag_run, idx), rho)
    x_try = x + delta
    r_try, cost_try = ev.residuals(x_try, idx)
    cost_try = torch.where(solved, cost_try, torch.full_like(cost, float("nan")))
    slope = -(grad * delta).sum(dim=1)
    curvature = (delta[:, None, :] @ gram @ delta[:, :, None]).reshape(-1)
    predicted = slope - 0.5 * curvature
    actual = cost - cost_try
    ratio = _gain_ratio(actual, predicted)
    accepted = torch.isfinite(ratio) & (ratio > 0)  # gaussnewton.damping.base.accepts(ratio, 0)
    damping_curv = slope - curvature  # ρ·δᵀDδ for the exact damped step
    secant = torch.where(torch.isfinite(actual) & (damping_curv > 0),
                         (2.0 * (slope - actual) - curvature) / damping_curv, torch.full_like(actual, math.nan))

    rho_new, nu_new = _nielsen_update(rho, nu, ratio, accepted, secant)
    x_new = torch.where(accepted[:, None], x_try, x)
    cost_new = torch.where(accepted, cost_try, cost)

    # termination tests (gaussnewton._stepper.Stepper._verdict, check_termination)
    step_norm = torch.linalg.vector_norm(delta, dim=1)
    small_step = step_norm < xtol * (xtol + torch.linalg.vector_norm(x_new, dim=1))
    ftol_ok = accepted & (actual < ftol * cost) & (ratio > _FTOL_RATIO)
    xtol_ok = small_step & (accepted | torch.isfinite(cost_try))
    status = torch.full(cost.shape, _RUNNING, dtype=torch.int64, device=cost.device)
    status = torch.where(~accepted & ~xtol_ok & (rho_new > _RHO_MAX), Termination.DAMPING_MAX.value, status)
    status = torch.where(xtol_ok, Termination.XTOL.value, status)
    status = torch.where(ftol_ok, Termination.FTOL.value, status)
    status = torch.where(ftol_ok & xtol_ok, Termination.FTOL_XTOL.value, status)
    nfev = _take(s.nfev, idx) + 1
    status = torch.where((status == _RUNNING) & (nfev >= max_nfev), Termination.MAX_EVALS.value, status)

    _put(s.x, idx, x_new)
    acc = accepted.nonzero().squeeze(1)  # (B, n) residuals: copy the accepted rows only
    s.r.index_copy_(0, acc if idx is None else idx.index_select(0, acc), r_try.index_select(0, acc))
    _put(s.cost, idx, cost_new)
    _put(s.rho, idx, rho_new)
    _put(s.nu, idx, nu_new)
    _put(s.nfev, idx, nfev)
    _put(s.nit, idx, _take(s.nit, idx) + 1)
    _put(s.status, idx, status)
    _put(s.relinearize, idx, accepted)
