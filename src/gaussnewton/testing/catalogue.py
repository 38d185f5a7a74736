"""Catalogue of standard nonlinear least-squares test problems (:mod:`gaussnewton.testing.catalogue`).

This module collects classic benchmark problems for Gauss-Newton /
Levenberg-Marquardt solvers:

* the unconstrained least-squares problems of Moré, Garbow and Hillstrom,
  "Testing Unconstrained Optimization Software", ACM TOMS 7(1), 1981
  (``kind="mgh"``), and
* the nonlinear regression problems of the NIST Statistical Reference
  Datasets (StRD), https://www.itl.nist.gov/div898/strd/nls/nls_main.shtml
  (``kind`` is ``"exponential"``, ``"rational"``, ``"gaussian_peak"`` or
  ``"other"``).  The NIST data and certified values are public domain.

Every problem is a :class:`TestProblem` whose ``fun`` maps a parameter vector
``x`` of shape ``(p,)`` to a residual vector of shape ``(n,)``.  The residual
functions use only differentiable torch operations, so they work with
``torch.autograd``, ``torch.func.jacrev`` / ``jacfwd`` / ``vmap``, and with any
floating dtype and device of ``x`` (data arrays are stored as Python tuples and
converted to ``x``'s dtype and device on every call).

Cost convention
---------------
Throughout this package the objective is::

    cost(x) = 0.5 * ||r(x)||^2

``min_cost`` is stated in this convention.  The literature reports
``f = ||r||^2`` (Moré-Garbow-Hillstrom) or the residual sum of squares (NIST),
so the published numbers have been **halved**.  For example NIST certifies
RSS = 1.2455138894E-01 for Misra1a, hence ``min_cost = 6.227569447E-02``.

For NIST problems ``x0`` is the published "Start 1" point, ``x_star`` the
certified parameter values and ``x_star_sd`` their certified standard deviations
(computed by NIST with s² = RSS/(n − p), i.e. ``sqrt(diag(s² (JᵀJ)⁻¹))`` at
``x_star``: what ``covariance(absolute=False)`` / ``curve_fit`` return); a second
entry ``"<name>_start2"`` uses "Start 2".
For MGH problems ``x0`` is the standard starting point of the paper and
``x_star`` is a minimiser to (at least) float64 working accuracy.  Where a
problem has several minima, ``min_cost``/``x_star`` describe the global one and
``source`` says so (and names the local minimum that solvers often reach).

Example:
    >>> from gaussnewton.testing.catalogue import get_problem
    >>> prob = get_problem("rosenbrock")
    >>> x0 = prob.x0_tensor()
    >>> cost = 0.5 * prob.fun(x0).square().sum()
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["TestProblem", "PROBLEMS", "get_problem"]


@dataclass(frozen=True)
class TestProblem:
    """A nonlinear least-squares test problem ``min_x 0.5 * ||fun(x)||^2``.

    Attributes:
        name: Registry key, e.g. ``"rosenbrock"`` or ``"nist_misra1a"``.
        fun: Residual function mapping ``x`` of shape ``(p,)`` to residuals of
            shape ``(n,)``.  Differentiable torch ops only; follows the dtype
            and device of ``x``.
        x0: Standard starting point (NIST: "Start 1"; ``*_start2``: "Start 2").
        n: Number of residuals.
        p: Number of parameters.
        min_cost: Known optimal cost ``0.5 * ||r||^2`` (literature values
            halved), or ``None`` if unknown.
        x_star: A known minimiser (NIST certified values), or ``None``.
        source: Citation; mentions local/global minima where relevant.
        kind: One of ``"mgh"``, ``"exponential"``, ``"rational"``,
            ``"gaussian_peak"``, ``"other"``.
        x_star_sd: NIST's certified standard deviations of ``x_star`` (one per
            parameter), or ``None`` where none are certified (MGH problems other
            than the three that are NIST problems too).
    """

    __test__ = False  # keep pytest from collecting this class

    name: str
    fun: Callable[[torch.Tensor], torch.Tensor]
    x0: tuple[float, ...]
    n: int
    p: int
    min_cost: float | None
    x_star: tuple[float, ...] | None
    source: str
    kind: str
    x_star_sd: tuple[float, ...] | None = None

    def x0_tensor(
        self,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Return the starting point as a new tensor.

        Args:
            dtype: Floating dtype of the result.
            device: Device of the result (default: torch's current default).

        Returns:
            A tensor of shape ``(p,)`` holding ``x0``.
        """
        return torch.tensor(self.x0, dtype=dtype, device=device)


def _const(values: tuple[float, ...], x: torch.Tensor) -> torch.Tensor:
    """Convert a data tuple to a tensor with the dtype/device of ``x``."""
    return torch.as_tensor(values, dtype=x.dtype, device=x.device)


def _arange(start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
    """Integers ``start, ..., stop - 1`` with the dtype/device of ``x``."""
    return torch.arange(start, stop, dtype=x.dtype, device=x.device)


# ---------------------------------------------------------------------------
# Moré, Garbow, Hillstrom (1981) problems
# ---------------------------------------------------------------------------


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """MGH 1, Rosenbrock: n = 2, p = 2."""
    return torch.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def _freudenstein_roth(x: torch.Tensor) -> torch.Tensor:
    """MGH 2, Freudenstein and Roth: n = 2, p = 2."""
    x1, x2 = x[0], x[1]
    return torch.stack(
        [
            -13.0 + x1 + ((5.0 - x2) * x2 - 2.0) * x2,
            -29.0 + x1 + ((x2 + 1.0) * x2 - 14.0) * x2,
        ]
    )


def _powell_badly_scaled(x: torch.Tensor) -> torch.Tensor:
    """MGH 3, Powell badly scaled: n = 2, p = 2."""
    x1, x2 = x[0], x[1]
    return torch.stack(
        [1.0e4 * x1 * x2 - 1.0, torch.exp(-x1) + torch.exp(-x2) - 1.0001]
    )


def _brown_badly_scaled(x: torch.Tensor) -> torch.Tensor:
    """MGH 4, Brown badly scaled: n = 3, p = 2."""
    x1, x2 = x[0], x[1]
    return torch.stack([x1 - 1.0e6, x2 - 2.0e-6, x1 * x2 - 2.0])


_BEALE_Y = (1.5, 2.25, 2.625)


def _beale(x: torch.Tensor) -> torch.Tensor:
    """MGH 5, Beale: n = 3, p = 2."""
    i = _arange(1, 4, x)
    return _const(_BEALE_Y, x) - x[0] * (1.0 - x[1] ** i)


def _jennrich_sampson(x: torch.Tensor) -> torch.Tensor:
    """MGH 6, Jennrich and Sampson with m = 10: n = 10, p = 2."""
    i = _arange(1, 11, x)
    return 2.0 + 2.0 * i - (torch.exp(i * x[0]) + torch.exp(i * x[1]))


def _helical_valley(x: torch.Tensor) -> torch.Tensor:
    """MGH 7, helical valley: n = 3, p = 3.

    theta = arctan(x2/x1)/(2 pi) (+ 1/2 if x1 < 0) is written with ``atan2``
    plus a branch shift, which reproduces the MGH definition exactly (including
    its jump across x1 = 0 for x2 < 0) while staying differentiable elsewhere.
    """
    x1, x2, x3 = x[0], x[1], x[2]
    shift = ((x1 < 0) & (x2 < 0)).to(x.dtype)
    theta = torch.atan2(x2, x1) / (2.0 * math.pi) + shift
    return torch.stack(
        [10.0 * (x3 - 10.0 * theta), 10.0 * (torch.hypot(x1, x2) - 1.0), x3]
    )


_BARD_Y = (
    0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39,
    0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39,
)


def _bard(x: torch.Tensor) -> torch.Tensor:
    """MGH 8, Bard: n = 15, p = 3."""
    u = _arange(1, 16, x)
    v = 16.0 - u
    w = torch.minimum(u, v)
    return _const(_BARD_Y, x) - (x[0] + u / (v * x[1] + w * x[2]))


_GAUSSIAN_Y = (
    0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989,
    0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009,
)


def _gaussian(x: torch.Tensor) -> torch.Tensor:
    """MGH 9, Gaussian: n = 15, p = 3, t_i = (8 - i) / 2."""
    t = (8.0 - _arange(1, 16, x)) / 2.0
    return x[0] * torch.exp(-0.5 * x[1] * (t - x[2]) ** 2) - _const(_GAUSSIAN_Y, x)


# Meyer (MGH 10) data, identical to NIST MGH10: y_i at t_i = 45 + 5 i.
_MEYER_Y = (
    34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0, 9744.0,
    8261.0, 7030.0, 6005.0, 5147.0, 4427.0, 3820.0, 3307.0, 2872.0,
)


def _meyer(x: torch.Tensor) -> torch.Tensor:
    """MGH 10, Meyer (= NIST MGH10 model): n = 16, p = 3."""
    t = 45.0 + 5.0 * _arange(1, 17, x)
    return x[0] * torch.exp(x[1] / (t + x[2])) - _const(_MEYER_Y, x)


def _box3d(x: torch.Tensor) -> torch.Tensor:
    """MGH 12, Box three-dimensional with m = 10: n = 10, p = 3."""
    t = 0.1 * _arange(1, 11, x)
    return (
        torch.exp(-t * x[0])
        - torch.exp(-t * x[1])
        - x[2] * (torch.exp(-t) - torch.exp(-10.0 * t))
    )


def _powell_singular(x: torch.Tensor) -> torch.Tensor:
    """MGH 13, Powell singular: n = 4, p = 4."""
    x1, x2, x3, x4 = x[0], x[1], x[2], x[3]
    return torch.stack(
        [
            x1 + 10.0 * x2,
            math.sqrt(5.0) * (x3 - x4),
            (x2 - 2.0 * x3) ** 2,
            math.sqrt(10.0) * (x1 - x4) ** 2,
        ]
    )


def _wood(x: torch.Tensor) -> torch.Tensor:
    """MGH 14, Wood: n = 6, p = 4."""
    x1, x2, x3, x4 = x[0], x[1], x[2], x[3]
    return torch.stack(
        [
            10.0 * (x2 - x1**2),
            1.0 - x1,
            math.sqrt(90.0) * (x4 - x3**2),
            1.0 - x3,
            math.sqrt(10.0) * (x2 + x4 - 2.0),
            (x2 - x4) / math.sqrt(10.0),
        ]
    )


# Kowalik-Osborne (MGH 15) data, identical to NIST MGH09.
_KOWALIK_Y = (
    0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627,
    0.0456, 0.0342, 0.0323, 0.0235, 0.0246,
)
_KOWALIK_U = (
    4.0, 2.0, 1.0, 0.5, 0.25, 0.167,
    0.125, 0.1, 0.0833, 0.0714, 0.0625,
)


def _kowalik_osborne(x: torch.Tensor) -> torch.Tensor:
    """MGH 15, Kowalik and Osborne (= NIST MGH09 model): n = 11, p = 4."""
    u = _const(_KOWALIK_U, x)
    model = x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])
    return _const(_KOWALIK_Y, x) - model


def _brown_dennis(x: torch.Tensor) -> torch.Tensor:
    """MGH 16, Brown and Dennis with m = 20: n = 20, p = 4."""
    t = _arange(1, 21, x) / 5.0
    a = x[0] + t * x[1] - torch.exp(t)
    b = x[2] + x[3] * torch.sin(t) - torch.cos(t)
    return a**2 + b**2


# Osborne 1 (MGH 17) data, identical to NIST MGH17: y_i at t_i = 10 (i - 1).
_OSBORNE1_Y = (
    0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784,
    0.751, 0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522,
    0.506, 0.490, 0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420,
    0.414, 0.411, 0.406,
)


def _osborne1(x: torch.Tensor) -> torch.Tensor:
    """MGH 17, Osborne 1 (= NIST MGH17 model): n = 33, p = 5."""
    t = 10.0 * _arange(0, 33, x)
    model = x[0] + x[1] * torch.exp(-t * x[3]) + x[2] * torch.exp(-t * x[4])
    return _const(_OSBORNE1_Y, x) - model


def _biggs_exp6(x: torch.Tensor) -> torch.Tensor:
    """MGH 18, Biggs EXP6 with m = 13: n = 13, p = 6."""
    t = 0.1 * _arange(1, 14, x)
    y = torch.exp(-t) - 5.0 * torch.exp(-10.0 * t) + 3.0 * torch.exp(-4.0 * t)
    return (
        x[2] * torch.exp(-t * x[0])
        - x[3] * torch.exp(-t * x[1])
        + x[5] * torch.exp(-t * x[4])
        - y
    )


# Osborne 2 (MGH 19) data: y_i at t_i = (i - 1) / 10.
_OSBORNE2_Y = (
    1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725,
    0.746, 0.679, 0.608, 0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724,
    0.649, 0.649, 0.694, 0.644, 0.624, 0.661, 0.612, 0.558, 0.533, 0.495,
    0.500, 0.423, 0.395, 0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429,
    0.523, 0.562, 0.607, 0.653, 0.672, 0.708, 0.633, 0.668, 0.645, 0.632,
    0.591, 0.559, 0.597, 0.625, 0.739, 0.710, 0.729, 0.720, 0.636, 0.581,
    0.428, 0.292, 0.162, 0.098, 0.054,
)


def _osborne2(x: torch.Tensor) -> torch.Tensor:
    """MGH 19, Osborne 2: n = 65, p = 11."""
    t = _arange(0, 65, x) / 10.0
    model = (
        x[0] * torch.exp(-t * x[4])
        + x[1] * torch.exp(-((t - x[8]) ** 2) * x[5])
        + x[2] * torch.exp(-((t - x[9]) ** 2) * x[6])
        + x[3] * torch.exp(-((t - x[10]) ** 2) * x[7])
    )
    return _const(_OSBORNE2_Y, x) - model


def _watson(x: torch.Tensor) -> torch.Tensor:
    """MGH 20, Watson with p = 6: n = 31.

    For t_i = i / 29 (i = 1..29):
    r_i = sum_{j=2}^{p} (j-1) x_j t_i^{j-2} - (sum_{j=1}^{p} x_j t_i^{j-1})^2 - 1,
    r_30 = x_1 and r_31 = x_2 - x_1^2 - 1.
    """
    p = 6
    t = _arange(1, 30, x) / 29.0
    powers = t.unsqueeze(-1) ** _arange(0, p, x)  # (29, p): t_i^k
    s1 = powers @ x
    s2 = powers[:, : p - 1] @ (_arange(1, p, x) * x[1:])
    r = s2 - s1**2 - 1.0
    return torch.cat([r, torch.stack([x[0], x[1] - x[0] ** 2 - 1.0])])


# ---------------------------------------------------------------------------
# NIST StRD nonlinear regression problems (data are public domain)
# ---------------------------------------------------------------------------

# Misra1a (lower difficulty): y = b1*(1-exp[-b2*x]).
_MISRA1A_Y = (
    10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02,
    44.82, 50.76, 55.05, 61.01, 66.40, 75.47, 81.78,
)
_MISRA1A_X = (
    77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8,
    378.4, 434.8, 477.3, 536.8, 593.1, 689.1, 760.0,
)


def _nist_misra1a(b: torch.Tensor) -> torch.Tensor:
    """NIST Misra1a: y = b1*(1-exp[-b2*x]); n = 14, p = 2."""
    xd = _const(_MISRA1A_X, b)
    return b[0] * (1.0 - torch.exp(-b[1] * xd)) - _const(_MISRA1A_Y, b)


# Chwirut2 (lower difficulty): y = exp[-b1*x]/(b2+b3*x).
_CHWIRUT2_Y = (
    92.9, 57.1, 31.05, 11.5875, 8.025, 63.6, 21.4, 14.25, 8.475, 63.8,
    26.8, 16.4625, 7.125, 67.3, 41.0, 21.15, 8.175, 81.5, 13.12, 59.9,
    14.62, 32.9, 5.44, 12.56, 5.44, 32.0, 13.95, 75.8, 20.0, 10.42,
    59.5, 21.67, 8.55, 62.0, 20.2, 7.76, 3.75, 11.81, 54.7, 23.7,
    11.55, 61.3, 17.7, 8.74, 59.2, 16.3, 8.62, 81.0, 4.87, 14.62,
    81.7, 17.17, 81.3, 28.9,
)
_CHWIRUT2_X = (
    0.5, 1.0, 1.75, 3.75, 5.75, 0.875, 2.25, 3.25, 5.25, 0.75,
    1.75, 2.75, 4.75, 0.625, 1.25, 2.25, 4.25, 0.5, 3.0, 0.75,
    3.0, 1.5, 6.0, 3.0, 6.0, 1.5, 3.0, 0.5, 2.0, 4.0,
    0.75, 2.0, 5.0, 0.75, 2.25, 3.75, 5.75, 3.0, 0.75, 2.5,
    4.0, 0.75, 2.5, 4.0, 0.75, 2.5, 4.0, 0.5, 6.0, 3.0,
    0.5, 2.75, 0.5, 1.75,
)


def _nist_chwirut2(b: torch.Tensor) -> torch.Tensor:
    """NIST Chwirut2: y = exp[-b1*x]/(b2+b3*x); n = 54, p = 3."""
    xd = _const(_CHWIRUT2_X, b)
    return torch.exp(-b[0] * xd) / (b[1] + b[2] * xd) - _const(_CHWIRUT2_Y, b)


# BoxBOD (higher difficulty): y = b1*(1-exp[-b2*x]).
_BOXBOD_Y = (109.0, 149.0, 149.0, 191.0, 213.0, 224.0)
_BOXBOD_X = (1.0, 2.0, 3.0, 5.0, 7.0, 10.0)


def _nist_boxbod(b: torch.Tensor) -> torch.Tensor:
    """NIST BoxBOD: y = b1*(1-exp[-b2*x]); n = 6, p = 2."""
    xd = _const(_BOXBOD_X, b)
    return b[0] * (1.0 - torch.exp(-b[1] * xd)) - _const(_BOXBOD_Y, b)


# Rat42 / Ratkowsky2 (higher difficulty): y = b1 / (1+exp[b2-b3*x]).
_RAT42_Y = (8.930, 10.800, 18.590, 22.330, 39.350, 56.110, 61.730, 64.620, 67.080)
_RAT42_X = (9.0, 14.0, 21.0, 28.0, 42.0, 57.0, 63.0, 70.0, 79.0)


def _nist_rat42(b: torch.Tensor) -> torch.Tensor:
    """NIST Rat42: y = b1 / (1+exp[b2-b3*x]); n = 9, p = 3."""
    xd = _const(_RAT42_X, b)
    return b[0] / (1.0 + torch.exp(b[1] - b[2] * xd)) - _const(_RAT42_Y, b)


# Rat43 / Ratkowsky3 (higher difficulty): y = b1 / ((1+exp[b2-b3*x])**(1/b4)).
_RAT43_Y = (
    16.08, 33.83, 65.80, 97.20, 191.55, 326.20, 386.87, 520.53,
    590.03, 651.92, 724.93, 699.56, 689.96, 637.56, 717.41,
)


def _nist_rat43(b: torch.Tensor) -> torch.Tensor:
    """NIST Rat43: y = b1 / ((1+exp[b2-b3*x])**(1/b4)), x = 1..15; n = 15, p = 4."""
    xd = _arange(1, 16, b)
    model = b[0] / (1.0 + torch.exp(b[1] - b[2] * xd)) ** (1.0 / b[3])
    return model - _const(_RAT43_Y, b)


def _nist_mgh09(b: torch.Tensor) -> torch.Tensor:
    """NIST MGH09: y = b1*(x**2+x*b2) / (x**2+x*b3+b4); n = 11, p = 4."""
    xd = _const(_KOWALIK_U, b)
    model = b[0] * (xd**2 + xd * b[1]) / (xd**2 + xd * b[2] + b[3])
    return model - _const(_KOWALIK_Y, b)


def _nist_mgh10(b: torch.Tensor) -> torch.Tensor:
    """NIST MGH10: y = b1 * exp[b2/(x+b3)], x = 50, 55, ..., 125; n = 16, p = 3."""
    xd = 45.0 + 5.0 * _arange(1, 17, b)
    return b[0] * torch.exp(b[1] / (xd + b[2])) - _const(_MEYER_Y, b)


# Thurber (higher difficulty): rational cubic / cubic.
_THURBER_Y = (
    80.574, 84.248, 87.264, 87.195, 89.076, 89.608, 89.868, 90.101,
    92.405, 95.854, 100.696, 101.060, 401.672, 390.724, 567.534,
    635.316, 733.054, 759.087, 894.206, 990.785, 1090.109, 1080.914,
    1122.643, 1178.351, 1260.531, 1273.514, 1288.339, 1327.543, 1353.863,
    1414.509, 1425.208, 1421.384, 1442.962, 1464.350, 1468.705,
    1447.894, 1457.628,
)
_THURBER_X = (
    -3.067, -2.981, -2.921, -2.912, -2.840, -2.797, -2.702,
    -2.699, -2.633, -2.481, -2.363, -2.322, -1.501, -1.460,
    -1.274, -1.212, -1.100, -1.046, -0.915, -0.714, -0.566,
    -0.545, -0.400, -0.309, -0.109, -0.103, 0.010, 0.119,
    0.377, 0.790, 0.963, 1.006, 1.115, 1.572, 1.841,
    2.047, 2.200,
)


def _nist_thurber(b: torch.Tensor) -> torch.Tensor:
    """NIST Thurber: y = (b1 + b2 x + b3 x^2 + b4 x^3) / (1 + b5 x + b6 x^2 + b7 x^3)."""
    xd = _const(_THURBER_X, b)
    num = b[0] + xd * (b[1] + xd * (b[2] + xd * b[3]))
    den = 1.0 + xd * (b[4] + xd * (b[5] + xd * b[6]))
    return num / den - _const(_THURBER_Y, b)


# Eckerle4 (higher difficulty): y = (b1/b2) * exp[-0.5*((x-b3)/b2)**2].
_ECKERLE4_Y = (
    0.0001575, 0.0001699, 0.0002350, 0.0003102, 0.0004917,
    0.0008710, 0.0017418, 0.0046400, 0.0065895, 0.0097302,
    0.0149002, 0.0237310, 0.0401683, 0.0712559, 0.1264458,
    0.2073413, 0.2902366, 0.3445623, 0.3698049, 0.3668534,
    0.3106727, 0.2078154, 0.1164354, 0.0616764, 0.0337200,
    0.0194023, 0.0117831, 0.0074357, 0.0022732, 0.0008800,
    0.0004579, 0.0002345, 0.0001586, 0.0001143, 0.0000710,
)
_ECKERLE4_X = (
    400.0, 405.0, 410.0, 415.0, 420.0, 425.0, 430.0, 435.0, 436.5, 438.0,
    439.5, 441.0, 442.5, 444.0, 445.5, 447.0, 448.5, 450.0, 451.5, 453.0,
    454.5, 456.0, 457.5, 459.0, 460.5, 462.0, 463.5, 465.0, 470.0, 475.0,
    480.0, 485.0, 490.0, 495.0, 500.0,
)


def _nist_eckerle4(b: torch.Tensor) -> torch.Tensor:
    """NIST Eckerle4: y = (b1/b2) * exp[-0.5*((x-b3)/b2)**2]; n = 35, p = 3."""
    xd = _const(_ECKERLE4_X, b)
    model = (b[0] / b[1]) * torch.exp(-0.5 * ((xd - b[2]) / b[1]) ** 2)
    return model - _const(_ECKERLE4_Y, b)


# Gauss1 (lower difficulty): two Gaussian peaks on an exponential baseline,
# x = 1, 2, ..., 250.
_GAUSS1_Y = (
    97.62227, 97.80724, 96.62247, 92.59022, 91.23869, 95.32704, 90.35040, 89.46235,
    91.72520, 89.86916, 86.88076, 85.94360, 87.60686, 86.25839, 80.74976, 83.03551,
    88.25837, 82.01316, 82.74098, 83.30034, 81.27850, 81.85506, 80.75195, 80.09573,
    81.07633, 78.81542, 78.38596, 79.93386, 79.48474, 79.95942, 76.10691, 78.39830,
    81.43060, 82.48867, 81.65462, 80.84323, 88.68663, 84.74438, 86.83934, 85.97739,
    91.28509, 97.22411, 93.51733, 94.10159, 101.91760, 98.43134, 110.4214, 107.6628,
    111.7288, 116.5115, 120.7609, 123.9553, 124.2437, 130.7996, 133.2960, 130.7788,
    132.0565, 138.6584, 142.9252, 142.7215, 144.1249, 147.4377, 148.2647, 152.0519,
    147.3863, 149.2074, 148.9537, 144.5876, 148.1226, 148.0144, 143.8893, 140.9088,
    143.4434, 139.3938, 135.9878, 136.3927, 126.7262, 124.4487, 122.8647, 113.8557,
    113.7037, 106.8407, 107.0034, 102.46290, 96.09296, 94.57555, 86.98824, 84.90154,
    81.18023, 76.40117, 67.09200, 72.67155, 68.10848, 67.99088, 63.34094, 60.55253,
    56.18687, 53.64482, 53.70307, 48.07893, 42.21258, 45.65181, 41.69728, 41.24946,
    39.21349, 37.71696, 36.68395, 37.30393, 37.43277, 37.45012, 32.64648, 31.84347,
    31.39951, 26.68912, 32.25323, 27.61008, 33.58649, 28.10714, 30.26428, 28.01648,
    29.11021, 23.02099, 25.65091, 28.50295, 25.23701, 26.13828, 33.53260, 29.25195,
    27.09847, 26.52999, 25.52401, 26.69218, 24.55269, 27.71763, 25.20297, 25.61483,
    25.06893, 27.63930, 24.94851, 25.86806, 22.48183, 26.90045, 25.39919, 17.90614,
    23.76039, 25.89689, 27.64231, 22.86101, 26.47003, 23.72888, 27.54334, 30.52683,
    28.07261, 34.92815, 28.29194, 34.19161, 35.41207, 37.09336, 40.98330, 39.53923,
    47.80123, 47.46305, 51.04166, 54.58065, 57.53001, 61.42089, 62.79032, 68.51455,
    70.23053, 74.42776, 76.59911, 81.62053, 83.42208, 79.17451, 88.56985, 85.66525,
    86.55502, 90.65907, 84.27290, 85.72220, 83.10702, 82.16884, 80.42568, 78.15692,
    79.79691, 77.84378, 74.50327, 71.57289, 65.88031, 65.01385, 60.19582, 59.66726,
    52.95478, 53.87792, 44.91274, 41.09909, 41.68018, 34.53379, 34.86419, 33.14787,
    29.58864, 27.29462, 21.91439, 19.08159, 24.90290, 19.82341, 16.75551, 18.24558,
    17.23549, 16.34934, 13.71285, 14.75676, 13.97169, 12.42867, 14.35519, 7.703309,
    10.234410, 11.78315, 13.87768, 4.535700, 10.059280, 8.424824, 10.533120, 9.602255,
    7.877514, 6.258121, 8.899865, 7.877754, 12.51191, 10.66205, 6.035400, 6.790655,
    8.783535, 4.600288, 8.400915, 7.216561, 10.017410, 7.331278, 6.527863, 2.842001,
    10.325070, 4.790995, 8.377101, 6.264445, 2.706213, 8.362329, 8.983658, 3.362571,
    1.182746, 4.875359,
)


def _nist_gauss1(b: torch.Tensor) -> torch.Tensor:
    """NIST Gauss1: y = b1*exp(-b2*x) + b3*exp(-(x-b4)**2/b5**2) + b6*exp(-(x-b7)**2/b8**2)."""
    xd = _arange(1, 251, b)
    model = (
        b[0] * torch.exp(-b[1] * xd)
        + b[2] * torch.exp(-((xd - b[3]) ** 2) / b[4] ** 2)
        + b[5] * torch.exp(-((xd - b[6]) ** 2) / b[7] ** 2)
    )
    return model - _const(_GAUSS1_Y, b)


# Lanczos3 (lower difficulty): sum of three exponentials, data rounded to
# 5 significant digits.
_LANCZOS3_Y = (
    2.5134, 2.0443, 1.6684, 1.3664, 1.1232, 0.9269, 0.7679, 0.6389,
    0.5338, 0.4479, 0.3776, 0.3197, 0.2720, 0.2325, 0.1997, 0.1723,
    0.1493, 0.1301, 0.1138, 0.1000, 0.0883, 0.0783, 0.0698, 0.0624,
)
_LANCZOS3_X = (
    0.00, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35,
    0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75,
    0.80, 0.85, 0.90, 0.95, 1.00, 1.05, 1.10, 1.15,
)


def _nist_lanczos3(b: torch.Tensor) -> torch.Tensor:
    """NIST Lanczos3: y = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x); n = 24, p = 6."""
    xd = _const(_LANCZOS3_X, b)
    model = (
        b[0] * torch.exp(-b[1] * xd)
        + b[2] * torch.exp(-b[3] * xd)
        + b[4] * torch.exp(-b[5] * xd)
    )
    return model - _const(_LANCZOS3_Y, b)


# DanWood (lower difficulty): y = b1*x**b2.
_DANWOOD_Y = (2.138, 3.421, 3.597, 4.340, 4.882, 5.660)
_DANWOOD_X = (1.309, 1.471, 1.490, 1.565, 1.611, 1.680)


def _nist_danwood(b: torch.Tensor) -> torch.Tensor:
    """NIST DanWood: y = b1*x**b2; n = 6, p = 2."""
    xd = _const(_DANWOOD_X, b)
    return b[0] * xd ** b[1] - _const(_DANWOOD_Y, b)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

_MGH = "Moré, Garbow, Hillstrom 1981"
_NIST = "NIST StRD nonlinear regression"


def _mk(
    name: str,
    fun: Callable[[torch.Tensor], torch.Tensor],
    x0: tuple[float, ...],
    n: int,
    min_cost: float | None,
    x_star: tuple[float, ...] | None,
    source: str,
    kind: str,
    x_star_sd: tuple[float, ...] | None = None,
) -> TestProblem:
    """Build a :class:`TestProblem`, deriving ``p`` from ``x0``."""
    x0f = tuple(float(v) for v in x0)
    xs = None if x_star is None else tuple(float(v) for v in x_star)
    sd = None if x_star_sd is None else tuple(float(v) for v in x_star_sd)
    if sd is not None and len(sd) != len(x0f):
        raise ValueError(f"`x_star_sd` of {name!r} must have one entry per parameter ({len(x0f)}); got {len(sd)}")
    return TestProblem(
        name=name,
        fun=fun,
        x0=x0f,
        n=n,
        p=len(x0f),
        min_cost=None if min_cost is None else float(min_cost),
        x_star=xs,
        source=source,
        kind=kind,
        x_star_sd=sd,
    )


def _nist(
    name: str,
    fun: Callable[[torch.Tensor], torch.Tensor],
    start1: tuple[float, ...],
    start2: tuple[float, ...] | None,
    n: int,
    certified_rss: float,
    certified: tuple[float, ...],
    source: str,
    kind: str,
    certified_sd: tuple[float, ...],
) -> list[TestProblem]:
    """Build the Start 1 (and optional Start 2) entries of a NIST problem."""
    out = [
        _mk(name, fun, start1, n, 0.5 * certified_rss, certified,
            f"{_NIST}, {source}; Start 1; certified RSS = {certified_rss:.10E}", kind,
            certified_sd)
    ]
    if start2 is not None:
        out.append(
            _mk(f"{name}_start2", fun, start2, n, 0.5 * certified_rss, certified,
                f"{_NIST}, {source}; Start 2; certified RSS = {certified_rss:.10E}",
                kind, certified_sd)
        )
    return out


# Certified values of NIST problems that double as MGH problems.
_MGH09_CERT = (1.9280693458e-01, 1.9128232873e-01, 1.2305650693e-01, 1.3606233068e-01)
_MGH09_RSS = 3.0750560385e-04
_MGH10_CERT = (5.6096364710e-03, 6.1813463463e03, 3.4522363462e02)
_MGH10_RSS = 8.7945855171e01
_MGH17_CERT = (
    3.7541005211e-01, 1.9358469127e00, -1.4646871366e00, 1.2867534640e-02, 2.2122699662e-02,
)
_MGH17_RSS = 5.4648946975e-05

# Certified standard deviations of the certified values ("Certified Values ... Standard
# Deviation" column of each NIST StRD .dat file). Source: the NIST files as redistributed in
# github.com/lmfit/lmfit-py, NIST_STRD/<Name>.dat (commit fe389bbbd1fe936cd73742bd81fc6fce7ac92858,
# files unchanged since ed4d75b, 2019), read line by line, not retyped from memory.
_NIST_SD = {
    "Misra1a": (2.7070075241e00, 7.2668688436e-06),
    "Chwirut2": (3.8303286810e-02, 6.6621605126e-04, 1.5304234767e-03),
    "DanWood": (1.8281973860e-02, 5.1726610913e-02),
    "Gauss1": (5.7527312730e-01, 1.1406289017e-04, 5.8831775752e-01, 1.0460593412e-01,
               1.7439951146e-01, 6.2622793913e-01, 1.2436988217e-01, 2.0134312832e-01),
    "Lanczos3": (1.7197908859e-02, 9.7041624475e-02, 4.1488663282e-02, 1.0766312506e-01,
                 5.8371576281e-02, 3.4436403035e-02),
    "BoxBOD": (1.2354515176e01, 1.0455993237e-01),
    "Rat42": (1.7340283401e00, 8.8295217536e-02, 3.4465663377e-03),
    "Rat43": (1.6302297817e01, 2.0828735829e00, 1.9566123451e-01, 6.8761936385e-01),
    "MGH09": (1.1435312227e-02, 1.9633220911e-01, 8.0842031232e-02, 9.0025542308e-02),
    "MGH10": (1.5687892471e-04, 2.3309021107e01, 7.8486103508e-01),
    "MGH17": (2.0723153551e-03, 2.2031669222e-01, 2.2175707739e-01, 4.4861358114e-04,
              8.9471996575e-04),
    "Thurber": (4.6647963344e00, 3.9571156086e01, 2.8698696102e01, 5.5675370270e00,
                3.1333340687e-02, 1.4984928198e-02, 6.5842344623e-03),
    "Eckerle4": (1.5408051163e-02, 4.6803020753e-02, 4.6800518816e-02),
}

_PROBLEM_LIST: list[TestProblem] = [
    # ----------------------------- MGH ---------------------------------
    _mk("rosenbrock", _rosenbrock, (-1.2, 1.0), 2, 0.0, (1.0, 1.0),
        f"{_MGH}, problem 1 (Rosenbrock)", "mgh"),
    _mk("freudenstein_roth", _freudenstein_roth, (0.5, -2.0), 2, 0.0, (5.0, 4.0),
        f"{_MGH}, problem 2 (Freudenstein and Roth); min_cost is the GLOBAL "
        "minimum f=0 at (5, 4); a local minimum f=48.9842536792400 "
        "(cost 24.4921268396200) at (11.4127789869021, -0.896805253274477) "
        "attracts LM from x0", "mgh"),
    _mk("powell_badly_scaled", _powell_badly_scaled, (0.0, 1.0), 2, 0.0,
        (1.0981593296998185e-05, 9.106146739866515),
        f"{_MGH}, problem 3 (Powell badly scaled)", "mgh"),
    _mk("brown_badly_scaled", _brown_badly_scaled, (1.0, 1.0), 3, 0.0, (1.0e6, 2.0e-6),
        f"{_MGH}, problem 4 (Brown badly scaled)", "mgh"),
    _mk("beale", _beale, (1.0, 1.0), 3, 0.0, (3.0, 0.5),
        f"{_MGH}, problem 5 (Beale)", "mgh"),
    _mk("jennrich_sampson", _jennrich_sampson, (0.3, 0.4), 10,
        0.5 * 1.243621823556148e02, (2.5782521355192956e-01, 2.5782521355192956e-01),
        f"{_MGH}, problem 6 (Jennrich and Sampson, m=10); min_cost is the "
        "global minimum f=124.362 (cost 62.181) at x1=x2=0.25783 (the problem is "
        "symmetric in x1, x2)", "mgh"),
    _mk("helical_valley", _helical_valley, (-1.0, 0.0, 0.0), 3, 0.0, (1.0, 0.0, 0.0),
        f"{_MGH}, problem 7 (helical valley)", "mgh"),
    _mk("bard", _bard, (1.0, 1.0, 1.0), 15, 0.5 * 8.214877306578963e-03,
        (8.241055975623580e-02, 1.133036092245175, 2.343695178435405),
        f"{_MGH}, problem 8 (Bard); min_cost is the global minimum f=8.21487e-3; "
        "f=17.4287 is approached as x2, x3 -> -inf", "mgh"),
    _mk("gaussian", _gaussian, (0.4, 1.0, 0.0), 15, 0.5 * 1.12793276961871985e-08,
        (0.398956137838762825, 1.00001908448786647, 0.0),
        f"{_MGH}, problem 9 (Gaussian); f=1.12793e-8", "mgh"),
    _mk("meyer", _meyer, (0.02, 4000.0, 250.0), 16, 0.5 * _MGH10_RSS, _MGH10_CERT,
        f"{_MGH}, problem 10 (Meyer); f=87.9458; x_star, x_star_sd and min_cost from "
        "the NIST StRD MGH10 certified values (same problem)", "mgh", _NIST_SD["MGH10"]),
    _mk("box3d", _box3d, (0.0, 10.0, 20.0), 10, 0.0, (1.0, 10.0, 1.0),
        f"{_MGH}, problem 12 (Box three-dimensional, m=10); f=0 at (1,10,1), "
        "(10,1,-1) and on the line x1=x2, x3=0", "mgh"),
    _mk("powell_singular", _powell_singular, (3.0, -1.0, 0.0, 1.0), 4, 0.0,
        (0.0, 0.0, 0.0, 0.0),
        f"{_MGH}, problem 13 (Powell singular); singular Jacobian at x_star", "mgh"),
    _mk("wood", _wood, (-3.0, -1.0, -3.0, -1.0), 6, 0.0, (1.0, 1.0, 1.0, 1.0),
        f"{_MGH}, problem 14 (Wood)", "mgh"),
    _mk("kowalik_osborne", _kowalik_osborne, (0.25, 0.39, 0.415, 0.39), 11,
        0.5 * _MGH09_RSS, _MGH09_CERT,
        f"{_MGH}, problem 15 (Kowalik and Osborne); min_cost is the global "
        "minimum f=3.07505e-4 (NIST StRD MGH09 certified values, also x_star_sd); "
        "f=1.02734e-3 is approached at infinity", "mgh", _NIST_SD["MGH09"]),
    _mk("brown_dennis", _brown_dennis, (25.0, 5.0, -5.0, -1.0), 20,
        0.5 * 8.5822201626356313e04,
        (-1.1594439905030078e01, 1.3203630051783718e01, -4.0343943738804180e-01,
         2.3677877226511200e-01),
        f"{_MGH}, problem 16 (Brown and Dennis, m=20); min_cost is the global "
        "minimum f=85822.2", "mgh"),
    _mk("osborne1", _osborne1, (0.5, 1.5, -1.0, 0.01, 0.02), 33, 0.5 * _MGH17_RSS,
        _MGH17_CERT,
        f"{_MGH}, problem 17 (Osborne 1); f=5.46489e-5; x_star, x_star_sd and "
        "min_cost from the NIST StRD MGH17 certified values (same problem)", "mgh",
        _NIST_SD["MGH17"]),
    _mk("biggs_exp6", _biggs_exp6, (1.0, 2.0, 1.0, 1.0, 1.0, 1.0), 13, 0.0,
        (1.0, 10.0, 1.0, 5.0, 4.0, 3.0),
        f"{_MGH}, problem 18 (Biggs EXP6, m=13); min_cost is the GLOBAL minimum "
        "f=0 at (1,10,1,5,4,3); MGH also report a local minimum f=5.65565e-3 "
        "(cost 2.827825e-3). x0 lies on the symmetry set x1=x5, x3=x6 where "
        "J has two pairs of identical columns; iterations that keep the "
        "symmetry stop at a stationary point with cost 0.3237005", "mgh"),
    _mk("osborne2", _osborne2, (1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5),
        65, 0.5 * 4.013773629354777e-02,
        (1.309977154631619, 0.43155379461330123, 0.6336616989644575,
         0.5994305347942186, 0.7541832263563499, 0.9042885797735513,
         1.3658118352824005, 4.823698817170775, 2.3986848661270157,
         4.568874597669051, 5.67534147057901),
        f"{_MGH}, problem 19 (Osborne 2); f=4.01377e-2", "mgh"),
    _mk("watson", _watson, (0.0,) * 6, 31, 0.5 * 2.287670053552372e-03,
        (-1.572508640629858e-02, 1.012434869366059e00, -2.329916259263380e-01,
         1.260430087686035e00, -1.513728922580576e00, 9.929964323646112e-01),
        f"{_MGH}, problem 20 (Watson, n=6); f=2.28767e-3", "mgh"),
    # ----------------------------- NIST --------------------------------
    *_nist("nist_misra1a", _nist_misra1a, (500.0, 1.0e-4), (250.0, 5.0e-4), 14,
           1.2455138894e-01, (2.3894212918e02, 5.5015643181e-04),
           "Misra1a (lower difficulty)", "exponential", _NIST_SD["Misra1a"]),
    *_nist("nist_chwirut2", _nist_chwirut2, (0.1, 0.01, 0.02), (0.15, 0.008, 0.010), 54,
           5.1304802941e02, (1.6657666537e-01, 5.1653291286e-03, 1.2150007096e-02),
           "Chwirut2 (lower difficulty)", "exponential", _NIST_SD["Chwirut2"]),
    *_nist("nist_danwood", _nist_danwood, (1.0, 5.0), (0.7, 4.0), 6,
           4.3173084083e-03, (7.6886226176e-01, 3.8604055871e00),
           "DanWood (lower difficulty, miscellaneous class)", "other", _NIST_SD["DanWood"]),
    *_nist("nist_gauss1", _nist_gauss1, (97.0, 0.009, 100.0, 65.0, 20.0, 70.0, 178.0, 16.5),
           None, 250, 1.3158222432e03,
           (9.8778210871e01, 1.0497276517e-02, 1.0048990633e02, 6.7481111276e01,
            2.3129773360e01, 7.1994503004e01, 1.7899805021e02, 1.8389389025e01),
           "Gauss1 (lower difficulty)", "gaussian_peak", _NIST_SD["Gauss1"]),
    *_nist("nist_lanczos3", _nist_lanczos3, (1.2, 0.3, 5.6, 5.5, 6.5, 7.6),
           (0.5, 0.7, 3.6, 4.2, 4.0, 6.3), 24, 1.6117193594e-08,
           (8.6816414977e-02, 9.5498101505e-01, 8.4400777463e-01, 2.9515951832e00,
            1.5825685901e00, 4.9863565084e00),
           "Lanczos3 (lower difficulty)", "exponential", _NIST_SD["Lanczos3"]),
    *_nist("nist_boxbod", _nist_boxbod, (1.0, 1.0), (100.0, 0.75), 6,
           1.1680088766e03, (2.1380940889e02, 5.4723748542e-01),
           "BoxBOD (higher difficulty)", "exponential", _NIST_SD["BoxBOD"]),
    *_nist("nist_rat42", _nist_rat42, (100.0, 1.0, 0.1), (75.0, 2.5, 0.07), 9,
           8.0565229338e00, (7.2462237576e01, 2.6180768402e00, 6.7359200066e-02),
           "Rat42 (higher difficulty)", "exponential", _NIST_SD["Rat42"]),
    *_nist("nist_rat43", _nist_rat43, (100.0, 10.0, 1.0, 1.0), (700.0, 5.0, 0.75, 1.3), 15,
           8.7864049080e03,
           (6.9964151270e02, 5.2771253025e00, 7.5962938329e-01, 1.2792483859e00),
           "Rat43 (higher difficulty)", "exponential", _NIST_SD["Rat43"]),
    *_nist("nist_mgh09", _nist_mgh09, (25.0, 39.0, 41.5, 39.0), (0.25, 0.39, 0.415, 0.39),
           11, _MGH09_RSS, _MGH09_CERT, "MGH09 (higher difficulty)", "rational",
           _NIST_SD["MGH09"]),
    *_nist("nist_mgh10", _nist_mgh10, (2.0, 400000.0, 25000.0), (0.02, 4000.0, 250.0),
           16, _MGH10_RSS, _MGH10_CERT, "MGH10 (higher difficulty)", "exponential",
           _NIST_SD["MGH10"]),
    *_nist("nist_thurber", _nist_thurber,
           (1000.0, 1000.0, 400.0, 40.0, 0.7, 0.3, 0.03),
           (1300.0, 1500.0, 500.0, 75.0, 1.0, 0.4, 0.05), 37, 5.6427082397e03,
           (1.2881396800e03, 1.4910792535e03, 5.8323836877e02, 7.5416644291e01,
            9.6629502864e-01, 3.9797285797e-01, 4.9727297349e-02),
           "Thurber (higher difficulty)", "rational", _NIST_SD["Thurber"]),
    *_nist("nist_eckerle4", _nist_eckerle4, (1.0, 10.0, 500.0), (1.5, 5.0, 450.0), 35,
           1.4635887487e-03, (1.5543827178e00, 4.0888321754e00, 4.5154121844e02),
           "Eckerle4 (higher difficulty)", "gaussian_peak", _NIST_SD["Eckerle4"]),
]

PROBLEMS: dict[str, TestProblem] = {prob.name: prob for prob in _PROBLEM_LIST}


def get_problem(name: str) -> TestProblem:
    """Look up a problem of the catalogue by name.

    Args:
        name: Registry key, e.g. ``"rosenbrock"`` or ``"nist_misra1a_start2"``.

    Returns:
        The registered :class:`TestProblem`.

    Raises:
        ValueError: If ``name`` is not registered; the message lists valid names.
    """
    try:
        return PROBLEMS[name]
    except KeyError:
        valid = ", ".join(sorted(PROBLEMS))
        raise ValueError(
            f"unknown test problem {name!r}; valid names are: {valid}"
        ) from None


# Cost 0.5*||r||^2 reached by scipy.optimize.least_squares(method="lm") (MINPACK)
# from x0 with the exact Jacobian (torch.func.jacrev of ``fun`` in float64) and
# xtol = ftol = gtol = 1e-15, max_nfev = 100000; cost recomputed from the final
# x.  Measured (not guessed) on 2026-11-23 with scipy 1.17.1, numpy 2.4.6,
# torch 2.13.0+cpu.  scipy did NOT reach min_cost from x0 for:
#   freudenstein_roth (local minimum 24.4921268396, global is 0) and
#   nist_boxbod (Start 1: 4885.75, b2 -> inf plateau; Start 2 reaches 584.004).
# biggs_exp6 is NOT reproducible with scipy: x0 is exactly rank deficient
# (duplicate Jacobian columns) and repeated identical runs in one process ended
# either at cost ~1e-31 (global minimum, most runs) or at the symmetric
# stationary point with cost 0.3237005278650865; the latter, conservative
# value is recorded.
# Values below min_cost in the last digits reflect the 11-digit rounding of
# the NIST certified RSS.  Intended as a yardstick: a solver in this package
# should reach a cost <= these values (up to rounding) from the same x0.
_SCIPY_LM_COST: dict[str, float] = {
    "rosenbrock": 0.0,
    "freudenstein_roth": 24.49212683962,
    "powell_badly_scaled": 6.162975822039155e-33,
    "brown_badly_scaled": 0.0,
    "beale": 0.0,
    "jennrich_sampson": 62.18109117780746,
    "helical_valley": 3.0065692604887127e-64,
    "bard": 0.004107438653289485,
    "gaussian": 5.639663848093635e-09,
    "meyer": 43.97292758533682,
    "box3d": 0.0,
    "powell_singular": 4.777457522085418e-65,
    "wood": 0.0,
    "kowalik_osborne": 0.00015375280192461872,
    "brown_dennis": 42911.10081317836,
    "osborne1": 2.732447348741249e-05,
    "biggs_exp6": 0.3237005278650865,
    "osborne2": 0.020068868146773895,
    "watson": 0.0011438350267761826,
    "nist_misra1a": 0.062275694472196955,
    "nist_misra1a_start2": 0.06227569447220114,
    "nist_chwirut2": 256.52401470343295,
    "nist_chwirut2_start2": 256.52401470343295,
    "nist_danwood": 0.002158654204145527,
    "nist_danwood_start2": 0.002158654204145508,
    "nist_gauss1": 657.9111216016888,
    "nist_lanczos3": 8.058596796778893e-09,
    "nist_lanczos3_start2": 8.058596796780228e-09,
    "nist_boxbod": 4885.75,
    "nist_boxbod_start2": 584.004438277776,
    "nist_rat42": 4.028261466905634,
    "nist_rat42_start2": 4.028261466905645,
    "nist_rat43": 4393.20245398157,
    "nist_rat43_start2": 4393.20245398157,
    "nist_mgh09": 0.00015375280192461845,
    "nist_mgh09_start2": 0.00015375280192461872,
    "nist_mgh10": 43.97292758542672,
    "nist_mgh10_start2": 43.97292758533682,
    "nist_thurber": 2821.3541198334624,
    "nist_thurber_start2": 2821.354119833476,
    "nist_eckerle4": 0.0007317943743637353,
    "nist_eckerle4_start2": 0.000731794374363736,
}
