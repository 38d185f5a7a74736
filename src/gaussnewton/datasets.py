"""Data sets of the paper's experiments (spec §7.1), offline.

* :func:`single_index`: x ~ Unif(S^{d−1}), y = φ(⟨θ*, x⟩) + ε (eq. 85).
* :func:`california_housing`: the California Housing data (Pace & Barry 1997), shipped inside
  the package as ``data/california_housing.csv.gz`` (20,640 rows, identical to scikit-learn's
  ``fetch_california_housing``); never downloaded.
"""

from __future__ import annotations

import gzip
import math
from importlib import resources

import numpy as np
import torch

from ._errors import GaussNewtonError, check_nonneg, check_positive_int

__all__ = ["CALIFORNIA_COLUMNS", "california_housing", "single_index"]

CALIFORNIA_COLUMNS = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population",
                      "AveOccup", "Latitude", "Longitude", "MedHouseVal")


def single_index(
    n: int, d: int, *, noise: float = 0.1, seed: int = 0, dtype: torch.dtype = torch.float64,
    spread: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The single-index model (eq. 85): x_j ~ Unif(S^{d−1}), y_j = tanh(√d·⟨θ*, x_j⟩) + ε_j.

    The link φ(z) = tanh(√d z) and the noise level are the spec's defaults ([UNKNOWN→DEFAULT]).

    Args:
        n: number of samples.
        d: input dimension.
        noise: standard deviation of ε.
        seed: random seed (θ*, x and ε).
        dtype: float dtype.
        spread: in (0, 1]: inputs are bunched toward θ* as x ∝ θ* + spread·(uniform direction)
            then renormalized; 1 keeps them uniform on the sphere. Smaller spread makes the
            NTK worse conditioned (the conditioning sweep of ``gaussnewton reproduce``).

    Returns:
        tuple[torch.Tensor, torch.Tensor]: X (n, d) with unit rows, y (n,).

    Example:
        >>> import torch
        >>> from gaussnewton.datasets import single_index
        >>> X, y = single_index(50, 3, seed=0)
        >>> X.shape, y.shape, torch.allclose(X.norm(dim=1), torch.ones(50, dtype=X.dtype))
        (torch.Size([50, 3]), torch.Size([50]), True)
    """
    n = check_positive_int("n", n)
    d = check_positive_int("d", d)
    noise = check_nonneg("noise", noise)
    if not 0 < float(spread) <= 1:
        raise GaussNewtonError(f"`spread` must lie in (0, 1]; got spread = {spread!r}.")
    gen = torch.Generator().manual_seed(seed)
    theta_star = torch.randn(d, generator=gen, dtype=torch.float64)
    theta_star /= theta_star.norm()
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    x /= x.norm(dim=1, keepdim=True)
    if spread < 1:
        x = theta_star + spread * x
        x /= x.norm(dim=1, keepdim=True)
    y = torch.tanh(math.sqrt(d) * (x @ theta_star)) + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def _load_california() -> np.ndarray:
    path = resources.files("gaussnewton").joinpath("data/california_housing.csv.gz")
    with path.open("rb") as raw, gzip.open(raw, "rt") as fh:
        header = fh.readline().strip().split(",")
        if tuple(header) != CALIFORNIA_COLUMNS:
            raise RuntimeError(f"unexpected header in the shipped California Housing file: {header}")
        return np.loadtxt(fh, delimiter=",", dtype=np.float64)


def california_housing(
    n: int | None = None, *, seed: int = 0, unit_norm: bool = True, standardize_target: bool = True,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """California Housing, standardized, optionally a random subsample of n rows.

    Preprocessing (spec §7.1, [UNKNOWN→DEFAULT]): z-score each of the 8 features over the
    full data set, then (``unit_norm``) scale each row to unit ℓ2 norm (the theory assumes
    ‖x‖ ≤ 1); the target (median house value, ×$100k) is z-scored when ``standardize_target``.

    Args:
        n: number of rows to draw without replacement (None: all 20,640).
        seed: seed of the subsample.
        unit_norm: scale each feature row to unit norm.
        standardize_target: z-score the target.
        dtype: float dtype.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: X (n, 8), y (n,).

    Example:
        >>> from gaussnewton.datasets import california_housing
        >>> X, y = california_housing(1000, seed=0)
        >>> X.shape, y.shape
        (torch.Size([1000, 8]), torch.Size([1000]))
    """
    data = _load_california()
    total = data.shape[0]
    if n is not None:
        n = check_positive_int("n", n)
        if n > total:
            raise GaussNewtonError(f"`n` must be at most {total} (the data set size); got n = {n}.")
    x, y = data[:, :8], data[:, 8]
    x = (x - x.mean(0)) / x.std(0)
    if standardize_target:
        y = (y - y.mean()) / y.std()
    if n is not None:
        idx = np.random.default_rng(seed).choice(total, size=n, replace=False)
        x, y = x[idx], y[idx]
    if unit_norm:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype)
