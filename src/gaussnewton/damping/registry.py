"""Name → damping rule registry, and the resolution of a ``damping=`` argument."""

from __future__ import annotations

from collections.abc import Callable

from .._errors import GaussNewtonError, check_choice, check_nonneg
from .base import DampingSchedule
from .schedules import Adaptive, Constant, CurvatureGlobal, CurvatureLocal, CurvatureSwitching, DataDependent
from .trust_region import Marquardt, Nielsen

__all__ = ["SCHEDULES", "get_damping"]


SCHEDULES: dict[str, Callable[[], DampingSchedule]] = {
    "none": lambda: Constant(0.0),
    "constant": lambda: Constant(1e-3),
    "data_dependent": lambda: DataDependent(1.0),
    "adaptive": lambda: Adaptive(1.0),
    "curvature_global": lambda: CurvatureGlobal(1.0),
    "curvature_local": lambda: CurvatureLocal(1.0),
    "curvature_switching": lambda: CurvatureSwitching(1.0),
    "nielsen": lambda: Nielsen(),
    "marquardt": lambda: Marquardt(),
}
"""Name → factory with default parameters (used by the CLI and the common test battery)."""


def get_damping(damping: DampingSchedule | str | float | None, default: str) -> DampingSchedule:
    """Resolve a damping argument.

    Args:
        damping: a schedule, a registry name, a number (→ :class:`Constant`), or None
            (→ ``default``).
        default: registry name used for None.

    Returns:
        DampingSchedule: the schedule.

    Raises:
        GaussNewtonError: unknown name or wrong type.
    """
    if damping is None:
        return SCHEDULES[default]()
    if isinstance(damping, DampingSchedule):
        return damping
    if isinstance(damping, bool):
        raise GaussNewtonError(f"`damping` must be a schedule, name or number; got {damping!r}.")
    if isinstance(damping, (int, float)):
        return Constant(check_nonneg("damping", damping))
    if isinstance(damping, str):
        return SCHEDULES[check_choice("damping", damping, SCHEDULES)]()
    raise GaussNewtonError(
        "`damping` must be a gaussnewton.damping schedule, one of "
        f"{sorted(SCHEDULES)}, a number >= 0 or None; got {type(damping).__name__}."
    )
