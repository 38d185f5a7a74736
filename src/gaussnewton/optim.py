r"""Gauss–Newton / Levenberg–Marquardt as a ``torch.optim.Optimizer`` for plain training loops.

:class:`GaussNewton` takes one damped (generalized) Gauss–Newton step per call of
``step(closure)``: one :meth:`Stepper.step <gaussnewton._stepper.Stepper.step>` (the step
``fit`` and ``least_squares`` take) from the state saved in the optimizer's ``state_dict``.
The closure is opaque, so its Jacobian is built by batched reverse mode, or only its products
for CG (:mod:`gaussnewton._closure`).

Objective and units (the same as :func:`gaussnewton.fit` with α = 1): with ``u`` the closure's
prediction of shape (n,) or (n, k) (n samples, ``N = u.numel()`` outputs) the optimizer
minimizes the mean loss :math:`R = \frac1n\sum_j \ell(u_j, y_j)`; a closure that returns a
residual vector ``r`` means :math:`\ell = \tfrac12\|r_j\|^2`, so ``R = ‖r‖²/(2n)``. The step is

.. math::  (J^\top\Lambda J/n + \rho D)\,\delta = -\nabla_\theta R
   \iff (A^\top A + n\rho D)\,\delta = -A^\top h,\qquad A = BJ,\ \Lambda = B^\top B,

solved by :mod:`gaussnewton.linsolve` (p×p normal equations, N×N kernel form or CG, chosen
from N, p and ``memory_budget`` unless ``solver`` is given); ρ is in the paper's units, so a
number means the same in ``fit(method="gn", damping=ρ)`` and here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import torch

from ._closure import Closure, _ClosureObjective, _evaluate, _write, closure_jacobian, closure_operator
from ._errors import (
    GaussNewtonError,
    NonFiniteError,
    check_nonneg,
    check_positive,
    check_positive_int,
    check_working_dtype,
)
from ._state import STATE_VERSION, SolverState
from ._stepper import Stepper
from .damping import DampingSchedule, TrustRegionRule, get_damping
from .distributed import Reducer, resolve_group
from .linsolve import DEFAULT_MEMORY_BUDGET, LinearSolver, get_solver
from .result import Termination
from .steps import make_step_rule

__all__ = ["GaussNewton", "GaussNewtonConfig", "closure_jacobian", "closure_operator"]

_DEFAULT_MAX_TRIALS = 10  # Nielsen's ν doubling: 10 rejections raise ρ by 2^55, enough to stall


@dataclass(frozen=True, kw_only=True)
class GaussNewtonConfig:
    """Validated, immutable settings of :class:`GaussNewton` shared by all param groups.

    Attributes:
        damping: the damping rule; trust-region rules (``trust_region=True``) accept or
            reject trial steps by the gain ratio, other schedules accept every finite step.
        solver: linear-solver name (``"auto"``, ``"normal"``, ``"kernel"``, ``"cg"``,
            ``"truncated_cg"``, ``"lstsq"``) or a :class:`~gaussnewton.linsolve.LinearSolver`.
        memory_budget: bytes for the dense Jacobian plus Gram matrix (``"auto"`` switches to
            matrix-free CG above it) and for the chunks of the batched VJP.
        max_trials: trial steps per call of ``step`` (a trust-region rule retries a rejected
            step with a larger ρ until this many trials are spent).
        weight_decay: λ ≥ 0 of ``λ/2·‖θ‖²`` added to the mean loss, exact in the damped system.
    """

    damping: DampingSchedule
    solver: str | LinearSolver
    memory_budget: float
    max_trials: int
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.damping, DampingSchedule):
            raise GaussNewtonError(f"`damping` must be a DampingSchedule; got {type(self.damping).__name__}.")
        get_solver(self.solver, 1, 1, 8, DEFAULT_MEMORY_BUDGET)  # validates the name or type
        check_positive("memory_budget", self.memory_budget)
        check_positive_int("max_trials", self.max_trials)
        check_nonneg("weight_decay", self.weight_decay)


# ------------------------------------------------------------------ the optimizer


class GaussNewton(torch.optim.Optimizer):
    r"""Damped (generalized) Gauss–Newton / Levenberg–Marquardt steps in a PyTorch loop.

    .. code-block:: text

        input: params θ (all groups, flattened, p entries), closure, damping rule, per-group lr η_g
        state: ρ, ν (trust-region rules), step counter
        ─────────────────────────────────────────────────────────────────────────────
        step(closure):
          u, y, ℓ ← closure()                        (grad enabled; residuals r ≡ (u=r, y=0, ½r²))
          R ← (1/n) Σ_j ℓ(u_j, y_j);  B, h ← curvature of ℓ at u  (BᵀB = ∂²ℓ, Bᵀh = ∂ℓ)
          J ← ∂u/∂θ (N × p, batched VJPs);  A ← B J
          ρ ← rule's current damping (first call: rule.init, e.g. Nielsen ρ₀ = τ·max diag(AᵀA)/n)
          for trial = 1 … max_trials:
              δ ← solve (AᵀA + nρD) δ = −Aᵀh          (gaussnewton.linsolve, factor reused)
              s ← η ⊙ δ   (each group's entries scaled by its lr)
              θ ← θ₀ + s;  R' ← (1/n) Σ ℓ(closure()) under no_grad
              gain ratio ← (R − R') / ((−hᵀAs − ½‖As‖²)/n)
              trust-region rule: (ρ, ν), accepted ← update(gain ratio)
              other schedules:   accepted ← R' finite
              if accepted: break;  else θ ← θ₀ (and retry with the raised ρ)
          return R

    Args:
        params: iterable of parameters or of param-group dicts (the only per-group option is
            ``lr``); parameters with ``requires_grad=False`` are left untouched.
        damping: ``"nielsen"`` (default; Nielsen 1999 gain-ratio rule), ``"marquardt"``, any
            :data:`gaussnewton.damping.SCHEDULES` name, a number (constant ρ ≥ 0: plain damped
            GN, every finite step accepted), or a :class:`~gaussnewton.damping.DampingSchedule`.
            Trust-region rules adapt ρ across calls (and mini-batches).
        lr: step size η multiplying δ (default 1: the full GN step); per group. It may be
            changed later (a scheduler): each ``step`` checks it is finite and ≥ 0, and
            ``lr = 0`` in every group only evaluates the loss (no step, damping state untouched).
        solver: linear solver (see :func:`gaussnewton.linsolve.get_solver`); ``"auto"`` picks
            the p×p or N×N form, or matrix-free CG above ``memory_budget``.
        memory_budget: bytes for the dense Jacobian and Gram matrix.
        max_trials: trial steps per ``step`` call.
        weight_decay: λ ≥ 0: minimize ``R + λ/2·‖θ‖²`` (the L2 penalty of ``torch.optim``'s
            ``weight_decay``, but built into the damped system ``JᵀΛJ/n + λI + ρI`` rather than
            added to a gradient); the loss ``step`` returns includes it.
        process_group: data parallelism (:mod:`gaussnewton.distributed`): each rank's closure
            returns the residuals of its own shard; the damped system, the loss and the gain
            ratio are reduced over the group, so every rank takes the same step. ``"auto"``
            uses the default group when torch.distributed is initialized with more than one
            process; the parameters are broadcast from rank 0 at construction.

    Raises:
        GaussNewtonError: bad arguments (the message names the argument).

    Note:
        The closure must **not** call ``backward()``: return the residuals (or the triple) and
        the optimizer differentiates them. It is called once with grad enabled and once per
        trial under ``torch.no_grad()``; it must be deterministic (``model.eval()`` for dropout).
        Cost per step: N batched VJPs through the graph of the whole batch. Per-sample
        independence is invisible through an opaque closure, so for full-batch training of a
        model on fixed data :func:`gaussnewton.fit` (per-sample Jacobians) is faster.

    Example:
        >>> import torch, gaussnewton as gn
        >>> from gaussnewton.optim import GaussNewton
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> X = torch.linspace(-2, 2, 64, dtype=torch.float64)[:, None]
        >>> y = torch.sin(2 * X).squeeze(1)
        >>> net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
        >>> opt = GaussNewton(net.parameters())
        >>> for _ in range(30):
        ...     loss = opt.step(lambda: net(X).squeeze(1) - y)
        >>> float(loss) < 1e-4
        True
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        *,
        damping: DampingSchedule | str | float = "nielsen",
        lr: float = 1.0,
        solver: str | LinearSolver = "auto",
        memory_budget: float = DEFAULT_MEMORY_BUDGET,
        max_trials: int = _DEFAULT_MAX_TRIALS,
        process_group: Any = "auto",
        weight_decay: float = 0.0,
    ) -> None:
        self._reducer = Reducer(resolve_group(process_group))
        if damping is None:
            raise GaussNewtonError("`damping` must be a schedule, a registry name or a number >= 0; got None.")
        self.config = GaussNewtonConfig(damping=get_damping(damping, "nielsen"), solver=solver,
                                        memory_budget=memory_budget, max_trials=max_trials,
                                        weight_decay=weight_decay)
        self._built = False
        super().__init__(params, {"lr": check_positive("lr", lr)})
        self._built = True
        self._check_layout()
        first = self._trained()[0][0]
        self._reducer.check_same(dict(p=sum(q.numel() for q, _ in self._trained()), dtype=first.dtype,
                                      lr=[group["lr"] for group in self.param_groups], damping=self.config.damping,
                                      solver=solver, memory_budget=memory_budget, max_trials=max_trials,
                                      weight_decay=weight_decay), device=first.device)
        if self._reducer.active:  # identical starting point on every rank
            with torch.no_grad():
                for q, _ in self._trained():
                    q.copy_(self._reducer.broadcast(q.detach()))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (validates its ``lr``, dtype and device; a bad group is not added)."""
        if isinstance(param_group, dict) and "lr" in param_group:
            param_group = {**param_group, "lr": check_positive("lr", param_group["lr"])}
        super().add_param_group(param_group)
        if self._built:  # the constructor checks once, after all groups are in
            try:
                self._check_layout()
            except GaussNewtonError:
                self.param_groups.pop()
                raise

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the state of a :class:`GaussNewton` over the same parameters (validated first).

        Args:
            state_dict: what :meth:`state_dict` returned.

        Raises:
            GaussNewtonError: not a GaussNewton state (another optimizer's, e.g. Adam or SGD),
                parameters of other sizes (another model), another damping's state, or an
                invalid ``lr``.
        """
        _check_saved(state_dict, self.param_groups, [q.numel() for q, _ in self._trained()],
                     self.config.damping)
        super().load_state_dict(state_dict)

    def _check_layout(self) -> None:
        trained = self._trained()
        if not trained:
            raise GaussNewtonError("`params` must contain at least one parameter with requires_grad=True; got none.")
        kinds = {(q.dtype, q.device) for q, _ in trained}
        if len(kinds) > 1:
            raise GaussNewtonError(
                "`params` must share one floating dtype and device (the step is one flat vector); "
                f"got {sorted(str(k) for k in kinds)}."
            )
        if not trained[0][0].is_floating_point():
            raise GaussNewtonError(f"`params` must be floating point; got {trained[0][0].dtype}.")
        check_working_dtype("`params`", trained[0][0].dtype)

    def _trained(self) -> list[tuple[torch.Tensor, float]]:
        """(parameter, lr) for every parameter the optimizer moves, in group order."""
        return [(q, group["lr"]) for group in self.param_groups for q in group["params"] if q.requires_grad]

    @property
    def _anchor(self) -> torch.Tensor:
        # The optimizer-wide state lives with the first parameter, as in torch.optim.LBFGS, so
        # that state_dict()/load_state_dict() carry it without any extra machinery.
        return self.param_groups[0]["params"][0]

    @torch.no_grad()
    def step(self, closure: Closure) -> torch.Tensor:  # type: ignore[override]
        """Take one damped Gauss–Newton step (see the class docstring).

        Args:
            closure: ``() ↦ residuals`` (n,) or (n, k), or ``() ↦ (prediction, target, loss)``
                with ``loss`` a :class:`~gaussnewton.losses.Loss` or its name.

        Returns:
            torch.Tensor: the loss R at the parameters before the step (0-d, detached).

        Raises:
            GaussNewtonError: a closure that returns something else, no closure, or a group's
                ``lr`` that is negative or not finite.
            NonFiniteError: a non-finite loss or Jacobian at the current parameters.
        """
        if not callable(closure):
            raise GaussNewtonError(f"`closure` must be callable (GaussNewton re-evaluates the model); got {closure!r}.")
        _check_lrs(self.param_groups)
        cfg, state = self.config, self.state[self._anchor]
        params = [q for q, _ in self._trained()]
        scale = torch.cat([torch.full((q.numel(),), lr, dtype=q.dtype, device=q.device) for q, lr in self._trained()])
        red = self._reducer
        ev = _evaluate(closure, grad=True)
        n_total = int(red.sum(torch.tensor(ev.n)))
        cost = ev.cost(red, n_total)
        if not math.isfinite(cost):
            raise NonFiniteError(f"The loss returned by `closure` must be finite; got {cost}.")
        theta = torch.cat([q.detach().reshape(-1) for q in params])
        obj = _ClosureObjective(closure, params, ev, n_total, red, cfg.memory_budget, theta, cfg.weight_decay)
        cost += obj.penalty(theta)
        if not bool(scale.any()):  # lr = 0 (a warm-up's first step): no step, and the damping state untouched
            return torch.tensor(cost, dtype=ev.u.dtype)
        rows = int(red.sum(torch.tensor(ev.u.numel())))
        solver = get_solver(cfg.solver, rows, scale.numel(), scale.element_size(), cfg.memory_budget)
        method = "lm" if isinstance(cfg.damping, TrustRegionRule) else "gn"
        stepper = Stepper(make_step_rule(method, cfg.damping, default=None, lr=scale), solver,
                          max_trials=cfg.max_trials)
        run = SolverState.from_dict({**state, "theta": None, "theta0": None, "termination": None}, theta.device,
                                    theta, cfg.damping.state_type) if state \
            else SolverState(theta=theta, theta0=theta, cost=cost, cost0=cost)
        run.theta, run.cost, run.outputs, run.termination = theta, cost, ev.u.detach(), None
        run = stepper.step(obj, run)
        if run.termination is Termination.NONFINITE and run.trials == 0:
            raise NonFiniteError("The Jacobian of the `closure` output must be finite; got NaN/Inf entries.")
        _write(params, run.theta)
        # the SolverState schema without θ (the parameters hold it), the history, and strings
        # (Optimizer.load_state_dict casts every iterable, strings included)
        saved = run.to_dict(params=False)
        for key in ("theta", "theta0", "history", "elapsed", "termination"):
            del saved[key]
        if saved["damping_state"] is not None:
            del saved["damping_state"]["type"]
        state.update(saved, step=int(state.get("step", 0)) + 1, rho=run.rho, accepted=run.accepted,
                     trials=run.trials, loss=run.cost, sizes=[q.numel() for q in params])
        return torch.tensor(cost, dtype=ev.u.dtype)


# ------------------------------------------------------------------ validation of lr and saved states

_REQUIRED_STATE = ("version", "cost", "cost0", "damping_state", "diag_run", "nfev", "njev", "nit", "step")


def _check_lrs(groups: list[dict[str, Any]]) -> None:
    """Every group's ``lr`` must be a finite number >= 0 (it may be set after construction)."""
    for i, group in enumerate(groups):
        lr = group.get("lr")
        number = isinstance(lr, (int, float)) and not isinstance(lr, bool) or \
            isinstance(lr, torch.Tensor) and lr.numel() == 1 and lr.is_floating_point()
        if not number or not math.isfinite(float(lr)) or float(lr) < 0:  # type: ignore[arg-type]
            raise GaussNewtonError(
                f"`lr` of param group {i} must be a finite number >= 0 (0: no step); got lr = {lr!r}. "
                "It was set after construction (through `param_groups`, a scheduler or `load_state_dict`)."
            )


def _check_saved(saved: Any, groups: list[dict[str, Any]], sizes: list[int], damping: DampingSchedule) -> None:
    """Refuse a ``state_dict`` that is not a GaussNewton state over parameters of these sizes."""
    if not isinstance(saved, dict) or not {"state", "param_groups"} <= set(saved):
        keys = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
        raise GaussNewtonError(f"`state_dict` must be a dict from GaussNewton.state_dict() with 'state' and "
                               f"'param_groups'; got {keys}.")
    saved_groups = saved["param_groups"]
    if len(saved_groups) != len(groups):
        raise GaussNewtonError(f"`state_dict` has {len(saved_groups)} param groups; this optimizer has {len(groups)}.")
    for i, (theirs, ours) in enumerate(zip(saved_groups, groups, strict=True)):
        extra = sorted(set(theirs) - set(ours))
        if extra:
            raise GaussNewtonError(f"`state_dict` is not a GaussNewton state: param group {i} has options "
                                   f"{extra} that GaussNewton does not take (the state of another optimizer, "
                                   "e.g. Adam or SGD?).")
        if len(theirs["params"]) != len(ours["params"]):
            raise GaussNewtonError(f"`state_dict` param group {i} has {len(theirs['params'])} parameters; this "
                                   f"optimizer's has {len(ours['params'])} (the state of another model?).")
    _check_lrs(saved_groups)
    anchor = saved_groups[0]["params"][0] if saved_groups and saved_groups[0]["params"] else None
    state = saved["state"]
    others = [k for k, v in state.items() if k != anchor and v]
    if others:
        raise GaussNewtonError(f"`state_dict` is not a GaussNewton state: it holds per-parameter state "
                               f"{sorted(state[others[0]])} for {len(others)} more parameters (GaussNewton keeps "
                               "one state, on the first parameter): the state of another optimizer, e.g. Adam?")
    mine = state.get(anchor) or {}
    if not mine:
        return
    missing = [k for k in _REQUIRED_STATE if k not in mine]
    if missing:
        raise GaussNewtonError(f"`state_dict` is not a GaussNewton state: its state lacks {missing}; got keys "
                               f"{sorted(mine)} (the state of another optimizer?).")
    if mine["version"] != STATE_VERSION:
        raise GaussNewtonError(f"`state_dict` must have version {STATE_VERSION}; got {mine['version']!r} "
                               "(written by another gaussnewton version): start afresh.")
    diag = mine["diag_run"]
    got = [int(s) for s in mine["sizes"]] if "sizes" in mine else None
    if got is not None and got != sizes or isinstance(diag, torch.Tensor) and diag.numel() != sum(sizes):
        shown = f"sizes {got} (p = {sum(got)})" if got is not None else f"p = {diag.numel()}"
        raise GaussNewtonError(f"`state_dict` was saved for parameters of {shown}; this optimizer's have sizes "
                               f"{sizes} (p = {sum(sizes)}). Load the state of an optimizer over the same model.")
    ds = mine["damping_state"]
    want = {f.name for f in fields(damping.state_type)} if damping.state_type is not None else set()
    if ds is not None and set(ds) - {"type"} != want:
        raise GaussNewtonError(f"`state_dict` holds a damping state with {sorted(set(ds) - {'type'})}; this "
                               f"optimizer's damping {damping!r} keeps {sorted(want) or 'none'}. Load the state "
                               "of an optimizer with the same damping.")
