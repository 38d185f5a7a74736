"""Run SciPy's own ``test_least_squares.py`` with ``least_squares`` replaced by gaussnewton's.

The test file is the one installed with SciPy (not copied here); each collected test module gets
its global ``least_squares`` swapped for :func:`gaussnewton.least_squares` before it runs. Counts
and the names of the failing tests go to ``benchmarks/results/scipy_dropin_lsq.json``; the reasons
for the failures are listed in ``docs/scipy_compat.md``.

Usage: ``.venv/bin/python benchmarks/scipy_dropin_lsq.py [-k EXPR]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import scipy

import gaussnewton as gn

HERE = Path(__file__).parent


class DropIn:
    """A pytest plugin: swap the solver in every collected module, record the outcomes."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:  # noqa: D102
        for item in items:
            module = getattr(item, "module", None)
            if module is not None and hasattr(module, "least_squares"):
                module.least_squares = gn.least_squares

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:  # noqa: D102
        if report.when == "call" or report.outcome != "passed":
            if report.nodeid not in self.outcomes or report.outcome != "passed":
                self.outcomes[report.nodeid] = report.outcome


def main() -> int:
    """Run the suite, print and save the pass rate."""
    test_file = Path(scipy.__file__).parent / "optimize" / "tests" / "test_least_squares.py"
    plugin = DropIn()
    pytest.main([str(test_file), "-q", "-p", "no:cacheprovider", "-W", "ignore", "--tb=line", *sys.argv[1:]],
                plugins=[plugin])
    names = {k.split("::", 1)[1]: v for k, v in plugin.outcomes.items()}
    passed = sorted(k for k, v in names.items() if v == "passed")
    failed = sorted(k for k, v in names.items() if v != "passed")
    total = len(names)
    print(f"\nSciPy {scipy.__version__} test_least_squares.py drop-in: {len(passed)}/{total} passed "
          f"({100 * len(passed) / max(total, 1):.1f} %)")
    for name in failed:
        print("  FAILED", name)
    out = HERE / "results" / "scipy_dropin_lsq.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"scipy": scipy.__version__, "gaussnewton": gn.__version__, "total": total,
                               "passed": len(passed), "failed": failed}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
