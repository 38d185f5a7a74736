"""Figure 1's output manifold M = {α(f(X; w) − f(X; w_0)) : w ∈ disc} ⊂ R³, sampled on a polar grid.

The trajectories themselves come from the runs (``capture="all"``); this module only samples
the surface and the loss landscape R(w) around them, from the same data and network.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

import gaussnewton as gn

from .config import RunConfig
from .runner import build_data, build_model

__all__ = ["surface"]

GRID_RADII = 40
GRID_ANGLES = 72
MARGIN = 1.3  # the disc reaches 1.3× the farthest point of either trajectory


def surface(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Sample M and R(w) on a disc around w_0 that contains both Figure 1 trajectories.

    Args:
        records: the ``fig1`` run records (same data, network and seed).

    Returns:
        dict[str, Any]: ``w`` (radii×angles×2 parameter grid), ``u`` (radii×angles×3 points of M),
        ``loss`` (radii×angles, R at each grid point), ``w0``, ``y``, and the disc ``radius``.
    """
    cfg = RunConfig(**records[0]["config"])
    x, y = build_data(cfg)
    net = build_model(cfg)
    problem = gn.problems.NetworkProblem(net, x)
    w0 = problem.get_flat()
    far = max(
        float(np.max(np.linalg.norm(np.asarray(r["extras"]["theta_traj"]) - w0.numpy(), axis=1))) for r in records
    )
    radius = MARGIN * max(far, 0.5)
    rad = np.linspace(0.0, radius, GRID_RADII)
    ang = np.linspace(0.0, 2 * math.pi, GRID_ANGLES)
    w = w0.numpy()[None, None, :] + rad[:, None, None] * np.stack([np.cos(ang), np.sin(ang)], -1)[None, :, :]
    flat = torch.as_tensor(w.reshape(-1, 2), dtype=torch.float64)
    with torch.no_grad():
        u = torch.func.vmap(problem.outputs)(flat).numpy().reshape(GRID_RADII, GRID_ANGLES, -1)
    loss = 0.5 * np.mean((u - y.numpy()) ** 2, axis=-1)
    return {
        "w": w.tolist(),
        "u": u.tolist(),
        "loss": loss.tolist(),
        "w0": w0.tolist(),
        "y": y.tolist(),
        "radius": radius,
    }
