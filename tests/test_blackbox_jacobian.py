"""Black-box Jacobian paths (linearized forward lanes, reverse lanes, jvp fallback, per-row) vs dense autograd."""

import pytest
import torch

import gaussnewton as gn
from gaussnewton._errors import GaussNewtonError
from gaussnewton.problems import FunctionProblem, _jacobian, rowwise
from gaussnewton.problems._jacobian import BlackBoxJacobian, cache_bytes_per_core, plan_lanes, written_bytes

D, H = 3, 5  # one tanh layer: p = D·H + 2H = 25


def layer(theta, x, y):
    w, b, v = theta[: D * H].reshape(D, H), theta[D * H : D * H + H], theta[D * H + H :]
    return torch.tanh(x @ w + b) @ v - y


def two_outputs(theta, x, y):  # k = 2 residuals per row
    r = layer(theta, x, y)
    return torch.stack([r, torch.sin(r) * theta[0]], dim=-1)


def data(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=gen, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    theta = torch.randn(D * H + 2 * H, generator=gen, dtype=torch.float64)
    return x, y, theta


@pytest.mark.parametrize("n,mode", [(60, "forward"), (8, "reverse")])  # N ≥ p and N < p
def test_lane_jacobian_matches_dense(n, mode, monkeypatch):
    monkeypatch.setattr(_jacobian, "LINEARIZE_MIN_ENTRIES", 0)  # linearized lanes even at this small size
    x, y, theta = data(n)
    prob = FunctionProblem(lambda t: layer(t, x, y), theta)
    jac = prob.jacobian(theta)
    dense = torch.autograd.functional.jacobian(lambda t: layer(t, x, y), theta)
    assert prob._lanes.plan.mode == mode
    assert prob._lanes.linearize_ok
    torch.testing.assert_close(jac, dense, rtol=1e-12, atol=1e-12)
    moved = theta + 0.3  # the plan is kept; the lanes are rebuilt at the new point
    dense2 = torch.autograd.functional.jacobian(lambda t: layer(t, x, y), moved)
    torch.testing.assert_close(prob.jacobian(moved), dense2, rtol=1e-12, atol=1e-12)


def test_jvp_fallback_when_linearize_cannot_trace():
    x, y, theta = data(40)

    def branchy(t):  # data-dependent Python control flow: make_fx (linearize) refuses it, jvp does not
        r = layer(t, x, y)
        return r * 2.0 if float(r.sum()) > 0 else r * 3.0

    prob = FunctionProblem(branchy, theta)
    jac = prob.jacobian(theta)
    assert not prob._lanes.linearize_ok
    assert prob._lanes.plan.mode == "forward"
    torch.testing.assert_close(jac, torch.autograd.functional.jacobian(branchy, theta), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk_budget", [1.0, 2e3])  # one lane per call, and a few
def test_chunked_lanes_equal_dense(chunk_budget):
    x, y, theta = data(60)
    lanes = BlackBoxJacobian(lambda t: layer(t, x, y), 60, theta.numel(), memory_budget=chunk_budget)
    jac = lanes(theta)
    assert lanes.plan is not None and lanes.plan.chunk is not None and lanes.plan.chunk < theta.numel()
    dense = torch.autograd.functional.jacobian(lambda t: layer(t, x, y), theta)
    torch.testing.assert_close(jac, dense, rtol=1e-12, atol=1e-12)


def test_plan_follows_the_byte_model():
    # forward iff p·S_f ≤ κ·N·S_r + S_0 (κ = 2); chunk ⌊cache / S⌋ within the budget
    assert plan_lanes(100, 50, 10, 10, 0, cache_bytes=100, memory_budget=1e9).mode == "forward"
    assert plan_lanes(30, 50, 10, 10, 0, cache_bytes=100, memory_budget=1e9).mode == "forward"  # 500 ≤ 600
    assert plan_lanes(20, 50, 10, 10, 0, cache_bytes=100, memory_budget=1e9).mode == "reverse"  # 500 > 400
    assert plan_lanes(20, 50, 10, 10, 0, cache_bytes=100, memory_budget=1e9).chunk == 10
    assert plan_lanes(40, 50, 10, 2, 0, cache_bytes=100, memory_budget=1e9).mode == "reverse"  # N < p either way
    assert plan_lanes(40, 50, 2, 10, 0, cache_bytes=100, memory_budget=1e9).mode == "forward"  # N < p, cheap tangents
    assert plan_lanes(100, 50, 10, 10, 0, cache_bytes=float("inf"), memory_budget=1e9).chunk is None
    assert plan_lanes(100, 50, 10, 10, 0, cache_bytes=float("inf"), memory_budget=30).chunk == 3
    assert plan_lanes(100, 50, 10, 10, 0, cache_bytes=1, memory_budget=1e9).chunk == 1
    assert cache_bytes_per_core() > 0


def test_written_bytes_counts_outputs_not_views():
    a = torch.zeros(100, dtype=torch.float64)
    assert written_bytes(lambda t: t.view(10, 10).T, a) == 0
    assert written_bytes(lambda t: (t + 1) * 2, a) == 2 * 800


@pytest.mark.parametrize("n", [60, 8])  # N ≥ p and N < p
@pytest.mark.parametrize("fun", [layer, two_outputs])
def test_rowwise_jacobian_matches_dense(n, fun):
    x, y, theta = data(n)
    marked = rowwise(fun, x, y)
    prob = FunctionProblem(marked, theta)
    dense = torch.autograd.functional.jacobian(lambda t: fun(t, x, y).reshape(-1), theta)
    torch.testing.assert_close(marked(theta), fun(theta, x, y).reshape(-1))
    torch.testing.assert_close(prob.jacobian(theta), dense, rtol=1e-12, atol=1e-12)


def test_rowwise_more_outputs_per_row_than_parameters_uses_forward_rows():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    theta = torch.randn(2, generator=gen, dtype=torch.float64)

    def fun(t, x):  # k = 4 > p = 2
        return torch.sin(t[0] * x) + t[1] ** 2 * x

    prob = FunctionProblem(rowwise(fun, x), theta)
    dense = torch.autograd.functional.jacobian(lambda t: fun(t, x).reshape(-1), theta)
    torch.testing.assert_close(prob.jacobian(theta), dense, rtol=1e-12, atol=1e-12)


def test_rowwise_refuses_a_function_that_mixes_rows():
    x, y, theta = data(20)
    coupled = rowwise(lambda t, x, y: layer(t, x, y) - layer(t, x, y).mean(), x, y)
    with pytest.raises(GaussNewtonError, match=r"`rowwise`: evaluating the rows one at a time"):
        coupled.jacobian(theta)


def test_rowwise_argument_errors():
    x, y, _ = data(5)
    with pytest.raises(GaussNewtonError, match=r"at least one data tensor"):
        rowwise(layer)
    with pytest.raises(GaussNewtonError, match=r"same number of rows; got \[\(5, 3\), \(4,\)\]"):
        rowwise(layer, x, y[:4])


def test_least_squares_with_rowwise_matches_plain_function():
    x, y, theta = data(80)
    plain = gn.least_squares(lambda t: layer(t, x, y), x0=theta.clone(), method="lm", max_nfev=30)
    marked = gn.least_squares(rowwise(layer, x, y), x0=theta.clone(), method="lm", max_nfev=30)
    assert marked.nfev == plain.nfev
    torch.testing.assert_close(torch.as_tensor(marked.x), torch.as_tensor(plain.x), rtol=1e-7, atol=1e-9)


def test_linearized_lanes_are_checked_against_jvp(monkeypatch):
    """A trace burns in values that leave torch (.numpy()); the vmapped-jvp check catches it (no silent zero J)."""
    monkeypatch.setattr(_jacobian, "LINEARIZE_MIN_ENTRIES", 0)
    x, y, theta = data(60)  # N ≥ p: forward lanes

    def escapes(t):  # .numpy() is a constant to a trace, an error to vmapped jvp lanes
        return layer(t, x, y) * float(t[:1].detach().numpy()[0])

    with pytest.raises(GaussNewtonError, match=r"Automatic differentiation of `fun` failed.*data pointer"):
        FunctionProblem(escapes, theta).jacobian(theta)
    with pytest.raises(GaussNewtonError, match=r"Automatic differentiation of `fun` failed"):
        gn.least_squares(escapes, theta)


def test_small_problems_use_plain_jvp_lanes():
    x, y, theta = data(60)
    prob = FunctionProblem(lambda t: layer(t, x, y), theta)
    dense = torch.autograd.functional.jacobian(lambda t: layer(t, x, y), theta)
    torch.testing.assert_close(prob.jacobian(theta), dense, rtol=1e-12, atol=1e-12)
    assert not prob._lanes.linearize_ok  # N·p below LINEARIZE_MIN_ENTRIES: no trace
