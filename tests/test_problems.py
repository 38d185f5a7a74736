"""Jacobian, JVP and VJP agree with finite differences and dense autograd."""

import pytest
import torch
from torch import nn

import gaussnewton as gn
from gaussnewton.problems import FunctionProblem, NetworkProblem


def residual(x):
    t = torch.linspace(0, 1, 7, dtype=x.dtype)
    return torch.cat([x[0] * torch.exp(-x[1] * t) - torch.sin(x[2] * t), x[:3] ** 2 - x[3:6]])


def wide_residual(x):  # n = 4 < p = 9
    return torch.stack([x.sum() ** 2, (x * x).sum(), torch.tanh(x[:3]).prod(), (x[:8:2] * x[1::2]).sum()])


def central_difference(fun, x, eps=1e-6):
    cols = []
    for k in range(x.numel()):
        e = torch.zeros_like(x)
        e[k] = eps
        cols.append((fun(x + e) - fun(x - e)) / (2 * eps))
    return torch.stack(cols, dim=1)


@pytest.mark.parametrize("fun,p", [(residual, 6), (wide_residual, 9)])
def test_function_jacobian_vs_fd_and_autograd(fun, p):
    x = torch.randn(p, dtype=torch.float64)
    prob = FunctionProblem(fun, x)
    jac = prob.jacobian(x)
    dense = torch.autograd.functional.jacobian(fun, x)
    assert torch.allclose(jac, dense, rtol=1e-12, atol=1e-12)
    assert torch.allclose(jac, central_difference(fun, x), rtol=1e-6, atol=1e-7)
    v, u = torch.randn(p, dtype=torch.float64), torch.randn(prob.n_outputs, dtype=torch.float64)
    assert torch.allclose(prob.jvp(x, v), jac @ v, rtol=1e-12, atol=1e-12)
    assert torch.allclose(prob.vjp(x, u), jac.T @ u, rtol=1e-12, atol=1e-12)
    op = prob.operator(x)
    assert torch.allclose(op.mv(v), jac @ v, atol=1e-12)
    assert torch.allclose(op.rmv(u), jac.T @ u, atol=1e-12)
    # adjointness ⟨Jv, u⟩ = ⟨v, Jᵀu⟩
    assert torch.isclose(op.mv(v) @ u, v @ op.rmv(u), rtol=1e-12)


def test_chunked_jacobian_equals_unchunked():
    x = torch.randn(6, dtype=torch.float64)
    full = FunctionProblem(residual, x).jacobian(x)
    tiny = FunctionProblem(residual, x, memory_budget=64).jacobian(x)  # forces chunk size 1
    assert torch.equal(full, tiny)


def test_user_jacobian_is_used_and_checked():
    x = torch.randn(6, dtype=torch.float64)
    calls = []

    def jac(z):
        calls.append(1)
        return torch.autograd.functional.jacobian(residual, z).numpy()

    prob = FunctionProblem(residual, x, jac=jac)
    assert torch.allclose(prob.jacobian(x), torch.autograd.functional.jacobian(residual, x))
    assert calls


@pytest.mark.parametrize("n", [300, 40])  # forward mode (n ≥ p) and reverse mode (n < p)
def test_black_box_batch_residual_jacobian(n):
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(n, 10, generator=gen, dtype=torch.float64)
    target = torch.randn(n, dtype=torch.float64)

    def fun(x):
        w = x.reshape(10, 10)
        return torch.tanh(data @ w.T).sum(1) / 10 - target

    x = torch.randn(100, dtype=torch.float64, generator=gen)
    prob = FunctionProblem(fun, x)
    jac = prob.jacobian(x)
    assert jac.shape == (n, 100)
    assert torch.allclose(jac, torch.autograd.functional.jacobian(fun, x), atol=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_network_jacobian_vs_autograd(k):
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, k)).double()
    x = torch.randn(10, 4, dtype=torch.float64)
    prob = NetworkProblem(model, x)
    theta = prob.get_flat()

    def flat_out(t):
        return prob.outputs(t).reshape(-1)

    dense = torch.autograd.functional.jacobian(flat_out, theta)
    jac = prob.jacobian(theta)
    assert jac.shape == (10 * k, prob.n_params)
    assert torch.allclose(jac, dense, rtol=1e-12, atol=1e-12)
    assert torch.allclose(jac, central_difference(flat_out, theta), atol=1e-7)


def test_network_param_subset_and_roundtrip():
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    prob = NetworkProblem(model, x, params=[model[2].weight, model[2].bias])
    assert prob.n_params == 6
    theta = prob.get_flat() + 1.0
    prob.set_flat(theta)
    assert torch.equal(prob.get_flat(), theta)
    assert torch.allclose(model[2].bias, theta[-1:])


def test_mlp_structure_and_recentering():
    net = gn.MLP(5, width=30, alpha=7.0, seed=3)
    x = torch.randn(11, 5, dtype=torch.float64)
    assert torch.allclose(net(x), torch.zeros(11, dtype=torch.float64), atol=1e-14)  # u_0 = 0 for every α
    prob = NetworkProblem(net, x)
    assert prob.n_params == 30 * 5  # output layer frozen: p = m·d
    assert set(net.output.weight.detach().abs().reshape(-1).tolist()) == {1.0}
    w = net.hidden[0].weight.detach()
    assert abs(float(w.mean())) < 0.2 and abs(float(w.std()) - 1) < 0.2
    deep = gn.MLP(5, width=10, depth=3, train_output_layer=True, seed=0)
    assert NetworkProblem(deep, x).n_params == 10 * 5 + 2 * 100 + 10


def test_activation_constants_tanh():
    c = gn.models.activation_constants("tanh")
    assert abs(c["c_sigma"] - 1 / 0.3942) < 0.01
    assert abs(c["sigma1"] - 1) < 1e-6
    assert abs(c["sigma2"] - 4 / (3 * 3**0.5)) < 1e-3
