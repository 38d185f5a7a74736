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

import os
from pathlib import Path
from typing import Any

import torch

from ._errors import GaussNewtonError, check_positive_int

__all__ = ["Checkpointer"]

_FORMAT = 2  # 1: gaussnewton 0.1 (pickled dict); 2: SolverState.to_dict()


class Checkpointer:
    """Saves and restores driver state at ``path`` every ``every`` iterates.

    Args:
        path: file to write (its folder is created).
        every: save after this many trial steps (at the next iterate boundary).
        fingerprint: a dict describing the run (sizes, method, damping, lr, loss …); a
            checkpoint whose fingerprint differs is refused on resume.
    """

    def __init__(self, path: str | os.PathLike[str], every: int, fingerprint: dict[str, Any],
                 writer: bool = True) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise GaussNewtonError(f"`checkpoint` must be a file path; got {type(path).__name__}.")
        self.path = Path(path)
        self.every = check_positive_int("checkpoint_every", every)
        self.fingerprint = {k: str(v) for k, v in fingerprint.items()}
        self.last_saved = -1
        self.writer = writer  # only rank 0 writes under a process group

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
        if state.get("fingerprint") != self.fingerprint:
            raise GaussNewtonError(
                f"`checkpoint` file {str(self.path)!r} belongs to a different run: expected "
                f"{self.fingerprint}, got {state.get('fingerprint')}. Delete it or pass another path."
            )
        self.last_saved = int(state["nit"])
        return state

    def due(self, nit: int) -> bool:
        """True when ``every`` trial steps have passed since the last save."""
        return nit - max(self.last_saved, 0) >= self.every or self.last_saved < 0

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically (a no-op on ranks other than 0)."""
        self.last_saved = int(state["nit"])
        if not self.writer:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        payload = {**state, "format": _FORMAT, "fingerprint": self.fingerprint}
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self.last_saved = int(state["nit"])
