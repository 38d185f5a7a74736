"""The structured Linear-layer Jacobian/kernel agrees with per-sample autodiff."""

import pytest
import torch
from torch import nn

import gaussnewton as gn
from gaussnewton.problems import NetworkProblem


def models():
    torch.manual_seed(0)
    return {
        "mlp": gn.MLP(4, width=12, depth=2, train_output_layer=True, seed=0),
        "sequential_bias": nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 5), nn.Softplus(), nn.Linear(5, 1),
                                         nn.Flatten(0)).double(),
        "multi_output": nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 3)).double(),
        # d_in > d_out, no biases: the other branch of mv/rmv and E = a
        "no_bias_wide_in": nn.Sequential(nn.Linear(4, 9, bias=False), nn.Tanh(), nn.Linear(9, 2, bias=False),
                                         nn.Tanh(), nn.Linear(2, 1, bias=False), nn.Flatten(0)).double(),
        # a frozen weight with a trained bias (E = 1) next to a frozen bias with a trained weight
        "frozen_parts": _frozen_parts(),
    }


def _frozen_parts():
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    net[0].weight.requires_grad_(False)
    net[2].bias.requires_grad_(False)
    return net


@pytest.mark.parametrize("name", ["mlp", "sequential_bias", "multi_output", "no_bias_wide_in", "frozen_parts"])
def test_structured_matches_autodiff(name):
    model = models()[name]
    x = torch.randn(9, 4, dtype=torch.float64)
    prob = NetworkProblem(model, x)
    assert prob.structured
    ref_prob = NetworkProblem(model, x, jacobian="autodiff")
    theta = prob.get_flat() + 0.1 * torch.randn(prob.n_params, dtype=torch.float64)
    sj = prob.structured_jacobian(theta)
    jac = ref_prob.jacobian(theta)
    assert torch.allclose(sj.dense(), jac, rtol=1e-12, atol=1e-12)
    assert torch.allclose(sj.kernel(), jac @ jac.T, rtol=1e-11, atol=1e-12)
    v = torch.randn(prob.n_params, dtype=torch.float64)
    u = torch.randn(prob.n_outputs, dtype=torch.float64)
    assert torch.allclose(sj.mv(v), jac @ v, atol=1e-12)
    assert torch.allclose(sj.rmv(u), jac.T @ u, atol=1e-12)
    s = torch.rand(prob.n_outputs, dtype=torch.float64)
    scaled = sj.scale_rows(s)
    assert torch.allclose(scaled.kernel(), (s[:, None] * jac) @ (s[:, None] * jac).T, atol=1e-12)
    assert torch.allclose(scaled.column_sq_norms(), ((s[:, None] * jac) ** 2).sum(0), atol=1e-12)
    assert torch.allclose(scaled.mv(v), s * (jac @ v), atol=1e-12)
    assert torch.allclose(scaled.rmv(u), jac.T @ (s * u), atol=1e-12)
    assert torch.allclose(scaled.dense(), s[:, None] * jac, atol=1e-12)
    k = prob.n_outputs // x.shape[0]
    assert sj.rows_per_sample == k
    if k > 1:  # per-sample (k, k) blocks (the cross-entropy GGN factor) keep the factored form
        blocks = torch.randn(x.shape[0], k, k, dtype=torch.float64)
        ref = torch.bmm(blocks, (s[:, None] * jac).reshape(x.shape[0], k, -1)).reshape(prob.n_outputs, -1)
        mixed = scaled.mix_rows(blocks)
        assert torch.allclose(mixed.dense(), ref, atol=1e-12)
        assert torch.allclose(mixed.kernel(), ref @ ref.T, atol=1e-11)
        assert torch.allclose(mixed.column_sq_norms(), (ref**2).sum(0), atol=1e-12)
        assert torch.allclose(mixed.mv(v), ref @ v, atol=1e-12)
        assert torch.allclose(mixed.rmv(u), ref.T @ u, atol=1e-12)
        with pytest.raises(ValueError, match="do not match"):
            sj.mix_rows(blocks[:, :1, :1])


class Shared(nn.Module):  # one Linear used twice: not eligible
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3).double()

    def forward(self, x):
        return self.lin(torch.tanh(self.lin(x))).sum(1)


class Coupled(nn.Module):  # samples interact through a batch statistic: structured rows would be wrong
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1).double()

    def forward(self, x):
        z = self.lin(x).squeeze(-1)
        return z - z.mean()


@pytest.mark.parametrize("cls", [Shared, Coupled])
def test_ineligible_models_fall_back_to_autodiff(cls):
    x = torch.randn(6, 3, dtype=torch.float64)
    prob = NetworkProblem(cls(), x)
    assert not prob.structured
    with pytest.raises(gn.GaussNewtonError, match="does not qualify"):
        NetworkProblem(cls(), x, jacobian="structured")


def test_cross_entropy_fit_equal_with_and_without_structure(monkeypatch):
    """The GGN of softmax cross-entropy from the mixed factors equals the autodiff GGN.

    Also matrix-free: CG on the factored products takes the steps of the direct solve (weight decay
    keeps the rank-deficient GGN system well posed, so CG's answer does not depend on rounding).
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, dtype=torch.float64, generator=gen)
    labels = torch.randint(0, 3, (30,), generator=gen)

    def run(solver):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
        return gn.fit(net, x, labels, loss="cross_entropy", method="lm", steps=6, solver=solver, weight_decay=1e-2)

    structured, cg = run("normal"), run("cg")
    monkeypatch.setattr(NetworkProblem, "_structured_matches", lambda self, theta: False)
    autodiff = run("normal")
    for other in (autodiff, cg):
        assert structured.history["loss"] == pytest.approx(other.history["loss"], rel=1e-9)
        assert torch.allclose(structured.params, other.params, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("width", [60, 3])  # kernel path (p > n) and normal path (p < n)
def test_fit_iterates_equal_with_and_without_structure(width, monkeypatch):
    X, y = gn.datasets.single_index(20, 4, seed=0)
    runs = []
    for structured in (True, False):
        net = gn.MLP(4, width=width, alpha=3.0, seed=0)
        if not structured:
            monkeypatch.setattr(NetworkProblem, "_structured_matches", lambda self, theta: False)
        res = gn.fit(net, X, y, method="gn", damping=gn.damping.Adaptive(1.0) if width > 10 else 0.0, lr=0.5,
                     steps=5, loss="pseudo_huber", track_kernel=True)
        runs.append(res)
    assert torch.allclose(runs[0].params, runs[1].params, rtol=1e-9, atol=1e-12)
    assert runs[0].history["lambda_min"] == pytest.approx(runs[1].history["lambda_min"], rel=1e-8)


@pytest.mark.parametrize("basis_entries", [2**24, 12])  # one block, and blocks of 2 covectors (no N×N identity)
def test_coupled_model_jacobian_is_exact(basis_entries, monkeypatch):
    from gaussnewton.problems import network

    monkeypatch.setattr(network, "_BASIS_ENTRIES", basis_entries)
    x = torch.randn(6, 3, dtype=torch.float64)
    model = Coupled()
    prob = NetworkProblem(model, x)
    assert not prob.per_sample
    theta = prob.get_flat()
    dense = torch.autograd.functional.jacobian(lambda t: prob.outputs(t), theta)
    assert torch.allclose(prob.jacobian(theta), dense, atol=1e-12)


def test_float64_kernel_from_float32_factors():
    from gaussnewton.linsolve import KernelSolver

    model = models()["sequential_bias"].float()
    x = torch.randn(9, 4)
    sj = NetworkProblem(model, x).structured_jacobian(NetworkProblem(model, x).get_flat())
    assert sj.dtype == torch.float32
    h = torch.randn(9)
    solver = KernelSolver(gram_dtype=torch.float64)
    prep = solver.prepare(sj, h)
    j64 = sj.to(torch.float64).dense()  # J of the float32 factors, formed in float64
    assert prep.gram.dtype == torch.float64
    assert torch.allclose(prep.gram, j64 @ j64.T, rtol=1e-13, atol=1e-13)
    delta, _ = solver.solve(prep, 1e-2)
    ref = -j64.T @ torch.linalg.solve(j64 @ j64.T + 1e-2 * torch.eye(9, dtype=torch.float64), h.double())
    assert delta.dtype == torch.float64 and torch.allclose(delta, ref, rtol=1e-10, atol=1e-12)
