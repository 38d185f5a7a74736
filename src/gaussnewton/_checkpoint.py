"""Checkpoints for long runs: atomic saves of the solver state, validated on resume.

A checkpoint is a :class:`~gaussnewton._state.SolverState` in its plain-data form (parameters,
θ_0, cost, typed damping state, counters, the history so far) plus a format number and the
run's fingerprint; it loads with ``torch.load(weights_only=True)``, so resuming never unpickles
arbitrary objects. It is written to a temporary file unique to the writer and renamed over
``path`` with :func:`os.replace`, so a process killed mid-write (even by SIGKILL) leaves either
the previous or the new checkpoint, never a torn file. Resuming recomputes the outputs at the
saved parameters, so a resumed run produces the same iterates as an uninterrupted one (same
device, deterministic model).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ._errors import GaussNewtonError, check_positive_int

if TYPE_CHECKING:
    from torch import nn

    from .distributed import Reducer

__all__ = ["Checkpointer", "model_digest", "tensor_digest"]

_FORMAT = 2  # 1: gaussnewton 0.1 (pickled dict); 2: SolverState.to_dict()
_CHUNK = 2**20  # entries per chunk of the moments (bounded float64 temporaries for large data)
_DIGITS = 12  # moments compared to 12 significant digits: equal data on another device still matches
_DIFFER = {"data": "the data (X, y) differ", "model": "the model's structure differs",
           "theta0": "the initial parameters θ₀ differ"}


def tensor_digest(name: str, t: torch.Tensor, reducer: Reducer | None = None, *, samples: bool = True) -> str:
    """A cheap fingerprint of a tensor: its shape, dtype and a hash of four moments.

    The moments (Σv, Σv², and Σ of v weighted by its row and by its column position, in float64,
    a chunk of rows at a time) cost one pass over the data, and change when values change or when
    rows or columns are permuted. Under data parallelism the moments are summed over the shards
    (``reducer``), so every rank holds the same fingerprint.

    Args:
        name: label of the tensor in the fingerprint (``"X"``).
        t: the tensor, (n, ...) if ``samples`` (the local n is not part of the digest).
        reducer: sums the moments over the process group (None: this process alone).
        samples: True if the first dimension counts samples (shown as ``n``).

    Returns:
        str: e.g. ``"X (n, 3) torch.float64 #1f2e3d4c5b6a7988"``.
    """
    v = t.detach().reshape(t.shape[0] if t.ndim else 1, -1)
    n_rows, n_cols = v.shape
    cols = torch.arange(1, n_cols + 1, dtype=torch.float64, device=v.device) / max(n_cols, 1)
    moments = torch.zeros(4, dtype=torch.float64, device=v.device)
    chunk = max(1, _CHUNK // max(n_cols, 1))
    for start in range(0, n_rows, chunk):
        c = v[start : start + chunk].to(torch.float64)
        rows = torch.arange(start + 1, start + c.shape[0] + 1, dtype=torch.float64, device=v.device) / n_rows
        moments += torch.stack([c.sum(), (c * c).sum(), (c.sum(1) * rows).sum(), (c.sum(0) * cols).sum()])
    if reducer is not None:
        moments = reducer.sum(moments)
    text = ",".join(f"{float(m):.{_DIGITS}g}" for m in moments.cpu())
    dims = [str(d) for d in t.shape]
    shape = ", ".join(["n", *dims[1:]] if samples and dims else dims) + ("," if len(dims) == 1 else "")
    return f"{name} ({shape}) {t.dtype} #{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def model_digest(model: nn.Module, names: list[str], shapes: list[tuple[int, ...]]) -> str:
    """The model's class and a hash of its module tree (``repr``) and trained parameters' shapes.

    Two models with the same p but another activation, layer order or layer type differ here;
    memory addresses in a repr (``<function f at 0x7f…>``) are ignored, so the digest is the same
    in every process.

    Args:
        model: the network.
        names: the trained parameters' names, in order.
        shapes: their shapes.

    Returns:
        str: e.g. ``"MLP #0a1b2c3d4e5f6789"``.
    """
    text = re.sub(r"0x[0-9a-fA-F]+", "0x", repr(model)) + repr(list(zip(names, shapes, strict=True)))
    return f"{type(model).__name__} #{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class Checkpointer:
    """Saves and restores driver state at ``path`` every ``every`` iterates.

    Args:
        path: file to write (its folder is created).
        every: save after this many trial steps (at the next iterate boundary).
        fingerprint: a dict describing the run (sizes, method, damping, lr, loss, and the
            digests ``data``, ``model``, ``theta0`` of :func:`tensor_digest` /
            :func:`model_digest`); a checkpoint whose fingerprint differs is refused on resume.
        writer: False on ranks other than 0 (they read but never write).
        start: (p,) the parameters the run starts from; a checkpoint whose saved θ equals them
            exactly is resumed even though ``theta0`` differs (the model was left at the last
            accepted parameters of an interrupted run, and the same model is passed again).
    """

    def __init__(self, path: str | os.PathLike[str], every: int, fingerprint: dict[str, Any],
                 writer: bool = True, start: torch.Tensor | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise GaussNewtonError(f"`checkpoint` must be a file path; got {type(path).__name__}.")
        self.path = Path(path)
        self.every = check_positive_int("checkpoint_every", every)
        self.fingerprint = {k: str(v) for k, v in fingerprint.items()}
        self.last_saved = -1
        self.writer = writer  # only rank 0 writes under a process group
        self.start = start

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None if there is no checkpoint yet.

        Raises:
            GaussNewtonError: the checkpoint belongs to a different run or is unreadable.
        """
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - report any unreadable file the same way
            raise GaussNewtonError(f"`checkpoint` file {str(self.path)!r} could not be read: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise GaussNewtonError(
                f"`checkpoint` file {str(self.path)!r} has format {got!r}, not {_FORMAT} (written by another "
                "gaussnewton version). Delete it or pass another path."
            )
        saved = state.get("fingerprint")
        saved = saved if isinstance(saved, dict) else {}
        differ = [k for k in {**self.fingerprint, **saved} if saved.get(k) != self.fingerprint.get(k)]
        if differ == ["theta0"] and self._holds_saved_theta(state):
            differ = []
        if differ:
            what = "; ".join(
                f"{_DIFFER.get(k, f'`{k}` differs')}: saved "
                f"{saved.get(k, '(none: written by an older gaussnewton)')}, now {self.fingerprint.get(k)}"
                for k in differ
            )
            raise GaussNewtonError(
                f"`checkpoint` file {str(self.path)!r} belongs to a different run ({what}). To start afresh, "
                "delete the file or pass another `checkpoint` path; to resume, call with the run's data, model "
                "and settings."
            )
        self.last_saved = int(state["nit"])
        return state

    def _holds_saved_theta(self, state: dict[str, Any]) -> bool:
        """True if the run starts exactly at the checkpoint's current parameters."""
        theta = state.get("theta")
        if self.start is None or not isinstance(theta, torch.Tensor) or theta.shape != self.start.shape:
            return False
        return bool(torch.equal(theta.to(self.start.device, self.start.dtype), self.start))

    def due(self, nit: int) -> bool:
        """True when ``every`` trial steps have passed since the last save."""
        return nit - max(self.last_saved, 0) >= self.every or self.last_saved < 0

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically (a no-op on ranks other than 0)."""
        self.last_saved = int(state["nit"])
        if not self.writer:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**state, "format": _FORMAT, "fingerprint": self.fingerprint}
        # a unique temporary name per writer (two runs on one path no longer collide on it: the
        # last complete file wins, and a reader never sees a partial one)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.last_saved = int(state["nit"])
