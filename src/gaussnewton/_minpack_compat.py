"""SciPy's legacy MINPACK interface, :func:`leastsq`, on top of :func:`gaussnewton.least_squares`.

``leastsq`` keeps SciPy's signature and return conventions — ``(x, ier)``, or
``(x, cov_x, infodict, mesg, ier)`` with ``full_output`` — but the minimization is
:func:`gaussnewton.least_squares` with ``method="lm"``: a Levenberg–Marquardt trust region with
MINPACK's diag(JᵀJ) scaling, not MINPACK's Fortran (``lmdif``/``lmder``). What follows from
that is listed here, since a drop-in user may rely on it.

Differs from ``scipy.optimize.leastsq`` in:

* ``ier`` is translated from the status of :func:`gaussnewton.least_squares` through SciPy's own
  table (``least_squares`` status → MINPACK info: 2 → 1, 3 → 2, 4 → 3, 1 → 4, 0 → 5). A stop for
  which MINPACK has no code (the damping reached its maximum: no step lowers the cost; or the
  residuals became non-finite) is reported as ``ier = 6`` ("no further reduction in the sum of
  squares is possible"), with this library's explanation in ``mesg``.
* ``cov_x`` is (JᵀJ)⁻¹ from the SVD of the Jacobian at the returned ``x``, through
  :func:`gaussnewton._uncertainty.gram_pseudo_inverse` (SciPy: from MINPACK's triangular factor
  of the last Jacobian it formed). It is ``None``, as in SciPy, when ``ier`` is not 1–4 or J
  is rank-deficient (a singular value ≤ eps·max(m, n)·s_max).
* ``infodict["fjac"]``, ``["ipvt"]``, ``["qtf"]`` come from a column-pivoted QR of that
  Jacobian (``scipy.linalg.qr(..., pivoting=True)``) in MINPACK's layout: ``fjac`` is (n, m)
  with R in the upper triangle of ``fjac.T[:n]``; its lower part is zero (MINPACK stores its
  Householder vectors there). ``ipvt`` is 0-based, as SciPy returns it.
* ``factor`` (MINPACK's initial step bound) is accepted and has no effect: the trust region
  starts from its own rule. ``epsfcn`` sets the relative finite-difference step √epsfcn
  (MINPACK's rule, passed as ``diff_step``); ``diag`` becomes ``x_scale = 1/diag``;
  ``maxfev`` counts residual evaluations, not those used by finite differences.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import torch

from ._uncertainty import gram_pseudo_inverse

__all__ = ["leastsq"]

LEASTSQ_SUCCESS = (1, 2, 3, 4)
"""MINPACK ``info`` codes that mean convergence."""

# status of gaussnewton.least_squares (SciPy least_squares' codes) -> MINPACK info; the
# inverse of the table in scipy.optimize.least_squares (FROM_MINPACK_TO_COMMON)
_STATUS_TO_MINPACK = {0: 5, 1: 4, 2: 1, 3: 2, 4: 3}
_NO_FURTHER_REDUCTION = 6  # for stops that MINPACK has no code for (see the module docstring)

# the default step bound of MINPACK's lmdif/lmder (SciPy's default `factor`)
_MINPACK_FACTOR = 100.0
# SciPy leastsq's default ftol and xtol (≈ sqrt of float64 eps)
_LEASTSQ_TOL = 1.49012e-08


def minpack_info(status: int) -> int:
    """MINPACK ``info`` (``ier``) for a :func:`gaussnewton.least_squares` status code.

    Args:
        status: ``res.status`` (SciPy ``least_squares`` codes 0–4, or this library's own).

    Returns:
        1–5 as SciPy's table maps them, else 6 (no further reduction possible).
    """
    return _STATUS_TO_MINPACK.get(int(status), _NO_FURTHER_REDUCTION)


def minpack_message(info: int, ftol: float, xtol: float, gtol: float, maxfev: int) -> str:
    """SciPy ``leastsq``'s message for a MINPACK ``info`` code.

    Args:
        info: MINPACK code 0–8.
        ftol: the ``ftol`` used.
        xtol: the ``xtol`` used.
        gtol: the ``gtol`` used.
        maxfev: the evaluation limit used.

    Returns:
        The message SciPy returns as ``mesg`` for that code.
    """
    messages = {
        0: "Improper input parameters.",
        1: f"Both actual and predicted relative reductions in the sum of squares\n  are at most {ftol:f}",
        2: f"The relative error between two consecutive iterates is at most {xtol:f}",
        3: f"Both actual and predicted relative reductions in the sum of squares\n  are at most {ftol:f} and the "
        f"relative error between two consecutive iterates is at \n  most {xtol:f}",
        4: f"The cosine of the angle between func(x) and any column of the\n  Jacobian is at most {gtol:f} in "
        "absolute value",
        5: f"Number of calls to function has reached maxfev = {maxfev}.",
        6: f"ftol={ftol:f} is too small, no further reduction in the sum of squares\n  is possible.",
        7: f"xtol={xtol:f} is too small, no further improvement in the approximate\n  solution is possible.",
        8: f"gtol={gtol:f} is too small, func(x) is orthogonal to the columns of\n  the Jacobian to machine "
        "precision.",
    }
    return messages[info]


def qr_infodict(jac: np.ndarray, fvec: np.ndarray) -> dict[str, np.ndarray]:
    """MINPACK's ``fjac``, ``ipvt`` and ``qtf`` from a column-pivoted QR of the final Jacobian.

    Args:
        jac: (m, n) Jacobian at the solution.
        fvec: (m,) residuals at the solution.

    Returns:
        ``{"fjac": (n, m), "ipvt": (n,) 0-based int, "qtf": (n,)}`` with
        ``jac[:, ipvt] = Q R``, R upper triangular with non-increasing |diagonal|, stored as the
        upper triangle of ``fjac.T[:n]`` (the rest of ``fjac`` is zero), and ``qtf = (Qᵀ fvec)[:n]``.
    """
    m, n = jac.shape
    q, r, perm = scipy.linalg.qr(jac, mode="economic", pivoting=True)
    k = r.shape[0]  # min(m, n)
    fjac_t = np.zeros((m, n), dtype=float)
    fjac_t[:k] = r
    qtf = np.zeros(n, dtype=float)
    qtf[:k] = q.T @ fvec
    return {"fjac": fjac_t.T.copy(), "ipvt": np.asarray(perm, dtype=np.int32), "qtf": qtf}


class FirstPointCache:
    """Answer a repeated first call from memory (SciPy gh-13670: no repeated evaluations at x0).

    The first parameters and value are kept; a call with the same parameters returns the
    kept value, until a call with other parameters is seen, after which every call goes
    through. NumPy parameters only (a cached value would not carry an autodiff graph).

    Args:
        fun: the function of the parameters to wrap.
    """

    def __init__(self, fun: Callable[[np.ndarray], Any]) -> None:
        self.fun = fun
        self.params: np.ndarray | None = None
        self.value: Any = None
        self.active = True

    def __call__(self, params: np.ndarray) -> Any:
        if not self.active:
            return self.fun(params)
        if self.params is not None:
            if self.params.shape == np.shape(params) and np.array_equal(self.params, params):
                return self.value
            self.active = False
            return self.fun(params)
        value = self.fun(params)
        self.params, self.value = np.array(params, copy=True), value
        return value


def lm_options(
    kwargs: dict[str, Any], n: int, callable_jac: bool, eps: float = float(np.finfo(float).eps)
) -> tuple[dict[str, Any], bool]:
    """Translate ``leastsq``'s keywords into those of :func:`gaussnewton.least_squares`.

    ``maxfev`` → ``max_nfev`` (0 or absent: SciPy's default 200·(n+1), or 100·(n+1) with an
    analytic Jacobian), ``epsfcn`` → ``diff_step = √epsfcn``, ``diag`` → ``x_scale = 1/diag``;
    ``factor`` is dropped (see the module docstring); ``ftol``/``xtol`` default to
    ``leastsq``'s 1.49012e-08 (raised to ``eps`` in a lower precision) and ``gtol`` to 0.
    Other keywords pass through unchanged.

    Args:
        kwargs: the caller's keywords (not modified).
        n: number of parameters.
        callable_jac: whether an analytic Jacobian is given.
        eps: machine epsilon of the working dtype (float64's by default).

    Returns:
        ``(options, col_deriv)``: keywords for ``least_squares`` and whether the Jacobian
        returns derivatives down the columns ((n, m) instead of (m, n)).

    Raises:
        TypeError: both ``maxfev`` and ``max_nfev``, or both ``epsfcn`` and ``diff_step``, or
            both ``diag`` and ``x_scale`` given.
        ValueError: ``factor`` is not > 0, or ``diag`` has an entry that is not > 0.
    """
    options = dict(kwargs)
    for legacy, modern in (("maxfev", "max_nfev"), ("epsfcn", "diff_step"), ("diag", "x_scale")):
        if options.get(legacy) is not None and options.get(modern) is not None:
            raise TypeError(f"Pass either `{legacy}` (leastsq's name) or `{modern}` (least_squares'), not both; "
                            f"got {legacy} = {options[legacy]!r} and {modern} = {options[modern]!r}.")
    maxfev = options.pop("maxfev", 0)
    if options.get("max_nfev") is None:
        options["max_nfev"] = int(maxfev) if maxfev else (100 if callable_jac else 200) * (n + 1)
    epsfcn = options.pop("epsfcn", None)
    if epsfcn is not None:
        # MINPACK's forward-difference step is sqrt(max(epsfcn, eps))·|x|
        options["diff_step"] = math.sqrt(max(float(epsfcn), float(np.finfo(float).eps)))
    diag = options.pop("diag", None)
    if diag is not None:
        diag = np.asarray(diag, dtype=float)
        if diag.shape != (n,) or not np.all(diag > 0):
            raise ValueError(f"`diag` must be {n} positive numbers (one per parameter); got {diag!r}.")
        options["x_scale"] = 1.0 / diag
    factor = options.pop("factor", _MINPACK_FACTOR)
    if not factor > 0:
        raise ValueError(f"`factor` must be a number > 0; got factor = {factor!r}.")
    col_deriv = bool(options.pop("col_deriv", False))
    options.setdefault("ftol", max(_LEASTSQ_TOL, eps))
    options.setdefault("xtol", max(_LEASTSQ_TOL, eps))
    options.setdefault("gtol", 0.0)
    return options, col_deriv


def as_numpy(value: Any) -> np.ndarray:
    """A float64 NumPy array from an array, tensor, sparse matrix or sequence.

    Args:
        value: the array-like.

    Returns:
        np.ndarray: float64 copy or view.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float64).numpy()
    if hasattr(value, "toarray"):  # scipy.sparse
        value = value.toarray()
    return np.asarray(value, dtype=float)


def _checked_output(
    name: str, fun: Callable[..., Any], x0: np.ndarray, expected: tuple[int, ...] | None, label: str | None
) -> Any:
    """Call ``fun(x0)`` once and check the shape of what it returns (SciPy's ``_check_func``)."""
    out = np.atleast_1d(fun(x0))
    if expected is not None and out.shape != expected:
        raise TypeError(
            f"leastsq: there is a mismatch between the input and output shape of the `{name}` argument"
            + (f" '{label}'" if label else "")
            + f": shape should be {expected} but it is {out.shape}."
        )
    return out


def leastsq(
    func: Callable[..., Any],
    x0: Any,
    args: Any = (),
    Dfun: Callable[..., Any] | None = None,  # noqa: N803 - SciPy's name
    full_output: bool = False,
    col_deriv: bool = False,
    ftol: float = _LEASTSQ_TOL,
    xtol: float = _LEASTSQ_TOL,
    gtol: float = 0.0,
    maxfev: int = 0,
    epsfcn: float | None = None,
    factor: float = _MINPACK_FACTOR,
    diag: Any = None,
) -> tuple[Any, ...]:
    """Minimize the sum of squares of ``func(x, *args)``: SciPy's legacy ``leastsq`` interface.

    Solved by :func:`gaussnewton.least_squares` with ``method="lm"``; see the module docstring
    for how it differs from MINPACK.

    Args:
        func: ``func(x, *args) -> (m,)`` residuals, x a NumPy array (n,); m ≥ n.
        x0: starting point, flattened to (n,) (not modified).
        args: extra arguments of ``func`` and ``Dfun`` (a non-tuple is wrapped in one).
        Dfun: optional Jacobian ``Dfun(x, *args) -> (m, n)`` ((n, m) with ``col_deriv``);
            None: finite differences.
        full_output: return ``(x, cov_x, infodict, mesg, ier)`` instead of ``(x, ier)``.
        col_deriv: ``Dfun`` returns derivatives down the columns.
        ftol: relative tolerance on the sum of squares.
        xtol: relative tolerance on the parameters.
        gtol: tolerance on the gradient (0 disables it, SciPy's default).
        maxfev: maximum number of calls of ``func``; 0: 200·(n+1) (100·(n+1) with ``Dfun``).
        epsfcn: finite-difference step: relative step √epsfcn (None: machine precision).
        factor: MINPACK's initial step bound; accepted, no effect (module docstring).
        diag: (n,) positive variable scales (x_scale = 1/diag); None: automatic.

    Returns:
        tuple: ``(x, ier)`` or ``(x, cov_x, infodict, mesg, ier)``: x (n,) solution, cov_x the
        unscaled (JᵀJ)⁻¹ (None if singular or not converged; multiply by the residual variance
        for the parameter covariance), infodict with ``nfev``, ``fvec``, ``fjac``, ``ipvt``,
        ``qtf`` (and ``njev`` with ``Dfun``), mesg the reason, ier the MINPACK code (1–4:
        found a solution).

    Raises:
        TypeError: n > m, or ``func``/``Dfun`` output shapes do not match (SciPy's errors).
        ValueError: from ``least_squares`` for bad tolerances, or a bad ``diag``/``factor``.

    Warns:
        RuntimeWarning: without ``full_output``, when no solution was found (ier 5–8).

    Example:
        >>> import numpy as np
        >>> t = np.linspace(0, 1, 20)
        >>> x, ier = leastsq(lambda p: p[0] * np.exp(-p[1] * t) - 2 * np.exp(-1.5 * t), [1.0, 1.0])
        >>> ier in (1, 2, 3, 4), np.round(x, 6).tolist()
        (True, [2.0, 1.5])
    """
    from .least_squares import least_squares  # at call time: the module may be reloaded

    x0 = np.array(x0, dtype=float).ravel()  # a copy: SciPy leaves the caller's x0 untouched
    n = x0.size
    if not isinstance(args, tuple):
        args = (args,)

    fun = FirstPointCache(lambda x: func(x, *args))
    m = _checked_output("func", fun, x0, None, None).shape[0]
    if n > m:
        raise TypeError(f"Improper input: func input vector length N={n} must not exceed func output vector "
                        f"length M={m}; leastsq needs at least as many residuals as parameters.")
    options, col_deriv = lm_options(
        {"maxfev": maxfev, "epsfcn": epsfcn, "diag": diag, "factor": factor, "col_deriv": col_deriv,
         "ftol": ftol, "xtol": xtol, "gtol": gtol},
        n, Dfun is not None,
    )
    jac: Callable[[np.ndarray], Any] | None = None
    if Dfun is not None:
        dfun = Dfun
        first_jac = FirstPointCache(lambda x: dfun(x, *args))
        _checked_output("Dfun", first_jac, x0, (n, m) if col_deriv else (m, n), getattr(Dfun, "__name__", None))

        def jac(x: np.ndarray) -> Any:
            d = first_jac(x)
            return np.asarray(d).T if col_deriv else d

    res = least_squares(fun, x0, jac=jac, method="lm", **options)
    x = as_numpy(res.x)
    info = minpack_info(res.status)
    max_nfev = int(options["max_nfev"])
    mesg = minpack_message(info, ftol, xtol, gtol, max_nfev)
    if info == _NO_FURTHER_REDUCTION:
        mesg = f"{mesg}\n  ({res.message})"
    if not full_output:
        if info not in LEASTSQ_SUCCESS:
            warnings.warn(mesg, RuntimeWarning, stacklevel=2)
        return x, info
    fvec = as_numpy(res.fun)
    jac_final = as_numpy(res.jac) if res.jac is not None else None
    cov_x = None
    if info in LEASTSQ_SUCCESS and jac_final is not None and np.isfinite(jac_final).all():
        gram_pinv, rank = gram_pseudo_inverse(torch.from_numpy(jac_final))
        if rank == n:
            cov_x = gram_pinv.numpy()
    infodict: dict[str, Any] = {"fvec": fvec, "nfev": int(res.nfev)}
    if Dfun is not None and res.njev is not None:
        infodict["njev"] = int(res.njev)
    if jac_final is not None and np.isfinite(jac_final).all():
        infodict.update(qr_infodict(jac_final, fvec))
    return x, cov_x, infodict, mesg, info
