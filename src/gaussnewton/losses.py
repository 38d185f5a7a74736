r"""Per-sample losses and the generalized Gauss–Newton (GGN) factorization they induce.

A loss :math:`\ell(u, y)` acts on one prediction :math:`u` (a scalar, or a k-vector of logits
for cross-entropy). Around the current predictions the GGN model of
:math:`\sum_j \ell(u_j + J_j\delta, y_j)` is

.. math::  \sum_j \ell(u_j, y_j) + g^\top J \delta + \tfrac12 \delta^\top J^\top \Lambda J \delta,

with :math:`g = \partial_u \ell` and :math:`\Lambda = \partial_u^2 \ell` (block diagonal). Every
loss here factors :math:`\Lambda = B^\top B` per sample and finds :math:`h` with
:math:`B^\top h = g`. With :math:`A = BJ` the damped GGN system becomes a plain damped
least-squares system

.. math::  (A^\top A + \rho D)\,\delta = -A^\top h,

so the linear solvers only ever see least-squares data ``(A, h)``; for the squared loss
``B = I`` and ``h = r``. For cross-entropy, :math:`\Lambda = \mathrm{diag}(p) - pp^\top`,
:math:`B = \mathrm{diag}(\sqrt p) - \sqrt p\, p^\top` and :math:`h = g/\sqrt p` (exact, because
:math:`\mathbf 1^\top g = 0`).

Conventions: ``value`` returns per-sample losses; :func:`gaussnewton.fit` averages them
(the paper's :math:`R(u) = \frac1n\sum_j \ell(u_j,y_j)`), while
:func:`gaussnewton.least_squares` uses the squared loss summed, ``cost = ½‖r‖²``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from ._errors import GaussNewtonError, check_choice, check_positive

__all__ = [
    "Curvature",
    "CrossEntropy",
    "LogCosh",
    "Logistic",
    "Loss",
    "PseudoHuber",
    "RobustLoss",
    "Squared",
    "get_loss",
]

_TINY = 1e-150  # floor for sqrt(Λ) before dividing: keeps h finite when Λ underflows


@dataclass(frozen=True)
class Curvature:
    """The factor ``B`` of the loss Hessian (``Λ = BᵀB``) at the current predictions, and ``h``.

    Attributes:
        sqrt_diag: (N,) entries of a diagonal ``B`` (elementwise losses), or None.
        blocks: (n, k, k) per-sample blocks of ``B`` (cross-entropy), or None.
        h: (N,) vector with ``Bᵀh = g``.
        lambda_min: smallest eigenvalue of Λ over all samples (for eq. 16 damping); for
            cross-entropy the smallest *non-zero* eigenvalue is not tracked and this is
            ``min_j min_i p_ji·(1 - p_ji)``-free: we report the smallest diagonal entry.
    """

    sqrt_diag: torch.Tensor | None
    blocks: torch.Tensor | None
    h: torch.Tensor
    lambda_min: float

    @property
    def is_identity(self) -> bool:
        """True when ``B = I`` (squared loss)."""
        return self.sqrt_diag is None and self.blocks is None

    def rows(self, jac: torch.Tensor) -> torch.Tensor:
        """Return ``B J`` for a dense Jacobian ``jac`` of shape (N, p)."""
        if self.sqrt_diag is not None:
            return jac * self.sqrt_diag[:, None]
        if self.blocks is not None:
            n, k, _ = self.blocks.shape
            return torch.bmm(self.blocks, jac.reshape(n, k, -1)).reshape(n * k, -1)
        return jac

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """Return ``B v`` for ``v`` of shape (N,)."""
        if self.sqrt_diag is not None:
            return v * self.sqrt_diag
        if self.blocks is not None:
            n, k, _ = self.blocks.shape
            return torch.bmm(self.blocks, v.reshape(n, k, 1)).reshape(-1)
        return v

    def apply_t(self, w: torch.Tensor) -> torch.Tensor:
        """Return ``Bᵀ w`` for ``w`` of shape (N,)."""
        if self.sqrt_diag is not None:
            return w * self.sqrt_diag
        if self.blocks is not None:
            n, k, _ = self.blocks.shape
            return torch.bmm(self.blocks.transpose(1, 2), w.reshape(n, k, 1)).reshape(-1)
        return w


class Loss(ABC):
    """A per-sample loss ℓ(u, y) with its GGN factorization.

    Attributes:
        name: registry name.
        mu: strong-convexity constant of ℓ in u (0 if not strongly convex).
        L: smoothness constant of ℓ in u.
        multi_output: True if u is (n, k) logits and y (n,) class labels.

    Example:
        >>> import torch
        >>> from gaussnewton.losses import get_loss
        >>> loss = get_loss("logistic")
        >>> u, y = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([1.0, 0.0, 1.0])
        >>> c = loss.curvature(u, y)
        >>> torch.allclose(c.apply_t(c.h), loss.grad(u, y))  # the factorization: Bᵀh = g
        True
    """

    name: str = ""
    mu: float = 0.0
    L: float = 1.0
    multi_output: bool = False

    @abstractmethod
    def value(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample losses, shape (n,)."""

    @abstractmethod
    def curvature(self, u: torch.Tensor, y: torch.Tensor) -> Curvature:
        """The GGN factor ``B`` and ``h`` at predictions ``u``."""

    def grad(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∂ℓ/∂u, same shape as ``u`` (by autograd unless overridden)."""
        u = u.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.value(u, y).sum(), u)
        return g

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Squared(Loss):
    """ℓ(u, y) = ½(u − y)²; Λ = 1 (μ = L = 1)."""

    name = "squared"
    mu = 1.0
    L = 1.0

    def value(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return 0.5 * (u - y) ** 2

    def grad(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return u - y

    def curvature(self, u: torch.Tensor, y: torch.Tensor) -> Curvature:  # noqa: D102
        return Curvature(None, None, (u - y).reshape(-1), 1.0)


class _Elementwise(Loss):
    """Shared GGN factorization for elementwise losses with ℓ'' > 0."""

    def _second(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def curvature(self, u: torch.Tensor, y: torch.Tensor) -> Curvature:  # noqa: D102
        lam = self._second(u, y).reshape(-1)
        s = lam.clamp_min(0).sqrt()
        g = self.grad(u, y).reshape(-1)
        h = g / s.clamp_min(_TINY)
        return Curvature(s, None, h, float(lam.min()) if lam.numel() else 1.0)


class PseudoHuber(_Elementwise):
    """ℓ = δ²(√(1 + (r/δ)²) − 1), r = u − y; quadratic near 0, linear in the tails.

    Λ = (1 + (r/δ)²)^(−3/2) ∈ (0, 1]: L = 1 and no global μ > 0.

    Args:
        delta: transition scale δ > 0.
    """

    name = "pseudo_huber"
    mu = 0.0
    L = 1.0

    def __init__(self, delta: float = 1.0) -> None:
        self.delta = check_positive("delta", delta)

    def value(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        d = self.delta
        return d * d * (torch.sqrt(1 + ((u - y) / d) ** 2) - 1)

    def grad(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        r = u - y
        return r / torch.sqrt(1 + (r / self.delta) ** 2)

    def _second(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (1 + ((u - y) / self.delta) ** 2) ** -1.5

    def __repr__(self) -> str:
        return f"PseudoHuber(delta={self.delta})"


class LogCosh(_Elementwise):
    """ℓ = log cosh(u − y); Λ = sech²(u − y) ∈ (0, 1]."""

    name = "log_cosh"
    mu = 0.0
    L = 1.0

    def value(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        a = (u - y).abs()
        # log cosh(a) = a + log(1 + e^{-2a}) - log 2, stable for large a
        return a + torch.nn.functional.softplus(-2 * a) - math.log(2.0)

    def grad(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.tanh(u - y)

    def _second(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 1 - torch.tanh(u - y) ** 2


class Logistic(_Elementwise):
    """Binary cross-entropy on a logit u with label y ∈ {0, 1}: ℓ = softplus(u) − y·u.

    Λ = s(1 − s) with s = sigmoid(u): L = 1/4 and no global μ > 0.
    """

    name = "logistic"
    mu = 0.0
    L = 0.25

    def value(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.nn.functional.softplus(u) - y * u

    def grad(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.sigmoid(u) - y

    def _second(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(u)
        return s * (1 - s)


def check_labels(name: str, loss: Loss, y: torch.Tensor, k: int | None = None) -> None:
    """Refuse labels outside a classification loss's domain (other losses: no check).

    Logistic: y ∈ [0, 1] (0/1 labels or probabilities; outside it the loss is unbounded below
    and a fit reports a negative loss). Cross-entropy: integers in [0, k) (torch would raise an
    IndexError from deep inside).

    Args:
        name: how the message names the labels (``"`y`"``).
        loss: the loss.
        y: labels (n,) (logistic: any shape).
        k: number of logits (cross-entropy).

    Raises:
        GaussNewtonError: labels outside the domain (the message shows the offending values).
    """
    if isinstance(loss, Logistic):
        bad, want = (y < 0) | (y > 1), "lie in [0, 1] (0/1 class labels or probabilities)"
        hint = " For ±1 labels pass (y + 1) / 2."
    elif isinstance(loss, CrossEntropy) and k is not None:
        bad, want, hint = (y < 0) | (y >= k), f"be integer class labels in [0, {k}) (k = {k} logits)", ""
    else:
        return
    if not bool(bad.any()):
        return
    values = ", ".join(f"{float(v):g}" for v in torch.unique(y[bad])[:5])
    first = int(bad.reshape(-1).nonzero()[0])
    raise GaussNewtonError(f"{name} for {loss.name} must {want}; got {int(bad.sum())} outside it, values "
                           f"{values}{', ...' if int(torch.unique(y[bad]).numel()) > 5 else ''} "
                           f"(first at index {first}).{hint}")


def _rho(name: str, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SciPy's robust loss ρ(z) and its first two derivatives in z = (f/C)²."""
    if name == "linear":
        return z, torch.ones_like(z), torch.zeros_like(z)
    if name == "soft_l1":
        t = 1 + z
        return 2 * (t.sqrt() - 1), t ** -0.5, -0.5 * t ** -1.5
    if name == "huber":
        big = z > 1
        zs = torch.where(big, z, torch.ones_like(z))  # keeps the unused branch finite
        return (torch.where(big, 2 * zs.sqrt() - 1, z), torch.where(big, zs ** -0.5, torch.ones_like(z)),
                torch.where(big, -0.5 * zs ** -1.5, torch.zeros_like(z)))
    if name == "cauchy":
        t = 1 + z
        return torch.log1p(z), 1 / t, -1 / t ** 2
    t = 1 + z ** 2  # arctan
    return torch.arctan(z), 1 / t, -2 * z / t ** 2


class RobustLoss(Loss):
    r"""SciPy's robust losses for :func:`gaussnewton.least_squares`: ℓ(r) = ½·C²·ρ((r/C)²).

    With z = (r/C)², C = ``f_scale``, the cost is SciPy's ``½ Σ C² ρ(z)``; ``"linear"`` (ρ(z) = z) is
    the squared loss. The GN model uses Triggs' correction (B. Triggs et al., *Bundle adjustment —
    a modern synthesis*, 2000; as SciPy's ``trf``): ℓ' = ρ'(z)·r and the curvature
    Λ = ρ'(z) + 2z·ρ''(z) (clipped below at machine epsilon, so B = √Λ is real), which makes
    ``A = √Λ J`` and ``h = ρ' r / √Λ`` (the "rescaled residuals and Jacobian").

    ==========  ========================  ============================
    name        ρ(z)                      behaviour for large r
    ==========  ========================  ============================
    linear      z                         quadratic (least squares)
    soft_l1     2(√(1+z) − 1)             linear (smooth ℓ1)
    huber       z if z ≤ 1, else 2√z − 1  linear
    cauchy      ln(1 + z)                 logarithmic (strong outlier damping)
    arctan      arctan(z)                 bounded (cost of one outlier ≤ C²π/4)
    ==========  ========================  ============================

    Args:
        loss: one of the names above, or a callable ``loss(z) -> (3, m)`` array of ρ, ρ', ρ''
            at z (NumPy in, NumPy out; SciPy's protocol).
        f_scale: C > 0, the residual size where the loss turns robust.

    Raises:
        GaussNewtonError: unknown name or ``f_scale`` ≤ 0.
    """

    name = "robust"
    NAMES = ("linear", "soft_l1", "huber", "cauchy", "arctan")

    def __init__(self, loss: str | object = "linear", f_scale: float = 1.0) -> None:
        if not callable(loss):
            check_choice("loss", loss, self.NAMES)
        self.loss = loss
        self.f_scale = check_positive("f_scale", f_scale)
        self.mu = 1.0 if loss == "linear" else 0.0

    def rho(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ρ(z)·C², ρ'(z), ρ''(z)/C² at z = (r/C)² (SciPy's scaled triple)."""
        c2 = self.f_scale ** 2
        z = r * r / c2
        if callable(self.loss):
            import numpy as np

            out = self.loss(z.detach().cpu().numpy())
            arr = np.asarray(out, dtype=float)
            if arr.shape != (3, z.numel()):
                raise GaussNewtonError("The return value of `loss` callable has wrong shape: "
                                       f"expected (3, {z.numel()}), got {arr.shape}.")
            t = torch.as_tensor(arr, dtype=r.dtype, device=r.device)
            r0, r1, r2 = t[0], t[1], t[2]
        else:
            r0, r1, r2 = _rho(str(self.loss), z)
        return r0 * c2, r1, r2 / c2

    def value(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.loss == "linear":
            return 0.5 * (u - y) ** 2
        return 0.5 * self.rho(u - y)[0]

    def grad(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        r = u - y
        return r if self.loss == "linear" else self.rho(r)[1] * r

    def curvature(self, u: torch.Tensor, y: torch.Tensor) -> Curvature:  # noqa: D102
        r = (u - y).reshape(-1)
        if self.loss == "linear":
            return Curvature(None, None, r, 1.0)
        _, d1, d2 = self.rho(r)
        lam = (d1 + 2 * d2 * r * r).clamp_min(torch.finfo(r.dtype).eps)
        s = lam.sqrt()
        return Curvature(s, None, d1 * r / s, float(lam.min()) if lam.numel() else 1.0)

    def __repr__(self) -> str:
        return f"RobustLoss({self.loss!r}, f_scale={self.f_scale:g})"


class CrossEntropy(Loss):
    """Softmax cross-entropy on logits u of shape (n, k) with integer labels y of shape (n,).

    Λ_j = diag(p_j) − p_j p_jᵀ = B_jᵀB_j with B_j = diag(√p_j) − √p_j p_jᵀ, and h_j = g_j/√p_j.
    """

    name = "cross_entropy"
    mu = 0.0
    L = 0.5
    multi_output = True

    def value(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.nn.functional.cross_entropy(u, y.long(), reduction="none")

    def grad(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        p = torch.softmax(u, dim=-1)
        return p - torch.nn.functional.one_hot(y.long(), u.shape[-1]).to(u.dtype)

    def curvature(self, u: torch.Tensor, y: torch.Tensor) -> Curvature:  # noqa: D102
        p = torch.softmax(u, dim=-1)
        sp = p.sqrt()
        blocks = torch.diag_embed(sp) - sp[:, :, None] * p[:, None, :]
        g = self.grad(u, y)
        h = (g / sp.clamp_min(_TINY)).reshape(-1)
        lam_min = float((p * (1 - p)).min()) if p.numel() else 1.0
        return Curvature(None, blocks, h, lam_min)


_LOSSES: dict[str, type[Loss]] = {
    "squared": Squared,
    "pseudo_huber": PseudoHuber,
    "log_cosh": LogCosh,
    "logistic": Logistic,
    "cross_entropy": CrossEntropy,
}


def get_loss(loss: str | Loss) -> Loss:
    """Return a :class:`Loss` from an instance or its registry name.

    Args:
        loss: a Loss instance or one of ``"squared"``, ``"pseudo_huber"``, ``"log_cosh"``,
            ``"logistic"``, ``"cross_entropy"``.

    Returns:
        Loss: the loss object.

    Raises:
        GaussNewtonError: for an unknown name or a wrong type.

    Example:
        >>> import torch
        >>> from gaussnewton.losses import get_loss
        >>> get_loss("squared").value(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0]))
        tensor([0.5000, 2.0000])
        >>> get_loss("pseudo_huber")
        PseudoHuber(delta=1.0)
    """
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str):
        raise GaussNewtonError(
            f"`loss` must be a gaussnewton.losses.Loss or one of {sorted(_LOSSES)}; "
            f"got {type(loss).__name__}."
        )
    return _LOSSES[check_choice("loss", loss, _LOSSES)]()
