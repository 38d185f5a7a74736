"""Problems: outputs f(θ) and Jacobian access (dense, JVP, VJP).

Standard nonlinear least-squares test problems live in :mod:`gaussnewton.problems.catalogue`.
"""

from ._jacobian import RowwiseResidual as RowwiseResidual
from ._jacobian import rowwise as rowwise
from .base import Problem as Problem
from .functional import FunctionProblem as FunctionProblem
from .network import NetworkProblem as NetworkProblem
from .network import ParamVector as ParamVector

__all__ = ["FunctionProblem", "NetworkProblem", "ParamVector", "Problem", "RowwiseResidual", "rowwise"]
