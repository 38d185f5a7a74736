"""The typed, versioned run state of the Stepper; also the schema of checkpoints.

:class:`SolverState` is what :meth:`Stepper.step <gaussnewton._stepper.Stepper.step>` reads
and returns. :meth:`SolverState.to_dict` turns it into plain tensors, numbers, strings, lists
and dicts (loadable with ``torch.load(weights_only=True)``, so resuming never unpickles
arbitrary objects); :meth:`SolverState.from_dict` validates and restores it. ``fit``
checkpoints and the optimizer's ``state_dict`` both store this dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ._errors import GaussNewtonError
from .damping import state_from_dict, state_to_dict
from .result import History, Termination

if TYPE_CHECKING:
    from ._objective import Linearization

__all__ = ["STATE_VERSION", "SolverState"]

STATE_VERSION = 2
"""Version of the saved layout (1: the 0.1 pickled dict; 2: this schema)."""

_SAVED = ("theta", "theta0", "cost", "cost0", "damping_state", "diag_run", "nfev", "njev", "nit", "termination")


@dataclass
class SolverState:
    """Everything needed to continue a run exactly where it stopped.

    Attributes:
        theta: (p,) current (accepted) parameters.
        theta0: (p,) parameters at the start of the run.
        cost: cost at ``theta``.
        cost0: cost at ``theta0``.
        outputs: outputs f(θ) at ``theta`` (not saved: recomputed on resume).
        damping_state: the damping rule's typed state (None before the first iterate).
        diag_run: (p,) MINPACK's running maximum of diag(AᵀA) (D for ``scaling="diag"``).
        nfev: cost evaluations.
        njev: Jacobian evaluations.
        nit: trial steps taken.
        termination: why the run stopped, None while it runs.
        history: per-trial records (None: not recorded, as in the optimizer).
        lin: the last linearization (not saved).
        rho: damping of the last trial (not saved).
        accepted: whether the last trial was accepted (not saved).
        trials: trials of the last :meth:`~gaussnewton._stepper.Stepper.step` (not saved).
    """

    theta: torch.Tensor
    theta0: torch.Tensor
    cost: float
    cost0: float
    outputs: torch.Tensor | None = None
    damping_state: Any = None
    diag_run: torch.Tensor | None = None
    nfev: int = 1
    njev: int = 0
    nit: int = 0
    termination: Termination | None = None
    history: History | None = None
    lin: Linearization | None = None
    rho: float = math.nan
    accepted: bool = False
    trials: int = 0

    @property
    def progress(self) -> float:
        """Cost / initial cost (0 for a zero initial cost)."""
        return self.cost / self.cost0 if self.cost0 > 0 else 0.0

    def to_dict(self, params: bool = True) -> dict[str, Any]:
        """Plain-data form (``torch.load(weights_only=True)``-safe); ``params=False`` omits θ, θ₀.

        The damping state carries its type name (``{"type": "TrustState", "rho": …}``).
        """
        return {
            "version": STATE_VERSION,
            "theta": self.theta.detach().clone() if params else None,
            "theta0": self.theta0.detach().clone() if params else None,
            "cost": float(self.cost),
            "cost0": float(self.cost0),
            "damping_state": state_to_dict(self.damping_state),
            "diag_run": None if self.diag_run is None else self.diag_run.detach().clone(),
            "nfev": int(self.nfev),
            "njev": int(self.njev),
            "nit": int(self.nit),
            "termination": None if self.termination is None else self.termination.name,
            "history": None if self.history is None else self.history.as_dict(),
            "elapsed": 0.0 if self.history is None else self.history.elapsed(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], device: torch.device | str = "cpu",
                  theta: torch.Tensor | None = None, state_type: type | None = None) -> SolverState:
        """Restore a state saved by :meth:`to_dict` (θ from ``theta`` when saved without it).

        ``state_type`` restores a damping state saved without its ``"type"`` entry (the
        optimizer's ``state_dict``: ``torch.optim.Optimizer.load_state_dict`` mangles strings).

        Raises:
            GaussNewtonError: another version, or missing entries.
        """
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            got = data.get("version") if isinstance(data, dict) else type(data).__name__
            raise GaussNewtonError(f"saved solver state must have version {STATE_VERSION}; got {got!r}. "
                                   "It was written by another gaussnewton version: start afresh.")
        missing = [k for k in _SAVED if k not in data]
        if missing:
            raise GaussNewtonError(f"saved solver state lacks {missing}; it is damaged or not a gaussnewton state.")
        th = data["theta"] if data["theta"] is not None else theta
        if th is None:
            raise GaussNewtonError("saved solver state has no parameters and none were given.")
        history = None
        if data.get("history") is not None:
            history = History()
            history.restore(data["history"], float(data.get("elapsed", 0.0)))
        diag = data["diag_run"]
        term = data["termination"]
        return cls(
            theta=th.to(device), theta0=(data["theta0"] if data["theta0"] is not None else th).to(device),
            cost=float(data["cost"]), cost0=float(data["cost0"]),
            damping_state=state_from_dict(data["damping_state"], state_type),
            diag_run=None if diag is None else diag.to(device),
            nfev=int(data["nfev"]), njev=int(data["njev"]), nit=int(data["nit"]),
            termination=None if term is None else Termination[term], history=history,
        )
