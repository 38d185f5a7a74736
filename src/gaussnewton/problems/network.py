"""An ``nn.Module`` on full-batch data as a :class:`~gaussnewton.problems.Problem`.

The trainable parameters are flattened into one vector θ (p,) (:class:`ParamVector`); the
module is evaluated with ``torch.func.functional_call`` so θ never has to be written into the
module during Jacobian computation. The per-sample Jacobian is ``vmap(jacrev(f_single))``
over the samples (chunked to a memory budget): far faster than a whole-batch ``jacrev`` or
``jacfwd``, which build (p, n, ...) intermediates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .._errors import GaussNewtonError, check_choice, check_working_dtype
from ._jacobian import vmap_halving as _vmap_halving
from .base import Problem, chunk_size_for
from .structured import LayerFactor, StructuredJacobian, linear_layers

__all__ = ["NetworkProblem", "ParamVector"]

_BASIS_ENTRIES = 2**24  # at most this many entries of basis covectors at once (128 MiB in float64)


def check_one_dtype(named: list[tuple[str, torch.Tensor]], what: str = "`model`") -> None:
    """Refuse parameters of several dtypes or devices: one flat θ has one (issue 14, item 5).

    Args:
        named: (name, tensor) pairs of the trained parameters.
        what: the argument named in the message.

    Raises:
        GaussNewtonError: when the parameters do not share one dtype and one device.
    """
    for attr in ("dtype", "device"):
        groups: dict[str, list[str]] = {}
        for n, t in named:
            groups.setdefault(str(getattr(t, attr)), []).append(n)
        if len(groups) > 1:
            listing = "; ".join(f"{k}: {', '.join(v[:3])}{' …' if len(v) > 3 else ''}" for k, v in groups.items())
            fix = "model.to(torch.float64)" if attr == "dtype" else "model.to(device)"
            raise GaussNewtonError(f"{what} parameters must share one {attr}; got {listing}. Convert them with {fix}.")
    if named:
        check_working_dtype(f"{what} parameters", named[0][1].dtype)


class ParamVector:
    """Maps a list of named parameters to one flat vector and back.

    Args:
        named: (name, parameter) pairs to flatten, in order.
    """

    def __init__(self, named: list[tuple[str, torch.Tensor]]) -> None:
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.size = sum(self.numels)

    def flatten(self, tensors: Iterable[torch.Tensor]) -> torch.Tensor:
        """Concatenate ``tensors`` (in order) into one vector (p,)."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector (p,) into a ``{name: tensor}`` dict of views."""
        parts = torch.split(theta, self.numels)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}


class NetworkProblem(Problem):
    """Outputs ``model(X)`` as a function of the model's trainable parameters.

    Args:
        model: the network; its parameters with ``requires_grad=True`` (or those in
            ``params``) are θ, all others stay fixed.
        x: (n, ...) inputs, one row per sample.
        params: optional iterable of the parameters to train (a subset of
            ``model.parameters()``); default: all with ``requires_grad``.
        memory_budget: bytes for the per-sample Jacobian lanes.
        jacobian: ``"auto"`` (the structured Linear-layer path of
            :mod:`~gaussnewton.problems.structured` when the model qualifies, else autodiff),
            ``"structured"`` (require it) or ``"autodiff"`` (per-sample ``vmap(jacrev)``; when
            two rows of it disagree with full-batch VJPs, i.e. samples interact, full-batch
            reverse mode is used instead).
        check_deterministic: refuse dropout layers in training mode, and evaluate twice at θ₀
            and refuse a model whose outputs differ (random augmentation): full-batch GN is
            silently wrong then.

    Layers that couple samples or mutate state are refused before the first forward (so the
    model is left untouched): batch normalization in training mode (batch statistics couple
    the samples; running statistics would be updated in place inside the Jacobian
    transforms) and instance normalization tracking running statistics in training mode.
    In eval mode both are per-sample affine maps and work. ``nn.Embedding`` needs integer
    ``x``; a floating ``x`` is refused with a hint.

    Raises:
        GaussNewtonError: no trainable parameters, non-differentiable or non-deterministic
            model, a refused layer (its module path is named), or outputs whose leading
            dimension is not n.
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        *,
        params: Iterable[torch.Tensor] | None = None,
        memory_budget: float = 2 * 2**30,
        jacobian: str = "auto",
        check_deterministic: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise GaussNewtonError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
        _check_layers(model, check_deterministic)
        self.model = model
        self.x = x
        named_all: list[tuple[str, torch.Tensor]] = list(model.named_parameters())
        if params is None:
            named = [(n, p) for n, p in named_all if p.requires_grad]
        else:
            wanted = {id(p) for p in params}
            named = [(n, p) for n, p in named_all if id(p) in wanted]
            if len(named) != len(wanted):
                raise GaussNewtonError(
                    "`params` must contain only parameters of `model`; "
                    f"{len(wanted) - len(named)} of them are not."
                )
        if not named:
            raise GaussNewtonError(
                "`model` has no trainable parameters (none with requires_grad=True)."
            )
        check_one_dtype(named)
        self.layout = ParamVector(named)
        self._trained = {n for n, _ in named}
        self.fixed = {n: p.detach() for n, p in named_all if n not in self._trained}
        self.fixed.update(dict(model.named_buffers()))
        first = named[0][1]
        self.dtype = first.dtype
        self.device = first.device
        self.n_params = self.layout.size
        self.memory_budget = memory_budget
        theta0 = self.get_flat()
        with torch.no_grad():
            try:
                out = self.outputs(theta0)
            except RuntimeError as exc:
                _explain_forward_error(model, x, exc)
                raise
        if not isinstance(out, torch.Tensor):
            kinds = ", ".join(type(v).__name__ for v in (out.values() if isinstance(out, dict) else out)) \
                if isinstance(out, (tuple, list, dict)) else ""
            raise GaussNewtonError(
                f"`model` must return one tensor of outputs (n,) or (n, k); got a {type(out).__name__}"
                f"{f' of ({kinds})' if kinds else ''}. Wrap it in a module whose forward returns the prediction "
                "alone, e.g. model(x)[0] or model(x)['out']."
            )
        if not out.is_floating_point():
            raise GaussNewtonError(f"`model` must return floating-point outputs; got {out.dtype}.")
        if out.ndim == 0 or out.shape[0] != x.shape[0]:
            raise GaussNewtonError(
                f"`model` must return one output row per sample: expected leading dimension "
                f"{x.shape[0]}; got output shape {tuple(out.shape)}."
            )
        self.output_shape = tuple(out.shape)
        self.n_outputs = out.numel()
        with torch.enable_grad():
            probe = self.outputs(theta0.detach().requires_grad_(True))
        if not probe.requires_grad:
            raise GaussNewtonError(
                "`model` is not differentiable with respect to its parameters: its output does "
                "not require grad (a detach(), no_grad() or non-torch operation in forward?)."
            )
        if check_deterministic:
            with torch.no_grad():
                again = self.outputs(theta0)
            if not torch.equal(out, again):
                raise GaussNewtonError(
                    "`model` is not deterministic: two evaluations at the same parameters "
                    "differ (dropout or batch-norm in train mode? call model.eval()). "
                    "Pass check_deterministic=False only if you know why."
                )
        check_choice("jacobian", jacobian, ("auto", "structured", "autodiff"))
        self._layers = linear_layers(model, self._trained) if jacobian != "autodiff" else None
        try:
            self._reference_rows = self._batch_rows(theta0)
        except RuntimeError as exc:
            _explain_autodiff_error(exc)
            raise
        self.per_sample = self._per_sample_ok(theta0)
        self.structured = self._layers is not None and self._structured_matches(theta0)
        if jacobian == "structured" and not self.structured:
            raise GaussNewtonError(
                "`jacobian`='structured' needs every trainable parameter in an nn.Linear called once per "
                "forward on 2-D input, with samples processed independently; this model does not qualify."
            )

    def _per_sample_ok(self, theta0: torch.Tensor) -> bool:
        """Whether per-sample ``vmap(jacrev)`` gives the exact rows (checked on two samples).

        It assumes samples are processed independently, and that ``forward`` can be vmapped over a
        batch of one (``nn.GRU``/``nn.LSTM`` cannot: their initial state is written in place); when
        it fails the full-batch reverse mode serves (exact, N VJPs of the whole batch).
        """
        try:
            rows = self._autodiff_jacobian(theta0, self.x[: min(2, self.x.shape[0])])
        except RuntimeError:
            return False
        return bool(torch.allclose(rows, self._reference_rows, rtol=1e-6, atol=self._atol()))

    def get_flat(self) -> torch.Tensor:
        """The model's current trainable parameters as a flat vector (a copy)."""
        params = dict(self.model.named_parameters())
        return self.layout.flatten(params[n].detach() for n in self.layout.names).clone()

    def set_flat(self, theta: torch.Tensor) -> None:
        """Write a flat vector back into the model's parameters (in place, no grad)."""
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in self.layout.unflatten(theta).items():
                params[name].copy_(value)

    def _call(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        state = {**self.fixed, **self.layout.unflatten(theta)}
        return torch.func.functional_call(self.model, state, (x,))

    def outputs(self, theta: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self._call(theta, self.x)

    def _atol(self) -> float:
        return 1e-9 if self.dtype == torch.float64 else 1e-5

    def _batch_rows(self, theta: torch.Tensor) -> torch.Tensor:
        """Exact Jacobian rows of the first two samples from full-batch VJPs (the reference)."""
        rows = min(2, self.x.shape[0]) * (self.n_outputs // self.x.shape[0])
        vjp_fn = torch.func.vjp(lambda t: self.outputs(t).reshape(-1), theta)[1]
        # only the rows needed: an N×N identity here cost O(N²) memory (12.8 GB at N = 40,000)
        basis = torch.zeros(rows, self.n_outputs, dtype=self.dtype, device=self.device)
        basis[torch.arange(rows), torch.arange(rows)] = 1.0
        return torch.stack([vjp_fn(e)[0] for e in basis])

    def _structured_matches(self, theta: torch.Tensor) -> bool:
        """Structured rows equal the full-batch rows on two samples (catches coupling)."""
        try:
            sj = self.structured_jacobian(theta)
        except _NotStructured:
            return False
        ref = self._reference_rows
        return bool(torch.allclose(sj.dense(ref.shape[0]), ref, rtol=1e-6, atol=self._atol()))

    def structured_jacobian(self, theta: torch.Tensor) -> StructuredJacobian:
        """The Jacobian at θ as per-layer factors (only for Linear-layer models).

        Raises:
            GaussNewtonError: if the model does not qualify (see ``jacobian=`` in the class).
        """
        if self._layers is None:
            raise GaussNewtonError("`model` does not qualify for the structured Jacobian.")
        offsets = {}
        pos = 0
        for name, numel in zip(self.layout.names, self.layout.numels, strict=True):
            offsets[name] = pos
            pos += numel
        acts: dict[str, torch.Tensor] = {}
        outs: dict[str, torch.Tensor] = {}
        calls: dict[str, int] = {}

        def hook(name: str):  # noqa: ANN202
            def fn(_mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
                calls[name] = calls.get(name, 0) + 1
                acts[name] = inputs[0].detach()
                outs[name] = output
            return fn

        handles = [mod.register_forward_hook(hook(name)) for name, mod in self._layers]
        try:
            with torch.enable_grad():
                out = self._call(theta.detach().requires_grad_(True), self.x)
        finally:
            for h in handles:
                h.remove()
        n = self.x.shape[0]
        names = [name for name, _ in self._layers]
        if any(calls.get(nm) != 1 or acts[nm].ndim != 2 or acts[nm].shape[0] != n for nm in names):
            raise _NotStructured
        k = out.numel() // n
        cols = out.reshape(n, k)
        grads: list[list[torch.Tensor]] = [[] for _ in names]
        for c in range(k):
            gs = torch.autograd.grad(cols[:, c].sum(), [outs[nm] for nm in names],
                                     retain_graph=c < k - 1, allow_unused=True)
            for i, (g, nm) in enumerate(zip(gs, names, strict=True)):
                grads[i].append(torch.zeros_like(outs[nm]) if g is None else g)
        factors = []
        for i, (nm, _mod) in enumerate(self._layers):
            g = torch.stack(grads[i], dim=1).reshape(n * k, -1).detach()
            a = acts[nm].repeat_interleave(k, dim=0) if k > 1 else acts[nm]
            prefix = f"{nm}." if nm else ""
            factors.append(LayerFactor(a, g, offsets.get(prefix + "weight", -1), offsets.get(prefix + "bias", -1)))
        return StructuredJacobian(tuple(factors), (n * k, self.n_params), rows_per_sample=k)

    def jacobian(self, theta: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.structured:
            return self.structured_jacobian(theta).dense()
        if self.per_sample:
            return self._autodiff_jacobian(theta, self.x)
        # samples interact (batch statistics): reverse mode over the whole batch, N VJPs
        vjp_fn = torch.func.vjp(lambda t: self.outputs(t).reshape(-1), theta)[1]
        n_out = self.n_outputs
        itemsize = torch.finfo(self.dtype).bits // 8
        chunk = chunk_size_for(n_out, 4 * self.n_params * itemsize, self.memory_budget)
        # basis covectors built a block at a time (an N×N identity is 8 TB at N = 10⁶)
        block = min(chunk or n_out, max(1, _BASIS_ENTRIES // n_out))
        rows = []
        for start in range(0, n_out, block):
            c = min(block, n_out - start)
            basis = torch.zeros(c, n_out, dtype=self.dtype, device=self.device)
            basis[torch.arange(c, device=self.device), torch.arange(start, start + c, device=self.device)] = 1.0
            rows.append(_vmap_halving(lambda e: vjp_fn(e)[0], basis, chunk))
        return torch.cat(rows)

    def _autodiff_jacobian(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        k = self.n_outputs // self.x.shape[0]

        def single(t: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
            return self._call(t, xi.unsqueeze(0)).reshape(-1)

        per_sample = torch.func.jacrev(single)
        itemsize = torch.finfo(self.dtype).bits // 8
        chunk = chunk_size_for(n, 4 * k * self.n_params * itemsize, self.memory_budget)
        jac = _vmap_halving(lambda xi: per_sample(theta, xi), x, chunk)
        return jac.reshape(n * k, self.n_params)


def _where(found: Sequence[tuple[str, nn.Module]]) -> str:
    """Module paths with class names, e.g. ``features.1 (BatchNorm1d)`` (the first three)."""
    parts = [f"{name or '<model>'} ({type(mod).__name__})" for name, mod in found[:3]]
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return ", ".join(parts) + more


def _check_layers(model: nn.Module, check_deterministic: bool) -> None:
    """Refuse layers that couple samples, mutate buffers or are random (before any forward)."""
    mods = list(model.named_modules())
    batch_norm = [(n, m) for n, m in mods if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    if batch_norm:
        s = "s" if len(batch_norm) > 1 else ""
        raise GaussNewtonError(
            f"`model` has batch normalization in training mode: {_where(batch_norm)}. Its batch statistics "
            "couple the samples and its running statistics are updated in place, which full-batch Gauss-Newton "
            "cannot handle. Call model.eval() to normalize with the running statistics "
            f"(an affine map per sample), or replace the layer{s} by nn.LayerNorm or nn.GroupNorm."
        )
    instance_norm = [(n, m) for n, m in mods if isinstance(m, nn.modules.instancenorm._InstanceNorm)
                     and m.training and m.running_mean is not None]  # the buffers forward would update
    if instance_norm:
        raise GaussNewtonError(
            "`model` has instance normalization tracking running statistics in training mode: "
            f"{_where(instance_norm)}; they are updated in place, which full-batch Gauss-Newton cannot handle. "
            "Call model.eval(), or build it with track_running_stats=False."
        )
    dropout = [(n, m) for n, m in mods if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0]
    if dropout and check_deterministic:
        verb = "are" if len(dropout) > 1 else "is"
        raise GaussNewtonError(
            f"`model` is not deterministic: {_where(dropout)} {verb} in training mode; call model.eval() to "
            "switch dropout off (full-batch Gauss-Newton needs the same function at every evaluation). "
            "Pass check_deterministic=False only if you know why."
        )


def _explain_autodiff_error(exc: RuntimeError) -> None:
    """Raise a GaussNewtonError for a forward torch.func cannot differentiate (else return)."""
    if "saved tensor hooks" in str(exc):
        raise GaussNewtonError(
            "`model` uses saved-tensor hooks (activation checkpointing, torch.utils.checkpoint, or "
            "torch.autograd.graph.saved_tensors_hooks), which torch.func's jacrev/vjp/jvp do not support; "
            "remove them for Gauss-Newton training (its memory is dominated by the Jacobian, not the "
            f"activations). Original error: {str(exc).splitlines()[0]}"
        ) from exc


def _explain_forward_error(model: nn.Module, x: torch.Tensor, exc: RuntimeError) -> None:
    """Raise a GaussNewtonError for an embedding fed floating-point indices (else return)."""
    embeddings = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    if embeddings and x.is_floating_point():
        raise GaussNewtonError(
            f"`model` failed on floating-point inputs ({x.dtype}) and has {_where(embeddings)}, which needs "
            "integer indices: pass X as an integer tensor or array (`fit` keeps it integer), or index with "
            f"x.long() in forward. Original error: {str(exc).splitlines()[0]}"
        ) from exc


class _NotStructured(Exception):
    """The model's forward does not have the Linear-layer structure."""
