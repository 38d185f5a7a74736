r"""Dense Jacobians of black-box functions: vmapped lanes planned by a memory-traffic cost model.

A black-box residual ``fun(θ) -> r`` (θ of shape (p,), r of shape (N,)) gives automatic
differentiation nothing but the program itself, so its Jacobian is assembled from *lanes*: one
forward-mode lane (a JVP with a basis tangent eᵢ) per column, or one reverse-mode lane (a VJP
with a basis covector eⱼ) per row, batched by ``torch.func.vmap`` in chunks.

Cost model
----------
A lane runs the tangent (or transposed) program of ``fun`` once. Its primitives are element-wise
maps, reductions and small matrix products on intermediates the size of the data, so a lane is
memory-bound: its time is the bytes it moves divided by the bandwidth, and what it *writes* is a
faithful proxy for what it moves (every intermediate is written once and read about once). Let

* ``S_f`` = bytes written by one forward lane (the tangent of every intermediate),
* ``S_r`` = bytes written by one reverse lane (the cotangent of every intermediate, plus the
  accumulation of fan-in gradients),

both *measured* once per problem by running a single lane of each under a dispatch mode that
adds up the sizes of the tensors each primitive returns (views excluded); they depend only on
shapes, so the plan is deterministic. Then

.. math::  T_\mathrm{fwd} \approx p\,S_f / B, \qquad
           T_\mathrm{rev} \approx \kappa\,N\,S_r / B + S_0 / B

with ``B`` the bandwidth, ``S_0`` the bytes of one plain evaluation (reverse mode saves the
forward once) and ``κ = REVERSE_PENALTY``: a reverse lane reads saved primal tensors and
scatters into gradient buffers with worse locality than a forward lane, which only streams
tangents; measured here on tanh layers (N = 1,008 and 2,500, p = 1,008) a reverse byte cost 2–4×
a forward byte, so κ = 2 (conservative: it only moves the choice towards the mode that was
measured to be cheaper). Forward mode is used iff ``T_fwd ≤ T_rev``. For the one-layer tanh
network ``S_f ≈ 2 S_r``, so this reduces to the N ≥ p rule there; it differs for programs whose
two transposes touch different amounts of memory.

Chunks: the lanes of one vmapped call execute primitive by primitive, each on all ``c`` lanes
of the chunk, so the chunk's working set is about ``c·S``. While it fits the cache share of one
core (``CACHE_BYTES``: L3 / cores) the tangents are re-read from cache instead of DRAM; beyond
that every chunk streams from memory. The chunk is therefore ``c = ⌊CACHE_BYTES / S⌋`` (at
least 1), capped by the memory budget (``S`` also bounds a lane's peak memory). On the
tanh problem (S_f = 6.8 MB) this gives c = 2, measured the fastest of 1–32 (0.47 s vs 0.80 s
for 16). Off the CPU the cache model does not apply (per-call launch overhead dominates) and
only the memory budget caps the chunk.

Forward lanes use ``torch.func.linearize``: the primal is evaluated once, zero tangents of
constants (the data) are folded away, and the lanes run only the tangent program. Measured on
the tanh problem it halves the time of ``vmap(jvp)`` (0.42–0.47 s vs 0.92–1.0 s at N = 2,500,
p = 1,008). It traces the function with ``make_fx``, which some programs do not survive; then
the lanes fall back to ``vmap(jvp)``, permanently for that problem.

Evaluated and not kept: ``torch.compile`` of the forward chunk (Inductor fuses the tangent's
bias add, ``tanh_backward`` and the reduction with ``v``): 0.40 s per Jacobian against 0.42–0.47 s
for the linearized lanes, after 16 s of cold compilation, so it would pay only after hundreds of
Jacobians; ``torch.func.jacrev(chunk_size=16)``: the same lanes as reverse mode, 7 s.

Row-separable residuals (rᵢ depends on θ and data row i only) are much cheaper, but that cannot
be assumed of a black box: :func:`rowwise` is the documented opt-in.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .._errors import GaussNewtonError
from .base import chunk_size_for

__all__ = ["BlackBoxJacobian", "LanePlan", "RowwiseResidual", "rowwise", "vmap_halving"]

REVERSE_PENALTY = 2.0  # κ: cost of a reverse-lane byte relative to a forward-lane byte (measured 2–4×)
CACHE_BYTES_FALLBACK = 8 * 2**20  # when the OS does not report the cache sizes
FALLBACK_CHUNK = 16  # chunk when the lanes cannot be measured (the previous fixed size)
# Below this many Jacobian entries N·p the ~0.2 s trace of torch.func.linearize costs more than the
# lanes it speeds up (a 50×2 fit took 1.2 s instead of 10 ms), so plain jvp lanes are used.
LINEARIZE_MIN_ENTRIES = 10**6
_LINEARIZE_WARNING = "Attempted to insert a get_attr Node"  # harmless const-folding notice (torch 2.13)


def cache_bytes_per_core() -> int:
    """The last-level cache share of one core, in bytes (Linux sysfs; 8 MiB where unknown).

    The largest unified cache of CPU 0 divided by the number of CPUs sharing it
    (``/sys/devices/system/cpu/cpu0/cache/index*/``: ``size`` and ``shared_cpu_list``).

    Returns:
        int: bytes.
    """
    best = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            text = (index / "size").read_text().strip().upper()
            scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
            size = int(text.rstrip("KMG")) * scale
            sharing = 0
            for part in (index / "shared_cpu_list").read_text().strip().split(","):
                lo, _, hi = part.partition("-")
                sharing += int(hi or lo) - int(lo) + 1
        except (OSError, ValueError):
            continue
        best = max(best, size // max(sharing, 1))
    return best or CACHE_BYTES_FALLBACK


class _WrittenBytes(TorchDispatchMode):
    """Adds up the bytes of every tensor a primitive returns (views and aliases excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        if not (returns and returns[0].alias_info is not None):
            self.total += sum(t.numel() * t.element_size() for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        return out


def written_bytes(fn: Callable[..., Any], *args: Any) -> int:
    """Bytes that ``fn(*args)`` writes, summed over the primitives it dispatches.

    Args:
        fn: any torch program.
        *args: its arguments.

    Returns:
        int: the total size of the (non-view) tensors its primitives return.
    """
    with _WrittenBytes() as counter:
        fn(*args)
    return counter.total


class LanePlan(NamedTuple):
    """How a black-box Jacobian is assembled (fixed per problem: it depends on shapes only).

    Attributes:
        mode: ``"forward"`` (p JVP lanes) or ``"reverse"`` (N VJP lanes).
        chunk: lanes per vmapped call (None: all at once).
        forward_bytes: S_f, bytes written by one forward lane (0 if not measured).
        reverse_bytes: S_r, bytes written by one reverse lane (0 if not measured).
        eval_bytes: S_0, bytes written by one evaluation of the function.
    """

    mode: str
    chunk: int | None
    forward_bytes: int
    reverse_bytes: int
    eval_bytes: int

    def lane_traffic(self, n: int, p: int) -> int:
        """Bytes all lanes of the chosen mode write (the lane algorithm's traffic bound).

        Args:
            n: N, residuals.
            p: parameters.

        Returns:
            int: ``p·S_f`` (forward) or ``N·S_r + S_0`` (reverse).
        """
        return p * self.forward_bytes if self.mode == "forward" else n * self.reverse_bytes + self.eval_bytes


def plan_lanes(n: int, p: int, forward_bytes: int, reverse_bytes: int, eval_bytes: int, *,
               cache_bytes: float, memory_budget: float) -> LanePlan:
    """Choose the mode and chunk from measured lane sizes (see the module docstring).

    Args:
        n: N, residuals.
        p: parameters.
        forward_bytes: S_f.
        reverse_bytes: S_r.
        eval_bytes: S_0.
        cache_bytes: cache share of one core (``math.inf`` off the CPU).
        memory_budget: bytes allowed for one vmapped call's lanes.

    Returns:
        LanePlan: ``forward`` iff p·S_f ≤ κ·N·S_r + S_0; chunk ⌊cache / S⌋ ≥ 1 capped by the budget.
    """
    forward = p * forward_bytes <= REVERSE_PENALTY * n * reverse_bytes + eval_bytes
    lanes, lane = (p, forward_bytes) if forward else (n, reverse_bytes)
    lane = max(lane, 1)
    chunk = chunk_size_for(lanes, lane, memory_budget)
    if cache_bytes < float("inf"):
        fit = max(1, int(cache_bytes // lane))
        chunk = min(fit, chunk) if chunk is not None else (None if fit >= lanes else fit)
    return LanePlan("forward" if forward else "reverse", chunk, forward_bytes, reverse_bytes, eval_bytes)


class BlackBoxJacobian:
    """Dense Jacobian of ``fun`` (p,) → (N,) by vmapped forward or reverse lanes.

    The plan (mode, chunk) is made at the first call from one measured lane of each mode and
    then kept: the shapes do not change between iterates, and a fixed plan keeps every
    Jacobian of a run computed the same way (bit-for-bit reproducible).

    Args:
        fun: ``fun(θ) -> r``, torch ops only, θ (p,), r (N,).
        n: N.
        p: parameters.
        memory_budget: bytes for one vmapped call's lanes.
    """

    def __init__(self, fun: Callable[[torch.Tensor], torch.Tensor], n: int, p: int, memory_budget: float) -> None:
        self.fun, self.n, self.p, self.memory_budget = fun, n, p, memory_budget
        self.plan: LanePlan | None = None
        self.linearize_ok = True  # False once torch.func.linearize failed on this function
        self.verified = False  # the linearized lanes were checked against a jvp lane

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """J(θ), shape (N, p).

        Args:
            theta: (p,).

        Returns:
            torch.Tensor: (N, p), dtype and device of ``theta``.
        """
        column: Callable[[torch.Tensor], torch.Tensor] | None = None
        vjp_fn: Callable[[torch.Tensor], Any] | None = None
        if self.plan is None:
            self.plan = self._measure(theta)
        plan = self.plan
        if plan.mode == "forward":
            column = column or self._forward_lane(theta)
            basis = torch.eye(self.p, dtype=theta.dtype, device=theta.device)
            return vmap_halving(column, basis, plan.chunk).T
        vjp_fn = vjp_fn or torch.func.vjp(self.fun, theta)[1]
        basis = torch.eye(self.n, dtype=theta.dtype, device=theta.device)
        return vmap_halving(lambda u: vjp_fn(u)[0], basis, plan.chunk)

    def _forward_lane(self, theta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The tangent map v ↦ J v: the linearized program, or ``jvp`` where linearize does not pay or fails.

        Tracing costs about 0.2 s per Jacobian here whatever the size, so the linearized lanes are
        used only from N·p ≥ ``LINEARIZE_MIN_ENTRIES`` (where they save more than that). A trace
        can silently burn in values that escape autodiff (``.item()``, ``.numpy()``): the first
        linearized lane is compared with a ``jvp`` lane, which raises on such escapes, and a
        mismatch falls back to ``jvp`` for good.
        """
        jvp_lane = lambda v: torch.func.jvp(self.fun, (theta,), (v,))[1]  # noqa: E731
        if self.linearize_ok and self.n * self.p < LINEARIZE_MIN_ENTRIES:
            self.linearize_ok = False
        if self.linearize_ok:
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=_LINEARIZE_WARNING)
                    column = torch.func.linearize(self.fun, theta)[1]
                    column(torch.zeros_like(theta))  # the first call folds the constants (and may warn)
                    if not self.verified:
                        e = torch.zeros_like(theta)
                        e[0] = 1.0
                        # vmapped, as the lanes run: raises where autodiff cannot follow (.item(), .numpy())
                        reference = torch.func.vmap(jvp_lane)(e[None])[0]
                        if not torch.allclose(column(e), reference, rtol=1e-10, atol=1e-12):
                            raise ValueError("linearized lane differs from jvp")
                        self.verified = True
                return column
            except GaussNewtonError:
                raise
            except Exception:  # make_fx tracing fails in many program-specific ways
                self.linearize_ok = False
        return jvp_lane

    def _measure(self, theta: torch.Tensor) -> LanePlan:
        """Measure S_0, S_f, S_r with one lane each and plan (the N ≥ p rule if counting fails)."""
        cache = cache_bytes_per_core() if theta.device.type == "cpu" else float("inf")
        e_p = torch.zeros(self.p, dtype=theta.dtype, device=theta.device)
        e_n = torch.zeros(self.n, dtype=theta.dtype, device=theta.device)
        e_p[0], e_n[0] = 1.0, 1.0
        try:
            column = self._forward_lane(theta)
            sf = written_bytes(column, e_p)
            saved: list[Any] = []
            s0 = written_bytes(lambda t: saved.append(torch.func.vjp(self.fun, t)[1]), theta)
            sr = written_bytes(lambda u: saved[0](u)[0], e_n)
            if not self.linearize_ok:  # a jvp lane re-evaluates the primal; vmap does that once per chunk
                sf = max(sf - s0, 1)
        except Exception:  # counting is an optimization: never let it break the Jacobian
            forward = self.n >= self.p
            lanes = self.p if forward else self.n
            cap = chunk_size_for(lanes, FALLBACK_CHUNK * max(self.n, self.p) * theta.element_size(),
                                 self.memory_budget)
            chunk = FALLBACK_CHUNK if cap is None else min(cap, FALLBACK_CHUNK)
            return LanePlan("forward" if forward else "reverse", chunk, 0, 0, 0)
        return plan_lanes(self.n, self.p, sf, sr, s0, cache_bytes=cache, memory_budget=self.memory_budget)


def vmap_halving(fn: Callable[[torch.Tensor], torch.Tensor], basis: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """``vmap(fn, chunk_size=chunk)(basis)``, halving the chunk on an out-of-memory error.

    Args:
        fn: one lane, basis row ↦ result.
        basis: (lanes, m) rows to map over.
        chunk: lanes per call (None: all).

    Returns:
        torch.Tensor: the stacked lane results, leading dimension ``lanes``.
    """
    return _halving(lambda c: torch.func.vmap(fn, chunk_size=c)(basis), int(basis.shape[0]), chunk)


def _halving(call: Callable[[int | None], torch.Tensor], lanes: int, chunk: int | None) -> torch.Tensor:
    """``call(chunk)``, retried with half the chunk while it runs out of memory.

    Args:
        call: runs the vmapped lanes with a given chunk size.
        lanes: the number of lanes (the size of ``chunk=None``).
        chunk: the first chunk size to try.

    Returns:
        torch.Tensor: what ``call`` returns.

    Raises:
        RuntimeError: a non-memory error, or out of memory with one lane per call.
        MemoryError: out of memory with one lane per call.
    """
    while True:
        try:
            return call(chunk)
        except (RuntimeError, MemoryError) as exc:  # CPU and CUDA OOM both land here
            msg = str(exc).lower()
            if "out of memory" not in msg and "can't allocate" not in msg:
                raise
            size = chunk or lanes
            if size <= 1:
                raise
            chunk = size // 2


class RowwiseResidual:
    r"""A residual whose rows are independent, with a per-row Jacobian (opt-in; see :func:`rowwise`).

    ``fun(θ, *data)`` is evaluated on the whole batch; row i of every ``data`` tensor (leading
    dimension m) yields the residuals r[i] (shape () or (k,)) and nothing else does. The
    residual vector is ``fun(θ, *data).reshape(-1)`` (N = m·k). The Jacobian is

    .. math::  J = \operatorname{vmap}_i\ \mathrm{jac}_\theta\, f(\theta, x_i)
               \in \mathbb{R}^{m \times k \times p} \to \mathbb{R}^{N \times p}

    with ``jacrev`` per row when k ≤ p (k reverse lanes of a one-row program) and ``jacfwd``
    otherwise. Its traffic is about the size of J itself (N·p·itemsize) plus the rows'
    intermediates, instead of p (or N) lanes each the size of *all* intermediates: on the tanh
    benchmark (N = 2,500, p = 1,008) about 10 ms against 0.45 s for the black-box lanes.

    At the first Jacobian the per-row evaluation is compared with the batch evaluation, so a
    function that mixes rows in its values (batch statistics, a mean over the batch) is refused.
    A function that mixes rows through its derivatives only (θ-dependent coupling that cancels
    at one θ) cannot be detected: the row-separability is the caller's promise.

    Args:
        fun: ``fun(θ, *data) -> r``, θ (p,), every ``data`` tensor with the rows first, r of
            shape (m,) or (m, k).
        *data: the row-indexed tensors (same leading dimension m).
        memory_budget: bytes for one vmapped call over rows.

    Raises:
        GaussNewtonError: no data, or data with different numbers of rows.
    """

    def __init__(self, fun: Callable[..., torch.Tensor], *data: torch.Tensor,
                 memory_budget: float = 2 * 2**30) -> None:
        if not callable(fun):
            raise GaussNewtonError(f"`fun` must be callable; got {type(fun).__name__}.")
        if not data:
            raise GaussNewtonError("`rowwise` needs at least one data tensor whose rows index the residuals; got none.")
        rows = {int(a.shape[0]) if isinstance(a, torch.Tensor) and a.ndim else -1 for a in data}
        if len(rows) != 1 or -1 in rows:
            shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__ for a in data]
            raise GaussNewtonError(f"`rowwise` data must be tensors with the same number of rows; got {shapes}.")
        self.fun, self.data, self.memory_budget = fun, data, memory_budget
        self.rows = rows.pop()
        self.checked = False

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """r(θ) = ``fun(θ, *data).reshape(-1)``.

        Args:
            theta: (p,).

        Returns:
            torch.Tensor: (N,).
        """
        return self.fun(theta, *self.data).reshape(-1)

    def _row(self, theta: torch.Tensor, *row: torch.Tensor) -> torch.Tensor:
        return self.fun(theta, *(a.unsqueeze(0) for a in row)).reshape(-1)

    def jacobian(self, theta: torch.Tensor) -> torch.Tensor:
        """J(θ) from per-row Jacobians, shape (N, p).

        Args:
            theta: (p,).

        Returns:
            torch.Tensor: (N, p).

        Raises:
            GaussNewtonError: the per-row residuals differ from the batch residuals.
        """
        in_dims = (None, *([0] * len(self.data)))
        if not self.checked:
            batch = self(theta)
            per_row = torch.func.vmap(self._row, in_dims=in_dims)(theta, *self.data).reshape(-1)
            if per_row.shape != batch.shape or not torch.allclose(per_row, batch, rtol=1e-10, atol=1e-12):
                raise GaussNewtonError(
                    "`rowwise`: evaluating the rows one at a time does not reproduce `fun(θ, *data)`, so the "
                    "rows are not independent (batch statistics, a mean over rows?); pass the plain function "
                    "instead."
                )
            self.checked = True
            self.k = batch.numel() // self.rows
        jac_fn = torch.func.jacrev(self._row) if self.k <= theta.numel() else torch.func.jacfwd(self._row)
        # a row's lanes hold its Jacobian (k·p) and the k-fold tangents of its intermediates
        lane = 4 * self.k * theta.numel() * theta.element_size()
        chunk = chunk_size_for(self.rows, lane, self.memory_budget)
        jac = _halving(lambda c: torch.func.vmap(lambda *row: jac_fn(theta, *row), chunk_size=c)(*self.data),
                       self.rows, chunk)
        return jac.reshape(-1, theta.numel())


def rowwise(fun: Callable[..., torch.Tensor], *data: torch.Tensor) -> RowwiseResidual:
    """Mark ``fun(θ, *data)`` as row-separable, so its Jacobian is taken one row at a time.

    Pass the result to :func:`gaussnewton.least_squares` as the residual function. Only for
    functions where residual row i depends on θ and row i of each data tensor alone (a network
    applied to each sample, a model evaluated at each data point); that cannot be checked in
    general, only that the rows evaluated one at a time reproduce the batch (done at the first
    Jacobian).

    Args:
        fun: ``fun(θ, *data) -> r`` on the whole batch, r of shape (m,) or (m, k).
        *data: tensors with the rows first (same m).

    Returns:
        RowwiseResidual: callable ``θ -> r`` (N,) with a per-row ``jacobian``.

    Example:
        >>> import torch, gaussnewton as gn
        >>> from gaussnewton.problems import rowwise
        >>> t = torch.linspace(0, 1, 20, dtype=torch.float64)
        >>> y = 2.0 * torch.exp(-1.5 * t)
        >>> f = rowwise(lambda x, t, y: x[0] * torch.exp(-x[1] * t) - y, t, y)
        >>> res = gn.least_squares(f, torch.tensor([1.0, 1.0], dtype=torch.float64), method="lm")
        >>> [round(v, 6) for v in res.x.tolist()]
        [2.0, 1.5]
    """
    return RowwiseResidual(fun, *data)
