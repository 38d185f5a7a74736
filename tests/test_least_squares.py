"""least_squares: accuracy against SciPy/MINPACK, regimes, result fields, statuses."""

import math

import numpy as np
import pytest
import scipy.optimize
import torch

import gaussnewton as gn
from gaussnewton.testing import catalogue

TOL = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15)


@pytest.mark.parametrize("name", sorted(catalogue.PROBLEMS))
def test_catalogue_at_least_as_accurate_as_scipy_lm(name):
    """With its autodiff Jacobian, LM reaches a cost ≤ SciPy's lm (exact Jacobian) on every problem."""
    prob = catalogue.PROBLEMS[name]
    res = gn.least_squares(prob.fun, prob.x0_tensor(), max_nfev=20000, **TOL)
    assert res.success, res.message
    scipy_cost = catalogue._SCIPY_LM_COST[name]
    assert res.cost <= scipy_cost * (1 + 1e-7) + 1e-20, (res.cost, scipy_cost)
    reached = prob.min_cost is not None and scipy_cost <= prob.min_cost * (1 + 1e-7) + 1e-20
    if reached and prob.x_star is not None and name.startswith("nist_"):
        x_star = torch.tensor(prob.x_star, dtype=torch.float64)
        assert torch.allclose(res.x, x_star, rtol=1e-6, atol=1e-10)  # certified values to 6+ digits


def test_agrees_with_scipy_solution_and_counts():
    prob = catalogue.PROBLEMS["nist_misra1a_start2"]
    res = gn.least_squares(prob.fun, prob.x0_tensor())

    def fun_np(x):
        return prob.fun(torch.as_tensor(x)).numpy()

    def jac_np(x):
        return torch.func.jacrev(prob.fun)(torch.as_tensor(x)).numpy()

    ref = scipy.optimize.least_squares(fun_np, np.array(prob.x0), jac=jac_np, method="lm")
    assert np.allclose(res.x.numpy(), ref.x, rtol=1e-7)
    assert math.isclose(res.cost, ref.cost, rel_tol=1e-9)
    assert res.nfev <= 3 * ref.nfev


def test_linear_problem_solved_in_one_gn_step():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(30, generator=gen, dtype=torch.float64)
    res = gn.least_squares(lambda x: a @ x - b, torch.zeros(5, dtype=torch.float64), method="gn")
    ref = torch.linalg.lstsq(a, b[:, None]).solution.squeeze(1)
    assert torch.allclose(res.x, ref, rtol=1e-12, atol=1e-12)
    assert res.history["accepted"][0] and res.nit <= 2
    first = res.history["cost"][0]
    assert math.isclose(first, res.cost, rel_tol=1e-12)  # optimal after the first step


def test_underdetermined_problem_reaches_zero_residual():
    # n = 5 < p = 20: MINPACK refuses; the kernel form solves it.
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(5, 20, generator=gen, dtype=torch.float64)
    y = torch.randn(5, generator=gen, dtype=torch.float64)
    res = gn.least_squares(lambda x: torch.tanh(a @ x) - 0.5 * torch.tanh(y), torch.zeros(20, dtype=torch.float64))
    assert res.success and res.cost < 1e-20
    res_gn = gn.least_squares(lambda x: torch.tanh(a @ x) - 0.5 * torch.tanh(y), torch.zeros(20, dtype=torch.float64),
                              method="gn")
    assert res_gn.cost < 1e-20
    # undamped GN from 0 on a near-linear problem returns (close to) the minimum-norm solution
    lin = gn.least_squares(lambda x: a @ x - y, torch.zeros(20, dtype=torch.float64), method="gn")
    assert torch.allclose(lin.x, torch.linalg.pinv(a) @ y, atol=1e-10)


@pytest.mark.parametrize("solver", ["normal", "kernel", "cg", "lstsq"])
def test_every_linear_solver_gives_the_same_iterates(solver):
    prob = catalogue.PROBLEMS["nist_misra1a_start2"]
    ref = gn.least_squares(prob.fun, prob.x0_tensor(), solver="normal")
    res = gn.least_squares(prob.fun, prob.x0_tensor(), solver=solver)
    assert res.nfev == ref.nfev
    assert torch.allclose(res.x, ref.x, rtol=1e-8)


def test_full_result_after_one_evaluation_budget():
    """Pins every field after a single trial step (SciPy's test_full_result_single_fev)."""
    t = torch.linspace(0, 1, 10, dtype=torch.float64)
    y = 3 * torch.exp(-2 * t)

    def fun(x):
        return x[0] * torch.exp(-x[1] * t) - y

    res = gn.least_squares(fun, [1.0, 1.0], max_nfev=2)
    assert res.status == 0 and not res.success and res.termination is gn.Termination.MAX_EVALS
    assert res.message.startswith("The maximum number of function evaluations")
    # J at x0, then J at the accepted x (returned in res.jac): two Jacobian evaluations
    assert res.nfev == 2 and res.njev == 2 and res.nit == 1
    assert torch.allclose(res.fun, fun(res.x))
    assert math.isclose(res.cost, 0.5 * float(res.fun @ res.fun), rel_tol=1e-14)
    jac = torch.autograd.functional.jacobian(fun, res.x)
    assert torch.allclose(res.jac, jac, atol=1e-13)
    assert torch.allclose(res.grad, jac.T @ res.fun, atol=1e-13)
    assert math.isclose(res.optimality, float(res.grad.abs().max()), rel_tol=1e-14)
    lengths = {len(v) for v in res.history.values()}
    assert lengths == {1}
    assert set(res.history) >= {"cost", "grad_norm", "damping", "step_norm", "accepted", "time"}


def test_statuses_reachable():
    t = torch.linspace(0, 1, 10, dtype=torch.float64)
    y = 3 * torch.exp(-2 * t) + 0.1 * torch.sin(20 * t)

    def fun(x):
        return x[0] * torch.exp(-x[1] * t) - y

    assert gn.least_squares(fun, [1.0, 1.0], ftol=1e-4, xtol=0, gtol=0).status == 2
    assert gn.least_squares(fun, [1.0, 1.0], ftol=0, xtol=1e-4, gtol=0).status == 3
    assert gn.least_squares(fun, [1.0, 1.0], ftol=0, xtol=0, gtol=1e-3).status == 1
    stopped = gn.least_squares(fun, [1.0, 1.0], callback=lambda info: info.iteration >= 2)
    assert stopped.termination is gn.Termination.CALLBACK and stopped.nit == 2


def test_nonfinite_residual_mid_run_is_rejected_not_returned():
    def fun(x):  # NaN for x[0] > 2: the LM step must be rejected and the damping raised
        r = torch.stack([x[0] - 3.0, x[1] - 1.0])
        return torch.where(x[0] > 2.0, torch.full_like(r, float("nan")), r)

    res = gn.least_squares(fun, [0.0, 0.0], max_nfev=200)
    # the NaN region acts as a wall: rejected trials shrink the step until xtol stops the run
    assert res.termination is gn.Termination.XTOL
    assert res.message.startswith("`xtol` termination condition is satisfied")
    assert math.isfinite(res.cost)
    assert float(res.x[0]) <= 2.0
    assert not all(res.history["accepted"])
    assert all(math.isfinite(c) for c in res.history["cost"])


def test_verbose_table(capsys):
    gn.least_squares(lambda x: x - 1.0, [0.0, 0.0], verbose=2)
    out = capsys.readouterr().out
    assert "Iteration" in out and "Optimality" in out and "termination condition" in out


def test_float32_and_dtype_kept():
    res = gn.least_squares(lambda x: x**2 - 2.0, torch.tensor([1.0], dtype=torch.float32),
                           ftol=1e-6, xtol=1e-6, gtol=1e-6)
    assert res.x.dtype == torch.float32
    assert abs(float(res.x[0]) - math.sqrt(2)) < 1e-5
