"""The claims of paper_spec.md §8 (and issue #3's acceptance criteria), evaluated on the runs.

Each ``claim_*`` function takes the :class:`Runs` of a ``reproduce`` invocation and returns a
:class:`Claim` with the measured numbers, the predicted ones, PASS/FAIL and a one-line
explanation. The PASS thresholds are fixed here, before any run (named constants), and a
FAIL is explained with the measured numbers, never hidden. A claim whose runs were not part
of the invocation is ``NOT RUN``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import theory as th
from .analysis import analyze, in_class_optimum, loss_array

__all__ = ["CLAIMS", "Claim", "Runs", "evaluate", "is_alpha_variant"]

RATIO_MIN = 20.0  # issue #3: GN reaches 1e-6 in ≥ 20× fewer steps than GF
GN_SPREAD_MAX = 1.5  # claims 2, 6: "essentially unchanged" = max/min of GN step counts ≤ 1.5
OVERLAP_DECADES = 0.1  # claim 3: curves "almost overlap" = |log10 ratio| ≤ 0.1
NEAR_ONE = 0.1  # claim 3: λ_min(K_t)/λ₀ within 1 ± 0.1
SLOPE_TOL = 0.15  # claim 4: log-log slope of sup‖θ−θ_0‖ vs α within −1 ± 0.15
SLOPE_TOL_UNDER = 0.3  # claim 9: the same for p < n (non-lazy small α), within −1 ± 0.3
RATE_TOL = 0.05  # claim 5: "within a few %"
STATIONARY = 1e-6  # claim 8: ‖P r‖ ≤ 1e-6·‖r‖ at the end
GF_SLOWER = 10.0  # claim 8: "GF is far slower" = GN rate ≥ 10× GF rate
R_LIN_TOL = 0.02  # claim 9: final loss at the largest α within 2 % of R_lin
IDENTITY_TOL = 1e-6  # claim 10: relative error of the step identity (round-off × cond(G), cond up to ~1e11)
EDI_TOL = 0.05  # claim 10: finite-difference dR/dt vs −(1/n)‖Pr‖² (Euler error O(Δt)) ...
EDI_MAX_DT = 0.05  # ... checked on the runs with Δt ≤ 0.05 (Figure 1)
MONOTONE_TOL = 1e-10  # claim 10: largest relative increase of R allowed (round-off)
GF_DEGRADES = 0.5  # acceptance: GF's per-step rate at the smallest λ_G ≤ 0.5 × at the largest
GN_FLAT = 1.25  # acceptance: GN's rate max/min ≤ 1.25 across λ_G
CURV_FLAT = 1.5  # claim 11: GGN rates max/min ≤ 1.5 across μ = 1 … 0.01 ("independent of μ")
CURV_FLOOR = 0.8  # claim 11: ... and each ≥ 0.8 × 2/(1+κ)
CURV_SLOW = 0.2  # claim 11: the Λ-ignoring rate at the smallest μ ≤ 0.2 × its rate at μ = 1


@dataclass(frozen=True)
class Claim:
    """One row of the claims table."""

    number: str
    title: str
    measured: str
    predicted: str
    status: str
    explanation: str


class Runs:
    """The records of one invocation and their theory-check rows, with look-ups."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        gn_under = {
            self._group(r): in_class_optimum(r)
            for r in records
            if r["config"]["method"] == "gn" and r["summary"]["regime"] == "under"
        }
        self.rows = []
        for r in records:
            r_star = gn_under.get(self._group(r)) if r["config"]["method"] == "gd" else None
            self.rows.append(analyze(r, r_star=r_star))
        self.by_key = {r["key"]: (r, row) for r, row in zip(records, self.rows, strict=True)}

    @staticmethod
    def _group(r: dict[str, Any]) -> tuple[Any, ...]:
        c = r["config"]
        return (c["experiment"], c["dataset"], c["n"], c["width"], c["alpha"], c["spread"], c["seed"],
                c.get("dynamics", "euler"))

    def select(
        self,
        experiment: str,
        dataset: str | None = None,
        pred: Callable[[dict[str, Any]], bool] | None = None,
        dynamics: str = "euler",
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(record, row) pairs of an experiment and dynamics, optionally one data set and a predicate on the row."""
        return [
            (r, row)
            for r, row in zip(self.records, self.rows, strict=True)
            if row["experiment"] == experiment
            and row["dynamics"] == dynamics
            and (dataset is None or row["dataset"] == dataset)
            and (pred is None or pred(row))
        ]

    def one(
        self, experiment: str, dataset: str, name: str, dynamics: str = "euler"
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The run with this name (and dynamics), or None."""
        found = self.select(experiment, dataset, lambda row: row["name"] == name, dynamics)
        return found[0] if found else None


def is_alpha_variant(name: str) -> bool:
    """True for the α-series copies of a run (names ending in ``_a<α>``)."""
    return re.search(r"_a[0-9.]+$", name) is not None


def _g(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3g}"


def _status(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _not_run(number: str, title: str, what: str) -> Claim:
    return Claim(number, title, "—", "—", "NOT RUN", f"needs `{what}` (not part of this invocation)")


DATASETS = ("single_index", "california")
SHORT = {"single_index": "SI", "california": "CH"}


def claim_1(runs: Runs) -> Claim:
    """GN (adaptive) reaches 1e-6 of R_0 far sooner than GF at its best stable step."""
    title = "GN beats GF on ill-conditioned kernels (steps to 1e-6·R₀)"
    parts, pred, ok, notes = [], [], True, []
    for ds in DATASETS:
        gn = runs.one("fig2", ds, "gn_adaptive")
        gfs = runs.select("fig2", ds, lambda row: row["name"].startswith("gf_c"))
        if gn is None or not gfs:
            return _not_run("1", title, "fig2")
        g = gn[1]
        best = min(gfs, key=lambda pair: pair[1]["steps_to_1e-6"])[1]
        ratio = best["steps_to_1e-6"] / g["steps_to_1e-6"]
        ok &= ratio >= RATIO_MIN and not g["steps_extrapolated"]
        parts.append(
            f"{SHORT[ds]}: GN {g['steps_to_1e-6']:.0f} vs GF ≥{best['steps_to_1e-6']:.3g} "
            f"(lr={best['lr'] * best['lambda_max0']:.2g}/λ_max) → ×{ratio:.0f}"
        )
        t_gn = th.LOG_1E6 * (1 + 1.0) / 2
        pred.append(
            f"{SHORT[ds]}: GN {t_gn / g['lr']:.0f} (Cor. 9), lazy model {g['linear_steps_to_1e-6']:.0f}; "
            f"GF lazy model {best['linear_steps_to_1e-6']:.3g}"
        )
        if g["steps_extrapolated"]:
            notes.append(f"GN did not reach 1e-6 on {ds}")
    expl = (
        "GF steps are extrapolated from its measured final slope (a lower bound: GF's rate keeps falling); "
        "GN steps are counted. Best GF step chosen from lr ∈ {c/λ_max}."
    )
    if not ok:
        expl = f"ratio below {RATIO_MIN:g} or GN did not converge ({'; '.join(notes) or 'see numbers'}). " + expl
    return Claim("1", title, "; ".join(parts), "; ".join(pred), _status(ok), expl)


def claim_2(runs: Runs) -> Claim:
    """λ₀-independence of GN; GF slows ∝ 1/λ₀ (sweep over n)."""
    title = "λ₀-independence: GN unchanged, GF ∝ 1/λ₀ as n grows"
    pts = []
    for n_row in runs.select("sweep", "single_index", lambda row: row["name"].startswith("over_gn_adaptive")):
        row = n_row[1]
        gf = runs.one("sweep", "single_index", f"over_gf_n{row['n']}")
        if gf is not None:
            pts.append(
                (row["lambda0"], row["steps_to_1e-6"], gf[1]["steps_to_1e-6"], row["n"], gf[1]["linear_steps_to_1e-6"])
            )
    if len(pts) < 2:
        return _not_run("2", title, "sweep")
    pts.sort(key=lambda p: -p[0])  # λ₀ decreasing
    lam, gn, gf, ns, gf_lin = (np.array(v) for v in zip(*pts, strict=True))
    ratio = gf / gn
    gn_flat = gn.max() / gn.min() <= GN_SPREAD_MAX
    gf_up = bool(np.all(np.diff(gf) > 0))
    ratio_up = bool(np.all(np.diff(ratio) > 0))
    slope = th.loglog_slope(lam, gf)
    measured = (
        f"λ₀ {_g(lam[0])}→{_g(lam[-1])} (n {ns[0]}→{ns[-1]}): GN steps {', '.join(f'{v:.0f}' for v in gn)}; "
        f"GF ≥ {', '.join(f'{v:.3g}' for v in gf)}; ratio {', '.join(f'{v:.0f}' for v in ratio)}; "
        f"slope d log GF/d log λ₀ = {slope:.2f} (lazy-model GF steps: slope {th.loglog_slope(lam, gf_lin):.2f})"
    )
    ok = gn_flat and gf_up and ratio_up
    expl = (
        "GN max/min ≤ 1.5, GF and GF/GN ratio grow monotonically as λ₀ shrinks"
        if ok
        else f"GN flat: {gn_flat}, GF increasing: {gf_up}, ratio increasing: {ratio_up}"
    )
    expl += "; GF counts are slope extrapolations (lower bounds), so the measured slope is shallower than −1"
    return Claim("2", title, measured, "GN ≈ const (ln 1e6·(1+κ)/2Δt); GF ∝ λ₀⁻¹ (slope −1)", _status(ok), expl)


def _pair_gap(a: dict[str, Any], b: dict[str, Any]) -> float:
    la, lb = loss_array(a), loss_array(b)
    k = min(la.size, lb.size)
    r0 = a["summary"]["initial_loss"]
    both = (la[:k] >= 1e-12 * r0) & (lb[:k] >= 1e-12 * r0)
    return float(np.max(np.abs(np.log10(la[:k][both] / lb[:k][both])))) if both.any() else math.nan


def _lam_range(rec: dict[str, Any]) -> tuple[float, float]:
    lam = np.array([v for v in rec["history"]["lambda_min"] if v is not None and math.isfinite(v)])
    lam0 = rec["summary"]["lambda0"]
    return (float(lam.min() / lam0), float(lam.max() / lam0)) if lam.size else (math.nan, math.nan)


def _alpha_series(runs: Runs, ds: str, prefix: str) -> list[tuple[float, dict[str, Any], dict[str, Any]]]:
    base = runs.one("fig2", ds, prefix)
    out = [(base[1]["alpha"], *base)] if base is not None else []
    out += [
        (row["alpha"], r, row) for r, row in runs.select("fig2", ds, lambda row: row["name"].startswith(prefix + "_a"))
    ]
    return sorted(out, key=lambda x: x[0])


def claim_3(runs: Runs) -> Claim:
    """Adaptive ≈ constant data-dependent damping for large α."""
    title = "Adaptive ≈ constant data-based damping for large α"
    parts, ok, why = [], True, []
    for ds in DATASETS:
        ad, dd = _alpha_series(runs, ds, "gn_adaptive"), _alpha_series(runs, ds, "gn_data_k1")
        if not ad or not dd:
            return _not_run("3", title, "fig2")
        pairs = {a: r for a, r, _ in dd}
        for a, r_ad, _ in ad:
            if a not in pairs:
                continue
            gap, (lo, hi) = _pair_gap(r_ad, pairs[a]), _lam_range(r_ad)
            parts.append(f"{SHORT[ds]} α={a:g}: max|Δlog₁₀R|={gap:.3f}, λ_min(K_t)/λ₀∈[{lo:.3f},{hi:.3f}]")
            if a == ad[-1][0]:
                near = lo >= 1 - NEAR_ONE and hi <= 1 + NEAR_ONE
                ok &= gap <= OVERLAP_DECADES and near
                if gap > OVERLAP_DECADES and near:
                    why.append(
                        f"{SHORT[ds]}: λ_min(K_t) stays within {max(1 - lo, hi - 1):.0%} of λ₀, yet the curves "
                        f"differ by up to {gap:.2f} decades: a few-% difference in ρ shifts the rate "
                        "2/(1+κλ_t/λ₀) by ~1 %, which compounds over the 13 decades of the run"
                    )
                elif not near:
                    why.append(f"{SHORT[ds]}: λ_min(K_t)/λ₀ leaves 1 ± {NEAR_ONE:g}")
    return Claim(
        "3",
        title,
        "; ".join(parts),
        f"|Δlog₁₀R| ≤ {OVERLAP_DECADES}, ratio in 1±{NEAR_ONE}",
        _status(ok),
        "checked at the largest α; λ_min(K_t) ≈ λ₀ makes the two schedules identical" if ok else "; ".join(why),
    )


def claim_4(runs: Runs) -> Claim:
    """λ_min(K_t) ≥ λ₀/2 and sup‖θ_t − θ_0‖ ∝ 1/α."""
    title = "Kernel stays non-degenerate; sup‖θ_t−θ_0‖ ∝ 1/α"
    parts, ok = [], True
    for ds in DATASETS:
        main = runs.select("fig2", ds, lambda row: row["method"] == "gn" and not is_alpha_variant(row["name"]))
        ad = _alpha_series(runs, ds, "gn_adaptive")
        if not main or len(ad) < 2:
            return _not_run("4", title, "fig2")
        lam_min = min(row["lambda_ratio_min"] for _, row in main)
        slope = th.loglog_slope([a for a, _, _ in ad], [row["sup_distance"] for _, _, row in ad])
        dists = ", ".join(f"{row['sup_distance']:.3g}" for _, _, row in ad)
        alphas = ",".join(f"{a:g}" for a, _, _ in ad)
        parts.append(f"{SHORT[ds]}: min λ_min(K_t)/λ₀={lam_min:.3f}; sup dist {dists} (α={alphas}), slope {slope:.2f}")
        ok &= lam_min >= 0.5 and abs(slope + 1) <= SLOPE_TOL
    return Claim(
        "4",
        title,
        "; ".join(parts),
        "ratio ≥ 0.5; slope −1",
        _status(ok),
        "lazy regime confirmed: doubling α halves the movement"
        if ok
        else "λ_min(K_t) fell below λ₀/2 or the movement does not scale like 1/α",
    )


def claim_5(runs: Runs) -> Claim:
    """Measured asymptotic rate for constant ρ vs 2λ_min/(λ_min+ρ); bound never violated."""
    title = "Rate depends on ρ as 2λ_min/(λ_min+ρ); Lemma 3 bound holds"
    parts, ok_rate, ok_bound, worst = [], True, True, []
    for ds in DATASETS:
        dd = runs.select(
            "fig2", ds, lambda row: row["name"].startswith("gn_data_k") and not is_alpha_variant(row["name"])
        )
        const = runs.select("fig2", ds, lambda row: row["name"] in ("gn_constant", "gn_dt"))
        if not dd:
            return _not_run("5", title, "fig2")
        for _, row in sorted(dd, key=lambda x: x[1]["damping_value"]):
            rel = row["rate_observed"] / row["rate_sharp"] - 1
            rel_lin = row["rate_observed"] / row["rate_linear"] - 1
            parts.append(
                f"{SHORT[ds]} κ={row['damping_value']:g}: obs {row['rate_observed']:.3f} vs "
                f"{row['rate_sharp']:.3f} ({rel:+.0%}; all-mode lazy model {rel_lin:+.1%})"
            )
            if abs(rel) > RATE_TOL:
                ok_rate = False
                worst.append(f"{SHORT[ds]} κ={row['damping_value']:g}")
        ok_bound &= all(row["bound_respected"] for _, row in dd + const)
    ok = ok_rate and ok_bound
    if ok:
        expl = "slowest-mode rate reached within 5 %; bound never violated"
    else:
        expl = (
            f"bound never violated: {ok_bound}. Off by > 5 % ({', '.join(worst)}): 2λ_min/(λ_min+ρ) is the t→∞ "
            "limit; inside the measurable window (R ≥ 1e-12·R₀) modes with λ just above λ_min still contribute, "
            "so the observed rate is higher — it matches the all-mode lazy prediction Σ_i e^{−2λ_i t/(λ_i+ρ)} "
            "(shown in brackets), which confirms the λ/(λ+ρ) law itself"
        )
    return Claim("5", title, "; ".join(parts), "Euler-exact −2ln(1−Δt·λ/(λ+ρ))/Δt at λ = λ_min(K_t)", _status(ok), expl)


def _factors(rec: dict[str, Any]) -> np.ndarray:
    loss = np.concatenate([[rec["summary"]["initial_loss"]], loss_array(rec)])
    keep = loss[:-1] >= 1e-12 * loss[0]
    return (loss[1:] / loss[:-1])[keep]


def claim_6(runs: Runs) -> Claim:
    """GN-DT with η = 1, ρ = λ₀/2: per-step factor ≤ 1/2, ≈ 1/9 asymptotically, λ₀-independent."""
    title = "Discrete GN (Thm 7): per-step factor ≤ 1/2, ≈1/9 lazy, λ₀-free"
    rows = runs.select("fig2", None, lambda row: row["name"] == "gn_dt")
    rows += runs.select("sweep", None, lambda row: row["name"].startswith("over_gn_dt"))
    if not rows:
        return _not_run("6", title, "fig2 or sweep")
    maxf, tails, steps, lams = [], [], [], []
    for r, row in rows:
        f = _factors(r)
        maxf.append(float(f.max()))
        tails.append(float(np.exp(np.mean(np.log(f[-3:])))))
        k = th.first_step_below(loss_array(r).tolist(), 1e-12 * row["initial_loss"])
        steps.append(k if k is not None else math.inf)
        lams.append(row["lambda0"])
    bound = all(row["bound_respected"] for _, row in rows)
    spread = max(steps) / min(steps)
    ok = max(maxf) <= 0.5 and bound and spread <= GN_SPREAD_MAX
    measured = (
        f"{len(rows)} runs, λ₀ ∈ [{_g(min(lams))}, {_g(max(lams))}]: max factor {max(maxf):.3f}, "
        f"last-3 geometric mean {min(tails):.3f}–{max(tails):.3f}, steps to 1e-12·R₀ {min(steps)}–{max(steps)}"
    )
    order = np.argsort(lams)
    slowdown = steps[order[0]] > steps[order[-1]]  # more steps at the smallest λ₀ than at the largest
    expl = (
        "cumulative bound (1/2)^k never violated; steps independent of λ₀"
        if ok
        else f"max factor ≤ 0.5: {max(maxf) <= 0.5}; cumulative bound: {bound}; step counts max/min {spread:.2f} > "
        f"{GN_SPREAD_MAX:g} (steps {steps[order[-1]]} at the largest λ₀, {steps[order[0]]} at the smallest: "
        + ("slower at small λ₀)" if slowdown else "no slowdown as λ₀ shrinks; the spread is between data sets/runs)")
    )
    return Claim("6", title, measured, "≤ 0.5 (Thm 7), 1/9 = 0.111 (lazy slowest mode)", _status(ok), expl)


def claim_7(runs: Runs) -> Claim:
    """θ_∞ ≈ the min-norm interpolant; the relative gap shrinks as α grows."""
    title = "Implicit bias: θ_∞ → min-norm interpolant as α grows"
    parts, ok = [], True
    for ds in DATASETS:
        for prefix in ("gn_adaptive", "gn_data_k1"):
            ser = _alpha_series(runs, ds, prefix)
            if len(ser) < 2:
                return _not_run("7", title, "fig2")
            gaps = [r["extras"]["min_norm_gap"] for _, r, _ in ser]
            slope = th.loglog_slope([a for a, _, _ in ser], gaps)
            parts.append(f"{SHORT[ds]} {prefix[3:]}: gap {', '.join(f'{g:.3f}' for g in gaps)} (slope {slope:.2f})")
            ok &= bool(np.all(np.diff(gaps) < 0))
    return Claim(
        "7",
        title,
        "; ".join(parts),
        "gap decreasing in α (∝ 1/α in the lazy limit)",
        _status(ok),
        "relative gap ‖θ_∞−θ̄‖/‖θ̄−θ_0‖ falls with α for both schedules"
        if ok
        else "the gap does not decrease monotonically with α",
    )


def claim_8(runs: Runs) -> Claim:
    """Undamped GN (p < n) converges at rate ≥ 1 to a Riemannian stationary point; GF far slower."""
    title = "Underparameterized GN: rate ≥ 1 (→2), P r → 0, GF far slower"
    parts, fails, passes = [], [], []
    rows = runs.select("fig3", None, lambda row: row["method"] == "gn")
    if not rows:
        return _not_run("8", title, "fig3")
    for r, row in sorted(rows, key=lambda x: (x[1]["dataset"], x[1]["alpha"])):
        gf = runs.one("fig3", row["dataset"], f"gf_a{row['alpha']:g}")
        gf_rate = gf[1]["rate_observed"] if gf else math.nan
        stat = r["extras"]["stationarity"] / max(r["extras"]["residual_norm"], 1e-300)
        checks = {
            "rate≥1": row["rate_observed"] >= 1.0,
            "Pr≈0": stat <= STATIONARY,
            "λ_G/4": bool(row["kernel_ok"]),
            "GF≪GN": row["rate_observed"] >= GF_SLOWER * gf_rate,
        }
        parts.append(f"{SHORT[row['dataset']]} α={row['alpha']:g}: {row['rate_observed']:.2f}")
        bad = [k for k, v in checks.items() if not v]
        if not bad:
            passes.append(f"{SHORT[row['dataset']]} α={row['alpha']:g}")
        if bad:
            fails.append(
                f"{SHORT[row['dataset']]} α={row['alpha']:g} ({','.join(bad)}; α_0={_g(row['alpha_required'])}, "
                f"sup‖θ−θ_0‖={_g(row['sup_distance'])} vs r_u={_g(row['radius'])})"
            )
    ok = not fails
    measured = "rates " + "; ".join(parts)
    expl = (
        "all α converge at ≥ 1 to P r = 0, ≥ 10× faster than GF"
        if ok
        else "fails for " + "; ".join(fails) + ". No run reaches the reconstructed α_0 (a conservative sufficient "
        "condition); the failing runs leave the ball Θ by orders of magnitude (non-lazy: M is curved on the scale of "
        "the trajectory), where the theorem says nothing. As predicted: " + (", ".join(passes) or "none")
    )
    return Claim("8", title, measured, "≥ 1 (Thm 25), flat limit −2ln(1−Δt)/Δt = 2.11", _status(ok), expl)


def claim_9(runs: Runs) -> Claim:
    """Final GN loss increases with α and tends to R_lin; sup‖θ−θ_0‖ ∝ 1/α."""
    title = "α regularizes: final loss ↑ with α → R_lin; movement ∝ 1/α"
    parts, ok, notes = [], True, []
    for ds in DATASETS:
        rows = sorted(runs.select("fig3", ds, lambda row: row["method"] == "gn"), key=lambda x: x[1]["alpha"])
        if len(rows) < 2:
            return _not_run("9", title, "fig3")
        alphas = [row["alpha"] for _, row in rows]
        finals = [row["final_loss"] for _, row in rows]
        r_lin = rows[-1][1]["R_lin"]
        slope = th.loglog_slope(alphas, [row["sup_distance"] for _, row in rows])
        up = bool(np.all(np.diff(finals) > 0))
        near = abs(finals[-1] / r_lin - 1) <= R_LIN_TOL
        parts.append(
            f"{SHORT[ds]}: final {', '.join(f'{f:.4g}' for f in finals)} (α={','.join(f'{a:g}' for a in alphas)}), "
            f"R_lin {r_lin:.4g}, movement slope {slope:.2f}"
        )
        ok &= up and near and abs(slope + 1) <= SLOPE_TOL_UNDER
        if not up:
            i = int(np.argmin(np.diff(finals)))
            notes.append(
                f"{SHORT[ds]}: not increasing from α={alphas[i]:g} to {alphas[i + 1]:g} "
                f"(final loss at α={alphas[i]:g} is {finals[i]:.3g} vs R₀={rows[i][1]['initial_loss']:.3g})"
            )
        if abs(slope + 1) > SLOPE_TOL_UNDER:
            notes.append(f"{SHORT[ds]}: movement slope {slope:.2f} (small α is not lazy)")
    expl = (
        "monotone in α, converging to the linearized limit R_lin"
        if ok
        else "; ".join(notes)
        + (
            ". Where the final loss exceeds R₀, undamped GN diverged (α ≪ α_0, G became singular), so that α has no "
            "in-class optimum to compare"
        )
    )
    return Claim("9", title, "; ".join(parts), "increasing in α, → R_lin; slope −1", _status(ok), expl)


def claim_10(runs: Runs) -> Claim:
    """u̇ = αJθ̇ = −K(K+ρ)⁻¹r (−P r for ρ = 0), dR/dt = −(1/n)‖Pr‖², R non-increasing."""
    title = "Riemannian-flow identities: u̇ = −P r, dR/dt = −‖Pr‖²/n, R ↓"
    squared = [  # the Euler runs of the figures (the Δt-convergence runs of `dt` are Figure 6's evidence)
        (r, row)
        for r, row in runs.by_key.values()
        if row["loss"] == "squared" and row["dynamics"] == "euler" and row["experiment"] != "dt"
    ]
    ident = [
        r["extras"]["step1_function_space_rel_err"]
        for r, _ in squared
        if math.isfinite(r["extras"].get("step1_function_space_rel_err", math.nan))
    ]
    if not ident:
        return _not_run("10", title, "fig1, fig2, fig3 or sweep")
    worst_ident = max(ident)
    edi = [
        abs(r["extras"]["step1_dRdt_finite_difference"] / r["extras"]["step1_dRdt_predicted"] - 1)
        for r, row in squared
        if row["lr"] <= EDI_MAX_DT and row["method"] == "gn"
    ]
    gn = [row for _, row in squared if row["method"] == "gn"]
    incr = [row for row in gn if row["max_loss_increase"] > MONOTONE_TOL]
    ok = worst_ident <= IDENTITY_TOL and (not edi or max(edi) <= EDI_TOL) and not incr
    measured = (
        f"max rel. error of αJΔθ vs −Δt·K(K+ρ)⁻¹r over {len(ident)} runs: {worst_ident:.1e}; "
        f"EDI finite difference (Δt ≤ {EDI_MAX_DT:g}): {', '.join(f'{e:.1e}' for e in edi) or '—'}; "
        f"R increased in {len(incr)}/{len(gn)} GN runs"
    )
    expl = (
        "identities hold to round-off; R monotone in every GN run"
        if ok
        else (
            "R increased in: "
            + "; ".join(
                f"{r['experiment']} {SHORT.get(r['dataset'], r['dataset'])} {r['name']} "
                f"(by {r['max_loss_increase']:.2g}·R₀, α={r['alpha']:g} vs α_0={_g(r['alpha_required'])})"
                for r in incr[:4]
            )
            + (
                ". EDI is a continuous-time identity: an Euler step of Δt = 0.1 with ρ = 0 overshoots once G is "
                "near-singular (α far below α_0)"
                if incr
                else ""
            )
        )
    )
    return Claim("10", title, measured, f"≤ {IDENTITY_TOL:g}; ≤ {EDI_TOL:.0%}; no increase", _status(ok), expl)


def claim_acceptance(runs: Runs) -> Claim:
    """Issue #3: GN's rate does not degrade as G becomes ill-conditioned while GF's does."""
    title = "Underparam. conditioning: GN rate flat in λ_G, GF rate degrades"
    rows = runs.select("sweep", None, lambda row: row["regime"] == "under")
    if not rows:
        return _not_run("A", title, "sweep")
    alphas = sorted({row["alpha"] for _, row in rows})
    parts, ok, notes = [], True, []
    for a in alphas:
        gn = sorted(
            [row for _, row in rows if row["alpha"] == a and row["method"] == "gn"], key=lambda x: -x["lambda0"]
        )
        gf = sorted(
            [row for _, row in rows if row["alpha"] == a and row["method"] == "gd"], key=lambda x: -x["lambda0"]
        )
        gn_rates = [row["rate_observed"] for row in gn]
        gf_rates = [row["rate_per_step"] for row in gf]
        lams = [row["lambda0"] for row in gn]
        parts.append(
            f"α={a:g}, λ_G {_g(lams[0])}→{_g(lams[-1])}: GN {', '.join(f'{v:.2f}' for v in gn_rates)}; "
            f"GF/step {', '.join(f'{v:.1e}' for v in gf_rates)}"
        )
        flat = max(gn_rates) / min(gn_rates) <= GN_FLAT
        degrades = gf_rates[-1] <= GF_DEGRADES * gf_rates[0]
        if a == alphas[-1]:
            ok = flat and degrades
        elif not flat:
            notes.append(
                f"at α={a:g} GN's rate does degrade (α < α_0 ∝ 1/λ_G: {_g(gn[-1]['alpha_required'])} at the "
                "smallest λ_G; the first undamped steps overshoot)"
            )
    expl = (
        f"at α={alphas[-1]:g} GN's rate is constant (≈ 2.11 = flat-limit) while GF's falls with λ_G"
        if ok
        else "GN's rate varies or GF's does not degrade at the largest α"
    )
    if notes:
        expl += "; " + "; ".join(notes)
    return Claim("A", title, " | ".join(parts), "GN rate λ_G-free (Thm 25, α ≥ α_0); GF ∝ λ_G", _status(ok), expl)


def claim_11(runs: Runs) -> Claim:
    """(Optional) heterogeneous curvature: the GGN with ρ^(2) keeps its rate as μ → 0; ignoring Λ slows ∝ μ."""
    title = "(Optional) curvature-aware damping: rate μ-free with JᵀΛJ + ρ⁽²⁾"
    rows = [row for _, row in runs.select("curvature")]
    if not rows:
        return _not_run("11", title, "curvature")
    ggn = sorted((r for r in rows if r["damping"] == "curvature_local"), key=lambda r: -r["loss_mu"])
    plain = sorted((r for r in rows if r["damping"] != "curvature_local"), key=lambda r: -r["loss_mu"])
    rates, plain_rates = [r["rate_observed"] for r in ggn], [r["rate_observed"] for r in plain]
    mus = [r["loss_mu"] for r in ggn]
    sharp = ggn[0]["rate_sharp"]
    flat = max(rates) / min(rates) <= CURV_FLAT and min(rates) >= CURV_FLOOR * sharp
    slows = plain_rates[-1] <= CURV_SLOW * plain_rates[0]
    ok = flat and slows and all(r["bound_respected"] for r in ggn)
    measured = (
        f"μ = {', '.join(f'{m:g}' for m in mus)}: GGN+ρ⁽²⁾ rate {', '.join(f'{v:.2f}' for v in rates)}; "
        f"Λ ignored {', '.join(f'{v:.3g}' for v in plain_rates)}; slope of the latter vs μ "
        f"{th.loglog_slope([r['loss_mu'] for r in plain], plain_rates):.2f}"
    )
    expl = (
        "with the generalized preconditioner the rate stays ≈ 2/(1+κ) for every μ; without Λ it falls "
        "roughly ∝ μ. Our own test (the paper reports no such experiment)"
        if ok
        else f"GGN rates μ-free: {flat}; Λ-ignored run slows with μ: {slows}"
    )
    return Claim("11", title, measured, f"≈ 2/(1+κ) = {sharp:.2f} (Euler), Λ ignored ∝ μ", _status(ok), expl)


CLAIMS: tuple[Callable[[Runs], Claim], ...] = (
    claim_1,
    claim_2,
    claim_3,
    claim_4,
    claim_5,
    claim_6,
    claim_7,
    claim_8,
    claim_9,
    claim_10,
    claim_acceptance,
    claim_11,
)


def evaluate(runs: Runs) -> list[Claim]:
    """All claims, in order; claims 5, 8, 9, 10 on the integrated flows (:mod:`.flow_claims`, issue #13)."""
    from .flow_claims import FLOW_CLAIMS  # it builds on this module

    return [FLOW_CLAIMS.get(c.__name__.removeprefix("claim_"), c)(runs) for c in CLAIMS]
