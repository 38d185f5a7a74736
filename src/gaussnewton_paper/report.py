"""``report.md``, ``theory_check.csv`` and the console tables of ``gaussnewton reproduce``."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from .claims import Claim, Runs
from .config import Sizes
from .flow_claims import FLOW_EDI_TOL, dt_convergence

__all__ = ["console_claims", "console_theory", "write_report", "write_theory_csv"]

THEORY_COLUMNS = (
    "experiment",
    "dataset",
    "name",
    "n",
    "p",
    "alpha",
    "lambda0",
    "theorem",
    "rate_bound",
    "rate_sharp",
    "rate_linear",
    "rate_observed",
    "rate_per_step",
    "steps_to_1e-6",
    "steps_extrapolated",
    "linear_steps_to_1e-6",
    "width",
    "width_required",
    "width_ok",
    "alpha_required",
    "alpha_ok",
    "sup_distance",
    "radius",
    "ball_ok",
    "lambda_ratio_min",
    "kernel_ok",
    "conditions_hold",
    "bound_respected",
    "max_loss_increase",
    "final_loss",
    "r_star",
    "R_lin",
    "lr",
    "steps_run",
    "wall_time_s",
    "key",
)
SHORT = {"single_index": "SI", "california": "CH", "neuron": "1N"}


def _g(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "—" if math.isnan(x) else ("∞" if math.isinf(x) else f"{x:.{digits}g}")
    return str(x)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_theory_csv(path: Path, runs: Runs) -> None:
    """One row per run with the columns of :data:`THEORY_COLUMNS`."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(THEORY_COLUMNS)
        for row in runs.rows:
            writer.writerow([row.get(c) for c in THEORY_COLUMNS])


def _conditions(row: dict[str, Any]) -> str:
    parts = []
    if row["width_ok"] is not None:
        parts.append(f"m {row['width']}{'≥' if row['width_ok'] else '<'}{_g(row['width_required'], 2)}")
    if row["alpha_ok"] is not None:
        parts.append(f"α {_g(row['alpha'])}{'≥' if row['alpha_ok'] else '<'}{_g(row['alpha_required'], 2)}")
    parts.append(f"‖Δθ‖ {_g(row['sup_distance'], 2)}{'≤' if row['ball_ok'] else '>'}r {_g(row['radius'], 2)}")
    return ", ".join(parts)


def theory_lines(runs: Runs) -> list[str]:
    """The per-run theory-check table as Markdown lines."""
    lines = [
        "| exp | data | run | n | p | α | λ₀ | theorem | bound | sharp (lazy) | lazy model | **observed** "
        "| steps→1e-6 | conditions | holds | min λ_t/λ₀ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in runs.rows:
        steps = _g(row["steps_to_1e-6"], 4) if row["regime"] == "over" else "—"
        if row["steps_extrapolated"]:
            steps = "≥" + steps
        lines.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (
                    row["experiment"],
                    SHORT.get(row["dataset"], row["dataset"]),
                    row["name"] + (" (flow)" if row["dynamics"] == "flow" else ""),
                    row["n"],
                    row["p"],
                    _g(row["alpha"]),
                    _g(row["lambda0"], 2),
                    row["theorem"],
                    _g(row["rate_bound"]),
                    _g(row["rate_sharp"]),
                    _g(row["rate_linear"]),
                    f"**{_g(row['rate_observed'])}**",
                    steps,
                    _conditions(row),
                    _g(row["conditions_hold"]),
                    _g(row["lambda_ratio_min"]),
                )
            )
            + " |"
        )
    return lines


def console_theory(runs: Runs) -> str:
    """A compact fixed-width version for the terminal."""
    head = f"{'run':44s} {'theorem':13s} {'bound':>9s} {'sharp':>9s} {'observed':>9s}  conditions"
    out = [head, "-" * len(head)]
    for row in runs.rows:
        name = f"{row['experiment']}/{SHORT.get(row['dataset'], row['dataset'])}/{row['name']}"
        out.append(
            f"{name:44s} {row['theorem']:13s} {_g(row['rate_bound']):>9s} {_g(row['rate_sharp']):>9s} "
            f"{_g(row['rate_observed']):>9s}  {'hold' if row['conditions_hold'] else 'do not hold'}"
        )
    return "\n".join(out)


def console_claims(claims: list[Claim]) -> str:
    """One line per claim for the terminal."""
    return "\n".join(f"[{c.status:7s}] {c.number:>2s}. {c.title}" for c in claims)


def flow_lines(runs: Runs) -> list[str]:
    """The section on the integrated flows: one row per flow run, and the Δt-convergence table."""
    flows = [row for row in runs.rows if row["dynamics"] == "flow"]
    if not flows:
        return []
    gn = [row for row in flows if row["method"] == "gn"]
    worst = max((row["max_loss_increase"] for row in gn), default=math.nan)
    lines = [
        "",
        "## Continuous-time flows (issue #13)",
        "",
        "`fit(..., dynamics=\"flow\")` integrates θ̇ = −H_ρ(θ)⁻¹∇R/α² with error control (`gaussnewton.flow`: "
        "DOP853 for GN/LM flows, LSODA with the GN Jacobian for the stiff gradient flow; rtol 1e-10, atol 1e-12) "
        "and reports it at t_k = k·Δt. Claims 5, 8, 9 and 10 above are judged on these runs.",
        "",
        f"**Largest loss increase along any of the {len(gn)} integrated GN flows: {_g(worst)}·R₀** "
        f"(round-off){_worst_euler(runs)}.",
        "",
        "| exp | data | run | α | ODE | field evaluations | stop | t | final loss | max increase/R₀ | "
        f"EDI error (≤ {FLOW_EDI_TOL:g}) | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in flows:
        lines.append("| " + " | ".join(_cell(c) for c in (
            row["experiment"], SHORT.get(row["dataset"], row["dataset"]), row["name"], _g(row["alpha"]),
            row["ode_method"], row["nfev"], row["termination"], _g(row["t_end"], 4), _g(row["final_loss"], 4),
            _g(row["max_loss_increase"], 2), _g(row["edi_err"], 2) if row["method"] == "gn" else "— (GF)",
            _g(row["wall_time_s"], 2))) + " |")
    conv = dt_convergence(runs)
    if conv:
        lines += [
            "",
            "Δt-convergence (experiment `dt`, undamped GN, p < n): Euler's loss error max_t |R_Euler − R_flow|/R₀ "
            "over the times before the flow's stop, its observed order between consecutive Δt, and the largest "
            "increase of R along each run (the flow's increase is round-off).",
            "",
            "| data | α | flow | Δt | error | order | Euler max increase/R₀ | flow max increase/R₀ |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in conv:
            stop = "to t = " + _g(e["flow_t_end"], 4)
            stop += "" if e["flow_stop"] == "STEPS_DONE" else f" ({e['flow_stop']})"
            orders = ["—"] + [_g(q) for q in e["orders"]]
            for i, dt in enumerate(e["dts"]):
                lines.append(f"| {SHORT.get(e['dataset'], e['dataset'])} | {_g(e['alpha'])} | {stop} | {dt:g} | "
                             f"{_g(e['errors'][i], 2)} | {orders[i]} | {_g(e['euler_increase'][i], 2)} | "
                             f"{_g(e['flow_increase'], 2)} |")
    return lines


def _worst_euler(runs: Runs) -> str:
    gn = [r for r in runs.rows if r["dynamics"] == "euler" and r["method"] == "gn"]
    if not gn:
        return ""
    w = max(gn, key=lambda r: r["max_loss_increase"])
    return (f"; the Euler GN runs rise by up to {_g(w['max_loss_increase'])}·R₀ ({w['experiment']} "
            f"{SHORT.get(w['dataset'], w['dataset'])} {w['name']}, Δt = {w['lr']:g})")


def _conditions_paragraph(runs: Runs) -> list[str]:
    rows = [r for r in runs.rows if r["dynamics"] == "euler"]
    hold = [r for r in rows if r["conditions_hold"]]
    over = [r for r in rows if r["regime"] == "over" and r["method"] == "gn" and r["experiment"] != "fig1"]
    under = [r for r in rows if r["regime"] == "under" and r["method"] == "gn" and r["experiment"] != "fig1"]
    lines = [
        f"The sufficient conditions of the theorems (width eq. 9, α ≥ α_ρ of Lemma 4 or α_0 of Theorem 22, "
        f"trajectory inside the ball of eq. 10 / eq. 20; constants reconstructed in paper_spec.md §5) hold in "
        f"**{len(hold)} of {len(rows)} runs**."
    ]
    if over:
        lam = min(r["lambda0"] for r in over)
        m_req = max(r["width_required"] for r in over)
        a_lo, a_hi = min(r["alpha_required"] for r in over), max(r["alpha_required"] for r in over)
        lines.append(
            f"* p ≥ n: λ₀ is as small as {_g(lam, 2)}, so eq. 9 asks for m ≳ {_g(m_req, 2)} "
            f"(we use m ≤ {max(r['width'] for r in over)}) and Lemma 4 for α ≳ {_g(a_lo, 2)}–"
            f"{_g(a_hi, 2)} (we use α ≤ {_g(max(r['alpha'] for r in over))}). "
            f"Observed anyway: λ_min(K_t)/λ₀ ≥ {_g(min(r['lambda_ratio_min'] for r in over))} in every GN run "
            "(the kernel never degenerates) and the predicted rates are met — the conditions are sufficient, "
            "far from necessary."
        )
    if under:
        bad = [r for r in under if r["rate_observed"] < 1.0 or r["max_loss_increase"] > 1e-10]
        lines.append(
            f"* p < n: α_0 of Theorem 22 is {_g(min(r['alpha_required'] for r in under), 2)}–"
            f"{_g(max(r['alpha_required'] for r in under), 2)} (∝ 1/λ_G). Runs with α near the lazy limit behave "
            f"as Theorem 25 predicts; {len(bad)} of {len(under)} undamped GN runs (the small α, or α = 16 with "
            "an ill-conditioned G) converge slower than rate 1 or even increase R — there the trajectory "
            "leaves the ball Θ, M is curved at the scale of the step, and the theorem does not apply."
        )
    return lines


def write_report(
    path: Path,
    runs: Runs,
    claims: list[Claim],
    *,
    sizes: Sizes,
    env: dict[str, Any],
    figures: list[Path],
    timing: dict[str, float],
    command: str,
) -> None:
    """Write ``report.md``: claims with PASS/FAIL and evidence, conditions, per-run theory check."""
    counts = {s: sum(c.status == s for c in claims) for s in ("PASS", "FAIL", "NOT RUN")}
    v = env.get("versions", {})
    lines = [
        "# Reproduction report — Gauss–Newton dynamics for neural networks (Cayci, arXiv 2412.14031)",
        "",
        f"Command: `{command}` · mode **{sizes.mode}** · seed {env.get('seed')} · device {env.get('device')} · "
        f"torch threads {env.get('torch_threads')}",
        f"gaussnewton {v.get('gaussnewton')} · torch {v.get('torch')} · numpy {v.get('numpy')} · python "
        f"{env.get('python')} · git {str(env.get('git_sha'))[:10]} · {env.get('timestamp_utc')}",
        f"Wall time {timing.get('total_s', math.nan):.0f} s ({int(timing.get('executed', 0))} runs executed, "
        f"{int(timing.get('resumed', 0))} resumed from disk). Units: Convention A of paper_spec.md §1 "
        "(R = (1/n)Σ½(u−y)², K = J Jᵀ/n, rates per unit time t = k·Δt, μ = L = 1).",
        "",
        f"**Claims: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['NOT RUN']} not run.** "
        "Every FAIL is explained in its row; nothing was tuned after seeing the result (thresholds are named "
        "constants in `gaussnewton_paper/claims.py`).",
        "",
        "## Claims (paper_spec.md §8; A = issue #3 acceptance)",
        "",
        "| # | claim | measured | predicted | status | explanation |",
        "|---|---|---|---|---|---|",
    ]
    for c in claims:
        lines.append(
            "| "
            + " | ".join(
                _cell(x) for x in (c.number, c.title, c.measured, c.predicted, f"**{c.status}**", c.explanation)
            )
            + " |"
        )
    lines += flow_lines(runs)
    lines += ["", "## Where the theory's conditions do not hold (Euler runs)", ""] + _conditions_paragraph(runs)
    lines += ["", "## Sizes used", "", "| setting | value |", "|---|---|"]
    lines += [f"| {f.name} | {getattr(sizes, f.name)} |" for f in fields(sizes)]
    lines += [
        "",
        "## Theory check per run",
        "",
        "*bound*: the theorem's guaranteed rate from the measured λ₀ (Cor. 9: 2/(1+κ); Lemma 3: λ₀/(λ₀/2+ρ); "
        "Thm 7: −ln(1/2)/η; Remark 6: λ₀; Thm 25: 1). *sharp*: slowest-mode rate of the discrete lazy "
        "iteration actually run (for a flow, marked (flow): the continuous t→∞ rate 2λ/(λ+ρ), GF 2λ, p < n: 2). "
        "*lazy model*: slope of the fixed-kernel model's loss over the same window. "
        "*observed*: fitted slope of log(R − R*) over the asymptotic window. GF steps→1e-6 marked ≥ are "
        "extrapolated from the final measured slope (lower bounds).",
        "",
    ]
    lines += theory_lines(runs)
    lines += ["", "## Figures", ""]
    lines += [f"* `{p.name}`" for p in figures]
    warned = [(row, rec["warnings"]) for (rec, row) in runs.by_key.values() if rec.get("warnings")]
    lines += ["", "## Numerical warnings recorded during the runs", ""]
    lines += [f"* {row['experiment']}/{row['dataset']}/{row['name']}: {'; '.join(w)[:300]}" for row, w in warned] or [
        "None."
    ]
    lines += [
        "",
        "## Files",
        "",
        "`runs/<key>.json` (config, summary, history, environment) and `runs/<key>.csv` per run; "
        "`theory_check.csv`; `claims.json`; `environment.json`; this report.",
    ]
    path.write_text("\n".join(lines) + "\n")


def claims_json(claims: list[Claim]) -> list[dict[str, Any]]:
    """Claims as plain dicts."""
    return [asdict(c) for c in claims]
