r"""Data-parallel Gauss–Newton on ``torch.distributed`` (gloo on CPUs, NCCL on GPUs).

Each rank holds a shard of the n samples (its own rows of ``X``, ``y`` or of the residual
vector). Every quantity the driver needs is a sum over samples, so one collective per
quantity makes all ranks take identical steps. The objective wraps each rank's Jacobian in a
:class:`~gaussnewton.operators.ShardedOperator`, which does these reductions itself, so the
linear solvers run unchanged and never see ranks:

* cost ``Σ_j ℓ_j``, gradient ``Aᵀh``, predicted reduction ``hᵀAs, ‖As‖²``,
  ``diag(AᵀA)``: ``all_reduce(SUM)``;
* **p-space path** (``solver="normal"``, chosen when N ≥ p): ``AᵀA`` (p×p) and ``Aᵀh`` are
  all-reduced (``gram("params")``, ``rmv``), then every rank factors the same p×p matrix.
  Bytes moved per iterate and rank (ring all-reduce): about ``2·(p² + p)·itemsize``, independent of n;
* **matrix-free path** (``solver="cg"``, chosen beyond the memory budget): every CG product
  ``Σ_r A_rᵀ(A_r v)`` is one all-reduce of p numbers, ``2·p·itemsize`` bytes per CG iteration;
* **n-space path** (``solver="kernel"``, chosen when N < p): the Jacobian blocks ``A_r``
  (N_r×p) are all-gathered (``gather()``) and every rank forms the N×N kernel. Bytes moved per iterate and
  rank: about ``N·p·itemsize`` (each rank receives all other blocks).

The damping schedules and trust-region decisions then see identical numbers on every rank,
so the iterates agree with a single process up to the rounding of the reductions (tested to
1e-10 in float64). Under ``torchrun`` the default process group is picked up automatically by
:func:`gaussnewton.fit` and :func:`gaussnewton.least_squares` (``process_group="auto"``).
Pass ``process_group=None`` to train each rank independently.

Faults: collectives run with the process group's timeout (``init_process_group(timeout=…)``);
``torchrun`` stops the other workers when one exits, and a run started with
``checkpoint=…`` (written by rank 0) resumes from its last checkpoint on restart.
"""

from __future__ import annotations

from typing import Any

import torch

from ._errors import GaussNewtonError

__all__ = ["Reducer", "resolve_group"]


def resolve_group(process_group: Any) -> Any:
    """``"auto"`` → the default group if torch.distributed is initialized (else None)."""
    if isinstance(process_group, str):
        if process_group != "auto":
            raise GaussNewtonError(f"`process_group` must be 'auto', None or a ProcessGroup; got {process_group!r}.")
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return dist.group.WORLD
        return None
    return process_group


class Reducer:
    """Reductions over a process group (identities when the group is None)."""

    def __init__(self, group: Any) -> None:
        self.group = group

    @property
    def active(self) -> bool:
        """True when a process group is in use."""
        return self.group is not None

    @property
    def rank(self) -> int:
        """This process's rank (0 without a group)."""
        return torch.distributed.get_rank(self.group) if self.group is not None else 0

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce (SUM) a copy of ``t``."""
        if self.group is None:
            return t
        out = t.clone()
        torch.distributed.all_reduce(out, group=self.group)
        return out

    def min(self, value: float) -> float:
        """The smallest of every rank's ``value`` (all-reduce MIN of one number)."""
        if self.group is None:
            return value
        out = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.MIN, group=self.group)
        return float(out)

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``t`` on every rank."""
        if self.group is None:
            return t
        out = t.clone()
        torch.distributed.broadcast(out, src=torch.distributed.get_global_rank(self.group, 0), group=self.group)
        return out

    def gather_rows(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's rows of ``t`` (shards may differ in length), in rank order."""
        if self.group is None:
            return t
        world = torch.distributed.get_world_size(self.group)
        sizes = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(world)]
        torch.distributed.all_gather(sizes, torch.tensor([t.shape[0]], device=t.device), group=self.group)
        rows = [int(s) for s in sizes]
        pad = torch.zeros((max(rows), *t.shape[1:]), dtype=t.dtype, device=t.device)
        pad[: t.shape[0]] = t
        parts = [torch.empty_like(pad) for _ in range(world)]
        torch.distributed.all_gather(parts, pad, group=self.group)
        return torch.cat([part[:r] for part, r in zip(parts, rows, strict=True)])
