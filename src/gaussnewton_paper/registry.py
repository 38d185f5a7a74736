"""The experiments of ``gaussnewton reproduce``: one source of truth for the CLI, the docs and the tests.

Each :class:`Experiment` turns the sizes of a mode (:data:`~.config.SIZES`) and a seed into
the list of :class:`~.config.RunConfig` it needs. Defaults come from the spec
(paper_spec.md §6–§7; every number there is [UNKNOWN→DEFAULT] unless the paper states it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .config import RunConfig, Sizes

__all__ = ["EXPERIMENTS", "Experiment", "configs_for"]

ALPHA_OVER = 10.0  # spec §7.2 default α for the overparameterized runs
DT = 0.1  # spec §3.4 / §7 default Euler step Δt
KAPPAS = (0.1, 1.0, 10.0)  # spec §7.2 constant data-based damping κ values
RHO_CONSTANT = 1e-3  # a fixed ρ not tied to λ_0 (the library's registry default)
GN_TARGET = 1e-13  # GN runs stop here: below the window used for fitted rates (1e-12)
DATA_DIMS = {"single_index": 5, "california": 8}  # spec §7.2–7.3


@dataclass(frozen=True)
class Experiment:
    """A figure (or sweep) of the paper.

    Attributes:
        name: CLI name.
        title: one line.
        description: what it shows.
        build: ``(sizes, seed) -> configs``.
        runtime_s: measured wall time per mode (2 CPU cores, 2 workers × 1 torch thread), for ``list``.
    """

    name: str
    title: str
    description: str
    build: Callable[[Sizes, int], list[RunConfig]]
    runtime_s: dict[str, float]


def _fig1(s: Sizes, seed: int) -> list[RunConfig]:
    base = dict(
        experiment="fig1",
        dataset="neuron",
        n=3,
        d=2,
        width=1,
        alpha=1.0,
        lr=s.fig1_dt,
        steps=s.fig1_steps,
        seed=seed,
        capture="all",
    )
    return [
        RunConfig(name="gn_undamped", method="gn", damping="constant", damping_value=0.0, **base),
        RunConfig(name="gf", method="gd", damping="gf", **base),
    ]


def _fig2(s: Sizes, seed: int) -> list[RunConfig]:
    out: list[RunConfig] = []
    for ds, d in DATA_DIMS.items():
        base = dict(experiment="fig2", dataset=ds, n=s.fig2_n, d=d, width=s.fig2_width, seed=seed)
        gn = dict(base, method="gn", lr=DT, steps=s.fig2_steps, target_fraction=GN_TARGET)
        out.append(RunConfig(name="gn_adaptive", damping="adaptive", damping_value=1.0, alpha=ALPHA_OVER, **gn))
        out += [
            RunConfig(name=f"gn_data_k{k:g}", damping="data", damping_value=k, alpha=ALPHA_OVER, **gn) for k in KAPPAS
        ]
        out.append(
            RunConfig(name="gn_constant", damping="constant", damping_value=RHO_CONSTANT, alpha=ALPHA_OVER, **gn)
        )
        out.append(
            RunConfig(
                name="gn_dt",
                method="gn",
                damping="data",
                damping_value=0.5,
                lr=1.0,
                steps=s.fig2_dt_steps,
                target_fraction=GN_TARGET,
                alpha=ALPHA_OVER,
                **base,
            )
        )
        out += [
            RunConfig(
                name=f"gf_c{c:g}",
                method="gd",
                damping="gf",
                lr=c,
                lr_rule="stable",
                steps=s.fig2_steps,
                kernel_every=max(s.fig2_steps // 20, 1),
                alpha=ALPHA_OVER,
                **base,
            )
            for c in s.gf_factors
        ]
        for a in s.fig2_alphas[1:]:
            out.append(RunConfig(name=f"gn_adaptive_a{a:g}", damping="adaptive", damping_value=1.0, alpha=a, **gn))
            out.append(RunConfig(name=f"gn_data_k1_a{a:g}", damping="data", damping_value=1.0, alpha=a, **gn))
        # the continuous flows of Cor. 9 / Lemma 3 / Thm 5 (issue #13): same names, dynamics="flow"
        flow = dict(gn, alpha=ALPHA_OVER, dynamics="flow")
        out.append(RunConfig(name="gn_adaptive", damping="adaptive", damping_value=1.0, **flow))
        out += [RunConfig(name=f"gn_data_k{k:g}", damping="data", damping_value=k, **flow) for k in KAPPAS]
        out.append(RunConfig(name="gn_constant", damping="constant", damping_value=RHO_CONSTANT, **flow))
    return out


def _fig3(s: Sizes, seed: int) -> list[RunConfig]:
    out: list[RunConfig] = []
    widths = {"single_index": s.fig3_width_si, "california": s.fig3_width_cal}
    for ds, d in DATA_DIMS.items():
        for a in s.fig3_alphas:
            base = dict(
                experiment="fig3", dataset=ds, n=s.fig3_n, d=d, width=widths[ds], alpha=a, seed=seed, steps=s.fig3_steps
            )
            out.append(
                RunConfig(name=f"gn_undamped_a{a:g}", method="gn", damping="constant", damping_value=0.0, lr=DT, **base)
            )
            out.append(
                RunConfig(name=f"gf_a{a:g}", method="gd", damping="gf", lr=s.gf_factors[0], lr_rule="stable", **base)
            )
            # Theorem 25 is about the flow (issue #13): undamped GN flow and gradient flow on the same time span
            out.append(RunConfig(name=f"gn_undamped_a{a:g}", method="gn", damping="constant", damping_value=0.0, lr=DT,
                                 dynamics="flow", **base))
            out.append(RunConfig(name=f"gf_a{a:g}", method="gd", damping="gf", lr=s.gf_factors[0], lr_rule="stable",
                                 dynamics="flow", **base))
    return out


def _dt(s: Sizes, seed: int) -> list[RunConfig]:
    """Δt-convergence (issue #13): Euler with Δt ∈ conv_dts against the flow, undamped GN, p < n, small α."""
    out: list[RunConfig] = []
    widths = {"single_index": s.fig3_width_si, "california": s.fig3_width_cal}
    fine = min(s.conv_dts)
    for ds, d in DATA_DIMS.items():
        for a in s.conv_alphas:
            base = dict(experiment="dt", dataset=ds, n=s.fig3_n, d=d, width=widths[ds], alpha=a, seed=seed,
                        method="gn", damping="constant", damping_value=0.0, name=f"gn_undamped_a{a:g}")
            out += [RunConfig(lr=dt, steps=round(s.conv_t_end / dt), **base) for dt in s.conv_dts]
            out.append(RunConfig(lr=fine, steps=round(s.conv_t_end / fine), dynamics="flow", **base))
    return out


def _sweep(s: Sizes, seed: int) -> list[RunConfig]:
    out: list[RunConfig] = []
    for n in s.sweep_ns:
        base = dict(
            experiment="sweep",
            dataset="single_index",
            n=n,
            d=DATA_DIMS["single_index"],
            width=s.sweep_width,
            alpha=ALPHA_OVER,
            seed=seed,
        )
        out.append(
            RunConfig(
                name=f"over_gn_adaptive_n{n}",
                method="gn",
                damping="adaptive",
                damping_value=1.0,
                lr=DT,
                steps=s.sweep_gn_steps,
                target_fraction=GN_TARGET,
                **base,
            )
        )
        out.append(
            RunConfig(
                name=f"over_gn_dt_n{n}",
                method="gn",
                damping="data",
                damping_value=0.5,
                lr=1.0,
                steps=40,
                target_fraction=GN_TARGET,
                **base,
            )
        )
        out.append(
            RunConfig(
                name=f"over_gf_n{n}",
                method="gd",
                damping="gf",
                lr=s.gf_factors[0],
                lr_rule="stable",
                steps=s.sweep_gf_steps,
                **base,
            )
        )
    for spread in s.sweep_spreads:
        for a in s.sweep_under_alphas:
            base = dict(
                experiment="sweep",
                dataset="single_index",
                n=s.sweep_under_n,
                d=DATA_DIMS["single_index"],
                width=s.sweep_under_width,
                alpha=a,
                seed=seed,
                spread=spread,
                steps=s.sweep_under_steps,
            )
            out.append(
                RunConfig(
                    name=f"under_gn_s{spread:g}_a{a:g}",
                    method="gn",
                    damping="constant",
                    damping_value=0.0,
                    lr=DT,
                    **base,
                )
            )
            out.append(
                RunConfig(
                    name=f"under_gf_s{spread:g}_a{a:g}",
                    method="gd",
                    damping="gf",
                    lr=s.gf_factors[0],
                    lr_rule="stable",
                    **base,
                )
            )
    return out


def _curvature(s: Sizes, seed: int) -> list[RunConfig]:
    out: list[RunConfig] = []
    base = dict(
        experiment="curvature",
        dataset="single_index",
        n=s.curv_n,
        d=DATA_DIMS["single_index"],
        width=s.curv_width,
        alpha=ALPHA_OVER,
        seed=seed,
        method="gn",
        damping_value=1.0,
        lr=DT,
        steps=s.curv_steps,
        target_fraction=GN_TARGET,
    )
    for mu in s.curv_mus:
        out.append(RunConfig(name=f"ggn_mu{mu:g}", damping="curvature_local", loss="weighted", loss_mu=mu, **base))
        out.append(
            RunConfig(
                name=f"no_curvature_mu{mu:g}", damping="adaptive", loss="weighted_no_curvature", loss_mu=mu, **base
            )
        )
    return out


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "fig1",
            "One neuron, n = 3 points in d = 2: the output manifold in R³",
            "Undamped GN (the Riemannian gradient flow on M) and gradient flow, in function space on the "
            "2-D surface M ⊂ R³ and in parameter space; target y and the in-class optimum.",
            _fig1,
            {"tiny": 2, "quick": 8, "full": 10},
        ),
        Experiment(
            "fig2",
            "Overparameterized (p ≥ n): single-index and California Housing",
            "Loss, λ_min(K_t)/λ₀ and ‖θ_t − θ_0‖ for GN with adaptive, data-based (κ = 0.1, 1, 10) and "
            "constant damping, GN-DT (η = 1), and gradient flow at its best stable step; α-scaling.",
            _fig2,
            {"tiny": 10, "quick": 35, "full": 270},
        ),
        Experiment(
            "fig3",
            "Underparameterized (p < n): undamped GN vs gradient flow for several α",
            "Loss and gap to the in-class optimum for α = 1, 4, 16, 64; final loss vs α (self-"
            "regularization) with the linearized limit R_lin; ‖θ − θ_0‖ vs α.",
            _fig3,
            {"tiny": 6, "quick": 55, "full": 170},
        ),
        Experiment(
            "sweep",
            "Conditioning sweep: steps to 1e-6 and rates as λ₀ shrinks",
            "Overparameterized: more samples n → smaller λ₀; GN steps measured, GF steps extrapolated. "
            "Underparameterized: inputs bunched (spread) → smaller λ_min(G); rates of GN and GF.",
            _sweep,
            {"tiny": 5, "quick": 25, "full": 360},
        ),
        Experiment(
            "dt",
            "Δt-convergence: Euler with Δt = 0.1, 0.03, 0.01 against the integrated flow",
            "Undamped GN, p < n, α = 1 and 4 (quick/full; tiny: α = 1): the loss of Euler runs approaching the "
            "error-controlled flow as Δt shrinks (first order), and where Euler departs from it.",
            _dt,
            {"tiny": 3, "quick": 30, "full": 35},
        ),
        Experiment(
            "curvature",
            "(Optional, claim 11) curvature-aware damping for a heterogeneous loss",
            "ℓ_j = c_j(u − y_j)²/2 with c_j ∈ [μ, 1]: generalized GN (JᵀΛJ) with ρ_t = κλ_min(Λ½KΛ½) vs a "
            "preconditioner that ignores Λ, for μ = 1, 0.1, 0.01 (spec §8 claim 11; not in the paper).",
            _curvature,
            {"tiny": 2, "quick": 10, "full": 60},
        ),
    )
}


def configs_for(names: list[str], sizes: Sizes, seed: int) -> list[RunConfig]:
    """All run configurations of the named experiments, in order."""
    return [cfg for name in names for cfg in EXPERIMENTS[name].build(sizes, seed)]
