r"""Execute one :class:`~.config.RunConfig` with the public :mod:`gaussnewton` API.

Besides the training history it records the quantities the theory check needs:

* at θ_0: the spectrum of ``J_F/√n`` (J_F = model Jacobian / α), i.e. the eigenvalues of
  K_0 = J_F J_Fᵀ/n (p ≥ n) or G_0 = J_FᵀJ_F/n (p < n), the coefficients ``(u_iᵀy)²/(2n)`` of
  the initial residual on K_0's eigenvectors (the linearized model's whole loss curve), and
  ``R_lin = ‖(I − P_0)y‖²/(2n)``;
* after step 1 (Lemma 2 / GF-Ou, claim 10): the first-order function-space step
  ``αJ_0(θ_1 − θ_0)`` against the prediction ``−Δt·K_0(K_0 + ρI)^{-1} r_0`` (−Δt·K_0 r_0 for GF),
  and the energy identity ``(R_1 − R_0)/Δt ≈ −(1/n) r_0ᵀK_0(K_0 + ρI)^{-1}r_0``;
* at the end: the gap to the min-norm interpolant of the linearized model (Prop. 12, p ≥ n),
  or ``‖P r‖/√n`` and λ_min(G) (Riemannian stationarity, p < n). If an undamped GN run with
  p < n has not converged, the in-class optimum R* is refined by a few undamped GN-DT steps
  (η = 1) from its last iterate (the spec's §5.4: "estimate R* from a long GN run").
"""

from __future__ import annotations

import math
import time
import warnings
from functools import cache
from typing import Any

import torch

import gaussnewton as gn
from gaussnewton.flow import choose_method
from gaussnewton.models import activation_constants

from .config import RunConfig

__all__ = ["build_data", "build_model", "execute"]

MODEL_SEED_OFFSET = 1000  # the network's seed is seed + 1000, so W and the data's θ* are independent
TRAJECTORY_POINTS = 400  # Figure 1 keeps at most this many points of each trajectory
POLISH_STEPS = 60  # undamped GN-DT (η = 1) steps that refine R* when a p < n run has not converged
POLISH_IF = 1e-10  # ... i.e. when ‖P r‖ > 1e-10·‖r‖ at its last step
FLOW_RTOL = 1e-10  # ODE tolerances of the flow runs: the loss stays resolved down to 1e-13·R₀ (docs/flow.md)
FLOW_ATOL = 1e-12


@cache
def tanh_c_sigma() -> float:
    """c_σ = 1/E[tanh(z)²] (the MLP's normalization)."""
    return activation_constants("tanh")["c_sigma"]


def build_data(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's data (float64, CPU)."""
    if cfg.dataset == "single_index":
        return gn.datasets.single_index(cfg.n, cfg.d, noise=cfg.noise, seed=cfg.seed, spread=cfg.spread)
    if cfg.dataset == "california":
        return gn.datasets.california_housing(cfg.n, seed=cfg.seed)
    # Figure 1 (spec §6): x_j ~ N(0, I_2) normalized to the unit circle, y ~ N(0, I_3)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.n, cfg.d, generator=gen, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    return x, torch.randn(cfg.n, generator=gen, dtype=torch.float64)


def build_model(cfg: RunConfig) -> gn.MLP:
    """The paper's MLP: H = 1, tanh, c_σ normalization, frozen ±1 output layer, re-centred."""
    return gn.MLP(
        cfg.d,
        width=cfg.width,
        depth=1,
        activation="tanh",
        alpha=cfg.alpha,
        train_output_layer=False,
        recenter=True,
        seed=cfg.seed + MODEL_SEED_OFFSET,
    )


class WeightedSquared(gn.losses.Loss):
    """ℓ_j(u) = c_j(u − y_j)²/2 (claim 11): Λ = diag(c), μ = min c, L = max c ≤ 1.

    With ``use_curvature=False`` the GGN factor is the identity (B = I, h = ∂ℓ/∂u), i.e. the
    "quadratic-only" preconditioner JᵀJ + ρI that ignores Λ.
    """

    name = "weighted_squared"
    L = 1.0

    def __init__(self, weights: torch.Tensor, use_curvature: bool = True) -> None:
        self.weights = weights
        self.mu = float(weights.min())
        self.use_curvature = use_curvature

    def value(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return 0.5 * self.weights * (u - y) ** 2

    def grad(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.weights * (u - y)

    def curvature(self, u: torch.Tensor, y: torch.Tensor) -> gn.losses.Curvature:  # noqa: D102
        g = self.grad(u, y).reshape(-1)
        if not self.use_curvature:
            return gn.losses.Curvature(None, None, g, 1.0)
        root = self.weights.sqrt()
        return gn.losses.Curvature(root, None, g / root, self.mu)


def make_loss(cfg: RunConfig, device: str = "cpu") -> gn.losses.Loss:
    """The run's loss; weights c_j = μ^{U_j}, U_j ~ Unif[0, 1] (log-uniform in [μ, 1]), seed + 2000."""
    if cfg.loss == "squared":
        return gn.losses.Squared()
    gen = torch.Generator().manual_seed(cfg.seed + 2000)
    weights = cfg.loss_mu ** torch.rand(cfg.n, generator=gen, dtype=torch.float64)
    return WeightedSquared(weights.to(device), use_curvature=cfg.loss == "weighted")


def _damping(cfg: RunConfig) -> gn.damping.DampingSchedule | None:
    if cfg.damping == "curvature_local":
        return gn.damping.CurvatureLocal(cfg.damping_value)
    if cfg.damping == "adaptive":
        return gn.damping.Adaptive(cfg.damping_value)
    if cfg.damping == "data":
        return gn.damping.DataDependent(cfg.damping_value)
    if cfg.damping == "constant":
        return gn.damping.Constant(cfg.damping_value)
    return None


def _svd(problem: gn.problems.NetworkProblem, theta: torch.Tensor, alpha: float, n: int):
    """U, s², Vᵀ of J_F/√n (s² are the non-zero-block eigenvalues of K or G), descending."""
    jf = problem.jacobian(theta) / alpha
    u, s, vh = torch.linalg.svd(jf / math.sqrt(n), full_matrices=False)
    return jf, u, s, vh


def _extremes(problem: gn.problems.NetworkProblem, theta: torch.Tensor, alpha: float, n: int) -> tuple[float, float]:
    jf = problem.jacobian(theta) / alpha
    gram = jf @ jf.T / n if jf.shape[0] <= jf.shape[1] else jf.T @ jf / n
    w = torch.linalg.eigvalsh(gram)
    return float(w[0]), float(w[-1])


def execute(cfg: RunConfig, device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Run ``cfg`` and return its record (config, summary, history, extras, warnings).

    Args:
        cfg: the run.
        device: ``"cpu"`` or ``"cuda"``; data and model are moved there.
        progress: show the library's per-step tqdm bar.

    Returns:
        dict[str, Any]: the record (without the environment, which the caller adds).
    """
    x_cpu, y_cpu = build_data(cfg)
    x, y = x_cpu.to(device), y_cpu.to(device)
    net = build_model(cfg).to(device)
    n, alpha = cfg.n, cfg.alpha
    problem = gn.problems.NetworkProblem(net, x)
    theta0 = problem.get_flat()
    jf0, u0, s0, _ = _svd(problem, theta0, alpha, n)
    eigs0 = s0**2
    coef = u0.T @ y
    coef2 = coef**2 / (2 * n)
    r_lin = max(float(y @ y - coef @ coef) / (2 * n), 0.0)
    lam0, lam_max0 = float(eigs0[-1]), float(eigs0[0])
    lr = cfg.lr / lam_max0 if cfg.lr_rule == "stable" else cfg.lr
    loss = make_loss(cfg, device)
    initial_loss = float(loss.value(torch.zeros_like(y), y).mean())

    captured: dict[int, torch.Tensor] = {}
    kernel: dict[int, tuple[float, float]] = {}

    def callback(info: gn.IterationInfo) -> None:
        k = info.iteration
        if cfg.capture == "all" or k == 1:
            captured[k] = info.params.detach().clone()
        if cfg.kernel_every and cfg.dynamics == "euler" and (k == 1 or k % cfg.kernel_every == 0 or k == cfg.steps):
            kernel[k] = _extremes(problem, info.params, alpha, n)

    target = None if cfg.target_fraction is None else cfg.target_fraction * initial_loss
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # record (and report) numerical warnings instead of failing a run
        res = gn.fit(
            net,
            x,
            y,
            method=cfg.method,
            damping=_damping(cfg),
            lr=lr,
            steps=cfg.steps,
            dynamics=cfg.dynamics,
            rtol=FLOW_RTOL,
            atol=FLOW_ATOL,
            loss=loss,
            track_kernel=cfg.method == "gn",
            target_loss=target,
            callback=callback,
            progress=progress,
        )
    wall = time.perf_counter() - start

    hist = {k: [float(v) for v in vals] for k, vals in res.history.items() if k != "cost"}
    if cfg.dynamics == "euler":
        hist["t"] = [lr * (k + 1) for k in range(res.steps)]
    for k, (lo, hi) in kernel.items():
        if k <= res.steps:
            hist["lambda_min"][k - 1], hist["lambda_max"][k - 1] = lo, hi

    extras: dict[str, Any] = {"eigs0": eigs0.tolist(), "coef2": coef2.tolist()}
    if cfg.loss == "squared" and cfg.dynamics == "flow":
        extras.update(_flow_checks(cfg, problem, captured.get(1), y, hist))
    elif cfg.loss == "squared":  # the identities below are those of the quadratic loss
        extras.update(_first_step_checks(cfg, problem, theta0, captured.get(1), jf0, u0, s0, y, lr, hist))
    extras.update(_final_checks(cfg, problem, res.params.detach(), theta0, jf0, u0, s0, y))
    if cfg.regime == "under" and cfg.method == "gn" and extras["stationarity"] > POLISH_IF * extras["residual_norm"]:
        with warnings.catch_warnings(record=True) as polish_caught:
            warnings.simplefilter("always")
            polish = gn.fit(net, x, y, method="gn", damping=gn.damping.Constant(0.0), lr=1.0, steps=POLISH_STEPS)
        caught += polish_caught
        extras["r_star_polish"] = min(float(polish.initial_loss), *(float(v) for v in polish.history["loss"]))
    if cfg.capture == "all":
        steps = sorted(captured)
        stride = max(len(steps) // TRAJECTORY_POINTS, 1)
        keep = [0] + steps[stride - 1 :: stride]
        thetas = [theta0] + [captured[k] for k in keep[1:]]
        with torch.no_grad():
            extras["trajectory_steps"] = keep
            extras["theta_traj"] = [t.tolist() for t in thetas]
            extras["u_traj"] = [problem.outputs(t).tolist() for t in thetas]
        extras["y"] = y.tolist()
        extras["X"] = x.tolist()

    summary = {
        "regime": cfg.regime,
        "p": cfg.p,
        "lambda0": lam0,
        "lambda_max0": lam_max0,
        "lr": lr,
        "initial_loss": initial_loss,
        "final_loss": float(res.loss),
        "steps_run": res.steps,
        "termination": res.termination.name,
        "wall_time_s": wall,
        "R_lin": r_lin,
        "c_sigma": tanh_c_sigma(),
        "library_initial_loss": float(res.initial_loss),
        "dynamics": cfg.dynamics,
        "message": res.message,
        "t_end": hist["t"][-1] if hist.get("t") else 0.0,
    }
    if cfg.dynamics == "flow":
        summary.update(ode_method=choose_method(cfg.method), nfev=int(hist["nfev"][-1]) if hist["nfev"] else 0,
                       ode_steps=int(hist["ode_steps"][-1]) if hist["ode_steps"] else 0, rtol=FLOW_RTOL, atol=FLOW_ATOL)
    return {
        "key": cfg.key(),
        "summary": summary,
        "history": hist,
        "extras": extras,
        "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
    }


def _first_step_checks(cfg: RunConfig, problem, theta0, theta1, jf0, u0, s0, y, lr, hist) -> dict[str, Any]:
    """Lemma 2 / (GF-Ou) and (EDI) at step 1 (see the module docstring)."""
    if theta1 is None or not hist["loss"]:
        return {}
    n = cfg.n
    r0 = -y  # u_0 = 0 (re-centring)
    z = u0.T @ r0
    s2 = s0**2
    if cfg.method == "gd":
        gain = s2
    else:
        rho = hist["damping"][0]
        gain = s2 / (s2 + rho) if rho > 0 else torch.ones_like(s2)
    pred = -lr * (u0 @ (gain * z))
    actual = cfg.alpha * (jf0 @ (theta1 - theta0))
    rate_pred = -float(z @ (gain * z)) / n  # dR/dt at t = 0
    rate_fd = (hist["loss"][0] - float(y @ y) / (2 * n)) / lr
    return {
        "step1_function_space_rel_err": float((actual - pred).norm() / pred.norm()),
        "step1_dRdt_predicted": rate_pred,
        "step1_dRdt_finite_difference": rate_fd,
    }


def _flow_checks(cfg: RunConfig, problem, theta1, y, hist) -> dict[str, Any]:
    """The energy identity at the first grid point t_1, computed here independently of the library.

    ``dR/dt = −(1/n) rᵀK(K + ρI)⁻¹r`` (``−‖P r‖²/n`` for ρ = 0 and p < n; ``−rᵀKr/n`` for GF) from the
    SVD of J_F at θ(t_1), against the flow's recorded ``dloss_dt`` (∇R·θ̇ of its own vector field).
    """
    if theta1 is None or not hist["loss"]:
        return {}
    n = cfg.n
    _, u1, s1, _ = _svd(problem, theta1, cfg.alpha, n)
    with torch.no_grad():
        z = u1.T @ (problem.outputs(theta1) - y)
    s2 = s1**2
    if cfg.method == "gd":
        gain = s2
    else:
        rho = hist["damping"][0]
        gain = s2 / (s2 + rho) if rho > 0 else torch.ones_like(s2)
    predicted = -float(z @ (gain * z)) / n
    return {"flow_dRdt_t1_predicted": predicted, "flow_dRdt_t1_recorded": hist["dloss_dt"][0],
            "flow_dRdt_t1_rel_err": abs(hist["dloss_dt"][0] / predicted - 1) if predicted != 0 else math.nan}


def _final_checks(cfg: RunConfig, problem, theta, theta0, jf0, u0, s0, y) -> dict[str, Any]:
    """Prop. 12 gap (p ≥ n) or Riemannian stationarity (p < n) at the last iterate."""
    n, alpha = cfg.n, cfg.alpha
    if cfg.regime == "over":
        # θ̄ = θ_0 + α⁻¹ J_0ᵀ(J_0J_0ᵀ)⁻¹y = θ_0 + α⁻¹ V diag(1/(s√n)) Uᵀ y  (J_0/√n = U diag(s) Vᵀ)
        _, _, vh = torch.linalg.svd(jf0 / math.sqrt(n), full_matrices=False)
        step = vh.T @ ((u0.T @ y) / (s0 * math.sqrt(n))) / alpha
        gap = float((theta - theta0 - step).norm() / step.norm())
        return {"min_norm_gap": gap, "min_norm_distance": float(step.norm())}
    with torch.no_grad():
        r = problem.outputs(theta) - y
    _, u1, s1, _ = _svd(problem, theta, alpha, n)
    pr = u1 @ (u1.T @ r)
    return {
        "stationarity": float(pr.norm()) / math.sqrt(n),
        "residual_norm": float(r.norm()) / math.sqrt(n),
        "lambda_min_end": float(s1[-1] ** 2),
    }
