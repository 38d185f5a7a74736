"""Weight decay (exact Tikhonov term) and validation early stopping, against dense references."""

import numpy as np
import pytest
import scipy.optimize
import torch

import gaussnewton as gn
from gaussnewton.problems import NetworkProblem


def _linear_problem(n, p, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, p, generator=gen, dtype=torch.float64)
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    return a, b


@pytest.mark.parametrize("n,p", [(30, 8), (8, 30)])  # N > p (normal form) and N < p (kernel form)
@pytest.mark.parametrize("solver", ["auto", "cg", "lstsq"])
@pytest.mark.parametrize("method", ["lm", "gn"])
def test_least_squares_weight_decay_is_ridge_regression(n, p, solver, method):
    """min ½‖Ax − b‖² + λ/2‖x − x_ref‖² has the closed form (AᵀA + λI)⁻¹(Aᵀb + λx_ref)."""
    a, b = _linear_problem(n, p)
    lam = 0.3
    x0 = torch.linspace(-1, 1, p, dtype=torch.float64)
    for ref, x_ref in (("zero", torch.zeros(p, dtype=torch.float64)), ("init", x0)):
        expected = torch.linalg.solve(a.T @ a + lam * torch.eye(p, dtype=torch.float64), a.T @ b + lam * x_ref)
        res = gn.least_squares(lambda x: a @ x - b, x0, method=method, solver=solver, weight_decay=lam,
                               weight_decay_ref=ref, gtol=1e-12, ftol=1e-14, xtol=1e-14)
        torch.testing.assert_close(res.x, expected, rtol=1e-8, atol=1e-9)
        assert res.penalty == pytest.approx(0.5 * lam * float((res.x - x_ref) @ (res.x - x_ref)), rel=1e-10)
        assert res.cost == pytest.approx(0.5 * float((a @ res.x - b) @ (a @ res.x - b)) + res.penalty, rel=1e-10)
        assert float(res.grad.abs().max()) < 1e-7  # the whole gradient Jᵀr + λ(x − x_ref)


def test_least_squares_weight_decay_matches_scipy_on_augmented_residuals():
    """A nonlinear model: SciPy on [r(x); √λ·x] and gaussnewton with weight_decay=λ agree."""
    t = torch.linspace(0, 3, 25, dtype=torch.float64)
    y = 2.0 * torch.exp(-0.7 * t) + 0.1 * torch.cos(5 * t)
    lam = 0.05

    def fun(x):
        return x[0] * torch.exp(-x[1] * t) + x[2] - y

    def aug(x):
        xt = torch.as_tensor(x)
        return np.concatenate([fun(xt).numpy(), np.sqrt(lam) * x])

    ref = scipy.optimize.least_squares(aug, [1.0, 1.0, 0.0], method="lm", xtol=1e-14, ftol=1e-14, gtol=1e-14)
    res = gn.least_squares(fun, [1.0, 1.0, 0.0], weight_decay=lam, xtol=1e-14, ftol=1e-14, gtol=1e-14)
    np.testing.assert_allclose(res.x.numpy(), ref.x, rtol=1e-7, atol=1e-9)
    assert res.cost == pytest.approx(ref.cost, rel=1e-10)


@pytest.mark.parametrize("width", [40, 2])  # p = 120 > n = 30 (kernel) and p = 6 < n (normal)
@pytest.mark.parametrize("solver", ["auto", "cg"])
@pytest.mark.parametrize("ref", ["zero", "init"])
def test_fit_weight_decay_step_matches_dense_reference(width, solver, ref):
    """One GN step: θ₁ = θ₀ − (JᵀJ/n + λI + α²ρI)⁻¹(Jᵀr/n + λ(θ₀ − θ_ref))."""
    X, y = gn.datasets.single_index(30, 3, seed=2)
    net = gn.MLP(3, width=width, alpha=1.0, seed=0)
    prob = NetworkProblem(net, X)
    theta0 = prob.get_flat()
    jac = prob.jacobian(theta0)
    r = net(X).detach() - y
    lam, rho = 0.02, 0.01
    n, p = jac.shape
    e = theta0 - (theta0 if ref == "init" else 0.0)
    grad = jac.T @ r / n + lam * e
    expected = theta0 - torch.linalg.solve(jac.T @ jac / n + (lam + rho) * torch.eye(p, dtype=torch.float64), grad)
    solve = gn.linsolve.CGSolver(rtol=1e-13, max_iter=500) if solver == "cg" else solver
    res = gn.fit(net, X, y, method="gn", damping=rho, steps=1, solver=solve, weight_decay=lam, weight_decay_ref=ref)
    torch.testing.assert_close(res.params, expected, rtol=1e-9, atol=1e-10)
    assert res.history["grad_norm"][0] == pytest.approx(float(grad.abs().max()), rel=1e-10)
    if ref == "zero":
        assert res.penalty == pytest.approx(0.5 * lam * float(res.params @ res.params), rel=1e-12)
    assert res.loss == pytest.approx(res.data_loss + res.penalty, rel=1e-12)
    assert res.history["loss"][0] == pytest.approx(res.history["data_loss"][0] + res.history["penalty"][0])


def test_fit_weight_decay_gradient_matches_finite_differences():
    """∇(R + λ/2‖θ‖²) reported by the first step (grad_norm is its ∞-norm) vs central differences."""
    X, y = gn.datasets.single_index(20, 3, seed=3)
    net = gn.MLP(3, width=5, alpha=1.0, seed=1)
    prob = NetworkProblem(net, X)
    theta0 = prob.get_flat()
    lam = 0.1

    def objective(theta):
        return 0.5 * float(((prob.outputs(theta) - y) ** 2).mean()) + 0.5 * lam * float(theta @ theta)

    eps = 1e-6
    fd = torch.tensor([(objective(theta0 + eps * v) - objective(theta0 - eps * v)) / (2 * eps)
                       for v in torch.eye(theta0.numel(), dtype=torch.float64)], dtype=torch.float64)
    res = gn.fit(net, X, y, method="gd", lr=1e-9, steps=1, weight_decay=lam)
    assert res.history["grad_norm"][0] == pytest.approx(float(fd.abs().max()), rel=1e-6)
    step = (res.params - theta0) / 1e-9  # GD with α = 1: θ₁ − θ₀ = −η·∇
    torch.testing.assert_close(-step, fd, rtol=1e-5, atol=1e-7)


def test_optimizer_weight_decay_takes_the_fit_iterates():
    from gaussnewton.optim import GaussNewton

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(12, generator=gen, dtype=torch.float64)

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 20), torch.nn.Tanh(), torch.nn.Linear(20, 1)).double()

    a, b = net(), net()
    opt = GaussNewton(a.parameters(), damping="nielsen", weight_decay=0.01, max_trials=50)
    trials, iterates = 0, []
    for _ in range(5):
        opt.step(lambda: a(x).squeeze(1) - y)
        trials += opt.state[next(a.parameters())]["trials"]
        iterates.append(torch.cat([q.detach().reshape(-1) for q in a.parameters()]))
    accepted = []
    gn.fit(b, x, y, method="lm", steps=trials, weight_decay=0.01,
           callback=lambda info: accepted.append(info.params) if info.accepted else None)
    assert len(accepted) == 5
    for mine, theirs in zip(iterates, accepted, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-8, atol=1e-9)


def test_weight_decay_shrinks_an_overparameterized_fit():
    X, y = gn.datasets.single_index(40, 3, seed=0)
    free = gn.fit(gn.MLP(3, width=100, alpha=1.0, seed=0), X, y, method="lm", steps=40)
    decayed = gn.fit(gn.MLP(3, width=100, alpha=1.0, seed=0), X, y, method="lm", steps=40, weight_decay=1e-2)
    assert float(decayed.params.norm()) < float(free.params.norm())
    assert decayed.data_loss > free.data_loss  # it no longer interpolates


def test_early_stopping_restores_the_best_validation_parameters():
    X, y = gn.datasets.california_housing(n=1300, seed=0)
    seen = {}

    def record(info):
        if info.accepted:
            seen[info.iteration] = info.params

    res = gn.fit(gn.MLP(8, width=20, alpha=1.0, seed=0), X[:300], y[:300], method="lm", steps=200,
                 validation=(X[300:], y[300:]), patience=3, callback=record)
    assert res.termination is gn.Termination.EARLY_STOP and res.success and res.steps < 200
    val = res.history["val_loss"]
    assert len(val) == res.steps and res.best_step > 0
    assert res.val_loss == pytest.approx(min(val), rel=1e-12) == pytest.approx(val[res.best_step - 1], rel=1e-12)
    assert torch.equal(res.params, seen[res.best_step])
    after = [v for k, v in enumerate(val, start=1) if k > res.best_step and res.history["accepted"][k - 1]]
    assert len(after) == 3 and min(after) >= res.val_loss  # patience accepted steps without improvement
    assert res.history["val_metric"][res.best_step - 1] > 0.3  # R² on held-out data


def test_validation_accuracy_for_classification():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(120, 2, generator=gen, dtype=torch.float64)
    labels = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    res = gn.fit(net, X[:80], labels[:80], method="lm", loss="cross_entropy", steps=30,
                 validation=(X[80:], labels[80:]), patience=30)
    acc = res.history["val_metric"][-1]
    expected = float((net(X[80:]).argmax(1) == labels[80:]).double().mean())
    assert acc == pytest.approx(expected) and acc > 0.85


@pytest.mark.parametrize("kwargs,match", [
    ({"weight_decay": -1.0}, r"`weight_decay` must be a finite number >= 0; got weight_decay = -1.0"),
    ({"weight_decay_ref": "best"}, r"`weight_decay_ref` must be one of 'zero', 'init'; got 'best'"),
    ({"patience": 3}, r"`patience` needs `validation=\(X_val, y_val\)`"),
    ({"validation": (torch.zeros(5, 3),)}, r"`validation` must be a pair \(X_val, y_val\); got tuple of length 1"),
    ({"validation": (torch.zeros(5, 3), torch.zeros(4)), "patience": 2},
     r"`validation`: `X` and `y` must have the same number of samples"),
    ({"validation": (torch.zeros(5, 3, dtype=torch.float64), torch.zeros(5)), "patience": 0},
     r"`patience` must be an integer >= 1; got patience = 0"),
])
def test_regularization_arguments_are_validated(kwargs, match):
    X, y = gn.datasets.single_index(10, 3, seed=0)
    with pytest.raises(gn.GaussNewtonError, match=match):
        gn.fit(gn.MLP(3, width=4, seed=0), X, y, steps=2, **kwargs)


@pytest.mark.parametrize("width", [40, 2])  # N < p (kernel eigenvalues) and N > p (normal form)
def test_bayesian_regularization_matches_a_dense_numpy_implementation(width):
    """γ, α, β at θ₀ and the first step, from the same formulas on a dense J in numpy float64."""
    X, y = gn.datasets.single_index(30, 3, seed=2, noise=0.2)
    net = gn.MLP(3, width=width, alpha=1.0, seed=0)
    prob = NetworkProblem(net, X)
    theta0 = prob.get_flat()
    jac = prob.jacobian(theta0).numpy()
    r = (net(X).detach() - y).numpy()
    theta = theta0.numpy()
    n_res, p = jac.shape
    w = np.linalg.eigvalsh(jac.T @ jac)[-min(n_res, p):]  # the nonzero eigenvalues of JᵀJ
    c0 = 1e-3 * w.mean()  # the documented start
    gamma = float(np.sum(w / (w + c0)))
    alpha = gamma / (2 * theta @ theta)
    beta = (n_res - gamma) / (2 * r @ r)
    c = alpha / beta
    step = -np.linalg.solve(jac.T @ jac + c * np.eye(p), jac.T @ r + c * theta)  # (JᵀJ + cI)δ = −Jᵀr − cθ
    res = gn.fit(net, X, y, method="gn", damping=0.0, steps=1, regularization="bayesian")
    assert res.history["gamma"][0] == pytest.approx(gamma, rel=1e-9)
    assert res.history["bayes_alpha"][0] == pytest.approx(alpha, rel=1e-9)
    assert res.history["bayes_beta"][0] == pytest.approx(beta, rel=1e-9)
    np.testing.assert_allclose(res.params.numpy(), theta + step, rtol=1e-8, atol=1e-10)
    assert 0 < gamma <= min(n_res, p)


def test_bayesian_regularization_generalizes_better_than_none():
    X, y = gn.datasets.california_housing(n=1300, seed=0)
    fits = {reg: gn.fit(gn.MLP(8, width=50, alpha=1.0, seed=0), X[:300], y[:300], method="lm", steps=60,
                        regularization=reg, validation=(X[300:], y[300:]), patience=1000)
            for reg in (None, "bayesian")}
    assert fits["bayesian"].history["val_metric"][-1] > fits[None].history["val_metric"][-1] + 0.05
    gammas = fits["bayesian"].history["gamma"]
    assert all(0 < g < 401 for g in gammas) and gammas[-1] < 0.5 * 401  # far fewer effective parameters than p


@pytest.mark.parametrize("kwargs,match", [
    ({"regularization": "l1"}, r"`regularization` must be one of 'bayesian'; got 'l1'"),
    ({"regularization": "bayesian", "loss": "log_cosh"}, r"`regularization='bayesian'` needs loss='squared'"),
    ({"regularization": "bayesian", "solver": "cg"}, r"`regularization='bayesian'` needs the eigenvalues of an exact"),
    ({"regularization": "bayesian", "method": "lm", "damping": gn.damping.Nielsen(scaling="diag")},
     r"`regularization='bayesian'` needs D = I"),
])
def test_bayesian_arguments_are_validated(kwargs, match):
    X, y = gn.datasets.single_index(10, 3, seed=0)
    with pytest.raises(gn.GaussNewtonError, match=match):
        gn.fit(gn.MLP(3, width=4, seed=0), X, y, steps=2, **kwargs)
