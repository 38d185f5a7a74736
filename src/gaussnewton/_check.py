r"""A directional finite-difference check of a Jacobian (SciPy's ``check_grad`` for residuals).

For a random unit direction v and h = ε^{1/3}·max(1, ‖x‖) the central difference

.. math::  d = \frac{f(x + h v) - f(x - h v)}{2h} = J v + O(h^2)

is compared with J v from the Jacobian under test: the relative error ‖Jv − d‖ / max(‖d‖, ‖Jv‖)
is about ε^{2/3} ≈ 4e-11 for a correct float64 Jacobian of a smooth function, and O(1) for a wrong
sign, a missing term, or an automatic derivative that cannot see through ``.item()``/NumPy calls
(then J v = 0 while d ≠ 0). Two evaluations of ``fun`` and one product with J; no Jacobian is formed
for a torch function (``torch.func.jvp``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._errors import GaussNewtonError

__all__ = ["check_jacobian"]


def check_jacobian(fun: Callable[..., Any], x: Any, jac: Callable[..., Any] | None = None, *,
                   args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, seed: int = 0) -> float:
    """Relative error of ``jac`` (or of automatic differentiation) against central differences of ``fun``.

    Args:
        fun: ``fun(x, *args, **kwargs) -> r`` (NumPy or torch).
        x: the point (p numbers).
        jac: ``jac(x, *args, **kwargs) -> (N, p)``; None: torch automatic differentiation of ``fun``.
        args: extra positional arguments of ``fun`` and ``jac``.
        kwargs: extra keyword arguments of ``fun`` and ``jac``.
        seed: seed of the random direction.

    Returns:
        float: ‖J v − d‖ / max(‖d‖, ‖J v‖) for a random unit v (0 when both vanish); values
        above about 1e-5 mean the Jacobian is wrong (or ``fun`` is not smooth at x).

    Raises:
        GaussNewtonError: ``jac`` is None and ``fun`` cannot be differentiated by torch.

    Example:
        >>> import numpy as np
        >>> from gaussnewton import check_jacobian
        >>> t = np.linspace(0, 1, 10)
        >>> f = lambda x: x[0] * np.exp(-x[1] * t)
        >>> good = lambda x: np.stack([np.exp(-x[1] * t), -x[0] * t * np.exp(-x[1] * t)], axis=1)
        >>> check_jacobian(f, [1.0, 2.0], good) < 1e-8, check_jacobian(f, [1.0, 2.0], lambda x: -good(x)) > 1
        (True, True)
    """
    kwargs = {} if kwargs is None else kwargs
    xt = torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float)).reshape(-1)
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(xt.shape, generator=gen, dtype=torch.float64)
    v = v / v.norm()
    h = float(np.finfo(float).eps ** (1 / 3)) * max(1.0, float(xt.norm()))

    def f_np(z: torch.Tensor) -> np.ndarray:
        if jac is None:  # automatic differentiation is checked: fun is a torch function
            r = fun(z, *args, **kwargs)
        else:  # SciPy's contract first (an ndarray), a tensor for a torch function
            try:
                r = fun(z.numpy(), *args, **kwargs)
            except Exception:  # noqa: BLE001 - a torch function may fail on an ndarray in any way
                r = fun(z, *args, **kwargs)
        r = r.detach().cpu().numpy() if isinstance(r, torch.Tensor) else r
        return np.atleast_1d(np.asarray(r, dtype=float))

    d = (f_np(xt + h * v) - f_np(xt - h * v)) / (2 * h)
    if jac is not None:
        j = jac(xt.numpy(), *args, **kwargs)
        j = j.toarray() if hasattr(j, "toarray") else j
        j = j.detach().cpu().numpy() if isinstance(j, torch.Tensor) else np.atleast_2d(np.asarray(j, dtype=float))
        jv = j @ v.numpy()
    else:
        try:
            jv_t = torch.func.jvp(lambda z: torch.as_tensor(fun(z, *args, **kwargs)).reshape(-1), (xt,), (v,))[1]
        except Exception as exc:  # noqa: BLE001 - any torch.func failure means "not differentiable"
            raise GaussNewtonError(f"`fun` cannot be differentiated by torch ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}); pass `jac`.") from exc
        jv = jv_t.detach().cpu().numpy().astype(float)
    scale = max(float(np.linalg.norm(d)), float(np.linalg.norm(jv)))
    return 0.0 if scale == 0 else float(np.linalg.norm(jv - d)) / scale
