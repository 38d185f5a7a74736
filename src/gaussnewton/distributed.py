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

Ranks that disagree: every front door (:func:`~gaussnewton.fit`,
:func:`~gaussnewton.least_squares`, :class:`~gaussnewton.optim.GaussNewton`) first calls
:meth:`Reducer.check_same` with the run's configuration (p, dtype, method, damping, solver,
loss, weight decay …; the shard size N_r may differ). One all-gather of an 8-byte digest
compares them before any other collective, so a rank with another model width or solver
fails every rank at once with a :class:`~gaussnewton.GaussNewtonError` naming the fields
and the values per rank, instead of aborting inside gloo on mismatched tensor sizes or
waiting for the group timeout on mismatched collectives.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import torch

from ._errors import GaussNewtonError

__all__ = ["Reducer", "describe", "resolve_group"]

_DIGEST_BYTES = 8  # one int64 per rank: a collision between two different configurations is ~2⁻⁶⁴
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # object.__repr__'s memory address differs per process
_SIMPLE = (bool, int, float, str, type(None))


def describe(value: Any) -> str:
    """A process-independent text for ``value`` (its repr, without memory addresses).

    Objects with the default ``repr`` (``<X object at 0x…>``) are described by their type and
    public attributes of simple types, functions by their qualified name, so equal
    configurations give equal texts on every rank.

    Args:
        value: a configuration value (number, string, dtype, schedule, solver, loss, callable …).

    Returns:
        str: the description.

    Example:
        >>> import gaussnewton as gn
        >>> describe(gn.linsolve.CGSolver(rtol=1e-10, max_iter=50))
        'CGSolver(atol=0.0, max_iter=50, preconditioner=None, recompute_every=50, rtol=1e-10)'
    """
    text = repr(value)
    if not _ADDRESS.search(text):
        return text
    name = getattr(value, "__qualname__", None)
    if callable(value) and isinstance(name, str):
        return f"{getattr(value, '__module__', '?')}.{name}"
    attrs = getattr(value, "__dict__", {})
    public = sorted((k, v) for k, v in attrs.items() if not k.startswith("_") and isinstance(v, _SIMPLE))
    return f"{type(value).__qualname__}({', '.join(f'{k}={v!r}' for k, v in public)})"


def disagreement(per_rank: list[dict[str, str]]) -> str | None:
    """What differs between the ranks' configurations (None when they agree).

    Args:
        per_rank: every rank's ``{field: description}``, in rank order.

    Returns:
        str | None: one ``field: rank 0 = …, rank 1 = …`` clause per differing field.

    Example:
        >>> disagreement([{"p": "241", "dtype": "torch.float64"}, {"p": "271", "dtype": "torch.float64"}])
        '`p`: rank 0 = 241, rank 1 = 271'
    """
    fields = list(dict.fromkeys(k for cfg in per_rank for k in cfg))
    clauses = []
    for field_name in fields:
        values = [cfg.get(field_name, "(missing)") for cfg in per_rank]
        if len(set(values)) > 1:
            clauses.append(f"`{field_name}`: " + ", ".join(f"rank {r} = {v}" for r, v in enumerate(values)))
    return "; ".join(clauses) or None


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

    def check_same(self, fields: Mapping[str, Any], device: torch.device | str = "cpu") -> None:
        """Fail every rank if the ranks were configured differently (no-op without a group).

        Call it before any other collective of a run. Each value is reduced to a
        process-independent text (:func:`describe`) and the texts are hashed; one all-gather of
        the digests compares the ranks. Only when they differ, a second all-gather of the texts
        (a few hundred bytes per rank) names the differing fields.

        Args:
            fields: the configuration that must agree (e.g. p, dtype, method, damping, solver,
                loss, weight decay); leave out what may differ per rank (the shard size N_r).
            device: where the collective's tensors live (a CUDA device for NCCL).

        Raises:
            GaussNewtonError: on every rank, naming each differing field with its value per rank.
        """
        if self.group is None:
            return
        dist = torch.distributed
        world = dist.get_world_size(self.group)
        text = json.dumps({k: describe(v) for k, v in fields.items()}).encode()
        digest = int.from_bytes(hashlib.blake2b(text, digest_size=_DIGEST_BYTES).digest(), "little", signed=True)
        digests = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
        dist.all_gather(digests, torch.tensor([digest], dtype=torch.int64, device=device), group=self.group)
        if len({int(d) for d in digests}) == 1:
            return
        # every rank saw the same digests, so every rank takes this branch: the texts, padded
        raw = torch.tensor(list(text), dtype=torch.uint8, device=device)
        per_rank = [json.loads(bytes(row.tolist()).decode()) for row in self._gather_ragged(raw)]
        what = disagreement(per_rank) or "the configurations differ (hash)"
        raise GaussNewtonError(
            f"The ranks of the process group were configured differently (rank {self.rank} of {world}): {what}. "
            "Data parallelism needs the same model, method and options on every rank (only each rank's "
            "shard of the data may differ); pass the same arguments on every rank."
        )

    def _gather_ragged(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``t`` (the number of rows may differ), in rank order."""
        dist = torch.distributed
        world = dist.get_world_size(self.group)
        sizes = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([t.shape[0]], device=t.device), group=self.group)
        rows = [int(size) for size in sizes]
        pad = torch.zeros((max(rows), *t.shape[1:]), dtype=t.dtype, device=t.device)
        pad[: t.shape[0]] = t
        parts = [torch.empty_like(pad) for _ in range(world)]
        dist.all_gather(parts, pad, group=self.group)
        return [part[:r] for part, r in zip(parts, rows, strict=True)]

    def gather_rows(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's rows of ``t`` (shards may differ in length), in rank order."""
        if self.group is None:
            return t
        return torch.cat(self._gather_ragged(t))
