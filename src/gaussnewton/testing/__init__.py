"""Testing helpers of :mod:`gaussnewton`: standard problems to check a solver against.

:mod:`gaussnewton.testing.catalogue` holds the Moré–Garbow–Hillstrom and NIST StRD nonlinear
least-squares problems (:class:`~.catalogue.TestProblem`, :data:`~.catalogue.PROBLEMS`,
:func:`~.catalogue.get_problem`) and the dated SciPy ``method="lm"`` reference costs
(``catalogue._SCIPY_LM_COST``). Not imported by ``import gaussnewton``.
"""

from . import catalogue as catalogue
from .catalogue import PROBLEMS as PROBLEMS
from .catalogue import TestProblem as TestProblem
from .catalogue import get_problem as get_problem

__all__ = ["PROBLEMS", "TestProblem", "catalogue", "get_problem"]
