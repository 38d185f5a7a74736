"""The paper's experiments, figures and theory check (``gaussnewton reproduce``).

Modules: :mod:`.config` (typed run configurations and sizes per mode), :mod:`.registry`
(the experiments), :mod:`.runner` (one run with the public API), :mod:`.theory` (pure math:
predicted rates, conditions, fitted slopes), :mod:`.analysis` (per-run theory check),
:mod:`.claims` (paper_spec.md §8 claims, PASS/FAIL), :mod:`.io` (JSON/CSV with environment
metadata), :mod:`.manifold` (Figure 1's surface), :mod:`.plotting` (the only module that
imports matplotlib) and :mod:`.report`. The core library never imports this package.
"""
