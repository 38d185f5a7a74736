"""Deprecated alias of :mod:`gaussnewton_paper` (the paper reproduction); removed in the next release.

``import gaussnewton.experiments`` emits a :class:`DeprecationWarning`; ``gaussnewton.experiments.X``
(``config``, ``registry``, ``runner``, ``analysis``, ``theory``, ``claims``, ``plotting``,
``report``, ``io``, ``manifold``, ``cli``) is the very module object ``gaussnewton_paper.X``,
imported on first use (so matplotlib is still imported only with ``plotting``). The core library
never imports this alias.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

warnings.warn(
    "gaussnewton.experiments is deprecated and will be removed in the next release; "
    "import gaussnewton_paper instead (e.g. gaussnewton_paper.config)",
    DeprecationWarning,
    stacklevel=2,
)

_OLD, _NEW = __name__, "gaussnewton_paper"


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``gaussnewton.experiments.X`` to the module object ``gaussnewton_paper.X``."""

    _specs: dict[str, Any] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_OLD + "."):
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(_NEW + spec.name[len(_OLD) :])
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the import machinery stamped the alias spec on the shared module object; put its own back
        module.__spec__ = self._specs.pop(module.__name__)


if not any(isinstance(f, _Alias) for f in sys.meta_path):
    sys.meta_path.insert(0, _Alias())


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return importlib.import_module(f"{_OLD}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{_NEW}.{name}":
            raise  # a missing dependency (e.g. matplotlib), not a missing submodule
        raise AttributeError(f"module {_OLD!r} has no attribute {name!r}") from None
