r"""``curve_fit``: SciPy's curve fitting on :func:`gaussnewton.least_squares`, NumPy or torch.

A model f(x, θ₁, …, θ_p) is fitted to data (xdata, ydata) by minimizing the weighted residuals

.. math::  \min_\theta\ \tfrac12 \| W (f(x, \theta) - y) \|^2,\qquad
           W = \operatorname{diag}(1/\sigma)\ \text{(1-D sigma)}\quad\text{or}\quad
           W = L^{-1},\ LL^\top = C\ \text{(2-D sigma: a data covariance C)},

so that ‖W(f − y)‖² is the χ² of the fit (the Cholesky whitening turns correlated errors into
independent unit-variance ones). The parameter covariance is then, from the Jacobian J of the
weighted residuals at the solution (:mod:`gaussnewton._uncertainty`),

.. math::  \mathrm{pcov} = s^2 (J^\top J)^{-1},\qquad s^2 = \chi^2/(N - p),

or (JᵀJ)⁻¹ with ``absolute_sigma=True`` (sigma are true standard deviations, not relative
weights). This is SciPy's ``curve_fit`` (``scipy.optimize._minpack_py``): the same arguments,
defaults, errors and return values; the minimization is always :func:`gaussnewton.least_squares`.

NumPy or torch
--------------
If any of ``xdata``, ``ydata``, ``p0`` is a ``torch.Tensor`` the fit runs in torch: ``f`` is
called with tensor ``xdata`` and 0-d tensor parameters, its Jacobian comes from automatic
differentiation (unless ``jac`` is given), and ``popt``/``pcov`` are tensors (float64, or
``p0``'s floating dtype; on the device of the first tensor given). Otherwise everything is
NumPy, as in SciPy: ``f`` gets float64 arrays and NumPy scalars, the Jacobian is by finite
differences unless ``jac`` is given, and ``popt``/``pcov`` are float64 arrays.

Differs from ``scipy.optimize.curve_fit`` in:

* ``method="lm"`` is :func:`gaussnewton.least_squares`'s Levenberg–Marquardt, not MINPACK; it
  takes ``leastsq``'s keywords (``maxfev``, ``epsfcn``, ``diag``, ``factor``, ``col_deriv``,
  ``ftol``, ``xtol``, ``gtol``, with ``leastsq``'s defaults) and also any keyword of
  ``least_squares``. ``ier``/``errmsg`` for ``"lm"`` are MINPACK's codes and texts, translated
  as in :mod:`gaussnewton._minpack_compat`, whose ``infodict`` entries ``fjac``/``ipvt``/``qtf``
  come from a pivoted QR of the final Jacobian.
* A rank-deficient Jacobian gives an all-inf ``pcov`` with an ``OptimizeWarning`` for every
  method (SciPy: for ``"lm"`` only — pinned by its tests —, a pseudo-inverse for
  ``"trf"``/``"dogbox"``); see :mod:`gaussnewton._uncertainty`.
* ``nan_policy`` is validated even when ``check_finite=True``; ``sigma`` must be positive
  (SciPy accepts a zero or negative sigma and divides by it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import torch
from scipy.optimize import Bounds

from ._minpack_compat import FirstPointCache, as_numpy, lm_options, minpack_info, minpack_message, qr_infodict
from ._uncertainty import covariance

__all__ = ["curve_fit"]

_METHODS = ("lm", "trf", "dogbox")
_NAN_POLICIES = (None, "raise", "omit")


def _count_parameters(f: Callable[..., Any]) -> int:
    """Number of fit parameters of ``f(x, θ₁, …, θ_p)`` from its positional arguments (SciPy's rule)."""
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError) as err:
        raise ValueError("Unable to determine number of fit parameters: the signature of `f` cannot be read; "
                         "pass `p0`.") from err
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        raise ValueError(f"Unable to determine number of fit parameters: `f` must take the independent variable "
                         f"and at least one parameter as separate positional arguments, f(x, a, b, ...); it takes "
                         f"{len(positional)} ({', '.join(p.name for p in positional) or 'none'}). Pass `p0` if "
                         f"f takes its parameters as *args.")
    return len(positional) - 1


def _prepare_bounds(bounds: Any, p: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lb, ub)`` as float64 arrays of shape (p,) from a pair or a ``scipy.optimize.Bounds``."""
    if isinstance(bounds, Bounds):
        lb, ub = bounds.lb, bounds.ub
    else:
        try:
            lb, ub = bounds
        except (TypeError, ValueError) as err:
            raise ValueError(f"`bounds` must be a pair (lb, ub) of scalars or arrays of {p} values, or a "
                             f"scipy.optimize.Bounds; got {bounds!r}.") from err
    lb_arr, ub_arr = (np.broadcast_to(as_numpy(b), (p,)).copy() if as_numpy(b).ndim == 0 else as_numpy(b)
                      for b in (lb, ub))
    for name, arr in (("lower", lb_arr), ("upper", ub_arr)):
        if arr.shape != (p,):
            raise ValueError(f"`bounds`: the {name} bounds must be a scalar or have shape ({p},), one per "
                             f"parameter; got shape {arr.shape}.")
    return lb_arr, ub_arr


def _initial_guess(lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """SciPy's feasible default p0: 1, the midpoint of a finite box, or 1 inside a one-sided bound."""
    p0 = np.ones_like(lb)
    lo, hi = np.isfinite(lb), np.isfinite(ub)
    p0[lo & hi] = 0.5 * (lb[lo & hi] + ub[lo & hi])
    p0[lo & ~hi] = lb[lo & ~hi] + 1
    p0[~lo & hi] = ub[~lo & hi] - 1
    return p0


class _Backend:
    """Array operations of the fit in NumPy or torch (dtype/device fixed at construction)."""

    def __init__(self, use_torch: bool, dtype: torch.dtype = torch.float64, device: Any = None) -> None:
        self.torch = use_torch
        self.dtype = dtype
        self.device = device

    def asarray(self, value: Any) -> Any:
        if self.torch:
            return torch.as_tensor(value, dtype=self.dtype, device=self.device)
        return np.asarray(as_numpy(value) if isinstance(value, torch.Tensor) else value, dtype=float)

    def isnan(self, value: Any) -> Any:
        return torch.isnan(value) if self.torch else np.isnan(value)

    def count_nonfinite(self, value: Any) -> int:
        return int((~torch.isfinite(value)).sum()) if self.torch else int((~np.isfinite(value)).sum())

    def cholesky_lower(self, cov: Any) -> Any:
        if self.torch:
            chol, info = torch.linalg.cholesky_ex(cov)
            if int(info) != 0:
                raise ValueError("`sigma` must be positive definite: the 2-D `sigma` is a covariance matrix of "
                                 f"the data, and its Cholesky factorization failed (leading minor {int(info)}).")
            return chol
        try:
            return scipy.linalg.cholesky(cov, lower=True)
        except np.linalg.LinAlgError as err:
            raise ValueError("`sigma` must be positive definite: the 2-D `sigma` is a covariance matrix of the "
                             f"data, and its Cholesky factorization failed ({err}).") from err

    def solve_lower(self, chol: Any, b: Any) -> Any:
        """L⁻¹b for a vector (n,) or matrix (n, p) b."""
        if self.torch:
            rhs = b[:, None] if b.ndim == 1 else b
            out = torch.linalg.solve_triangular(chol, rhs, upper=False)
            return out[:, 0] if b.ndim == 1 else out
        return scipy.linalg.solve_triangular(chol, b, lower=True)


def _to_backend_data(name: str, value: Any, backend: _Backend, check_finite: bool, convert: bool) -> Any:
    """``xdata``/``ydata`` as float arrays of the backend, checked for NaN/inf if asked."""
    if not convert:
        return value  # xdata of another kind (None, a dict, ...) goes to f unchanged, as in SciPy
    data = backend.asarray(value)
    if check_finite:
        bad = backend.count_nonfinite(data)
        if bad:
            raise ValueError(f"`{name}` must not contain infs or NaNs when check_finite=True; got {bad} non-finite "
                             f"value(s). Pass nan_policy='omit' to drop the points with NaN, or check_finite=False.")
    return data


def curve_fit(
    f: Callable[..., Any],
    xdata: Any,
    ydata: Any,
    p0: Any = None,
    sigma: Any = None,
    absolute_sigma: bool = False,
    check_finite: bool | None = None,
    bounds: Any = (-np.inf, np.inf),
    method: str | None = None,
    jac: Callable[..., Any] | str | None = None,
    *,
    full_output: bool = False,
    nan_policy: str | None = None,
    **kwargs: Any,
) -> tuple[Any, ...]:
    """Fit ``f(xdata, *params)`` to ``ydata`` by nonlinear least squares (SciPy's ``curve_fit``).

    Args:
        f: the model ``f(x, p1, ..., pk) -> (N,)``; NumPy, or torch when the data are tensors
            (see the module docstring).
        xdata: the independent variable, passed to ``f`` as is; lists, tuples, arrays and
            tensors are converted to float arrays (tensors in torch mode) first.
        ydata: (N,) dependent data (a scalar broadcasts against ``f``'s output).
        p0: (p,) initial guess; None: ones (or a feasible point inside ``bounds``) with
            p from the positional arguments of ``f``.
        sigma: None, a scalar or (N,) standard deviations (residuals are divided by them), or
            an (N, N) covariance matrix of ``ydata`` (residuals whitened by its Cholesky factor).
        absolute_sigma: True: ``sigma`` are absolute, pcov = (JᵀJ)⁻¹; False: relative, pcov is
            scaled by the reduced χ², s² = χ²/(N − p).
        check_finite: raise if the data contain NaN or inf; default True, or False when a
            ``nan_policy`` is given.
        bounds: ``(lb, ub)`` scalars or (p,) arrays, or ``scipy.optimize.Bounds``.
        method: ``"lm"``, ``"trf"``, ``"dogbox"``; None: ``"lm"`` unbounded, else ``"trf"``.
        jac: ``jac(x, p1, ..., pk) -> (N, p)`` Jacobian of ``f`` (weighted by ``sigma`` here),
            or a finite-difference scheme ``"2-point"``, ``"3-point"``, ``"cs"``; None:
            finite differences (NumPy) or autodiff (torch).
        full_output: also return ``infodict``, ``errmsg``, ``ier``.
        nan_policy: None (no handling), ``"raise"`` (error on NaN) or ``"omit"`` (drop the points
            where xdata or ydata is NaN, and their rows/columns of ``sigma``).
        **kwargs: passed to :func:`gaussnewton.least_squares` (``maxfev`` is renamed
            ``max_nfev``; for ``"lm"`` ``leastsq``'s keywords are translated, see
            :func:`gaussnewton._minpack_compat.lm_options`).

    Returns:
        tuple: ``(popt, pcov)``, or ``(popt, pcov, infodict, errmsg, ier)`` with
        ``full_output``: popt (p,) the fitted parameters, pcov (p, p) their covariance (all
        inf, with an ``OptimizeWarning``, when it cannot be estimated), infodict with
        ``nfev`` and ``fvec`` (the weighted residuals; for ``"lm"`` also ``fjac``, ``ipvt``,
        ``qtf``), errmsg the stop reason, ier the status (MINPACK's code for ``"lm"``).

    Raises:
        ValueError: empty ``ydata``; NaN/inf with ``check_finite``; bad ``nan_policy``,
            ``method``, ``sigma`` shape, non-positive or non-definite ``sigma``; ``"lm"`` with
            bounds; ``p0`` outside ``bounds``; parameter count not determinable; ``args`` in
            kwargs.
        TypeError: ``"lm"`` with more parameters than data points.
        RuntimeError: the least-squares minimization failed ("Optimal parameters not found").

    Example:
        >>> import numpy as np
        >>> x = np.linspace(0, 4, 50)
        >>> y = 2.5 * np.exp(-1.3 * x) + 0.01 * np.sin(7 * x)
        >>> popt, pcov = curve_fit(lambda x, a, b: a * np.exp(-b * x), x, y)
        >>> perr = np.sqrt(np.diag(pcov))  # standard errors
        >>> np.round(popt, 2).tolist(), bool(np.all(perr < 0.01))
        ([2.51, 1.3], True)
    """
    from .least_squares import least_squares  # at call time: the module may be reloaded

    if method not in (None, *_METHODS):
        raise ValueError(f"`method` must be 'lm', 'trf', 'dogbox' or None; got method = {method!r}.")
    if nan_policy == "propagate":
        raise ValueError("`nan_policy='propagate'` is not supported by this function; use None, 'raise' or 'omit'.")
    if nan_policy not in _NAN_POLICIES:
        # SciPy's text ("nan_policy must be one of {...}") kept so that code matching it still does
        raise ValueError(f"Invalid `nan_policy` = {nan_policy!r}: nan_policy must be one of {{None, 'raise', 'omit'}}.")
    if "args" in kwargs:
        raise ValueError("'args' is not a supported keyword argument: curve_fit calls f(xdata, *params); bind extra "
                         "arguments with functools.partial or a lambda.")

    tensors = [v for v in (p0, xdata, ydata) if isinstance(v, torch.Tensor)]
    if tensors:
        dtype = p0.dtype if isinstance(p0, torch.Tensor) and p0.is_floating_point() else torch.float64
        backend = _Backend(True, dtype, tensors[0].device)
    else:
        backend = _Backend(False)

    if p0 is None:
        p = _count_parameters(f)
    else:
        p0_arr = as_numpy(p0).ravel() if backend.torch else np.atleast_1d(np.asarray(p0, dtype=float)).ravel()
        p = p0_arr.size
    lb, ub = _prepare_bounds(bounds, p)
    if p0 is None:
        p0_arr = _initial_guess(lb, ub)
    bounded = bool(np.any((lb > -np.inf) | (ub < np.inf)))
    if method is None:
        method = "trf" if bounded else "lm"
    if method == "lm" and bounded:
        raise ValueError("Method 'lm' only works for unconstrained problems. Use 'trf' or 'dogbox' instead "
                         "(got finite `bounds` with method='lm').")
    if bounded and np.any((p0_arr < lb) | (p0_arr > ub)):
        raise ValueError(f"Initial guess is outside of provided bounds: `p0` = {p0_arr} must satisfy "
                         f"lb <= p0 <= ub with lb = {lb}, ub = {ub}. Omit `p0` to start from a feasible point.")

    if check_finite is None:
        check_finite = nan_policy is None
    ydata = _to_backend_data("ydata", ydata, backend, check_finite, True)
    xdata = _to_backend_data("xdata", xdata, backend, check_finite,
                             isinstance(xdata, list | tuple | np.ndarray | torch.Tensor))
    if ydata.numel() == 0 if backend.torch else ydata.size == 0:
        raise ValueError("`ydata` must not be empty!")
    n_data = int(ydata.numel() if backend.torch else ydata.size)

    if sigma is not None:
        sigma = backend.asarray(sigma)
    if nan_policy is not None and not check_finite:
        xdata, ydata, sigma = _apply_nan_policy(nan_policy, xdata, ydata, sigma, backend)
        n_data = int(ydata.numel() if backend.torch else ydata.size)

    col_deriv = False
    if method == "lm":
        if n_data != 1 and p > n_data:
            raise TypeError(f"The number of func parameters={p} must not exceed the number of data "
                            f"points={n_data} with method='lm' (MINPACK's rule); use method='trf' for an "
                            f"underdetermined fit.")
        options, col_deriv = lm_options(kwargs, p, callable(jac), torch.finfo(backend.dtype).eps)
    else:
        options = dict(kwargs)
        if "maxfev" in options:
            if options.get("max_nfev") is not None:
                raise TypeError("Pass either `maxfev` or `max_nfev`, not both; got "
                                f"maxfev = {options['maxfev']!r} and max_nfev = {options['max_nfev']!r}.")
            options["max_nfev"] = options.pop("maxfev")
    residual, jac_fun = _weighted_problem(f, xdata, ydata, sigma, jac, col_deriv, backend, n_data)
    if bounded:
        options["bounds"] = (lb, ub)
    if jac_fun is not None:
        options["jac"] = jac_fun
    elif isinstance(jac, str):
        options["jac"] = jac
    x0: Any = backend.asarray(p0_arr) if backend.torch else p0_arr.copy()
    res = least_squares(residual, x0, method=method, **options)
    if not res.success:
        raise RuntimeError("Optimal parameters not found: " + str(res.message))

    popt: Any = res.x
    if res.jac is None:
        raise RuntimeError("least_squares returned no Jacobian (matrix-free solve), so pcov cannot be computed; "
                           "pass solver='normal'.")
    jac_final = res.jac if isinstance(res.jac, torch.Tensor) else torch.from_numpy(as_numpy(res.jac))
    pcov: Any = covariance(jac_final.to(torch.float64), float(res.cost), absolute=bool(absolute_sigma))
    if backend.torch:
        popt = torch.as_tensor(popt, device=backend.device).to(backend.dtype)
        pcov = pcov.to(device=backend.device, dtype=backend.dtype)
    else:
        popt = as_numpy(popt)
        pcov = pcov.cpu().numpy()
    if not full_output:
        return popt, pcov

    infodict: dict[str, Any] = {"nfev": int(res.nfev), "fvec": res.fun}
    if method == "lm":
        ier = minpack_info(res.status)
        errmsg = minpack_message(ier, options["ftol"], options["xtol"], options["gtol"], int(options["max_nfev"]))
        qr: dict[str, Any] = qr_infodict(as_numpy(jac_final), as_numpy(res.fun))
        if backend.torch:
            qr = {k: torch.as_tensor(v, device=backend.device) for k, v in qr.items()}
        infodict.update(qr)
        if callable(jac) and res.njev is not None:
            infodict["njev"] = int(res.njev)
    else:
        ier, errmsg = int(res.status), str(res.message)
    return popt, pcov, infodict, errmsg, ier


def _apply_nan_policy(policy: str, xdata: Any, ydata: Any, sigma: Any, backend: _Backend) -> tuple[Any, Any, Any]:
    """``"raise"``: error on NaN in xdata/ydata; ``"omit"``: drop those points (and sigma's rows/columns)."""
    x_is_array = isinstance(xdata, torch.Tensor | np.ndarray)
    x_nan = backend.isnan(xdata) if x_is_array else None
    y_nan = backend.isnan(ydata)
    any_nan = bool(y_nan.any()) or (x_nan is not None and bool(x_nan.any()))
    if not any_nan:
        return xdata, ydata, sigma
    if policy == "raise":
        raise ValueError("The input contains nan values (nan_policy='raise'); drop them or pass nan_policy='omit'.")
    n = ydata.shape[0] if ydata.ndim else 1
    drop = y_nan.reshape(-1) if ydata.ndim else y_nan.reshape(1)
    if x_nan is not None and x_nan.ndim:
        # a point is a column of an (..., N) xdata: NaN anywhere in it drops the point
        x_point_nan = x_nan.reshape(-1, x_nan.shape[-1]).any(0)
        drop = drop | x_point_nan
    keep = ~drop
    if x_is_array and xdata.ndim:
        xdata = xdata[..., keep]
    ydata = ydata[keep] if ydata.ndim else ydata
    if sigma is not None and sigma.ndim == 1 and sigma.shape[0] == n:
        sigma = sigma[keep]
    elif sigma is not None and sigma.ndim == 2 and sigma.shape == (n, n):
        sigma = sigma[keep][:, keep]
    return xdata, ydata, sigma


def _weighted_problem(
    f: Callable[..., Any],
    xdata: Any,
    ydata: Any,
    sigma: Any,
    jac: Callable[..., Any] | str | None,
    col_deriv: bool,
    backend: _Backend,
    n_data: int,
) -> tuple[Callable[[Any], Any], Callable[[Any], Any] | None]:
    """The weighted residual r(θ) = W(f(x, θ) − y) and, for a callable ``jac``, W·jac.

    ``jac``'s output is transposed first if ``col_deriv``.
    """
    weights = chol = None
    if sigma is not None:
        size = int(sigma.numel() if backend.torch else sigma.size)
        if size == 1 or tuple(sigma.shape) == (n_data,):
            if not bool((sigma > 0).all()) or backend.count_nonfinite(sigma):
                raise ValueError(f"`sigma` must hold positive finite standard deviations; got {sigma}.")
            weights = 1.0 / (sigma.reshape(-1) if size == 1 else sigma)
            if size == 1 and n_data > 1:
                # one value for all points: the same vector as sigma=np.full(N, value)
                weights = weights.expand(n_data) if backend.torch else np.broadcast_to(weights, (n_data,))
        elif tuple(sigma.shape) == (n_data, n_data):
            chol = backend.cholesky_lower(sigma)
        else:
            raise ValueError(f"`sigma` has incorrect shape: expected a scalar, ({n_data},) standard deviations or an "
                             f"({n_data}, {n_data}) covariance matrix; got shape {tuple(sigma.shape)}.")

    def model(params: Any) -> Any:
        if backend.torch:
            out = f(xdata, *params)
            return out if isinstance(out, torch.Tensor) else backend.asarray(out)
        # NumPy: f sees NumPy parameters only, and its output stays NumPy (complex for jac="cs"),
        # so that least_squares treats the residual as the NumPy function it is
        if isinstance(params, torch.Tensor):
            params = as_numpy(params)
        try:
            out = f(xdata, *params)
        except TypeError as err:
            if "Tensor" not in str(err):
                raise
            raise TypeError(f"{err} — `f` looks like a torch model but got NumPy data: pass `xdata`, `ydata` or "
                            f"`p0` as torch tensors to fit it in torch (with autodiff).") from err
        return as_numpy(out) if isinstance(out, torch.Tensor) else np.asarray(out)

    def residual(params: Any) -> Any:
        r = model(params) - ydata
        if weights is not None:
            return weights * r
        if chol is not None:
            return backend.solve_lower(chol, r)
        return r

    jac_fun: Callable[[Any], Any] | None = None
    if callable(jac):
        user_jac = jac

        def jac_fun(params: Any) -> Any:
            d = user_jac(xdata, *params)
            d = backend.asarray(d) if backend.torch else np.asarray(d)
            if col_deriv:
                d = d.T
            if weights is not None:
                return weights[:, None] * d
            if chol is not None:
                return backend.solve_lower(chol, d)
            return d

    if backend.torch:
        return residual, jac_fun
    # NumPy: SciPy gh-13670, no repeated evaluations at p0
    return FirstPointCache(residual), (FirstPointCache(jac_fun) if jac_fun is not None else None)
