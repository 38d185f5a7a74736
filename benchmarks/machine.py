"""Measured GEMM peak (torch matmul, f64 and f32; median of repeats) + environment block.

On ``BENCH_DEVICE`` (default cpu; ``BENCH_DEVICE=cuda`` measures the GPU with synchronized timing).

Every bench embeds ``header()`` as its JSON header. Run alone: ``python benchmarks/machine.py``.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from _common import Contention, bench_device, environment, median, sync, wait_idle


def gemm_peak(n: int | None = None, dtype: torch.dtype = torch.float64, repeats: int = 7) -> dict:
    """Median GEMM rate of torch.matmul on ``BENCH_DEVICE`` (2048² on CPU, 8192² on a GPU)."""
    device = bench_device()
    n = n or (8192 if device.startswith("cuda") else 2048)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, dtype=dtype, generator=g).to(device)
    b = torch.randn(n, n, dtype=dtype, generator=g).to(device)
    c = torch.empty(n, n, dtype=dtype, device=device)
    for _ in range(2):
        torch.matmul(a, b, out=c)
    ts = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        sync(device)
        ts.append(time.perf_counter() - t0)
    t = median(ts)
    return {"n": n, "device": device, "median_s": t, "min_s": min(ts), "gflops": 2 * n**3 / t / 1e9,
            "gflops_best": 2 * n**3 / min(ts) / 1e9}


def header(guard: bool = True) -> dict:
    idle = wait_idle() if guard else None
    with Contention() as c:
        peak = {"float64": gemm_peak(dtype=torch.float64), "float32": gemm_peak(dtype=torch.float32)}
    return {"environment": environment(), "gemm_peak": peak, "peak_idle_guard": idle, "peak_contention": c.record()}


if __name__ == "__main__":
    h = header(guard="--no-guard" not in sys.argv)
    json.dump(h, sys.stdout, indent=1)
    print()
