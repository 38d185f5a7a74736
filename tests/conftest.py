"""Shared fixtures: fixed seeds, float64, small thread count."""

import pytest
import torch

# Correctness tests: one BLAS thread per worker. With pytest-xdist's 2 workers on 2 cores, torch's
# default of 2 threads each oversubscribes the machine and slows small ops by 10-100x.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def random_matrix(n: int, p: int, cond: float, seed: int = 0) -> torch.Tensor:
    """An (n, p) float64 matrix with singular values log-spaced from 1 to 1/cond."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, min(n, p), generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(p, min(n, p), generator=gen, dtype=torch.float64))
    s = torch.logspace(0, -torch.log10(torch.tensor(cond)).item(), min(n, p), dtype=torch.float64)
    return (u * s) @ v.T
