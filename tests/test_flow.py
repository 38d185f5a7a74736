"""Continuous-time flows (``fit(..., dynamics="flow")``, :mod:`gaussnewton.flow`).

Oracles: the closed-form linear-model flow (each kernel mode decays exactly like
exp(−t·λ/(λ+ρ)), or exp(−tλ) for gradient flow), the energy identities integrated along the
flow, Euler's first-order convergence to the flow, and a one-parameter model whose undamped
GN flow reaches a singular G at a known time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import gaussnewton as gn
from gaussnewton import GaussNewtonError, Termination
from gaussnewton.flow import linear_flow_residual

from conftest import random_matrix


class Linear(nn.Module):
    """u = Xθ (θ starts at 0): the lazy model, exactly."""

    def __init__(self, p: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(p, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.theta


class Square(nn.Module):
    """u = θ²·x (p = 1): G = 4θ²‖x‖²/n vanishes at θ = 0."""

    def __init__(self, theta0: float) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([theta0], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta[0] ** 2 * x[:, 0]


def _linear_problem(n: int, p: int, cond: float) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    x = random_matrix(n, p, cond, seed=1) * math.sqrt(n)  # K = XXᵀ/n has eigenvalues 1 … 1/cond²
    y = torch.randn(n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    lam, vecs = torch.linalg.eigh(x @ x.T / n)
    return x, y, lam.numpy(), (vecs.T @ (-y)).numpy()  # r(0) = −y on K's eigenvectors


def _exact_loss(coef: np.ndarray, lam: np.ndarray, rho: float | None, t: np.ndarray, n: int) -> np.ndarray:
    return np.array([0.5 * np.sum(linear_flow_residual(coef, lam, rho, ti) ** 2) / n for ti in t])


@pytest.mark.parametrize(("method", "rho"), [("gn", 1e-2), ("gn", 0.0), ("gd", None)])
def test_linear_model_flow_matches_the_closed_form_mode_by_mode(method: str, rho: float | None) -> None:
    n, p = 20, 40
    x, y, lam, coef = _linear_problem(n, p, cond=30.0)
    damping = None if rho is None else gn.damping.Constant(rho)
    res = gn.fit(Linear(p), x, y, method=method, damping=damping, lr=0.5, steps=40, dynamics="flow", rtol=1e-9,
                 atol=1e-12)
    assert res.termination is Termination.STEPS_DONE and res.steps == 40
    t = np.asarray(res.history["t"])
    np.testing.assert_allclose(t, 0.5 * np.arange(1, 41))
    exact = _exact_loss(coef, lam, rho, t, n)
    loss = np.asarray(res.history["loss"])
    # ‖r(t)‖ to the solver's tolerance: relative where r is large, absolute (≈ rtol·‖r(0)‖) as r → 0
    np.testing.assert_allclose(np.sqrt(loss), np.sqrt(exact), rtol=1e-6, atol=1e-7 * math.sqrt(res.initial_loss))
    # λ_min(K_t) is recorded on the grid (constant for a linear model), ρ(t) too
    np.testing.assert_allclose(res.history["lambda_min"], lam[0], rtol=1e-8)
    if rho is not None:
        assert res.history["damping"] == [rho] * 40


def test_gradient_flow_on_an_ill_conditioned_kernel_is_stiff_but_cheap() -> None:
    n, p = 30, 60
    x, y, lam, coef = _linear_problem(n, p, cond=1e3)  # λ_max/λ_min = 1e6, integrated to t = 1e5 = 1e5/λ_max
    res = gn.fit(Linear(p), x, y, method="gd", lr=1e3, steps=100, dynamics="flow", rtol=1e-8, atol=1e-12)
    assert res.termination is Termination.STEPS_DONE
    assert res.history["nfev"][-1] < 3000  # an explicit method would need ≳ 1e5·λ_max/3.3 ≈ 3e4 evaluations
    t = np.asarray(res.history["t"])
    exact = _exact_loss(coef, lam, None, t, n)
    np.testing.assert_allclose(res.history["loss"], exact, rtol=1e-4)


def _mlp_data(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    return gn.datasets.single_index(n, d, seed=3)


def _simpson_consistency(t: np.ndarray, loss: np.ndarray, rate: np.ndarray) -> float:
    """max |R(t_k) − R(t_0) − ∫ dR/dt| over even k (composite Simpson), relative to R(t_0) − R(t_end)."""
    h = t[1] - t[0]
    worst = 0.0
    integral = 0.0
    for k in range(2, t.size, 2):
        integral += h / 3 * (rate[k - 2] + 4 * rate[k - 1] + rate[k])
        worst = max(worst, abs(loss[k] - loss[0] - integral))
    return worst / (loss[0] - loss[-1])


def test_edi_holds_along_the_undamped_flow_with_p_below_n() -> None:
    x, y = _mlp_data(60, 3)
    net = gn.MLP(3, width=4, alpha=4.0, seed=0)  # p = 12 < n = 60
    thetas: list[torch.Tensor] = []
    res = gn.fit(net, x, y, method="gn", damping=0.0, lr=0.02, steps=150, dynamics="flow", rtol=1e-10, atol=1e-12,
                 callback=lambda info: thetas.append(info.params) and None)
    assert res.termination is Termination.STEPS_DONE
    t, loss, rate = (np.asarray(res.history[k]) for k in ("t", "loss", "dloss_dt"))
    # the recorded dR/dt is −‖P r‖²/n, P the projector onto range(J) (computed here independently)
    problem = gn.problems.NetworkProblem(net, x)
    n = x.shape[0]
    for k in (0, 50, 149):
        jac = problem.jacobian(thetas[k])
        r = problem.outputs(thetas[k]).detach() - y
        q, _ = torch.linalg.qr(jac)
        pr = q @ (q.T @ r)
        assert rate[k] == pytest.approx(-float(pr @ pr) / n, rel=1e-8)
    # EDI integrated along the flow: R(t) − R(t_1) = ∫ −‖P r‖²/n dt to the integrator's tolerance
    assert _simpson_consistency(t, loss, rate) < 1e-6
    assert np.all(np.diff(loss) <= 1e-12 * loss[0])  # R never increases along the GN flow


@pytest.mark.parametrize(("method", "damping"), [("gn", gn.damping.Adaptive(1.0)), ("gd", None)])
def test_energy_identity_of_damped_and_gradient_flows(method: str, damping: object) -> None:
    x, y = _mlp_data(30, 3)
    net = gn.MLP(3, width=20, alpha=4.0, seed=0)  # p = 60 ≥ n = 30
    thetas: list[torch.Tensor] = []
    res = gn.fit(net, x, y, method=method, damping=damping, lr=0.02, steps=100, dynamics="flow", rtol=1e-10,
                 atol=1e-12, callback=lambda info: thetas.append(info.params) and None)
    t, loss, rate = (np.asarray(res.history[k]) for k in ("t", "loss", "dloss_dt"))
    problem = gn.problems.NetworkProblem(net, x)
    n, alpha = x.shape[0], 4.0
    jf = problem.jacobian(thetas[40]) / alpha
    kern = jf @ jf.T / n
    r = problem.outputs(thetas[40]).detach() - y
    if method == "gd":  # dR/dt = −rᵀKr/n
        expected = -float(r @ kern @ r) / n
    else:  # dR/dt = −rᵀK(K + ρI)⁻¹r/n with ρ = κλ_min(K_t)
        rho = res.history["damping"][40]
        assert rho == pytest.approx(float(torch.linalg.eigvalsh(kern)[0]), rel=1e-8)
        expected = -float(r @ kern @ torch.linalg.solve(kern + rho * torch.eye(n, dtype=kern.dtype), r)) / n
    assert rate[40] == pytest.approx(expected, rel=1e-7)
    assert _simpson_consistency(t, loss, rate) < 1e-6


def test_euler_converges_to_the_flow_at_first_order() -> None:
    x, y = _mlp_data(30, 3)
    t_end = 2.0

    def final(dynamics: str, dt: float) -> torch.Tensor:
        net = gn.MLP(3, width=20, alpha=2.0, seed=0)
        return gn.fit(net, x, y, method="gn", damping=gn.damping.Constant(1e-2), lr=dt, steps=round(t_end / dt),
                      dynamics=dynamics, rtol=1e-11, atol=1e-13).params

    exact = final("flow", 0.5)
    errors = [float((final("euler", dt) - exact).norm()) for dt in (0.1, 0.05, 0.025)]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(1.8 < q < 2.2 for q in ratios), (errors, ratios)


def test_undamped_flow_stops_where_g_becomes_singular() -> None:
    # u = θ²x with y = c·x, c < 0: d(θ²)/dt = −(θ² − c), so θ² hits 0 at t* = ln(1 + θ₀²/|c|)
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(10, 1, generator=gen, dtype=torch.float64) + 0.5
    c, theta0 = -0.5, 1.0
    res = gn.fit(Square(theta0), x, c * x[:, 0], method="gn", damping=0.0, lr=0.05, steps=100, dynamics="flow")
    t_star = math.log(1 + theta0**2 / abs(c))
    assert res.termination is Termination.SINGULAR and res.status == -7 and not res.success
    assert res.history["t"][-1] == pytest.approx(t_star, rel=1e-3)
    assert "Stopped at t = " in res.message and "singular" in res.message
    assert res.history["lambda_min"][-1] < 1e-6 * res.history["lambda_min"][0]
    # the damped (LM) flow goes on through the same point
    lm = gn.fit(Square(theta0), x, c * x[:, 0], method="gn", damping=0.1, lr=0.05, steps=100, dynamics="flow")
    assert lm.termination is Termination.STEPS_DONE


def test_an_exhausted_evaluation_budget_is_a_clear_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    import gaussnewton.flow as flow

    monkeypatch.setattr(flow, "MAX_NFEV_PER_POINT", 0)
    monkeypatch.setattr(flow, "NFEV_BASE", 40)
    x, y, _, _ = _linear_problem(20, 40, cond=30.0)
    res = gn.fit(Linear(40), x, y, method="gn", damping=0.0, lr=0.5, steps=40, dynamics="flow")
    assert res.termination is Termination.INTEGRATOR_FAILED and res.status == -8
    assert "more than 40 vector-field evaluations" in res.message
    assert 0 < res.history["t"][-1] < 20 and res.loss < res.initial_loss  # the last accepted point is kept


def test_target_loss_stops_the_flow_at_a_grid_point() -> None:
    x, y, _, _ = _linear_problem(20, 40, cond=3.0)
    res = gn.fit(Linear(40), x, y, method="gn", damping=1e-3, lr=0.1, steps=500, dynamics="flow",
                 target_loss=1e-6 * float(y @ y) / 40)
    assert res.termination is Termination.TARGET and res.steps < 500
    assert res.loss <= 1e-6 * res.initial_loss


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(rtol=0.0), r"`rtol` must be a finite number > 0; got rtol = 0.0"),
        (dict(atol=-1.0), r"`atol` must be a finite number > 0; got atol = -1.0"),
        (dict(dynamics="ode"), r"`dynamics` must be one of .*'flow'.*got 'ode'"),
        (dict(method="lm", damping=None), r"`dynamics='flow'` needs method 'gn'.*got a TrustRegionStep"),
        (dict(checkpoint="x.pt"), r"`checkpoint` is not supported with dynamics='flow'"),
    ],
)
def test_bad_flow_arguments_name_the_argument(kwargs: dict, pattern: str) -> None:
    x, y, _, _ = _linear_problem(10, 20, cond=3.0)
    args = dict(method="gn", damping=1e-3, lr=0.1, steps=5, dynamics="flow") | kwargs
    with pytest.raises(GaussNewtonError, match=pattern):
        gn.fit(Linear(20), x, y, **args)
