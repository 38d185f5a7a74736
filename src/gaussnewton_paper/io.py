"""Saving and loading runs: JSON (config + summary + history + environment) and CSV histories.

Non-finite floats are written to JSON as ``null`` (standard JSON has no NaN/Inf) and read
back as NaN. Each run is written atomically (temporary file, then rename) the moment it
finishes, so an interrupted ``reproduce`` loses at most the run in progress.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["environment", "load_json", "run_path", "save_csv", "save_json", "save_run"]

CSV_COLUMNS = (
    "step",
    "t",
    "loss",
    "damping",
    "lambda_min",
    "lambda_max",
    "param_distance",
    "step_norm",
    "grad_norm",
    "time",
    "accepted",
)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_sha() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: str, seed: int, argv: list[str] | None = None) -> dict[str, Any]:
    """Versions, threads, device and seed: the metadata saved with every run."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "seed": seed,
        "git_sha": _git_sha(),
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": argv,
        "versions": {pkg: _version(pkg) for pkg in ("gaussnewton", "torch", "numpy", "scipy", "matplotlib", "tqdm")},
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(0)
        env["cuda_version"] = torch.version.cuda
    return env


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def save_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (NaN/Inf → null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(obj), indent=1, allow_nan=False))
    os.replace(tmp, path)


def load_json(path: Path) -> Any:
    """Read JSON written by :func:`save_json`."""
    return json.loads(Path(path).read_text())


def run_path(out: Path, key: str) -> Path:
    """Where the run with this key is stored."""
    return Path(out) / "runs" / f"{key}.json"


def save_csv(path: Path, history: dict[str, list[Any]]) -> None:
    """Write a history as CSV, one row per step (columns :data:`CSV_COLUMNS` that exist)."""
    cols = [c for c in CSV_COLUMNS if c == "step" or c in history]
    rows = len(history.get("loss", []))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        for i in range(rows):
            writer.writerow([i + 1 if c == "step" else _fmt(history[c][i]) for c in cols])
    os.replace(tmp, path)


def _fmt(value: Any) -> Any:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return repr(value)
    return value


def save_run(out: Path, record: dict[str, Any]) -> Path:
    """Save a run record as ``runs/<key>.json`` and its history as ``runs/<key>.csv``."""
    path = run_path(out, record["key"])
    save_csv(path.with_suffix(".csv"), record["history"])
    save_json(path, record)  # JSON last: its presence marks the run finished (--resume)
    return path


def nan_list(values: list[Any]) -> list[float]:
    """JSON ``null`` → NaN, everything else → float."""
    return [math.nan if v is None else float(v) for v in values]
