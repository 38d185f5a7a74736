r"""Box constraints ``lb ≤ x ≤ ub`` for the trust-region step: Coleman–Li scaling, step back.

An interior (affine-scaling) trust-region method in the spirit of SciPy's ``trf`` (Branch,
Coleman & Li, *SIAM J. Sci. Comput.* 21, 1999; Coleman & Li, *SIAM J. Optim.* 6, 1996). With the
gradient g of the cost at a strictly feasible x, the Coleman–Li vector is

.. math::  v_i = \begin{cases} u_i - x_i & g_i < 0,\ u_i < \infty \\
                               x_i - l_i & g_i > 0,\ l_i > -\infty \\
                               1 & \text{otherwise,}\end{cases}

and x is a first-order point of the bounded problem iff ‖v·g‖∞ = 0 (the optimality SciPy
reports and ``gtol`` tests). The LM system is solved in the scaled variables x̂ = x/√v, i.e.

.. math::  (A^\top A + \rho\,D/v)\,\delta = -\nabla\mathrm{cost},

with D the problem's own scaling (MINPACK's diag(JᵀJ) or ``1/x_scale²``): a component whose
gradient pushes it into a near bound gets a large damping and a step proportional to its
distance to that bound. The step is then cut back per component so that the trial point stays
strictly inside, moving at most a fraction θ = max(0.995, 1 − ‖v·g‖∞) of the way to a bound
(SciPy's choice of θ). The gain ratio of the trust region judges the step actually taken, so
the cut-back costs no robustness. Iterates stay strictly feasible; a solution on a bound is
approached geometrically and reported through :func:`active_mask` with SciPy's tolerance.

Coleman–Li's second-order term C = diag(|g_i|/v_i) (on the components whose v is a distance to a
bound) enters the model as extra rows √C of A with zero right-hand side, so the damped system is

.. math::  (A^\top A + C + \rho\,D/v)\,\delta = -\nabla\mathrm{cost}

and the predicted reduction includes ½δᵀCδ (as SciPy's). Without C, the step of a component
held by its bound overshoots the bound by far, is cut back, and the free components, solved
jointly with the overshooting one, converge only linearly (bounded Rosenbrock: ‖v·g‖∞ falls
20× per step instead of quadratically). Reflections are not used: the rejection and re-damping
of the trust region take their place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import torch

from ._objective import Linearization
from .operators import DenseOperator, FunctionOperator, LinearOperator

__all__ = ["BoxConstraints", "CLTerms", "parse_bounds", "with_curvature_rows"]


def parse_bounds(bounds: Any, p: int, dtype: torch.dtype, device: torch.device) -> BoxConstraints | None:
    """SciPy's ``bounds`` argument as tensors (None when every bound is infinite).

    Args:
        bounds: ``(lb, ub)`` with scalars or (p,) arrays (±inf allowed), or a
            ``scipy.optimize.Bounds``.
        p: number of variables.
        dtype: float dtype of x.
        device: device of x.

    Returns:
        BoxConstraints | None: the box, or None if unconstrained.

    Raises:
        ValueError: not two elements, shapes that do not match ``x0``, or lb ≥ ub (SciPy's
            messages).
    """
    try:
        from scipy.optimize import Bounds
    except ImportError:  # pragma: no cover - scipy is a dependency
        Bounds = ()  # noqa: N806
    if isinstance(bounds, Bounds):
        lb_raw, ub_raw = bounds.lb, bounds.ub
    else:
        try:
            n_items = len(bounds)
        except TypeError:
            raise ValueError(f"`bounds` must contain 2 elements (lb, ub); got {type(bounds).__name__}.") from None
        if n_items != 2:
            raise ValueError(f"`bounds` must contain 2 elements (lb, ub); got {n_items}.")
        lb_raw, ub_raw = bounds

    def as_array(b: Any) -> np.ndarray:
        if isinstance(b, torch.Tensor):
            b = b.detach().cpu().numpy()
        a = np.asarray(b, dtype=float)
        return np.resize(a, p) if a.ndim == 0 else a

    lb, ub = as_array(lb_raw), as_array(ub_raw)
    if lb.shape != (p,) or ub.shape != (p,):
        raise ValueError(f"Inconsistent shapes between bounds and `x0`: lb {lb.shape}, ub {ub.shape}, x0 ({p},).")
    if np.any(lb >= ub):
        bad = int(np.flatnonzero(lb >= ub)[0])
        raise ValueError("Each lower bound must be strictly less than each upper bound; "
                         f"got lb[{bad}] = {lb[bad]} >= ub[{bad}] = {ub[bad]}.")
    if np.all(np.isneginf(lb)) and np.all(np.isposinf(ub)):
        return None
    return BoxConstraints(torch.as_tensor(lb, dtype=dtype, device=device),
                          torch.as_tensor(ub, dtype=dtype, device=device))


class CLTerms(NamedTuple):
    """Coleman–Li quantities at one iterate.

    Attributes:
        v: (p,) distances to the bounds the gradient points at (1 where none).
        c: (p,) the curvature term |g|/v on those components, 0 elsewhere.
        optimality: ‖v·g‖∞.
    """

    v: torch.Tensor
    c: torch.Tensor
    optimality: float


def with_curvature_rows(lin: Linearization, c: torch.Tensor) -> Linearization:
    """The linearization with rows √c_i·e_iᵀ appended to A (and zeros to h) where c_i > 0.

    ½‖As + h‖² then gains ½·sᵀdiag(c)s, Coleman–Li's curvature term; the gradient and the
    unweighted J are unchanged.
    """
    idx = (c > 0).nonzero().squeeze(1)
    if idx.numel() == 0:
        return lin
    k, (n, p) = int(idx.numel()), lin.a.shape
    rows = torch.zeros(k, p, dtype=lin.h.dtype, device=lin.h.device)
    rows[torch.arange(k, device=idx.device), idx] = c[idx].sqrt().to(rows.dtype)
    a = lin.a
    if isinstance(a, DenseOperator):
        aug: LinearOperator = DenseOperator(torch.cat([a.to_dense(), rows]))
    else:
        aug = FunctionOperator((n + k, p), lambda v: torch.cat([a.mv(v), rows @ v]),
                               lambda u: a.rmv(u[:n]) + rows.T @ u[n:],
                               lambda: torch.cat([a.to_dense(), rows]), a.dtype, a.device)
    return replace(lin, a=aug, h=torch.cat([lin.h, torch.zeros(k, dtype=lin.h.dtype, device=lin.h.device)]))


@dataclass(frozen=True)
class BoxConstraints:
    """``lb ≤ x ≤ ub`` (entries may be ±inf).

    Attributes:
        lb: (p,) lower bounds.
        ub: (p,) upper bounds.
    """

    lb: torch.Tensor
    ub: torch.Tensor

    def contains(self, x: torch.Tensor) -> bool:
        """True if lb ≤ x ≤ ub."""
        return bool(((x >= self.lb) & (x <= self.ub)).all())

    def strictly_feasible(self, x: torch.Tensor, rstep: float = 1e-10) -> torch.Tensor:
        """Move entries on (or numerically outside) a bound inside by ``rstep·max(1, |bound|)``.

        As SciPy's ``make_strictly_feasible``: an entry that would cross the other bound goes
        to the middle of the interval.
        """
        x = x.clone()
        lo = self.lb + rstep * self.lb.abs().clamp_min(1)
        hi = self.ub - rstep * self.ub.abs().clamp_min(1)
        x = torch.where(x <= self.lb, lo, x)
        x = torch.where(x >= self.ub, hi, x)
        mid = 0.5 * (self.lb + self.ub)
        return torch.where((x <= self.lb) | (x >= self.ub), mid, x)

    def local(self, x: torch.Tensor, grad: torch.Tensor) -> CLTerms:
        """Coleman–Li's v, C = diag(|g|/v) and ‖v·g‖∞ at (x, g), computed once per iterate."""
        up = (grad < 0) & torch.isfinite(self.ub)
        low = (grad > 0) & torch.isfinite(self.lb)
        v = torch.where(up, self.ub - x, torch.ones_like(x))
        v = torch.where(low, x - self.lb, v).clamp_min(torch.finfo(x.dtype).tiny)  # guard a rounding to 0
        c = torch.where(up | low, grad.abs() / v, torch.zeros_like(v))
        optimality = float((v * grad).abs().max()) if grad.numel() else 0.0
        return CLTerms(v, c, optimality)

    def optimality(self, x: torch.Tensor, grad: torch.Tensor) -> float:
        """‖v·g‖∞, SciPy's first-order optimality with bounds."""
        return self.local(x, grad).optimality

    def cut_back(self, x: torch.Tensor, step: torch.Tensor, theta: float) -> torch.Tensor:
        """The step with each entry cut so that x + step moves at most θ of the way to a bound."""
        room_down = theta * (x - self.lb)  # inf where unbounded
        room_up = theta * (self.ub - x)
        step = torch.maximum(torch.minimum(step, room_up), -room_down)
        # x + θ·(ub − x) can round onto ub when ub − x is tiny: keep one ulp inside (SciPy's rstep = 0)
        y = x + step
        inf = torch.full_like(x, torch.inf)
        y = torch.where(y <= self.lb, torch.nextafter(self.lb, inf), y)
        y = torch.where(y >= self.ub, torch.nextafter(self.ub, -inf), y)
        return y - x

    def active_mask(self, x: torch.Tensor, rtol: float) -> torch.Tensor:
        """0 free, −1 at lb, +1 at ub, within ``rtol·max(1, |bound|)`` (SciPy's rule)."""
        active = torch.zeros(x.shape, dtype=torch.int64, device=x.device)
        if rtol == 0:
            active[x <= self.lb] = -1
            active[x >= self.ub] = 1
            return active
        lower, upper = x - self.lb, self.ub - x
        lower_tol = rtol * self.lb.abs().clamp_min(1)
        upper_tol = rtol * self.ub.abs().clamp_min(1)
        active[torch.isfinite(self.lb) & (lower <= torch.minimum(upper, lower_tol))] = -1
        active[torch.isfinite(self.ub) & (upper <= torch.minimum(lower, upper_tol))] = 1
        return active
