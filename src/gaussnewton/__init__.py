"""gaussnewton: Gauss–Newton and Levenberg–Marquardt for least squares and neural networks.

Public API (everything else is internal):

* :func:`least_squares` — SciPy's ``least_squares`` (same signature: NumPy or torch residuals,
  bounds, robust losses), LM / GN, N ≥ p and N < p.
* :func:`curve_fit` / :func:`leastsq` — SciPy's curve fitting (NumPy or torch models) and the
  legacy MINPACK interface; results give covariances and standard errors.
* :func:`least_squares_batched` — B independent small fits at once (batched LM: one vectorized
  loop, per-problem damping and termination).
* :func:`fit` — full-batch GN / LM / GD training of any ``torch.nn.Module``.
* :class:`MLP` — the paper's NTK-parameterized network (re-centred, output scale α).
* :class:`gaussnewton.optim.GaussNewton` — a ``torch.optim.Optimizer`` (GN/LM step per closure).
* :mod:`gaussnewton.sklearn` — ``GNRegressor`` / ``GNClassifier`` (needs scikit-learn; not
  imported here).
* :mod:`~gaussnewton.damping`, :mod:`~gaussnewton.losses`, :mod:`~gaussnewton.linsolve`,
  :mod:`~gaussnewton.operators`, :mod:`~gaussnewton.steps`, :mod:`~gaussnewton.datasets`,
  :mod:`~gaussnewton.problems` — the building blocks.
"""

from . import damping as damping
from . import datasets as datasets
from . import linsolve as linsolve
from . import losses as losses
from . import operators as operators
from . import optim as optim
from . import problems as problems
from . import steps as steps
from ._check import check_jacobian as check_jacobian
from ._errors import GaussNewtonError as GaussNewtonError
from ._errors import NonFiniteError as NonFiniteError
from ._minpack_compat import leastsq as leastsq
from .batched import BatchedLeastSquaresResult as BatchedLeastSquaresResult
from .batched import least_squares_batched as least_squares_batched
from .curve_fit import curve_fit as curve_fit
from .fit import fit as fit
from .least_squares import least_squares as least_squares
from .linsolve import NumericalWarning as NumericalWarning
from .models import MLP as MLP
from .result import FitResult as FitResult
from .result import IterationInfo as IterationInfo
from .result import LeastSquaresResult as LeastSquaresResult
from .result import Termination as Termination

__version__ = "0.2.0.dev0"

__all__ = [
    "BatchedLeastSquaresResult",
    "FitResult",
    "GaussNewtonError",
    "IterationInfo",
    "LeastSquaresResult",
    "MLP",
    "NonFiniteError",
    "NumericalWarning",
    "Termination",
    "__version__",
    "check_jacobian",
    "curve_fit",
    "damping",
    "datasets",
    "fit",
    "least_squares",
    "least_squares_batched",
    "leastsq",
    "linsolve",
    "losses",
    "operators",
    "optim",
    "problems",
    "steps",
]
