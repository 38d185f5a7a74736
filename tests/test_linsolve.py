"""Linear solvers of the damped system agree with the augmented-lstsq reference."""

import math

import pytest
import torch

from gaussnewton.linsolve import (
    CGSolver,
    KernelSolver,
    LstsqSolver,
    NormalSolver,
    NumericalWarning,
    get_solver,
    lanczos_extremes,
)
from gaussnewton.operators import JacobianOperator

from conftest import random_matrix

SHAPES = [(40, 12), (12, 40)]  # N > p and N < p


def reference_step(a, h, rho, diag=None):
    """δ = argmin ‖Aδ + h‖² + ρ δᵀDδ by torch.linalg.lstsq on the augmented system (float64)."""
    p = a.shape[1]
    d = torch.ones(p, dtype=a.dtype) if diag is None else diag
    aug = torch.cat([a, torch.diag((rho * d).sqrt())])
    rhs = torch.cat([-h, torch.zeros(p, dtype=a.dtype)])
    return torch.linalg.lstsq(aug, rhs[:, None], driver="gelsd").solution.squeeze(1)


def rel(x, y):
    return float((x - y).norm() / y.norm())


def _op(a):
    return JacobianOperator(tuple(a.shape), lambda v: a @ v, lambda u: a.T @ u, None, a.dtype, a.device)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cond", [1e1, 1e4])
@pytest.mark.parametrize("rho", [1e-2, 1.0])
@pytest.mark.parametrize("spectrum", [False, True])
def test_dense_forms_match_reference(shape, cond, rho, spectrum):
    a = random_matrix(*shape, cond=cond)
    h = torch.randn(shape[0], dtype=torch.float64)
    ref = reference_step(a, h, rho)
    for solver in (NormalSolver(), KernelSolver(), LstsqSolver()):
        delta, info = solver.solve(solver.prepare(a, h, spectrum=spectrum), rho)
        assert rel(delta, ref) < 1e-8, (solver.name, rel(delta, ref))
        assert info.method == solver.name


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cond", [1e1, 1e3])
def test_cg_matches_reference(shape, cond):
    a = random_matrix(*shape, cond=cond)
    h = torch.randn(shape[0], dtype=torch.float64)
    rho = 1e-3
    ref = reference_step(a, h, rho)
    solver = CGSolver(rtol=1e-13, max_iter=2000)
    delta, info = solver.solve(solver.prepare(_op(a), h), rho)
    assert info.converged and info.iterations > 0
    assert rel(delta, ref) < 1e-8


@pytest.mark.parametrize("shape", SHAPES)
def test_diagonal_scaling_in_every_form(shape):
    a = random_matrix(*shape, cond=1e2)
    h = torch.randn(shape[0], dtype=torch.float64)
    diag = torch.rand(shape[1], dtype=torch.float64) + 0.1
    ref = reference_step(a, h, 0.3, diag)
    for solver in (NormalSolver(), KernelSolver(), LstsqSolver(), CGSolver(rtol=1e-13, max_iter=1000)):
        arg = _op(a) if solver.name == "cg" else a
        delta, _ = solver.solve(solver.prepare(arg, h, diag=diag, spectrum=False), 0.3)
        assert rel(delta, ref) < 1e-8, solver.name


@pytest.mark.parametrize("shape", SHAPES)
def test_undamped_gives_minimum_norm_least_squares(shape):
    a = random_matrix(*shape, cond=1e3)
    h = torch.randn(shape[0], dtype=torch.float64)
    ref = -torch.linalg.pinv(a) @ h
    # N > p: normal form is non-singular; N < p: the kernel form is. The eigen path of the
    # other form falls back to the pseudo-inverse.
    good = NormalSolver() if shape[0] > shape[1] else KernelSolver()
    for solver, spectrum in ((good, False), (NormalSolver(), True), (KernelSolver(), True), (LstsqSolver(), False)):
        delta, _ = solver.solve(solver.prepare(a, h, spectrum=spectrum), 0.0)
        assert rel(delta, ref) < 1e-8, (solver.name, spectrum)


def test_rejected_trials_reuse_the_factorization():
    a = random_matrix(30, 10, cond=10)
    h = torch.randn(30, dtype=torch.float64)
    solver = NormalSolver()
    prep = solver.prepare(a, h, spectrum=True)
    gram_id = id(prep.gram)
    for rho in (1e-3, 1e-1, 10.0):
        delta, _ = solver.solve(prep, rho)
        assert rel(delta, reference_step(a, h, rho)) < 1e-9
    assert id(prep.gram) == gram_id  # nothing recomputed from A


def test_spectrum_matches_eigvalsh_and_lanczos():
    for shape in SHAPES:
        a = random_matrix(*shape, cond=1e2)
        h = torch.zeros(shape[0], dtype=torch.float64)
        small = a @ a.T if shape[0] <= shape[1] else a.T @ a
        w = torch.linalg.eigvalsh(small)
        for solver in (NormalSolver(), KernelSolver(), LstsqSolver()):
            spec = solver.spectrum(solver.prepare(a, h))
            assert spec.shape[0] == min(shape)
            assert torch.allclose(spec, w, rtol=1e-8, atol=1e-12), solver.name
        ext = lanczos_extremes(_op(a))
        assert math.isclose(float(ext[0]), float(w[0]), rel_tol=1e-6)
        assert math.isclose(float(ext[1]), float(w[-1]), rel_tol=1e-8)


def test_singular_cholesky_gets_jitter_with_warning():
    a = torch.ones(5, 3, dtype=torch.float64)  # rank 1
    h = torch.ones(5, dtype=torch.float64)
    solver = NormalSolver()
    with pytest.warns(NumericalWarning, match="added jitter"):
        delta, info = solver.solve(solver.prepare(a, h), 0.0)
    assert info.jitter > 0
    assert torch.isfinite(delta).all()


def test_float32_jacobian_with_float64_gram():
    a = random_matrix(50, 20, cond=1e3).float()
    h = torch.randn(50).float()
    ref = reference_step(a.double(), h.double(), 1e-3)
    d64, _ = NormalSolver(gram_dtype=torch.float64).solve(NormalSolver(gram_dtype=torch.float64).prepare(a, h), 1e-3)
    assert d64.dtype == torch.float64
    assert rel(d64, ref) < 1e-10


def test_auto_choice():
    assert get_solver("auto", 100, 10, 8).name == "normal"
    assert get_solver("auto", 10, 100, 8).name == "kernel"
    assert get_solver("auto", 10_000, 1_000_000, 8, memory_budget=1e6).name == "cg"


@pytest.mark.parametrize("p", [300, 1500])  # one GEMM below the block threshold, blocks above
def test_symmetric_block_gram(p):
    from gaussnewton.linsolve import gram

    a = torch.randn(200, p, dtype=torch.float64)
    g = gram(a)
    assert torch.equal(g, g.T)
    assert torch.allclose(g, a.T @ a, rtol=1e-12, atol=1e-10)


def _scaled_columns(shape, cond):
    """A matrix whose columns differ in scale by 1e3 (where Jacobi preconditioning pays)."""
    a = random_matrix(*shape, cond=cond)
    return a * torch.logspace(0, 3, shape[1], dtype=torch.float64)[None, :]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_diag", [False, True])
def test_jacobi_preconditioned_cg_matches_reference(shape, with_diag):
    a = _scaled_columns(shape, 1e2)
    h = torch.randn(shape[0], dtype=torch.float64)
    diag = (a * a).sum(0) if with_diag else None
    rho = 1e-3
    ref = reference_step(a, h, rho, diag)
    plain, pcg = CGSolver(rtol=1e-12, max_iter=5000), CGSolver(rtol=1e-12, max_iter=5000, preconditioner="jacobi")
    d_plain, info_plain = plain.solve(plain.prepare(a, h, diag=diag), rho)
    d_pcg, info_pcg = pcg.solve(pcg.prepare(a, h, diag=diag), rho)
    assert info_pcg.converged and rel(d_pcg, ref) < 1e-8
    assert info_plain.converged and rel(d_plain, ref) < 1e-8
    if with_diag or shape[0] > shape[1]:
        # with D = diag(AᵀA) the preconditioned operator is D⁻¹AᵀA/(1+ρ) + ρ/(1+ρ)·I; for N < p,
        # D = I and a tiny ρ, Jacobi instead spreads the ρ-cluster of AᵀA + ρI (it can lose there)
        assert info_pcg.iterations < info_plain.iterations, (info_pcg.iterations, info_plain.iterations)


def test_jacobi_without_column_norms_runs_unpreconditioned():
    a = random_matrix(30, 10, cond=10)
    h = torch.randn(30, dtype=torch.float64)
    solver = CGSolver(rtol=1e-12, max_iter=500, preconditioner="jacobi")
    prep = solver.prepare(_op(a), h)  # a bare operator has no column_sq_norms
    assert prep.cache["colsq"] is None
    delta, info = solver.solve(prep, 0.1)
    assert info.converged and rel(delta, reference_step(a, h, 0.1)) < 1e-8


def test_truncated_cg_is_a_capped_descent_step():
    from gaussnewton.linsolve import truncated_cg

    solver = get_solver("truncated_cg", 500, 200, 8)
    assert isinstance(solver, CGSolver) and solver.preconditioner == "jacobi"
    assert (solver.rtol, solver.max_iter) == (truncated_cg().rtol, 20)
    a = _scaled_columns((500, 200), 1e4)
    h = torch.randn(500, dtype=torch.float64)
    grad = a.T @ h
    delta, info = solver.solve(solver.prepare(a, h), 1e-6)
    assert info.iterations <= 20
    assert float(grad @ delta) < 0  # a descent direction for ½‖Aδ + h‖²
    rho = 1e-6

    def model(d):  # the damped quadratic that CG minimizes
        return 0.5 * float((a @ d + h).square().sum()) + 0.5 * rho * float(d @ d)

    values = [model(torch.zeros(200, dtype=torch.float64))]
    for k in (1, 5, 20):  # PCG decreases the damped model monotonically in its iterates
        d_k, _ = CGSolver(rtol=1e-2, max_iter=k, preconditioner="jacobi").solve(solver.prepare(a, h), rho)
        values.append(model(d_k))
    assert values == sorted(values, reverse=True) and values[-1] < values[0]
    assert math.isclose(values[-1], model(delta), rel_tol=1e-12)


def test_preconditioner_is_validated():
    from gaussnewton import GaussNewtonError

    with pytest.raises(GaussNewtonError, match="`preconditioner` must be one of 'jacobi'; got 'ilu'"):
        CGSolver(preconditioner="ilu")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("solver", [NormalSolver(), KernelSolver(), CGSolver(rtol=1e-13, max_iter=400),
                                    CGSolver(rtol=1e-13, max_iter=400, preconditioner="jacobi"), LstsqSolver()])
@pytest.mark.parametrize("rho", [0.0, 0.3])
def test_weight_decay_penalty_is_exact_in_every_form(shape, scaled, solver, rho):
    """(AᵀA + ρD + cI)δ = −Aᵀh − c·e against a dense solve, with and without D, both regimes."""
    a = random_matrix(*shape, cond=1e3, seed=5)
    gen = torch.Generator().manual_seed(6)
    h = torch.randn(shape[0], generator=gen, dtype=torch.float64)
    e = torch.randn(shape[1], generator=gen, dtype=torch.float64)
    d = torch.rand(shape[1], generator=gen, dtype=torch.float64) + 0.5 if scaled else None
    c = 0.07
    mat = a.T @ a + rho * torch.diag(torch.ones(shape[1], dtype=torch.float64) if d is None else d)
    expected = torch.linalg.solve(mat + c * torch.eye(shape[1], dtype=torch.float64), -(a.T @ h) - c * e)
    prepared = solver.prepare(a if solver.needs_dense else _op(a), h, diag=d).set_penalty(c, e)
    delta, _ = solver.solve(prepared, rho)
    assert rel(delta, expected) < 1e-9
    again, _ = solver.solve(prepared, rho)  # a retry reuses the cached factor
    assert rel(again, expected) < 1e-9
