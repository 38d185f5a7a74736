"""The paper's experiments, figures and theory check (``gaussnewton reproduce``).

A separate top-level package on top of the core library: it uses only the public API of
:mod:`gaussnewton` (the names exported by ``gaussnewton/__init__.py`` and the public
submodules :mod:`gaussnewton.damping`, :mod:`~gaussnewton.losses`, :mod:`~gaussnewton.models`,
:mod:`~gaussnewton.datasets`, :mod:`~gaussnewton.problems`), and the core library never
imports it.

Modules: :mod:`.cli` (the ``gaussnewton`` console script), :mod:`.config` (typed run
configurations and sizes per mode), :mod:`.registry` (the experiments), :mod:`.runner` (one
run with the public API), :mod:`.theory` (pure math: predicted rates, conditions, fitted
slopes), :mod:`.analysis` (per-run theory check), :mod:`.claims` (paper_spec.md §8 claims,
PASS/FAIL), :mod:`.io` (JSON/CSV with environment metadata), :mod:`.manifold` (Figure 1's
surface), :mod:`.plotting` (the only module that imports matplotlib) and :mod:`.report`.
"""
