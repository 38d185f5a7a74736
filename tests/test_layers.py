"""fit on models with conv, normalization, dropout, embedding, recurrent and residual layers (#11, #14).

The first GN step is compared with a dense float64 reference: J from ``torch.func.jacrev`` over
the whole batch, θ₁ = θ₀ − (JᵀJ/n + ρI)⁻¹Jᵀr/n (α = 1, the paper's units). Layers that couple
samples or mutate state in training mode are refused before the model is touched.
"""

import re

import pytest
import torch
from torch import nn

import gaussnewton as gn
from gaussnewton import GaussNewtonError
from gaussnewton.problems import NetworkProblem

RHO = 0.1


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


class Residual(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return x + self.f(x)


class EmbedLong(nn.Module):  # fit hands X over as float: index with x.long()
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 3)
        self.head = nn.Sequential(nn.Flatten(1), nn.Linear(6, 1), nn.Flatten(0))

    def forward(self, x):
        return self.head(self.emb(x.long()))


def vec_data(n=16, d=4):
    x = torch.randn(n, d, generator=gen(1), dtype=torch.float64)
    return x, torch.sin(x.sum(1))


def seq_data(n=12, t=5, d=3):  # (n, T, d) sequences: more than one dimension per sample
    x = torch.randn(n, t, d, generator=gen(3), dtype=torch.float64)
    return x, torch.tanh(x.sum((1, 2)))


class Recurrent(nn.Module):
    """GRU/LSTM over (n, T, d) (issue 14: failed inside the per-sample vmap), read at the last step."""

    def __init__(self, cell):
        super().__init__()
        self.rnn, self.head = cell(3, 4, batch_first=True), nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1]).squeeze(-1)


def image_data(n=10):
    x = torch.randn(n, 1, 5, 5, generator=gen(2), dtype=torch.float64)
    return x, torch.tanh(x.mean((1, 2, 3)) * 3)


def index_data(n=20):
    x = torch.randint(0, 7, (n, 2), generator=gen(3))
    return x.double(), torch.sin(x[:, 0] - 0.5 * x[:, 1]).double()


def bn_eval():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 1), nn.Flatten(0)).double()
    with torch.no_grad():  # non-trivial running statistics, then frozen
        for _ in range(3):
            model(torch.randn(32, 4, generator=gen(4), dtype=torch.float64) * 2 + 1)
    return model.eval()


MODELS = {
    "conv": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(18, 1),
                                   nn.Flatten(0)), image_data),
    "batchnorm1d_eval": (bn_eval, vec_data),
    "batchnorm2d_eval": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(),
                                               nn.Linear(18, 1), nn.Flatten(0)).eval(), image_data),
    "dropout_eval": (lambda: nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 1),
                                           nn.Flatten(0)).eval(), vec_data),
    "layernorm": (lambda: nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Tanh(), nn.Linear(6, 1),
                                        nn.Flatten(0)), vec_data),
    "groupnorm": (lambda: nn.Sequential(nn.Linear(4, 6), nn.GroupNorm(2, 6), nn.Tanh(), nn.Linear(6, 1),
                                        nn.Flatten(0)), vec_data),
    "embedding": (EmbedLong, index_data),
    "residual_linear": (lambda: nn.Sequential(nn.Linear(4, 5), Residual(nn.Sequential(nn.Tanh(), nn.Linear(5, 5))),
                                              nn.Tanh(), nn.Linear(5, 1), nn.Flatten(0)), vec_data),
    "residual_layernorm": (lambda: nn.Sequential(nn.Linear(4, 5), Residual(nn.Sequential(nn.LayerNorm(5), nn.Tanh(),
                                                                                         nn.Linear(5, 5))),
                                                 nn.Linear(5, 1), nn.Flatten(0)), vec_data),
    "gru": (lambda: Recurrent(nn.GRU), seq_data),
    "lstm": (lambda: Recurrent(nn.LSTM), seq_data),
    "conv_two_outputs": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(18, 2)),
                         lambda: (image_data()[0], torch.stack([image_data()[1], -image_data()[1] ** 2], 1))),
}


def make(name, seed=0):
    torch.manual_seed(seed)
    build, data = MODELS[name]
    return build().double(), *data()


def reference_step(model, x, y, rho):
    """θ₀ − (JᵀJ/n + ρI)⁻¹Jᵀr/n with J the whole-batch jacrev (independent of NetworkProblem)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])
    buffers = dict(model.named_buffers())

    def f(theta):
        parts = torch.split(theta, [s.numel() for s in shapes])
        params = {n: t.view(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        return torch.func.functional_call(model, {**params, **buffers}, (x,)).reshape(-1)

    jac = torch.func.jacrev(f)(theta0)
    r = f(theta0).detach() - y.reshape(-1)
    n, p = x.shape[0], theta0.numel()
    return theta0 - torch.linalg.solve(jac.T @ jac / n + rho * torch.eye(p, dtype=jac.dtype), jac.T @ r / n)


@pytest.mark.parametrize("name", list(MODELS))
def test_first_gn_step_matches_dense_reference(name):
    model, x, y = make(name)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    expected = reference_step(model, x, y, RHO)
    res = gn.fit(model, x, y, method="gn", damping=RHO, steps=1)
    assert torch.allclose(res.params, expected, rtol=1e-9, atol=1e-11)
    for k, v in model.named_buffers():  # eval-mode statistics stay frozen
        assert torch.equal(v, buffers[k]), k


@pytest.mark.parametrize("name", list(MODELS))
def test_lm_lowers_the_loss(name):
    model, x, y = make(name)
    res = gn.fit(model, x, y, method="lm", steps=15)
    assert res.loss < 0.5 * res.initial_loss
    with torch.no_grad():  # the trained parameters are written into the model
        assert res.loss == pytest.approx(0.5 * float(((model(x) - y) ** 2).sum()) / x.shape[0], rel=1e-9)


def test_residual_linear_model_uses_the_structured_jacobian():
    model, x, _ = make("residual_linear")
    prob = NetworkProblem(model, x)
    assert prob.structured
    dense = torch.func.jacrev(lambda t: prob.outputs(t))(prob.get_flat())
    assert torch.allclose(prob.jacobian(prob.get_flat()), dense, rtol=1e-10, atol=1e-12)


def test_embedding_with_integer_inputs_in_network_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 3), nn.Flatten(1), nn.Linear(6, 1), nn.Flatten(0)).double()
    x = index_data()[0].long()
    prob = NetworkProblem(model, x)
    theta = prob.get_flat()
    dense = torch.func.jacrev(lambda t: prob.outputs(t))(theta)
    assert torch.allclose(prob.jacobian(theta), dense, rtol=1e-10, atol=1e-12)


def test_embedding_fed_float_inputs_by_fit_is_refused_with_a_hint():
    model = nn.Sequential(nn.Embedding(7, 3), nn.Flatten(1), nn.Linear(6, 1), nn.Flatten(0)).double()
    x, y = index_data()
    with pytest.raises(GaussNewtonError, match=r"has 0 \(Embedding\), which needs integer indices.*x\.long\(\)"):
        gn.fit(model, x.double(), y, steps=1)


def test_fit_keeps_integer_inputs_for_a_plain_embedding():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 3), nn.Flatten(1), nn.Linear(6, 1), nn.Flatten(0)).double()
    x, y = index_data()
    res = gn.fit(model, x.long(), y, method="lm", steps=15)
    assert res.loss < 0.5 * res.initial_loss
    with torch.no_grad():
        assert res.loss == pytest.approx(0.5 * float(((model(x.long()) - y) ** 2).mean()), rel=1e-10)


class Features(nn.Module):
    def __init__(self, *layers):
        super().__init__()
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x).flatten(1).sum(1)


@pytest.mark.parametrize("layers,x,where", [
    (lambda: [nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Tanh()], vec_data()[0], "features.1 (BatchNorm1d)"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Tanh(), nn.BatchNorm2d(2)], image_data()[0], "features.2 (BatchNorm2d)"),
    (lambda: [nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False)], vec_data()[0],
     "features.1 (BatchNorm1d)"),
])
def test_batch_norm_in_training_mode_is_refused_naming_the_layer(layers, x, where):
    model = Features(*layers()).double()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pattern = (r"`model` has batch normalization in training mode: " + re.escape(where)
               + r"\. .*Call model\.eval\(\) .*nn\.LayerNorm or nn\.GroupNorm")
    with pytest.raises(GaussNewtonError, match=pattern):
        gn.fit(model, x, torch.zeros(x.shape[0], dtype=torch.float64), method="lm", steps=2)
    for k, v in model.state_dict().items():  # refused before any forward: running statistics untouched
        assert torch.equal(v, state[k]), k


def test_instance_norm_tracking_running_stats_in_training_mode_is_refused():
    model = Features(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2, affine=True, track_running_stats=True)).double()
    x = image_data()[0]
    with pytest.raises(GaussNewtonError, match=r"features\.1 \(InstanceNorm2d\).*track_running_stats=False"):
        gn.fit(model, x, torch.zeros(x.shape[0], dtype=torch.float64), steps=1)
    model = Features(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2, affine=True)).double()  # per-sample statistics
    gn.fit(model, x, torch.linspace(-1, 1, x.shape[0], dtype=torch.float64), steps=1)


def test_dropout_in_training_mode_is_refused_naming_the_layer():
    model = Features(nn.Linear(4, 3), nn.Tanh(), nn.Dropout(0.2)).double()
    x, y = vec_data()
    with pytest.raises(GaussNewtonError, match=r"`model` is not deterministic: features\.2 \(Dropout\) is in "
                                               r"training mode; call model\.eval\(\)"):
        gn.fit(model, x, y, steps=1)
    model.features[2].p = 0.0  # an inactive dropout is deterministic
    gn.fit(model, x, y, steps=1)
