r"""Parameter covariance of a nonlinear least-squares fit from the final Jacobian.

Derivation
----------
Near the solution x̂ of min ½‖r(x)‖² the residuals are linear in the parameters,
r(x) ≈ r(x̂) + J (x − x̂) with J = ∂r/∂x (n, p) at x̂. If the data behind r carry independent
errors of variance σ² (for weighted residuals ``r_i = (f_i − y_i)/σ_i`` that variance is 1),
the linearized estimator has the covariance

.. math::  \operatorname{Cov}(\hat x) = \sigma^2 (J^\top J)^{-1}

(Gauss–Markov on the linearized model; Seber & Wild, *Nonlinear Regression*, Wiley 1989,
§2.1.2, eq. 2.13; Bates & Watts, *Nonlinear Regression Analysis*, 1988, §2.3). When σ² is
unknown it is estimated from the residuals by

.. math::  s^2 = \frac{\|r(\hat x)\|^2}{n - p} = \frac{2\,\mathrm{cost}}{n - p},

the residual mean square on n − p degrees of freedom. ``absolute=False`` returns
s²(JᵀJ)⁻¹ (SciPy ``curve_fit``'s default, and the convention of NIST's certified standard
deviations); ``absolute=True`` returns (JᵀJ)⁻¹ unscaled (``absolute_sigma=True``: the
residuals were already divided by known standard deviations).

(JᵀJ)⁻¹ is never formed from JᵀJ: with the thin SVD J = U diag(s) Vᵀ,

.. math::  (J^\top J)^{+} = V \operatorname{diag}(s^{-2}) V^\top = A^\top A,
           \qquad A = \operatorname{diag}(s^{-1}) V^\top,

which squares the condition number only in the output, not in a factorization, and is
symmetric positive semidefinite by construction (SciPy gh-4555: covariances built as
inv(RᵀR) could be asymmetric or have negative eigenvalues). Singular values
s_i ≤ eps·max(n, p)·s_max count as zero: the rank rule of SciPy ``curve_fit`` (and of
``numpy.linalg.matrix_rank``).

Rank deficiency
---------------
When some singular value is discarded, the parameters along the corresponding directions of
V are not determined by the data and their variance is unbounded. Two conventions exist in
SciPy itself: ``curve_fit(method="lm")`` returns an all-inf matrix with an
``OptimizeWarning`` (MINPACK's triangular factor R is singular, so ``leastsq`` gives
``cov_x=None``) — this is what SciPy's ``TestCurveFit.test_pcov`` (``f_flat``: a parameter
the model ignores) and ``test_indeterminate_covariance`` pin; ``method="trf"/"dogbox"`` instead
returns the pseudo-inverse, which reports zero variance along the undetermined directions and
is not pinned by any SciPy test. :func:`covariance` follows the tested behaviour and the
issue's specification by default (``rank_deficient="inf"``, for every method);
``rank_deficient="pinv"`` gives SciPy ``trf``'s pseudo-inverse.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from scipy.optimize import OptimizeWarning

__all__ = ["COVARIANCE_WARNING", "covariance", "degrees_of_freedom", "gram_pseudo_inverse"]

COVARIANCE_WARNING = "Covariance of the parameters could not be estimated"
"""Text of the :class:`scipy.optimize.OptimizeWarning` issued when the covariance is all inf
(SciPy ``curve_fit``'s message, so that filters written for SciPy apply)."""


def degrees_of_freedom(n: int, p: int) -> int:
    """Degrees of freedom n − p of the residual variance estimate s² = ‖r‖²/(n − p).

    Args:
        n: number of residuals (data points), ≥ 0.
        p: number of fitted parameters, ≥ 0.

    Returns:
        ``n - p`` (zero or negative when the fit interpolates: s² is then undefined).

    Raises:
        ValueError: ``n`` or ``p`` is not a non-negative integer.

    Example:
        >>> degrees_of_freedom(14, 2)
        12
    """
    for name, value in (("n", n), ("p", p)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an integer >= 0; got {name} = {value!r}.")
    return n - p


def gram_pseudo_inverse(jac: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(JᵀJ)⁺ from the thin SVD of J, with SciPy ``curve_fit``'s rank tolerance.

    Args:
        jac: (n, p) Jacobian, floating dtype; must be finite.

    Returns:
        ``(gram_pinv, rank)``: the (p, p) symmetric positive semidefinite matrix
        V diag(s⁻²) Vᵀ over the singular values s > eps·max(n, p)·s_max (eps of ``jac``'s
        dtype), and the number of singular values kept.

    Raises:
        ValueError: ``jac`` is not a 2-D floating tensor.
    """
    if jac.ndim != 2 or not jac.is_floating_point():
        raise ValueError(
            f"`jac` must be a 2-D floating tensor of shape (n, p); got shape {tuple(jac.shape)}, dtype {jac.dtype}."
        )
    n, p = jac.shape
    if p == 0:
        return jac.new_zeros((0, 0)), 0
    if n == 0:
        return jac.new_zeros((p, p)), 0
    _, s, vh = torch.linalg.svd(jac, full_matrices=False)
    threshold = torch.finfo(jac.dtype).eps * max(n, p) * s[0]
    keep = s > threshold
    a = vh[keep] / s[keep, None]  # diag(1/s) Vᵀ over the kept directions
    return a.T @ a, int(keep.sum())


def covariance(
    jac: torch.Tensor,
    cost: float,
    absolute: bool = False,
    *,
    rank_deficient: Literal["inf", "pinv"] = "inf",
) -> torch.Tensor:
    """Covariance of the fitted parameters, s²(JᵀJ)⁻¹ or (JᵀJ)⁻¹ (see the module docstring).

    Args:
        jac: (n, p) Jacobian of the residuals at the solution — of the *weighted* residuals
            (f − y)/σ, or L⁻¹(f − y) for a data covariance C = LLᵀ, when uncertainties of
            the data are used.
        cost: ½‖r‖² at the solution (the residuals whose Jacobian is ``jac``).
        absolute: False: scale by the residual variance s² = 2·cost/(n − p); True: return
            (JᵀJ)⁻¹ unscaled.
        rank_deficient: what to return when J has rank < p under the tolerance
            eps·max(n, p)·s_max: ``"inf"`` (default; SciPy ``curve_fit(method="lm")``, as
            pinned by SciPy's tests) an all-inf matrix with a warning, or ``"pinv"`` the
            pseudo-inverse (SciPy ``curve_fit(method="trf")``).

    Returns:
        (p, p) tensor of ``jac``'s dtype and device. All entries are inf, with a
        :class:`scipy.optimize.OptimizeWarning` "Covariance of the parameters could not be
        estimated", when ``jac`` is not finite, when the rank is < p and
        ``rank_deficient="inf"``, when ``cost`` is not finite, or when ``absolute=False``
        and n ≤ p (s² undefined). With ``absolute=True`` and n ≤ p a full-rank J still
        gives (JᵀJ)⁻¹, as SciPy does.

    Raises:
        ValueError: ``jac`` is not a 2-D floating tensor, or ``rank_deficient`` is not
            ``"inf"``/``"pinv"``.

    Example:
        >>> import torch
        >>> jac = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> (covariance(jac, cost=0.5, absolute=True) * 6).round(decimals=12).tolist()  # (JᵀJ)⁻¹ · 6
        [[5.0, -3.0], [-3.0, 3.0]]
        >>> covariance(jac, cost=0.5).diagonal().sqrt().round(decimals=6).tolist()  # s² = 2·0.5/(3 − 2)
        [0.912871, 0.707107]
    """
    if rank_deficient not in ("inf", "pinv"):
        raise ValueError(f"`rank_deficient` must be 'inf' or 'pinv'; got rank_deficient = {rank_deficient!r}.")
    if not isinstance(jac, torch.Tensor) or jac.ndim != 2 or not jac.is_floating_point():
        described = f"shape {tuple(jac.shape)}, dtype {jac.dtype}" if isinstance(jac, torch.Tensor) else repr(jac)
        raise ValueError(f"`jac` must be a 2-D floating tensor of shape (n, p); got {described}.")
    n, p = jac.shape
    cost = float(cost)
    if not torch.isfinite(jac).all() or cost != cost or cost == float("inf"):
        return _indeterminate(jac, p)
    gram_pinv, rank = gram_pseudo_inverse(jac)
    if rank < p and rank_deficient == "inf":
        return _indeterminate(jac, p)
    if not absolute:
        dof = degrees_of_freedom(n, p)
        if dof <= 0:
            return _indeterminate(jac, p)
        gram_pinv = gram_pinv * (2.0 * cost / dof)
    if torch.isnan(gram_pinv).any():
        return _indeterminate(jac, p)
    return gram_pinv


def _indeterminate(jac: torch.Tensor, p: int) -> torch.Tensor:
    """All-inf (p, p) covariance, with SciPy's OptimizeWarning."""
    # stacklevel 3: the caller of covariance(), not this helper
    warnings.warn(COVARIANCE_WARNING, OptimizeWarning, stacklevel=3)
    return jac.new_full((p, p), float("inf"))
