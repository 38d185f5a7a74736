"""Helpers shared by the benchmark scripts: environment block, idle-CPU guard, CPU contention.

Never imported by src/ or tests/. Works in every benchmark venv (needs only the stdlib;
torch/numpy/scipy/jax versions are reported when importable).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


# ---------------------------------------------------------------- CPU accounting (/proc/stat)
def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return total - idle, total


def _self_ticks() -> int:
    """utime+stime jiffies of this process (all threads) and its waited-for children."""
    with open("/proc/self/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return sum(int(parts[i]) for i in (11, 12, 13, 14))


def busy_cores(interval: float = 0.5) -> float:
    """Cores busy (all processes) averaged over ``interval`` seconds."""
    b0, t0 = _cpu_ticks()
    time.sleep(interval)
    b1, t1 = _cpu_ticks()
    ncpu = os.cpu_count() or 1
    return (b1 - b0) / max(t1 - t0, 1) * ncpu


def wait_idle(threshold: float = 0.3, timeout: float | None = None, settle: float = 1.0) -> dict:
    """Wait until other processes use < ``threshold`` cores (measured over ``settle`` s).

    Returns a record {idle: bool, waited_s, busy_cores_at_start}. On timeout it goes on and
    says so (the contention monitor then records how much the run was disturbed).
    """
    if timeout is None:
        timeout = float(os.environ.get("BENCH_IDLE_TIMEOUT", "60"))
    t0 = time.monotonic()
    while True:
        last = busy_cores(settle)
        if last < threshold:
            return {"idle": True, "waited_s": round(time.monotonic() - t0, 2), "busy_cores_at_start": round(last, 3)}
        if time.monotonic() - t0 > timeout:
            return {"idle": False, "waited_s": round(time.monotonic() - t0, 2), "busy_cores_at_start": round(last, 3)}


class Contention:
    """Measures CPU used by *other* processes during a block: (all busy − own) / wall time."""

    def __enter__(self) -> Contention:
        self.b0, _ = _cpu_ticks()
        self.s0 = _self_ticks()
        self.w0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        b1, _ = _cpu_ticks()
        s1 = _self_ticks()
        wall = max(time.monotonic() - self.w0, 1e-9)
        hz = os.sysconf("SC_CLK_TCK")
        other = ((b1 - self.b0) - (s1 - self.s0)) / hz
        self.other_cores = max(other / wall, 0.0)
        self.wall = wall

    def record(self) -> dict:
        return {"other_busy_cores": round(self.other_cores, 3), "wall_s": round(self.wall, 2)}


# ---------------------------------------------------------------- environment
def _version(dist: str) -> str | None:
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict:
    env = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {d: _version(d) for d in ("torch", "numpy", "scipy", "gaussnewton", "torch-levenberg-marquardt",
                                              "jax", "jaxlib", "optimistix", "jaxopt") if _version(d)},
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "XLA_FLAGS") if k in os.environ},
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        env["torch_interop_threads"] = torch.get_num_interop_threads()
        cfg = torch.__config__.show()
        env["torch_blas"] = "MKL" if "BLAS_INFO=mkl" in cfg or "USE_MKL=ON" in cfg else "other"
        env["bench_device"] = bench_device()
        if torch.cuda.is_available():
            env["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            env["cuda_version"] = torch.version.cuda
    except ImportError:
        pass
    try:
        import subprocess

        env["git_sha"] = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--", "../src"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        env["src_dirty"] = bool(dirty)
    except Exception:  # noqa: BLE001
        pass
    return env


def bench_device() -> str:
    """The device the dense benches (machine.py, bench_step.py) run on: ``BENCH_DEVICE``, default cpu."""
    return os.environ.get("BENCH_DEVICE", "cpu")


def sync(device: str) -> None:
    """Wait for queued kernels (CUDA launches are asynchronous; timings must include them)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def fmt_size(v: float) -> str:
    """A size for tables and axes: 5000 as is, 125000 as 1.25·10⁵, 1000000 as 10⁶."""
    if v < 1e5:
        return f"{v:g}"
    mant, exp = f"{v:.3g}".split("e")
    pow10 = "10" + str(int(exp)).translate(_SUP)
    return pow10 if float(mant) == 1 else f"{mant}·{pow10}"


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def dump(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=float))
