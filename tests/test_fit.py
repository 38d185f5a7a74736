"""fit: one GN step equals the paper's formula; GGN losses; regimes; GD; history."""

import math
import re

import pytest
import torch
from torch import nn

import gaussnewton as gn
from gaussnewton.problems import NetworkProblem


def data(n=20, d=3, seed=0):
    return gn.datasets.single_index(n, d, seed=seed)


@pytest.mark.parametrize("width,rho", [(40, 1e-2), (2, 0.0)])  # p = 120 > n and p = 6 < n
def test_one_gn_step_matches_paper_formula(width, rho):
    """θ_1 = θ_0 − (η/(αn)) J_Fᵀ (K + ρI)^{-1} r  (eq. 13 in kernel form), K = J_F J_Fᵀ/n."""
    X, y = data()
    alpha, eta = 3.0, 0.7
    net = gn.MLP(3, width=width, alpha=alpha, seed=0)
    prob = NetworkProblem(net, X)
    theta0 = prob.get_flat()
    jf = prob.jacobian(theta0) / alpha
    n, p = jf.shape
    r = net(X).detach() - y
    if p > n:
        k = jf @ jf.T / n
        expected = theta0 - eta / (alpha * n) * jf.T @ torch.linalg.solve(k + rho * torch.eye(n, dtype=k.dtype), r)
    else:
        g = jf.T @ jf / n
        expected = theta0 - eta / (alpha * n) * torch.linalg.solve(g + rho * torch.eye(p, dtype=g.dtype), jf.T @ r)
    res = gn.fit(net, X, y, method="gn", damping=rho, lr=eta, steps=1)
    assert torch.allclose(res.params, expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(prob.get_flat(), expected)  # written into the model


def test_track_kernel_reports_convention_a_eigenvalues():
    X, y = data()
    alpha = 2.0
    net = gn.MLP(3, width=40, alpha=alpha, seed=0)
    prob = NetworkProblem(net, X)
    jf = prob.jacobian(prob.get_flat()) / alpha
    w = torch.linalg.eigvalsh(jf @ jf.T / X.shape[0])
    res = gn.fit(net, X, y, method="gn", damping=gn.damping.Adaptive(1.0), steps=1, track_kernel=True)
    assert res.history["lambda_min"][0] == pytest.approx(float(w[0]), rel=1e-8)
    assert res.history["lambda_max"][0] == pytest.approx(float(w[-1]), rel=1e-8)
    assert res.history["damping"][0] == pytest.approx(float(w[0]), rel=1e-8)


def test_overparameterized_gn_converges_geometrically_at_predicted_rate():
    X, y = data(n=20)
    net = gn.MLP(3, width=200, alpha=20.0, seed=0)
    kappa = 1.0
    res = gn.fit(net, X, y, method="gn", damping=gn.damping.Adaptive(kappa), lr=1.0, steps=12)
    losses = [res.initial_loss, *res.history["loss"]]
    # lazy quadratic case: slowest-mode factor per step (1 − η·λ/(λ+ρ))² = (κ/(1+κ))² = 1/4
    ratios = [b / a for a, b in zip(losses[:6], losses[1:7], strict=True)]
    assert max(ratios) < 0.3
    assert res.loss < 1e-6 * res.initial_loss


def test_underparameterized_gn_reaches_riemannian_stationarity():
    X, y = gn.datasets.california_housing(200, seed=0)
    net = gn.MLP(8, width=3, alpha=4.0, seed=0)  # p = 24 < n = 200
    res = gn.fit(net, X, y, method="gn", damping=None, lr=0.5, steps=60)
    prob = NetworkProblem(net, X)
    jf = prob.jacobian(prob.get_flat())
    r = net(X).detach() - y
    proj_r = jf @ torch.linalg.lstsq(jf, r[:, None]).solution.squeeze(1)  # P r, P = J(JᵀJ)^{-1}Jᵀ
    assert float(proj_r.norm() / r.norm()) < 1e-6
    assert res.loss < res.initial_loss


def test_gd_is_gradient_flow_euler_step():
    X, y = data()
    alpha, lr = 2.0, 0.3
    net = gn.MLP(3, width=10, alpha=alpha, seed=0)
    theta0 = NetworkProblem(net, X).get_flat()
    loss = 0.5 * ((net(X) - y) ** 2).mean()
    grads = torch.autograd.grad(loss, [net.hidden[0].weight])
    expected = theta0 - lr / alpha**2 * grads[0].reshape(-1)
    res = gn.fit(net, X, y, method="gd", lr=lr, steps=1, dynamics="euler")
    assert torch.allclose(res.params, expected, atol=1e-13)
    assert res.history["t"] == [lr]


@pytest.mark.parametrize("loss", ["pseudo_huber", "log_cosh", "logistic"])
def test_generalized_gn_step_matches_dense_ggn(loss):
    X, y = data(n=15)
    if loss == "logistic":
        y = (y > 0).double()
    for width in (40, 2):  # kernel (p > n) and normal (p < n) forms
        net = gn.MLP(3, width=width, alpha=1.0, seed=0)
        prob = NetworkProblem(net, X)
        theta0 = prob.get_flat()
        jac = prob.jacobian(theta0)
        loss_fn = gn.losses.get_loss(loss)
        u = net(X).detach()
        g = loss_fn.grad(u, y)
        lam = torch.func.vmap(torch.func.grad(torch.func.grad(lambda a, b, f=loss_fn: f.value(a, b))))(u, y)
        n, p = jac.shape
        rho = 1e-2
        ggn = jac.T @ (lam[:, None] * jac) / n + rho * torch.eye(p, dtype=jac.dtype)
        expected = theta0 - torch.linalg.solve(ggn, jac.T @ g / n)
        res = gn.fit(net, X, y, method="gn", damping=rho, loss=loss, steps=1)
        assert torch.allclose(res.params, expected, rtol=1e-9, atol=1e-11), (loss, width)


def test_cross_entropy_ggn_on_multiclass_model():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    labels = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    prob = NetworkProblem(model, X)
    theta0 = prob.get_flat()
    jac = prob.jacobian(theta0).reshape(30, 3, -1)
    p_ = torch.softmax(model(X).detach(), dim=1)
    hess = torch.diag_embed(p_) - p_[:, :, None] * p_[:, None, :]
    ggn = torch.einsum("nkp,nkl,nlq->pq", jac, hess, jac) / 30 + 0.1 * torch.eye(theta0.numel(), dtype=torch.float64)
    g = (p_ - torch.nn.functional.one_hot(labels, 3)).reshape(-1)
    expected = theta0 - torch.linalg.solve(ggn, jac.reshape(90, -1).T @ g / 30)
    res = gn.fit(model, X, labels, method="gn", damping=0.1, loss="cross_entropy", steps=1)
    assert torch.allclose(res.params, expected, rtol=1e-9, atol=1e-11)
    res = gn.fit(model, X, labels, method="lm", loss="cross_entropy", steps=30)
    acc = float((model(X).argmax(1) == labels).double().mean())
    assert acc > 0.9 and res.loss < 0.3


def test_lm_on_user_sequential_model_and_history_lengths():
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(64, 1, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.sinc(3 * X[:, 0])
    model = nn.Sequential(nn.Linear(1, 10), nn.Tanh(), nn.Linear(10, 1), nn.Flatten(0)).double()
    res = gn.fit(model, X, y, method="lm", steps=100)
    assert res.loss < 1e-4
    assert len({len(v) for v in res.history.values()}) == 1
    assert res.steps == len(res.history["loss"])


def test_target_loss_and_callback_stop():
    X, y = data()
    res = gn.fit(gn.MLP(3, width=40, alpha=4.0, seed=0), X, y, steps=50, target_loss=1e-3)
    assert res.termination is gn.Termination.TARGET and res.loss <= 1e-3
    res = gn.fit(gn.MLP(3, width=40, alpha=4.0, seed=0), X, y, steps=50, callback=lambda info: info.iteration == 3)
    assert res.termination is gn.Termination.CALLBACK and res.steps == 3


def test_nonfinite_mid_run_keeps_last_good_params():
    X, y = data()

    class Fragile(nn.Module):  # NaN output once a weight leaves [-5, 5] (an overflow stand-in)
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1).double()

        def forward(self, x):
            bad = self.lin.weight.abs().max() > 5
            return self.lin(x).squeeze(-1) + torch.where(bad, float("nan"), 0.0)

    Exp = Fragile
    # an absurd step leaves the finite region; the run must stop with the last finite parameters
    for method in ("gd", "gn"):
        net = Exp()
        res = gn.fit(net, X, y, method=method, lr=1e3, steps=20, damping=0.0 if method == "gn" else None)
        assert res.termination is gn.Termination.NONFINITE, method
        assert re.match(r"The residuals, loss or Jacobian became non-finite \(NaN/Inf\), or the Gram matrix .*; "
                        r"stopped and kept the last parameters with a finite cost", res.message)
        assert torch.isfinite(res.params).all() and math.isfinite(res.loss)
        assert math.isfinite(0.5 * float(((net(X).detach() - y) ** 2).mean()))


def test_model_raising_mid_run_leaves_last_accepted_params_in_model():
    """A forward that raises on step 3 (a data loader dies) propagates; the model holds θ after 2 steps."""
    X, y = data()
    ref = gn.fit(gn.MLP(3, width=40, alpha=4.0, seed=0), X, y, method="gn", steps=2)

    class Dies(gn.MLP):
        armed = False

        def forward(self, x):
            if self.armed:
                raise RuntimeError("data loader died")
            return super().forward(x)

    net = Dies(3, width=40, alpha=4.0, seed=0)

    def arm(info):
        net.armed = info.iteration == 2

    with pytest.raises(RuntimeError, match="data loader died"):
        gn.fit(net, X, y, method="gn", steps=5, callback=arm)
    assert torch.equal(torch.cat([q.detach().reshape(-1) for q in net.parameters() if q.requires_grad]), ref.params)


def test_lm_on_a_linear_model_converges_with_a_success_status():
    """At the optimum no step lowers the cost and ρ explodes: STATIONARY (success), not DAMPING_MAX."""
    X, y = data(n=40)
    res = gn.fit(nn.Linear(3, 1).double(), X, y, method="lm", steps=200)
    a = torch.cat([X, torch.ones(40, 1, dtype=torch.float64)], dim=1)
    best = 0.5 * float(((a @ torch.linalg.lstsq(a, y).solution - y) ** 2).mean())
    assert res.termination is gn.Termination.STATIONARY and res.success and res.steps < 200
    assert res.loss == pytest.approx(best, rel=1e-12)
    assert re.match(r"No step decreases the cost further: .* a minimum to working precision", res.message)
    flipped = gn.least_squares(lambda t: a @ t - y, torch.zeros(4, dtype=torch.float64), method="lm",
                               jac=lambda t: -a)  # a wrong Jacobian predicts a reduction: still a failure
    assert flipped.status == gn.Termination.DAMPING_MAX.value and not flipped.success


def test_default_fit_never_raises_the_loss():  # issue 14, item 7
    """p = 24 > n = 20, α = 1 (not lazy): GN-DT + Adaptive ends at 1.49 from 0.20; the default is LM."""
    X, y = gn.datasets.single_index(20, 3, seed=0)
    paper = gn.fit(gn.MLP(3, width=8, alpha=1.0, seed=0), X, y, method="gn", steps=30)
    assert paper.loss > 5 * paper.initial_loss  # the paper's GN-DT, by name, still takes every step ...
    assert paper.termination is gn.Termination.LOSS_INCREASED and not paper.success  # ... and says so
    assert re.match(r"Every step was taken .* the final cost is above the initial cost", paper.message)
    res = gn.fit(gn.MLP(3, width=8, alpha=1.0, seed=0), X, y, steps=30)
    assert res.history["loss"] == sorted(res.history["loss"], reverse=True)  # monotone
    assert res.loss < 1e-20 and res.success
    halving = gn.fit(gn.MLP(3, width=8, alpha=1.0, seed=0), X, y, method="gn_halving", steps=30)
    assert halving.loss < halving.initial_loss and halving.history["loss"] == sorted(halving.history["loss"],
                                                                                       reverse=True)


def test_default_method_follows_the_damping():
    """No method named: a paper schedule or a number means GN-DT with it, a trust-region rule LM."""
    X, y = gn.datasets.single_index(30, 3, seed=1)
    ref = gn.fit(gn.MLP(3, width=20, alpha=4.0, seed=0), X, y, method="gn", damping=0.1, steps=5)
    res = gn.fit(gn.MLP(3, width=20, alpha=4.0, seed=0), X, y, damping=0.1, steps=5)
    assert res.history["loss"] == ref.history["loss"]
    euler = gn.fit(gn.MLP(3, width=20, alpha=4.0, seed=0), X, y, dynamics="euler", lr=0.5, steps=3)
    assert euler.history["loss"] == gn.fit(gn.MLP(3, width=20, alpha=4.0, seed=0), X, y, method="gn",
                                           dynamics="euler", lr=0.5, steps=3).history["loss"]  # a flow: GN
    lm = gn.fit(gn.MLP(3, width=20, alpha=4.0, seed=0), X, y, damping="marquardt", steps=5)
    assert lm.history["loss"] == gn.fit(gn.MLP(3, width=20, alpha=4.0, seed=0), X, y, method="lm",
                                        damping="marquardt", steps=5).history["loss"]


def test_lm_to_the_rounding_floor_is_a_success():  # issue 14, item 9 (zero-residual fit)
    """A zero-residual fit ends at cost ~1e-32 where rounding denies every step: STATIONARY."""
    X, y = gn.datasets.single_index(20, 3, seed=2)
    res = gn.fit(gn.MLP(3, width=8, alpha=1.0, seed=2), X, y, method="lm", steps=100)
    assert res.loss < 1e-28 and res.termination is gn.Termination.STATIONARY and res.success


@pytest.mark.parametrize("kw", [dict(method="gn", damping="adaptive"), dict(track_kernel=True),
                                dict(method="gn", damping="adaptive", solver="cg")])
def test_a_gram_matrix_that_overflows_ends_with_a_status(kw):  # issue 14: eigh LinAlgError escaped
    """Outputs O(1) but J ~ 1e160: JᵀJ = inf, eigh/eigsh fail; NONFINITE with θ₀ kept, no exception."""
    X = torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1e160
    y = torch.linspace(-1, 1, 10, dtype=torch.float64)
    net = nn.Linear(3, 1).double()
    with torch.no_grad():
        net.weight.mul_(1e-170)
    theta0 = torch.cat([net.weight.detach().reshape(-1), net.bias.detach()])
    res = gn.fit(net, X, y, steps=3, **kw)
    assert res.termination is gn.Termination.NONFINITE and not res.success
    assert torch.equal(res.params, theta0) and math.isfinite(res.loss)
    assert "JᵀJ overflowed" in res.message


def test_same_seed_same_history():
    X, y = data()
    runs = [gn.fit(gn.MLP(3, width=30, alpha=2.0, seed=5), X, y, method="lm", steps=10).history for _ in range(2)]
    for key in ("loss", "damping", "step_norm", "accepted"):
        assert runs[0][key] == runs[1][key]


def test_fit_verbose_table(capsys):
    X, y = data()
    gn.fit(gn.MLP(3, width=20, seed=0), X, y, method="lm", steps=3, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["Iteration", "nfev", "Cost"]
    assert len(out) == 1 + 3 + 1 and "Steps 3" in out[-1]


def test_float32_model_with_float64_gram():
    from gaussnewton.linsolve import KernelSolver, NormalSolver

    X, y = data(n=20)
    for width, solver in ((40, KernelSolver(gram_dtype=torch.float64)), (2, NormalSolver(gram_dtype=torch.float64))):
        ref = gn.fit(gn.MLP(3, width=width, alpha=2.0, seed=0), X, y, method="lm", steps=5)
        net = gn.MLP(3, width=width, alpha=2.0, seed=0, dtype=torch.float32)
        res = gn.fit(net, X.float(), y.float(), method="lm", steps=5, solver=solver)
        assert res.params.dtype == torch.float32
        assert abs(res.loss - ref.loss) <= 1e-3 * ref.initial_loss
