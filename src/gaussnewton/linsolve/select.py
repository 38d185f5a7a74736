"""Choosing a solver: ``get_solver`` (names, ``"auto"``) and the :class:`AutoSolver` rule."""

from __future__ import annotations

from collections.abc import Callable

from .._errors import GaussNewtonError, check_choice, check_positive
from .base import DEFAULT_MEMORY_BUDGET, LinearSolver
from .cg import CGSolver, truncated_cg
from .direct import KernelSolver, LstsqSolver, NormalSolver

__all__ = ["AutoSolver", "get_solver"]


class AutoSolver:
    """Chooses normal, kernel or CG once per run from N, p and a memory budget.

    Rule (documented in docs/choosing.md):
      1. if a dense ``A`` plus its smaller Gram matrix would exceed ``memory_budget``
         bytes → :class:`CGSolver` (matrix-free);
      2. else if N < p → :class:`KernelSolver` (N×N);
      3. else → :class:`NormalSolver` (p×p).
    """

    def __init__(self, memory_budget: float = DEFAULT_MEMORY_BUDGET) -> None:
        """Validate and store the settings.

        Args:
            memory_budget: bytes allowed for the dense Jacobian and Gram matrix.
        """
        self.memory_budget = check_positive("memory_budget", memory_budget)

    def select(self, n: int, p: int, itemsize: int) -> LinearSolver:
        """Return the concrete solver for an (N, p) problem with ``itemsize``-byte floats."""
        need = n * p * itemsize + min(n, p) ** 2 * max(itemsize, 8)
        if need > self.memory_budget:
            return CGSolver()
        return KernelSolver() if n < p else NormalSolver()


_SOLVERS: dict[str, Callable[[], LinearSolver]] = {
    "normal": NormalSolver,
    "kernel": KernelSolver,
    "cg": CGSolver,
    "truncated_cg": truncated_cg,
    "lstsq": LstsqSolver,
}


def get_solver(
    solver: str | LinearSolver, n: int, p: int, itemsize: int,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
) -> LinearSolver:
    """Resolve ``solver`` (a name, ``"auto"`` or an instance) for an (N, p) problem.

    Args:
        solver: ``"auto"``, ``"normal"``, ``"kernel"``, ``"cg"``, ``"truncated_cg"``, ``"lstsq"`` or a
            LinearSolver.
        n: number of rows N of ``A``.
        p: number of parameters.
        itemsize: bytes per float of ``A``.
        memory_budget: bytes, for ``"auto"``.

    Returns:
        LinearSolver: the solver to use.

    Raises:
        GaussNewtonError: unknown name or wrong type.
    """
    if isinstance(solver, LinearSolver):
        return solver
    if not isinstance(solver, str):
        raise GaussNewtonError(
            "`solver` must be 'auto', 'normal', 'kernel', 'cg', 'truncated_cg', 'lstsq' or a LinearSolver; "
            f"got {type(solver).__name__}."
        )
    check_choice("solver", solver, ("auto", *_SOLVERS))
    if solver == "auto":
        return AutoSolver(memory_budget).select(n, p, itemsize)
    return _SOLVERS[solver]()
