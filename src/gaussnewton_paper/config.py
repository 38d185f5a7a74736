"""Typed, frozen configuration of one experiment run and of the problem sizes per mode.

A :class:`RunConfig` fully determines a run (data, model, method, steps, seed); its
:meth:`RunConfig.key` names the saved JSON/CSV files, so ``--resume`` can skip finished runs.
The sizes of the three modes live in :data:`SIZES`; ``full`` follows the spec (§6, §7.2, §7.3),
``quick`` shrinks them so that ``gaussnewton reproduce all --quick`` finishes in a few
minutes on 2 CPU cores, ``tiny`` is for the test suite.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

__all__ = ["DATASETS", "DAMPINGS", "RunConfig", "SIZES", "Sizes"]

DATASETS = ("single_index", "california", "neuron")
DAMPINGS = ("adaptive", "data", "constant", "curvature_local", "gf")
LOSSES = ("squared", "weighted", "weighted_no_curvature")
LATE_FIELDS = {"loss": "squared", "loss_mu": 1.0, "dynamics": "euler"}  # added later; left out of keys at defaults
METHODS = ("gn", "gd")
LR_RULES = ("fixed", "stable")
CAPTURES = ("first", "all")
DYNAMICS = ("euler", "flow")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One run: a data set, the paper's MLP (H = 1, tanh, frozen output layer) and a method.

    Attributes:
        experiment: the experiment it belongs to (``fig1``, ``fig2``, ``fig3``, ``sweep``).
        name: label of the run inside its experiment (e.g. ``gn_adaptive``).
        dataset: ``single_index`` (eq. 85), ``california`` or ``neuron`` (Figure 1's 3 points).
        n: number of samples.
        d: input dimension.
        width: hidden width m (p = m·d).
        alpha: output scale α.
        method: ``gn`` (GN-DT / Euler GN flow) or ``gd`` (gradient descent / Euler GF).
        damping: ``adaptive`` (ρ_t = κλ_min(K_t)), ``data`` (ρ = κλ_0), ``constant`` (ρ; 0 is
            undamped GN) or ``gf`` (gradient flow, method ``gd``).
        damping_value: κ for ``adaptive``/``data``, ρ for ``constant``.
        lr: Δt (Euler) or η (GN-DT); for ``lr_rule="stable"`` the factor c in lr = c/λ_max(K_0).
        lr_rule: ``fixed`` or ``stable``.
        steps: number of steps (the cap, with ``target_fraction``).
        seed: seed of the data (the network uses ``seed + 1000``).
        spread: input bunching of the single-index data (1: uniform on the sphere).
        noise: noise level of the single-index data.
        target_fraction: stop once the loss ≤ this fraction of the initial loss (None: never).
        kernel_every: for ``gd``, compute λ_min/λ_max of K_t every this many steps (0: off).
        capture: ``first`` keeps θ after step 1 (for the Lemma 2 check), ``all`` the whole
            trajectory (Figure 1).
        loss: ``squared`` (½(u − y)², every experiment of the paper), ``weighted``
            (c_j(u − y_j)²/2 with c_j log-uniform in [μ, 1], generalized GN matrix JᵀΛJ) or
            ``weighted_no_curvature`` (the same loss, preconditioner that ignores Λ) — claim 11.
        loss_mu: μ, the smallest weight c_j of the weighted loss.
        dynamics: ``euler`` (Euler / GN-DT steps of size ``lr``) or ``flow`` (the continuous
            flow integrated with error control, :mod:`gaussnewton.flow`, reported at t = k·lr).
    """

    experiment: str
    name: str
    dataset: str
    n: int
    d: int
    width: int
    alpha: float
    method: str
    damping: str
    damping_value: float = 0.0
    lr: float = 0.1
    lr_rule: str = "fixed"
    steps: int = 100
    seed: int = 0
    spread: float = 1.0
    noise: float = 0.1
    target_fraction: float | None = None
    kernel_every: int = 0
    capture: str = "first"
    loss: str = "squared"
    loss_mu: float = 1.0
    dynamics: str = "euler"

    def __post_init__(self) -> None:
        checks = [
            (self.dataset in DATASETS, f"`dataset` must be one of {DATASETS}; got {self.dataset!r}."),
            (self.method in METHODS, f"`method` must be one of {METHODS}; got {self.method!r}."),
            (self.damping in DAMPINGS, f"`damping` must be one of {DAMPINGS}; got {self.damping!r}."),
            (
                (self.method == "gd") == (self.damping == "gf"),
                "`damping='gf'` goes with `method='gd'` and only with it.",
            ),
            (self.lr_rule in LR_RULES, f"`lr_rule` must be one of {LR_RULES}; got {self.lr_rule!r}."),
            (self.capture in CAPTURES, f"`capture` must be one of {CAPTURES}; got {self.capture!r}."),
            (min(self.n, self.d, self.width, self.steps) >= 1, "`n`, `d`, `width`, `steps` must be >= 1."),
            (self.alpha > 0 and self.lr > 0, f"`alpha` and `lr` must be > 0; got {self.alpha}, {self.lr}."),
            (self.damping_value >= 0, f"`damping_value` must be >= 0; got {self.damping_value}."),
            (0 < self.spread <= 1, f"`spread` must lie in (0, 1]; got {self.spread}."),
            (self.loss in LOSSES, f"`loss` must be one of {LOSSES}; got {self.loss!r}."),
            (0 < self.loss_mu <= 1, f"`loss_mu` must lie in (0, 1]; got {self.loss_mu}."),
            (self.dynamics in DYNAMICS, f"`dynamics` must be one of {DYNAMICS}; got {self.dynamics!r}."),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def p(self) -> int:
        """Number of trained parameters (hidden layer only): m·d."""
        return self.width * self.d

    @property
    def regime(self) -> str:
        """``over`` (p ≥ n) or ``under`` (p < n)."""
        return "over" if self.p >= self.n else "under"

    def key(self) -> str:
        """File-name key: readable prefix plus a hash of every field.

        Fields added after the first release are left out of the hash while they hold their
        default (:data:`LATE_FIELDS`), so runs saved before they existed stay resumable.
        """
        fields_ = {k: v for k, v in asdict(self).items() if LATE_FIELDS.get(k, object()) != v}
        blob = json.dumps(fields_, sort_keys=True).encode()
        digest = hashlib.sha1(blob).hexdigest()[:10]
        flow = "-flow" if self.dynamics == "flow" else ""
        return f"{self.experiment}-{self.dataset}-{self.name}{flow}-{digest}"

    def label(self) -> str:
        """Legend label in the paper's symbols (``… (flow)`` for the integrated continuous flow)."""
        if self.dynamics == "flow":
            base = self.label_euler().replace(f" (lr = {self.lr:g}/λ_max)", "").replace(f" (Δt = {self.lr:g})", "")
            return f"{base} (flow)"
        return self.label_euler()

    def label_euler(self) -> str:
        """The label of the discrete run."""
        v = f"{self.damping_value:g}"
        if self.method == "gd":
            return f"GF (lr = {self.lr:g}/λ_max)" if self.lr_rule == "stable" else f"GF (Δt = {self.lr:g})"
        if self.damping == "curvature_local":
            return f"GGN, ρ_t = κλ_min(Λ½KΛ½), κ = {v}, μ = {self.loss_mu:g}"
        if self.loss == "weighted_no_curvature":
            return f"GN ignoring Λ, ρ_t = κλ_min(K_t), κ = {v}, μ = {self.loss_mu:g}"
        if self.damping == "adaptive":
            return f"GN adaptive ρ_t = κλ_min(K_t), κ = {v}"
        if self.damping == "data":
            if self.lr >= 1.0:
                return f"GN-DT η = {self.lr:g}, ρ = {v}·λ₀"
            return f"GN ρ = κλ₀, κ = {v}"
        return "GN undamped (ρ = 0)" if self.damping_value == 0 else f"GN constant ρ = {v}"


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """Problem sizes of one mode (see docs/reproducing.md for where each number comes from)."""

    mode: str
    fig1_steps: int
    fig1_dt: float
    fig2_n: int
    fig2_width: int
    fig2_steps: int
    fig2_dt_steps: int
    fig2_alphas: tuple[float, ...]
    fig3_n: int
    fig3_width_si: int
    fig3_width_cal: int
    fig3_steps: int
    fig3_alphas: tuple[float, ...]
    sweep_ns: tuple[int, ...]
    sweep_width: int
    sweep_gn_steps: int
    sweep_gf_steps: int
    sweep_under_n: int
    sweep_under_width: int
    sweep_under_alphas: tuple[float, ...]
    sweep_spreads: tuple[float, ...]
    sweep_under_steps: int
    curv_n: int
    curv_width: int
    curv_steps: int
    curv_mus: tuple[float, ...] = field(default=(1.0, 0.1, 0.01))
    conv_t_end: float = 10.0  # Δt-convergence panel (issue #13): Euler Δt ∈ conv_dts vs the flow up to this t
    conv_dts: tuple[float, ...] = field(default=(0.1, 0.03, 0.01))
    conv_alphas: tuple[float, ...] = field(default=(1.0, 4.0))
    gf_factors: tuple[float, ...] = field(default=(1.9, 1.0, 0.5))


SIZES: dict[str, Sizes] = {
    "full": Sizes(
        mode="full",
        fig1_steps=2000,
        fig1_dt=0.01,
        fig2_n=200,
        fig2_width=1000,
        fig2_steps=1000,
        fig2_dt_steps=40,
        fig2_alphas=(10.0, 20.0, 40.0),
        fig3_n=1000,
        fig3_width_si=20,
        fig3_width_cal=10,
        fig3_steps=2000,
        fig3_alphas=(1.0, 4.0, 16.0, 64.0),
        sweep_ns=(50, 100, 200, 400),
        sweep_width=1000,
        sweep_gn_steps=1000,
        sweep_gf_steps=2000,
        sweep_under_n=1000,
        sweep_under_width=20,
        sweep_under_alphas=(16.0, 65536.0),
        sweep_spreads=(1.0, 0.7, 0.5, 0.35),
        sweep_under_steps=2000,
        curv_n=200,
        curv_width=1000,
        curv_steps=1000,
    ),
    "quick": Sizes(
        mode="quick",
        fig1_steps=1000,
        fig1_dt=0.02,
        fig2_n=100,
        fig2_width=200,
        fig2_steps=400,
        fig2_dt_steps=30,
        fig2_alphas=(10.0, 20.0, 40.0),
        fig3_n=300,
        fig3_width_si=20,
        fig3_width_cal=10,
        fig3_steps=400,
        fig3_alphas=(1.0, 4.0, 16.0, 64.0),
        sweep_ns=(25, 50, 100, 200),
        sweep_width=200,
        sweep_gn_steps=400,
        sweep_gf_steps=600,
        sweep_under_n=300,
        sweep_under_width=20,
        sweep_under_alphas=(16.0, 65536.0),
        sweep_spreads=(1.0, 0.7, 0.5, 0.35),
        sweep_under_steps=400,
        curv_n=100,
        curv_width=200,
        curv_steps=400,
    ),
    "tiny": Sizes(
        mode="tiny",
        fig1_steps=200,
        fig1_dt=0.05,
        fig2_n=50,
        fig2_width=40,
        fig2_steps=200,
        fig2_dt_steps=20,
        fig2_alphas=(10.0, 20.0),
        fig3_n=60,
        fig3_width_si=5,
        fig3_width_cal=3,
        fig3_steps=150,
        fig3_alphas=(1.0, 16.0),
        sweep_ns=(20, 50),
        sweep_width=40,
        sweep_gn_steps=200,
        sweep_gf_steps=200,
        sweep_under_n=60,
        sweep_under_width=5,
        sweep_under_alphas=(16.0, 65536.0),
        sweep_spreads=(1.0, 0.5),
        sweep_under_steps=150,
        curv_n=50,
        curv_width=40,
        curv_steps=200,
        gf_factors=(1.9,),
        conv_t_end=2.0,
        conv_alphas=(1.0,),
    ),
}
