"""First-order baselines on the paper's problems: gaussnewton LM vs Adam and L-BFGS.

Problems (as built by ``gaussnewton reproduce``, gaussnewton_paper/runner.py): ``gn.MLP(d, width=m,
alpha=α, seed=1000)`` (H = 1, tanh, N(0, 1) hidden weights, frozen ±1 output layer, re-centred,
so p = m·d and u(θ₀) = 0) on ``gn.datasets.single_index(n, 5, seed=0)`` (noise 0.1) or
``gn.datasets.california_housing(n, seed=0)`` (d = 8), float64, torch threads as found.
Two regimes per data set: over (p > n, α = 10, the spec's §7.2 default) and under (p < n,
α = 16, an α of both Figure 3 and the p < n sweep); sizes in :data:`SIZES`.

Loss, the same for every solver: the one ``gn.fit`` reports (Convention A),
L(θ) = (1/n)·Σ_j ½(u_j − y_j)² with u = model(X) = α(f(X; θ) − f(X; θ₀)). Every child checks
it at θ₀ against ``gn.fit``'s ``initial_loss`` and, for gaussnewton, at the last iterate
against ``FitResult.loss`` (relative difference ≤ 1e-12, asserted).

Solvers: gaussnewton ``fit(method="lm")`` with the default (``"auto"``) linear solver and with
``solver="truncated_cg"``; Adam (full batch, lr grid); L-BFGS (full batch, strong Wolfe,
history 50, ``max_iter=1`` per outer step, ``max_eval=25``, lr grid; plus torch's default
``max_eval`` = 1 for ``max_iter=1``, which leaves the line search a single trial).

Targets: p > n: 1e-3·L0; p < n: 1.05× the best loss that gaussnewton lm reaches in its own run
(which runs first in each case and stops when stalled or at the cap). A grid setting stops
once it has used as much solver time as the best earlier setting of the same solver needed to
reach the target (it can no longer be the best); its row says so (``pruned``).

Fairness: one fresh process per (case, solver, setting), one after another, each after an
idle-CPU guard; the CPU used by other processes during the timed part is recorded. One-off
costs (torch.func's first vmap/jacrev call, the first autograd pass) run as a warm-up on a
copy of the model and are reported as ``setup_s``. Adam and L-BFGS do not report the loss of
their new iterate: the next step's first forward pass computes it, and it is recorded at the
time the iterate was produced (no extra evaluation; that forward pass is not counted for the
iterate). gaussnewton evaluates the loss of each trial step itself, inside its timed loop.

A run during which other processes used > 0.3 cores is repeated once (``--retries``); the
attempt with the least contention is kept and all attempts are recorded.

Usage: ``python bench_firstorder.py [--quick | --full | --smoke] [--out FILE]``; writes
results/firstorder_<date>.json, FIRSTORDER.md and results/firstorder_loss_vs_time.png.
``--render FILE`` re-renders the document and the plot from an existing JSON.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import RESULTS, Contention, dump, environment, median, wait_idle  # noqa: E402

DATA_SEED = 0
MODEL_SEED = DATA_SEED + 1000  # gaussnewton_paper/runner.py: MODEL_SEED_OFFSET
DIMS = {"single_index": 5, "california": 8}
ALPHAS = {"over": 10.0, "under": 16.0}
TARGET_REL_OVER = 1e-3  # p > n: target = 1e-3·L0
REF_FACTOR_UNDER = 1.05  # p < n: target = 1.05 × best loss of gaussnewton lm
STALL_WINDOW, STALL_RTOL = 10, 1e-6  # the reference run stops when 10 steps gain < 1e-6 relative
TRACE_POINTS = 300
FROZEN_MIN = 10  # a run whose last ≥ 10 iterations all have the same loss is reported as frozen
CONTENDED = 0.3  # other processes' cores above which a run is repeated (--retries)
SMOKE_JSON = Path("/tmp/gn_firstorder_smoke/firstorder_smoke.json")

# (n, width) per mode, data set and regime: p = width·d
SIZES: dict[str, dict[tuple[str, str], tuple[int, int]]] = {
    "smoke": {("single_index", "over"): (200, 80), ("california", "over"): (200, 50),
              ("single_index", "under"): (800, 40), ("california", "under"): (800, 25)},
    "quick": {("single_index", "over"): (1000, 600), ("california", "over"): (1000, 375),
              ("single_index", "under"): (4000, 200), ("california", "under"): (4000, 125)},
    "full": {("single_index", "over"): (1000, 600), ("california", "over"): (1000, 375),
             ("single_index", "under"): (4000, 200), ("california", "under"): (4000, 125)},
}
CAPS = {"smoke": 2.0, "quick": 6.0, "full": 60.0}  # solver-time cap per run (s)
# L-BFGS: max_eval = 25 gives the strong-Wolfe search up to 24 evaluations per step; max_eval = 1 is
# torch's default for max_iter = 1 (max_iter·5//4), which leaves the search none beyond its first trial.
LBFGS_DEFAULT_EVAL = {"lr": 1.0, "max_eval": 1}
GRIDS: dict[str, dict[str, list[dict]]] = {
    "smoke": {"adam": [{"lr": lr} for lr in (1e-2, 1e-1)],
              "lbfgs": [{"lr": 1.0, "max_eval": 25}, LBFGS_DEFAULT_EVAL]},
    "quick": {"adam": [{"lr": lr} for lr in (1e-3, 1e-2, 1e-1)],
              "lbfgs": [{"lr": lr, "max_eval": 25} for lr in (1.0, 0.3)] + [LBFGS_DEFAULT_EVAL]},
    "full": {"adam": [{"lr": lr} for lr in (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)],
             "lbfgs": [{"lr": lr, "max_eval": 25} for lr in (1.0, 0.3, 0.1)] + [LBFGS_DEFAULT_EVAL]},
}
LABELS = {"gn_lm": "gaussnewton lm", "gn_tcg": "gaussnewton lm, truncated_cg", "adam": "Adam",
          "lbfgs": "L-BFGS (strong Wolfe)"}


# ------------------------------------------------------------------ problem (child side)
def make_problem(mode: str, dataset: str, regime: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Data (X, y) and the paper's MLP for one case, as gaussnewton_paper/runner.py builds them."""
    import gaussnewton as gn

    n, width = SIZES[mode][(dataset, regime)]
    if dataset == "single_index":
        x, y = gn.datasets.single_index(n, DIMS[dataset], seed=DATA_SEED)
    else:
        x, y = gn.datasets.california_housing(n, seed=DATA_SEED)
    model = gn.MLP(DIMS[dataset], width=width, depth=1, activation="tanh", alpha=ALPHAS[regime],
                   train_output_layer=False, recenter=True, seed=MODEL_SEED)
    return model, x, y


def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """L = mean(½(model(X) − y)²), gn.fit's loss (Convention A, squared loss, 1/n)."""
    import torch

    with torch.no_grad():
        return float(0.5 * ((model(x) - y) ** 2).mean())


def rel_diff(a: float, b: float) -> float:
    """|a − b| / |b|."""
    return abs(a - b) / max(abs(b), 1e-300)


class Trace:
    """Cumulative solver time and loss after each iteration; the stopping test of every run."""

    def __init__(self, target: float | None, cap: float) -> None:
        self.target, self.cap = target, cap
        self.t: list[float] = []
        self.loss: list[float] = []
        self.step_s: list[float] = []
        self.elapsed = 0.0
        self.status = "max_iter"

    def add(self, dt_s: float, loss: float) -> bool:
        """Record one iteration; True when the run must stop (target, cap or non-finite loss)."""
        self.elapsed += dt_s
        self.step_s.append(dt_s)
        self.t.append(self.elapsed)
        self.loss.append(loss)
        if not math.isfinite(loss):
            self.status = "nonfinite"
        elif self.target is not None and loss <= self.target:
            self.status = "target"
        elif self.elapsed > self.cap:
            self.status = "cap"
        else:
            return False
        return True

    def hit(self, target: float) -> int | None:
        """Index of the first iteration with loss ≤ target (None if never)."""
        return next((i for i, lo in enumerate(self.loss) if lo <= target), None)

    def frozen_from(self) -> int | None:
        """First iteration of a final run of ≥ FROZEN_MIN identical losses (the iterate stopped moving)."""
        j = len(self.loss) - 1
        while j > 0 and self.loss[j - 1] == self.loss[j]:
            j -= 1
        return j + 1 if len(self.loss) - j >= FROZEN_MIN else None

    def thinned(self, keep: int | None) -> dict[str, list[float]]:
        """At most ~TRACE_POINTS points, log-spaced in the iteration index, plus ``keep`` and the last."""
        k = len(self.t)
        idx = {min(k - 1, round(math.exp(i * math.log(k) / TRACE_POINTS)) - 1) for i in range(TRACE_POINTS + 1)}
        idx |= {k - 1} | ({keep} if keep is not None else set())
        idx = sorted(i for i in idx if i >= 0)
        return {"iter": [i + 1 for i in idx], "t": [self.t[i] for i in idx], "loss": [self.loss[i] for i in idx]}


def run_gn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, trace: Trace, setting: dict, max_iter: int) -> dict:
    """gn.fit(method="lm"), stopped by the target, the cap or (reference run) a stall."""
    import gaussnewton as gn

    solver = setting["solver"]
    t0 = time.perf_counter()
    gn.fit(copy.deepcopy(model), x, y, method="lm", solver=solver, steps=2)  # warm-up (torch.func first call)
    setup = time.perf_counter() - t0
    losses: list[float] = []
    why: list[str] = []  # the callback's reason to stop

    def cb(info: gn.IterationInfo) -> bool:
        losses.append(info.cost)
        if time.perf_counter() - start > trace.cap:
            why.append("cap")
        elif trace.target is None and len(losses) > STALL_WINDOW:
            old = losses[-STALL_WINDOW - 1]
            if old - info.cost <= STALL_RTOL * old:
                why.append("stalled")
        return bool(why)

    start = time.perf_counter()
    res = gn.fit(model, x, y, method="lm", solver=solver, steps=max_iter, target_loss=trace.target, callback=cb)
    fit_wall = time.perf_counter() - start
    h = res.history
    prev = 0.0
    for tt, lo in zip(h["time"], h["loss"], strict=True):
        trace.add(tt - prev, lo)
        prev = tt
    trace.status = why[0] if why else {"TARGET": "target", "STEPS_DONE": "max_iter"}.get(
        res.termination.name, res.termination.name.lower())
    final = loss_of(model, x, y)
    assert rel_diff(final, res.loss) <= 1e-12, (final, res.loss)
    return {"setup_s": setup, "accepted": sum(bool(a) for a in h["accepted"]), "termination": res.termination.name,
            "fit_wall_s": fit_wall, "final_loss_check_rel": rel_diff(final, res.loss)}


def _warm_autograd(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One forward/backward pass on a copy (first-call costs); returns its time."""
    t0 = time.perf_counter()
    m2 = copy.deepcopy(model)
    (0.5 * ((m2(x) - y) ** 2).mean()).backward()
    return time.perf_counter() - t0


def run_adam(model: nn.Module, x: torch.Tensor, y: torch.Tensor, trace: Trace, setting: dict, max_iter: int) -> dict:
    """Full-batch Adam. Step k+1's forward pass gives the loss of iterate k; it is recorded at
    the time iterate k was produced (so no extra evaluation, none counted)."""
    import torch

    setup = _warm_autograd(model, x, y)
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=setting["lr"])
    prev_dt = None  # time of the step that produced the current iterate (None at θ₀)
    for _ in range(max_iter + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        dt_s = time.perf_counter() - t0
        if prev_dt is not None and trace.add(prev_dt, loss.item()):
            break
        prev_dt = dt_s
    return {"setup_s": setup}


def run_lbfgs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, trace: Trace, setting: dict,
              max_iter: int) -> dict:
    """Full-batch L-BFGS, one outer iteration per step (its line search evaluates f several times).
    ``step`` returns the loss at its starting point, i.e. of the previous iterate (as for Adam)."""
    import torch

    setup = _warm_autograd(model, x, y)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.LBFGS(params, lr=setting["lr"], max_iter=1, max_eval=setting["max_eval"], history_size=50,
                            line_search_fn="strong_wolfe")
    nfev = [0]

    def closure() -> torch.Tensor:
        nfev[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    prev_dt = None
    for _ in range(max_iter + 1):
        t0 = time.perf_counter()
        loss = opt.step(closure)  # the loss at the start of the step: that of the previous iterate
        dt_s = time.perf_counter() - t0
        if prev_dt is not None and trace.add(prev_dt, loss.item()):
            break
        prev_dt = dt_s
    state = opt.state[params[0]]
    return {"setup_s": setup, "nfev": nfev[0], "last_step_length": float(state["t"]) if "t" in state else None}


RUNNERS = {"gn_lm": run_gn, "gn_tcg": run_gn, "adam": run_adam, "lbfgs": run_lbfgs}


def child(spec: dict) -> dict:
    """One run in this fresh process: build the case, check the loss, time the solver."""
    import torch

    import gaussnewton as gn

    model, x, y = make_problem(spec["mode"], spec["dataset"], spec["regime"])
    l0 = loss_of(model, x, y)
    lib_l0 = gn.fit(copy.deepcopy(model), x, y, method="gd", steps=1).initial_loss
    assert rel_diff(l0, lib_l0) <= 1e-12, (l0, lib_l0)
    p = sum(q.numel() for q in model.parameters() if q.requires_grad)
    target = spec["target"]
    if spec["regime"] == "over" and target is None:
        target = TARGET_REL_OVER * l0
    assert target is not None or spec["solver"] == "gn_lm", "a p < n case's target comes from its gn_lm run"
    trace = Trace(target, spec["cap"])
    with Contention() as c:
        extra = RUNNERS[spec["solver"]](model, x, y, trace, spec["setting"], spec["max_iter"])
    k = len(trace.t)
    if target is None:  # the p < n reference run sets its case's target
        target = REF_FACTOR_UNDER * min(trace.loss)
    hit = trace.hit(target)
    return {
        **{key: spec[key] for key in ("dataset", "regime", "solver", "setting", "cap")},
        "n": x.shape[0], "p": p, "width": model.width, "alpha": model.alpha, "L0": l0,
        "L0_check_rel": rel_diff(l0, lib_l0), "target": target, "threads": torch.get_num_threads(), "iters": k,
        "status": trace.status,
        "median_step_s": median(trace.step_s) if k else None, "solver_time_s": trace.elapsed,
        "iters_to_target": None if hit is None else hit + 1, "time_to_target_s": None if hit is None else trace.t[hit],
        "best_loss": min(trace.loss) if k else None, "final_loss": trace.loss[-1] if k else None,
        "loss_constant_from_iter": trace.frozen_from(), "contention": c.record(), **extra,
        "trace": trace.thinned(hit) if k else None,
    }


# ------------------------------------------------------------------ parent
def plan(mode: str) -> list[tuple[str, str, list[tuple[str, dict]]]]:
    """(dataset, regime, [(solver, setting), ...]) per case; gaussnewton lm first (the reference)."""
    runs = [("gn_lm", {"solver": "auto"}), ("gn_tcg", {"solver": "truncated_cg"})]
    runs += [(s, setting) for s in ("adam", "lbfgs") for setting in GRIDS[mode][s]]
    return [(ds, regime, runs) for regime in ("over", "under") for ds in DIMS]


def launch(spec: dict, idle_timeout: float | None) -> dict:
    """One child process after the idle guard; its record, or an ``error`` record."""
    guard = wait_idle(timeout=idle_timeout)
    t0 = time.perf_counter()
    pr = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                        timeout=spec["cap"] * 4 + 300)
    wall = time.perf_counter() - t0
    if pr.returncode != 0:
        row = {key: spec[key] for key in ("dataset", "regime", "solver", "setting", "cap")}
        row["error"] = pr.stderr[-2000:]
    else:
        row = json.loads(pr.stdout.strip().splitlines()[-1])
    row.update(idle_guard=guard, process_wall_s=wall)
    return row


def _busy(row: dict) -> float:
    return row["contention"]["other_busy_cores"] if "contention" in row else math.inf


def parent(args: argparse.Namespace) -> dict:
    """Run every (case, solver, setting) in its own process, one after another."""
    cap = args.cap if args.cap is not None else CAPS[args.mode]
    rows = []
    for dataset, regime, runs in plan(args.mode):
        target = None
        best_ttt: dict[str, float] = {}
        for solver, setting in runs:
            run_cap = min(cap, best_ttt.get(solver, math.inf))
            spec = {"mode": args.mode, "dataset": dataset, "regime": regime, "solver": solver, "setting": setting,
                    "cap": run_cap, "target": target, "max_iter": args.max_iter}
            attempts = [launch(spec, args.idle_timeout)]
            while _busy(attempts[-1]) > CONTENDED and len(attempts) <= args.retries:
                attempts.append(launch(spec, args.idle_timeout))
            row = min(attempts, key=_busy)
            row["attempts"] = [{"other_busy_cores": _busy(a), "process_wall_s": a["process_wall_s"]} for a in attempts]
            rows.append(row)
            if "error" in row:
                print(f"{dataset}/{regime} {solver} {setting}: ERROR {row['error'][-400:]}", flush=True)
                continue
            target = row["target"]
            ttt = row["time_to_target_s"]
            if ttt is not None:
                best_ttt[solver] = min(best_ttt.get(solver, math.inf), ttt)
            row["pruned"] = run_cap < cap and row["status"] == "cap"
            print(f"{dataset}/{regime} {solver} {setting}: {row['iters']} it, {row['median_step_s'] * 1e3:.2f} ms/it, "
                  f"{f'{ttt:.3f} s' if ttt is not None else 'not reached'} to target {row['target']:.4g} "
                  f"({row['iters_to_target']} it), best {row['best_loss']:.4g}, {row['status']}, "
                  f"other cores {_busy(row):.2f} ({len(attempts)} attempt(s))", flush=True)
    sizes = {f"{ds}/{rg}": {"n": n, "width": m} for (ds, rg), (n, m) in SIZES[args.mode].items()}
    return {"mode": args.mode, "cap_s": cap, "max_iter": args.max_iter, "retries": args.retries,
            "grids": GRIDS[args.mode], "sizes": sizes,
            "alphas": ALPHAS, "target_rel_over": TARGET_REL_OVER, "ref_factor_under": REF_FACTOR_UNDER,
            "stall": {"window": STALL_WINDOW, "rtol": STALL_RTOL}, "runs": rows, "environment": environment()}


# ------------------------------------------------------------------ rendering
def _cases(data: dict) -> list[tuple[str, str, list[dict]]]:
    out = []
    for ds in DIMS:
        for regime in ("over", "under"):
            rows = [r for r in data["runs"] if r["dataset"] == ds and r["regime"] == regime and "error" not in r]
            if rows:
                out.append((ds, regime, rows))
    return out


def _best(rows: list[dict]) -> dict:
    """The setting that reaches the target first, else the one with the lowest loss."""
    return min(rows, key=lambda r: (r["time_to_target_s"] is None, r["time_to_target_s"] or 0.0, r["best_loss"]))


def _setting(r: dict) -> str:
    return ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in r["setting"].items())


def _ratio(x: float) -> str:
    return f"{x:.2g}×" if x < 10 else f"{x:.0f}×"


def _reached(r: dict, ref: float | None) -> tuple[str, str]:
    """(s → target, ratio to gaussnewton lm) cells; a miss gives the solver time it ran and a lower bound."""
    ttt = r["time_to_target_s"]
    if ttt is not None:
        return f"{ttt:.3g}", "—" if ref is None else _ratio(ttt / ref)
    ran = r["solver_time_s"]
    bound = "—" if ref is None or r.get("pruned") else f"> {_ratio(ran / ref)}"
    return f"not in {ran:.3g} s" + (" (pruned)" if r.get("pruned") else ""), bound


def _row(r: dict, ref: float | None) -> str:
    reached, ratio = _reached(r, ref)
    busy = r["contention"]["other_busy_cores"]
    hit = "—" if r["iters_to_target"] is None else str(r["iters_to_target"])
    flag = " ⚠" if busy > CONTENDED else ""
    return (f"| {LABELS[r['solver']]} | {_setting(r)} | {r['median_step_s'] * 1e3:.3g} | {r['iters']} | {hit} | "
            f"{reached} | {ratio} | {r['best_loss']:.4g} | {r['setup_s']:.2g} | {busy:.2f}{flag} |")


def _notes(rows: list[dict]) -> list[str]:
    """Runs whose iterate stopped moving (the loss constant over their last iterations)."""
    out = []
    for r in rows:
        k = r.get("loss_constant_from_iter")
        if k is None or r["status"] == "target":
            continue
        why = ""
        if r.get("last_step_length") == 0.0:
            why = ("; its line search returned step length t = 0" + (
                ": with max_eval = 1 torch gives the strong-Wolfe search max_ls = max_eval − 1 = 0, so it "
                "evaluates only its first trial t = lr and returns t = 0 when that trial does not lower the loss; "
                "neither the iterate nor the L-BFGS memory then changes, and every later step repeats the same "
                "rejected trial" if r["setting"].get("max_eval") == 1 else ""))
        out.append(f"* {LABELS[r['solver']]}, {_setting(r)}: loss constant from iteration {k} of {r['iters']}{why}.")
    return out


def _noise(data: dict) -> list[str]:
    """Run-to-run timing noise: Adam does the same work per iteration for every lr of a case."""
    spreads = []
    for ds, regime, rows in _cases(data):
        steps = [r["median_step_s"] for r in rows if r["solver"] == "adam"]
        if len(steps) > 1:
            spreads.append((max(steps) / min(steps), ds, regime))
    if not spreads:
        return []
    worst, ds, regime = max(spreads)
    busy = max(r["contention"]["other_busy_cores"] for _, _, rows in _cases(data) for r in rows)
    return [f"Timing noise: Adam's work per iteration does not depend on lr, yet its median time per iteration "
            f"differs between the lr settings of one case by up to {worst:.2f}× ({ds}, "
            f"{'p > n' if regime == 'over' else 'p < n'}; {', '.join(f'{x:.2f}×' for x, _, _ in spreads)} over "
            f"the cases), while other processes used at most {busy:.2f} cores during any run. That is the "
            "process-to-process timing noise of this machine: time ratios within that factor are not significant."]


HEAD = ("| solver | setting | ms/iter (median) | iters run | iters → target | s → target | vs gaussnewton lm | "
        "best loss | setup s | other cores |\n|---|---|---|---|---|---|---|---|---|---|")


def render(data: dict, json_name: str) -> str:
    """FIRSTORDER.md from a results dict (every number is read from it)."""
    env = data["environment"]
    wall = sum(r["process_wall_s"] + r["idle_guard"]["waited_s"] for r in data["runs"])
    adam_lrs = ", ".join(f"{g['lr']:g}" for g in data["grids"]["adam"])
    lbfgs_lrs = ", ".join(f"{g['lr']:g}" for g in data["grids"]["lbfgs"] if g != LBFGS_DEFAULT_EVAL)
    lines = [
        "# First-order baselines on the paper's problems",
        "",
        f"Generated by `benchmarks/bench_firstorder.py --{data['mode']}` from `results/{json_name}` "
        f"({env['date']}, {env['host_cpu']}, {env['cpu_count']} CPUs, torch {env['versions'].get('torch')} "
        f"with {env.get('torch_threads')} threads, git {env.get('git_sha')}"
        f"{', src modified' if env.get('src_dirty') else ''}). Every number below is a measurement from that file. "
        "This machine is shared and small: read ratios, not absolute times. "
        f"{len(data['runs'])} runs, {wall:.0f} s of wall time in all (idle guards and process start included).",
        "",
        "## Setup",
        "",
        "* **Problems** (built as `gaussnewton reproduce` builds them, gaussnewton_paper/runner.py): "
        "`gn.MLP(d, width=m, alpha=α, seed=1000)` (one tanh hidden layer, NTK scaling, frozen ±1 output layer, "
        "re-centred so u(θ₀) = 0; p = m·d trained weights) on `gn.datasets.single_index(n, 5, seed=0)` "
        "(noise 0.1) and `gn.datasets.california_housing(n, seed=0)` (d = 8), float64. "
        f"α = {data['alphas']['over']:g} for p > n (the spec's §7.2 default), α = {data['alphas']['under']:g} "
        "for p < n (an α of Figure 3 and of the p < n sweep).",
        "* **Loss**, identical for all solvers: the loss `gn.fit` reports, L = (1/n)·Σ ½(u_j − y_j)² with "
        "u = model(X) (α and re-centring included). Each run asserts that this formula equals `gn.fit`'s "
        "`initial_loss` at θ₀ (and, for gaussnewton, `FitResult.loss` at the last iterate) to 1e-12 relative.",
        f"* **Targets**: p > n: {data['target_rel_over']:g}·L0. p < n: the noise floor makes a fixed small "
        f"fraction of L0 unreachable, so the target is {data['ref_factor_under']:g}× the best loss of "
        "gaussnewton lm in its own run, which runs first and stops when "
        f"{data['stall']['window']} consecutive trial steps lower the loss by < {data['stall']['rtol']:g} relative "
        "(stalled) or at the cap; each case says which. GN reaches this level by construction, so in these cases "
        "read the column *best loss* as well: it shows whether a first-order method ends lower or higher.",
        f"* **Solvers**: `gn.fit(model, X, y, method=\"lm\")` (default linear solver: n×n kernel system if p > n, "
        "p×p normal equations if p < n) and `method=\"lm\", solver=\"truncated_cg\"` (Jacobi-preconditioned CG, "
        "≤ 20 iterations); `torch.optim.Adam` full batch, lr ∈ "
        f"{{{adam_lrs}}}; `torch.optim.LBFGS` full batch, "
        "`line_search_fn=\"strong_wolfe\"`, `history_size=50`, `max_iter=1` per outer iteration, lr ∈ "
        f"{{{lbfgs_lrs}}} with `max_eval=25` "
        "(up to 24 line-search evaluations per iteration), plus lr = 1 with `max_eval=1`, which is what torch "
        "uses when `max_iter=1` and `max_eval` is not given (max_iter·5//4): the line search then gets no "
        "evaluation beyond its first trial step. The tables show every setting; the plot shows the best setting "
        "of each solver (first to the target, else lowest loss).",
        f"* **Stopping**: target, or {data['cap_s']:g} s of solver time. Grid settings run in the order listed; "
        "once one setting of a solver has reached the target in T s, later settings of that solver stop at T s "
        "(they could no longer be its best) — marked *(pruned)*.",
        "* **Timing**: one fresh process per row, rows one after another, each after an idle-CPU guard "
        "(other processes < 0.3 cores). *s → target* is solver time: one-off warm-up (torch.func's first "
        "vmap/jacrev call for gaussnewton, a first forward/backward for Adam/L-BFGS) runs on a copy of the model "
        "and is reported as *setup*. Adam and L-BFGS do not report the loss of their new iterate: the next step's "
        "first forward pass computes it, and it is recorded at the time the iterate was produced, so that "
        "evaluation is not counted (gaussnewton evaluates each trial loss inside its timed loop). gaussnewton "
        "iterations are trial steps (rejected ones included); an L-BFGS iteration is one outer step with its "
        "line-search evaluations. *other cores*: CPU used by other processes during the run (⚠ > 0.3).",
        "",
    ]
    for ds, regime, rows in _cases(data):
        r0 = rows[0]
        lm = next((r for r in rows if r["solver"] == "gn_lm"), None)
        ref = None if lm is None else lm["time_to_target_s"]
        rule = (f"{data['target_rel_over']:g}·L0" if regime == "over" or lm is None
                else f"{data['ref_factor_under']:g}× gaussnewton lm's best loss = {r0['target'] / r0['L0']:.3g}·L0; "
                f"that run {'stalled' if lm['status'] == 'stalled' else 'stopped at the cap'} after {lm['iters']} "
                "trial steps")
        lines += [
            f"## {ds}, {'p > n' if regime == 'over' else 'p < n'}: n = {r0['n']}, m = {r0['width']}, p = {r0['p']}, "
            f"α = {r0['alpha']:g}",
            "",
            f"L0 = {r0['L0']:.4g}, target = {r0['target']:.4g} ({rule}).",
            "",
            HEAD,
            *(_row(r, ref) for r in rows),
            "",
        ]
        notes = _notes(rows)
        if notes:
            lines += [*notes, ""]
    lines += [
        "## Summary: best setting per solver, time to target relative to gaussnewton lm",
        "",
        "| case | " + " | ".join(LABELS.values()) + " |",
        "|---|" + "---|" * len(LABELS),
    ]
    for ds, regime, rows in _cases(data):
        ref = next((r["time_to_target_s"] for r in rows if r["solver"] == "gn_lm"), None)
        cells = []
        for solver in LABELS:
            sub = [r for r in rows if r["solver"] == solver]
            if not sub:
                cells.append("—")
                continue
            b = _best(sub)
            reached, ratio = _reached(b, ref)
            cell = f"{reached} s ({ratio})" if b["time_to_target_s"] is not None else (
                f"{reached} ({ratio}); best {b['best_loss'] / b['L0']:.3g}·L0")
            cells.append(cell + ("" if len(sub) == 1 else f", {_setting(b)}"))
        lines.append(f"| {ds}, {'p > n' if regime == 'over' else 'p < n'} | " + " | ".join(cells) + " |")
    lines += ["", *_noise(data)]
    errors = [r for r in data["runs"] if "error" in r]
    if errors:
        lines += ["", "Runs that failed (left out above):", ""]
        lines += [f"* {r['dataset']}, {r['regime']}, {LABELS[r['solver']]}, {_setting(r)}: "
                  f"`{r['error'].strip().splitlines()[-1]}`" for r in errors]
    lines += ["", "![loss vs time](results/firstorder_loss_vs_time.png)", ""]
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    """One panel per case: loss vs solver time (log–log), best setting per solver, target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = _cases(data)
    fig, axes = plt.subplots(1, len(cases), figsize=(4.6 * len(cases), 4.0), squeeze=False)
    for ax, (ds, regime, rows) in zip(axes[0], cases, strict=True):
        for solver in LABELS:
            sub = [r for r in rows if r["solver"] == solver and r["trace"]]
            if sub:
                b = _best(sub)
                label = LABELS[solver] + ("" if len(sub) == 1 else f", {_setting(b)}")
                ax.plot(b["trace"]["t"], b["trace"]["loss"], label=label)
        ax.axhline(rows[0]["target"], color="k", ls=":", lw=1, label="target")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("solver time [s] (setup excluded)")
        ax.set_ylabel("training loss")
        ax.set_title(f"{ds}, {'p > n' if regime == 'over' else 'p < n'}: n = {rows[0]['n']}, p = {rows[0]['p']}",
                     fontsize=9)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(data: dict, json_path: Path) -> None:
    """FIRSTORDER.md and the plot (smoke runs: both next to their JSON, outside the repository)."""
    if data["mode"] == "smoke":
        doc, png = json_path.with_suffix(".md"), json_path.with_suffix(".png")
    else:
        doc, png = HERE / "FIRSTORDER.md", RESULTS / "firstorder_loss_vs_time.png"
    doc.write_text(render(data, json_path.name))
    plot(data, png)


def main(argv: list[str] | None = None) -> dict | None:
    """Parent (run all and write the outputs), ``--child`` (one run, JSON on stdout) or ``--render``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="default: 32 runs, 6 s caps, about 5 min")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="bigger lr grids, 60 s caps")
    mode.add_argument("--smoke", dest="mode", action="store_const", const="smoke", help="tiny sizes, 2 s caps")
    ap.set_defaults(mode="quick")
    ap.add_argument("--cap", type=float, default=None, help="solver-time cap per run (s); default per mode")
    ap.add_argument("--max-iter", type=int, default=10**6)
    ap.add_argument("--idle-timeout", type=float, default=None)
    ap.add_argument("--retries", type=int, default=1, help=f"repeats of a run with > {CONTENDED} other cores busy")
    ap.add_argument("--out", default=None, help="results JSON (default results/firstorder_<date>.json)")
    ap.add_argument("--render", default=None, help="re-render the document and plot from this JSON, run nothing")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child)), default=float))
        return None
    if args.render:
        path = Path(args.render)
        data = json.loads(path.read_text())
    else:
        default = (SMOKE_JSON if args.mode == "smoke"
                   else RESULTS / f"firstorder_{dt.date.today().isoformat()}.json")
        path = Path(args.out) if args.out else default
        data = parent(args)
        dump(data, path)
    write_outputs(data, path)
    return data


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
