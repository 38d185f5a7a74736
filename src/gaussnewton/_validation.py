r"""Validation loss, its metric and early stopping (MATLAB ``trainlm``'s ``max_fail``).

After every trial the :class:`~gaussnewton._stepper.Stepper` asks a :class:`ValidationMonitor`
whether to stop. At each accepted step it costs one forward pass on the validation inputs:

.. math::  R_\mathrm{val}(\theta) = \frac1{n_\mathrm{val}} \sum_j \ell(f(\theta; x_j), y_j),

plus a metric the loss implies: :math:`R^2 = 1 - \sum (u - y)^2 / \sum (y - \bar y)^2` for the
regression losses (squared, pseudo-Huber, log-cosh), accuracy for ``logistic`` (``u > 0``)
and ``cross_entropy`` (``argmax``). The run stops (``Termination.EARLY_STOP``) once
``patience`` accepted steps in a row have not lowered the best validation loss, and the
caller restores the parameters of the best one (``best_theta``, kept as a copy). Under data
parallelism every sum is all-reduced, so every rank stops at the same step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._state import SolverState
from .distributed import Reducer
from .losses import Loss

__all__ = ["ValidationMonitor"]

_ACCURACY_LOSSES = ("logistic", "cross_entropy")


class ValidationMonitor:
    """Records the validation loss and metric per trial; says when to stop early.

    Args:
        outputs: θ ↦ model outputs on the validation inputs.
        target: validation targets (shaped like the outputs; class labels for cross-entropy).
        loss: the training loss (also the validation loss).
        patience: accepted steps without improvement before stopping (None: never stop).
        reducer: sums over the process group.
        min_delta: an improvement must lower the best validation loss by more than this.
    """

    def __init__(self, outputs: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor, loss: Loss,
                 patience: int | None, reducer: Reducer, min_delta: float = 0.0) -> None:
        self.outputs, self.target, self.loss, self.patience, self.reducer = outputs, target, loss, patience, reducer
        self.min_delta = min_delta
        self.losses: list[float] = []
        self.metrics: list[float] = []
        self.best = math.inf
        self.best_theta: torch.Tensor | None = None
        self.best_step = 0
        self.fails = 0

    def evaluate(self, theta: torch.Tensor) -> tuple[float, float]:
        """(validation loss, metric) at θ, over all shards."""
        with torch.no_grad():
            u = self.outputs(theta).detach()
        y = self.target
        if self.loss.name in _ACCURACY_LOSSES:
            hit = (u.argmax(-1) == y) if self.loss.name == "cross_entropy" else ((u > 0) == (y > 0.5))
            extra = [hit.double().sum(), torch.tensor(float(hit.numel()), dtype=torch.float64)]
        else:
            r, yd = (u - y).double(), y.double()
            extra = [(r * r).sum(), yd.sum(), (yd * yd).sum(), torch.tensor(float(yd.numel()), dtype=torch.float64)]
        sums = torch.stack([self.loss.value(u, y).sum().double(),
                            torch.tensor(float(u.shape[0]), dtype=torch.float64), *[t.cpu() for t in extra]])
        sums = self.reducer.sum(sums)
        val = float(sums[0] / sums[1])
        if self.loss.name in _ACCURACY_LOSSES:
            metric = float(sums[2] / sums[3])
        else:
            ss_res, s1, s2, m = (float(v) for v in sums[2:6])
            ss_tot = s2 - s1 * s1 / m
            metric = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
        return (val if math.isfinite(val) else math.nan), metric

    def start(self, theta: torch.Tensor) -> None:
        """Take θ₀ as the first best point (step 0)."""
        self.best, _ = self.evaluate(theta)
        self.best_theta, self.best_step, self.fails = theta.detach().clone(), 0, 0

    def __call__(self, state: SolverState) -> bool:
        """Record the trial (re-evaluating only after an accepted one); True: stop early."""
        if not state.accepted and self.losses:
            self.losses.append(self.losses[-1])
            self.metrics.append(self.metrics[-1])
            return False
        val, metric = self.evaluate(state.theta)
        self.losses.append(val)
        self.metrics.append(metric)
        if val < self.best:  # the best point moves on any decrease; patience only on a real one
            real = val < self.best - self.min_delta
            self.best, self.best_theta, self.best_step = val, state.theta.detach().clone(), state.nit
            if real:
                self.fails = 0
                return False
        self.fails += 1
        return self.patience is not None and self.fails >= self.patience

    def columns(self, rows: int) -> dict[str, list[float]]:
        """``val_loss`` and ``val_metric`` for ``rows`` history rows (NaN for rows from before a resume)."""
        pad = [math.nan] * (rows - len(self.losses))
        return {"val_loss": pad + self.losses, "val_metric": pad + self.metrics}
