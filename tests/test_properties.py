"""Property tests (hypothesis) of the linear-solver layer :mod:`gaussnewton.linsolve`.

For random A (N, p), h (N,), ρ > 0 and positive diagonals D, the step δ of
``(AᵀA + ρD) δ = −Aᵀh`` must be the same from every solver form, be a descent direction of
½‖Aδ + h‖², and shrink monotonically as ρ grows. Deterministic: ``derandomize=True``, no
example database, seeds drawn by hypothesis feed a fixed torch Generator.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gaussnewton.linsolve import CGSolver, KernelSolver, LstsqSolver, NormalSolver, get_solver

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None)




@st.composite
def systems(draw, with_diag=True):
    """(A, h, D or None, ρ) in float64 with N, p ∈ [1, 12], ρ ∈ [1e-4, 1e2]."""
    n = draw(st.integers(1, 12), label="N")
    p = draw(st.integers(1, 12), label="p")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    rho = 10.0 ** draw(st.floats(-4.0, 2.0), label="log10 rho")
    gen = torch.Generator().manual_seed(seed)
    scale = 10.0 ** draw(st.floats(-2.0, 1.0), label="log10 scale")
    a = scale * torch.randn(n, p, generator=gen, dtype=torch.float64)
    h = torch.randn(n, generator=gen, dtype=torch.float64)
    diag = None
    if with_diag and draw(st.booleans(), label="diag"):
        diag = 10.0 ** (2 * torch.rand(p, generator=gen, dtype=torch.float64) - 1)  # in [0.1, 10]
    return a, h, diag, rho


def solve(solver, a, h, diag, rho, spectrum=False):
    delta, _ = solver.solve(solver.prepare(a, h, diag=diag, spectrum=spectrum), rho)
    return delta


def close(x, y, rtol):
    return float((x - y).norm()) <= rtol * (float(y.norm()) + 1e-300) + 1e-13


@PROPERTY
@given(systems(), st.booleans())
def test_normal_kernel_lstsq_agree(system, spectrum):
    a, h, diag, rho = system
    ref = solve(LstsqSolver(), a, h, diag, rho)
    for solver in (NormalSolver(), KernelSolver()):
        assert close(solve(solver, a, h, diag, rho, spectrum), ref, 1e-7), solver.name


@PROPERTY
@given(systems())
def test_auto_picks_a_form_that_agrees_with_lstsq(system):
    a, h, diag, rho = system
    solver = get_solver("auto", *a.shape, a.element_size())
    assert solver.name == ("kernel" if a.shape[0] < a.shape[1] else "normal")
    assert close(solve(solver, a, h, diag, rho), solve(LstsqSolver(), a, h, diag, rho), 1e-7)


@PROPERTY
@given(systems())
def test_cg_converges_to_direct(system):
    a, h, diag, rho = system
    direct = solve(NormalSolver(), a, h, diag, rho)
    # CG on an SPD p×p system converges in ≤ p steps in exact arithmetic; allow rounding slack
    delta, info = CGSolver(rtol=1e-13, max_iter=20 * a.shape[1]).solve(
        CGSolver().prepare(a, h, diag=diag), rho)
    assert close(delta, direct, 1e-6), info


@PROPERTY
@given(systems())
def test_step_is_a_descent_direction(system):
    a, h, diag, rho = system
    for solver in (NormalSolver(), KernelSolver(), LstsqSolver()):
        delta = solve(solver, a, h, diag, rho)
        slope = float(h @ (a @ delta))  # directional derivative of ½‖Aδ + h‖² at δ = 0
        grad = a.T @ h
        assert slope <= 1e-12 * float(grad.norm() * delta.norm()) + 1e-300, solver.name


@PROPERTY
@given(systems(), st.lists(st.floats(-4.0, 3.0), min_size=2, max_size=6))
def test_step_norm_decreases_as_damping_grows(system, log_rhos):
    a, h, diag, _ = system
    rhos = sorted(10.0**r for r in log_rhos)
    solver = NormalSolver()
    prepared = solver.prepare(a, h, diag=diag, spectrum=True)  # one eigendecomposition, many ρ
    weight = torch.ones_like(a[0]) if diag is None else diag.sqrt()
    # ‖D^{1/2}δ(ρ)‖ is non-increasing in ρ (it is ‖δ‖ for D = I): the LM trust-region property
    norms = [float((weight * solver.solve(prepared, rho)[0]).norm()) for rho in rhos]
    for smaller, larger in zip(norms[1:], norms[:-1], strict=True):
        assert smaller <= larger * (1 + 1e-10) + 1e-300
