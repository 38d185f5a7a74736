r"""Damping schedules: how ρ is chosen at each iterate, and whether a trial step is accepted.

Two families, each with its own interface and typed state (:mod:`.base`), share the type
:class:`DampingSchedule` that a ``damping=`` argument accepts:

* **Schedules** from the paper (Cayci, arXiv 2412.14031), which set ρ from the kernel
  spectrum and leave acceptance to the step rule (GN-DT, eq. 13, takes every finite step;
  :mod:`.schedules`): :class:`Constant` (ρ ≥ 0; ρ = 0 is undamped
  GN), :class:`DataDependent` (ρ = κ·λ_min(K_0)), :class:`Adaptive` (eq. 14,
  ρ_t = κ·λ_min(K_t)), and the curvature-aware :class:`CurvatureGlobal` (eq. 16),
  :class:`CurvatureLocal` (eq. 17) and :class:`CurvatureSwitching` (Theorem 10's switch).
* **Trust-region rules** that adapt ρ from the gain ratio
  ``(actual reduction)/(predicted reduction)`` and reject steps that do not decrease the
  cost (:mod:`.trust_region`): :class:`Nielsen` (Nielsen 1999; Madsen, Nielsen & Tingleff 2004, §3.2) and
  :class:`Marquardt` (Marquardt 1963: fixed up/down factors, optional diag(JᵀJ) scaling).

Units. In :func:`gaussnewton.fit` the kernel is the paper's Convention A,
``K = J_F J_Fᵀ / n`` with ``J_F = ∂F/∂θ`` the Jacobian of the un-scaled output (the model's
Jacobian divided by α), and ρ enters ``H_ρ = J_FᵀJ_F/n + ρI``. In
:func:`gaussnewton.least_squares` the kernel is ``JJᵀ`` and ρ enters ``JᵀJ + ρD``. The
schedules only see λ values in these units through :class:`DampingContext`.

Warning:
    Conventions differ between libraries: MINPACK/SciPy scale the damping by diag(JᵀJ)
    (here ``Marquardt(scaling="diag")``), Nielsen and torch-levenberg-marquardt use ρI;
    Marquardt's factors are 10/10 in the original paper, torch-levenberg-marquardt uses
    ×10/×0.1 with "cost decreased?" acceptance, optimistix uses a gain-ratio trust radius.
"""

from .base import DampingContext as DampingContext
from .base import DampingSchedule as DampingSchedule
from .base import Schedule as Schedule
from .base import TrustRegionRule as TrustRegionRule
from .base import TrustState as TrustState
from .base import state_from_dict as state_from_dict
from .base import state_to_dict as state_to_dict
from .registry import SCHEDULES as SCHEDULES
from .registry import get_damping as get_damping
from .schedules import Adaptive as Adaptive
from .schedules import Constant as Constant
from .schedules import CurvatureGlobal as CurvatureGlobal
from .schedules import CurvatureLocal as CurvatureLocal
from .schedules import CurvatureSwitching as CurvatureSwitching
from .schedules import DataDependent as DataDependent
from .trust_region import Marquardt as Marquardt
from .trust_region import Nielsen as Nielsen

__all__ = [
    "Adaptive",
    "Constant",
    "CurvatureGlobal",
    "CurvatureLocal",
    "CurvatureSwitching",
    "DampingContext",
    "DampingSchedule",
    "DataDependent",
    "Marquardt",
    "Nielsen",
    "SCHEDULES",
    "Schedule",
    "TrustRegionRule",
    "TrustState",
    "get_damping",
    "state_from_dict",
    "state_to_dict",
]
