"""Deprecated alias of :mod:`gaussnewton.testing.catalogue`; removed in the next release.

Importing it emits a :class:`DeprecationWarning`; every name (the private ``_SCIPY_LM_COST``
reference costs included) is that of :mod:`gaussnewton.testing.catalogue`.
"""

import warnings

from gaussnewton.testing.catalogue import *  # noqa: F403
from gaussnewton.testing.catalogue import _SCIPY_LM_COST as _SCIPY_LM_COST  # noqa: F401
from gaussnewton.testing.catalogue import __all__ as __all__  # noqa: F401

warnings.warn(
    "gaussnewton.problems.catalogue is deprecated and will be removed in the next release; "
    "import gaussnewton.testing.catalogue instead",
    DeprecationWarning,
    stacklevel=2,
)
