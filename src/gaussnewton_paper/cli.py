"""Command line: ``gaussnewton reproduce`` and ``gaussnewton list``.

``gaussnewton reproduce [fig1|fig2|fig3|sweep|dt|curvature|all ...] [--quick] [--out DIR] [--seed N]
[--device cpu|cuda] [--resume] [--jobs N] [--threads N]`` runs the paper's experiments,
saves every run the moment it finishes (``DIR/runs/<key>.json`` + ``.csv``), then draws the
figures (PNG + PDF), evaluates the theory check and the claims, and writes ``report.md``.
``--resume`` reuses the saved runs whose configuration matches (the key hashes it).

Interrupts: Ctrl-C (SIGINT) or SIGTERM stops ``reproduce`` within about a second, also with
``--jobs N``: the workers ignore SIGINT (a terminal sends it to the whole process group) and the
parent terminates them, drops the pending runs and exits with 130 (SIGINT) or 143 (SIGTERM).
The runs finished before the interrupt stay in ``DIR/runs`` (each file is written atomically),
the interrupted ones leave nothing, and ``--resume`` continues from there. Workers also die with
the parent if it is killed outright (Linux: ``PR_SET_PDEATHSIG``), so no process is left behind.

Test hook: the environment variable ``GAUSSNEWTON_PAPER_RUN_DELAY_S`` (seconds, default 0) makes
every run sleep that long before it starts, so that a test can interrupt a parallel reproduce
while runs are still pending (``tests/test_reproduce_interrupt.py``).
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["Interrupted", "main"]

EXPERIMENTS_ALL = ("fig1", "fig2", "fig3", "sweep", "dt", "curvature")
EXPERIMENT_CHOICES = (*EXPERIMENTS_ALL, "all")
DEFAULT_OUT = "results"
INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
KILL_AFTER_S = 3.0  # a worker still alive this long after SIGTERM gets SIGKILL
RUN_DELAY_ENV = "GAUSSNEWTON_PAPER_RUN_DELAY_S"  # test hook (module docstring)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, like KeyboardInterrupt: no ``except Exception`` swallows it).

    Args:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process stopped by a signal: 128 + its number (130, 143)."""
        return 128 + self.signum


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread (handlers restored after).

    After the first interrupt both signals are ignored until the block is left, so that a second
    Ctrl-C cannot cut the clean-up (stopping the workers) short. Off the main thread (where
    handlers cannot be installed) this does nothing.

    Yields:
        None
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        for sig in INTERRUPTS:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in INTERRUPTS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gaussnewton",
        description="Gauss–Newton for neural networks: reproduce the experiments of Cayci (arXiv 2412.14031).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run experiments, draw figures, check the theory, write report.md")
    rep.add_argument(
        "experiments",
        nargs="*",
        default=["all"],
        metavar="EXPERIMENT",
        help=f"one or more of {', '.join(EXPERIMENT_CHOICES)} (default: all)",
    )
    size = rep.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="reduced sizes: all figures in a few minutes on 2 CPU cores")
    size.add_argument("--tiny", action="store_true", help="smoke-test sizes (seconds; used by the test suite)")
    rep.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    rep.add_argument("--seed", type=int, default=0, help="seed of data and initialization (default 0)")
    rep.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run (default cpu)")
    rep.add_argument("--resume", action="store_true", help="skip runs already saved in --out")
    rep.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="parallel worker processes (default: min(2, CPU count) on cpu, 1 on cuda)",
    )
    rep.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    lst = sub.add_parser("list", help="list the experiments, their sizes and expected run times")
    lst.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    return parser


def _expand(names: list[str]) -> list[str]:
    bad = [n for n in names if n not in EXPERIMENT_CHOICES]
    if bad:
        raise SystemExit(
            f"gaussnewton reproduce: unknown experiment(s) {bad}; choose from {', '.join(EXPERIMENT_CHOICES)}"
        )
    if "all" in names:
        return list(EXPERIMENTS_ALL)
    return [n for n in EXPERIMENTS_ALL if n in names]


def _list() -> int:
    from .config import SIZES
    from .registry import EXPERIMENTS

    print(f"{'experiment':10s} {'runs quick/full':>15s} {'time quick':>11s} {'time full':>10s}  description")
    for exp in EXPERIMENTS.values():
        nq, nf = len(exp.build(SIZES["quick"], 0)), len(exp.build(SIZES["full"], 0))
        print(
            f"{exp.name:10s} {f'{nq}/{nf}':>15s} {exp.runtime_s['quick']:>9.0f} s {exp.runtime_s['full']:>8.0f} s  "
            f"{exp.title}"
        )
    q, f = SIZES["quick"], SIZES["full"]
    print("\nsizes (quick → full, spec §6–§7 defaults in full):")
    print(
        f"  fig2  p ≥ n: n {q.fig2_n}→{f.fig2_n}, width {q.fig2_width}→{f.fig2_width}, "
        f"steps {q.fig2_steps}→{f.fig2_steps}"
    )
    print(
        f"  fig3  p < n: n {q.fig3_n}→{f.fig3_n}, width {q.fig3_width_si}/{q.fig3_width_cal}, "
        f"steps {q.fig3_steps}→{f.fig3_steps}"
    )
    print(f"  sweep n ∈ {q.sweep_ns}→{f.sweep_ns}; spreads {q.sweep_spreads}")
    print("\nrun:  gaussnewton reproduce all --quick --out results   (see docs/reproducing.md)")
    return 0


def _cost(cfg: Any) -> float:
    """Rough relative cost of a run (for scheduling only): GN builds an n×p Jacobian every step."""
    per_step = cfg.n * cfg.p if cfg.method == "gn" else 0.1 * cfg.n * cfg.p
    return cfg.steps * (per_step + 2e3)


def _init_worker(threads: int, parent: int) -> None:
    """Worker set-up: the parent alone handles interrupts; die with the parent; torch threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's SIGTERM stops a worker at once
    if sys.platform.startswith("linux"):
        # the kernel kills this worker when the parent dies, even by SIGKILL (the pool's
        # processes are started by the parent's main thread, which lives as long as the parent)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    import torch

    torch.set_num_threads(threads)


def _execute_and_save(cfg_dict: dict[str, Any], out: str, device: str, env: dict[str, Any]) -> tuple[str, float]:
    """Worker: run one configuration and save it at once. Returns (key, wall seconds)."""
    from . import io
    from .config import RunConfig
    from .runner import execute

    cfg = RunConfig(**cfg_dict)
    time.sleep(float(os.environ.get(RUN_DELAY_ENV, "0")))  # test hook (module docstring)
    start = time.perf_counter()
    record = execute(cfg, device=device)
    record["config"] = cfg_dict
    record["environment"] = env
    io.save_run(Path(out), record)
    return cfg.key(), time.perf_counter() - start


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Drop the pending runs and end the workers now: SIGTERM, then SIGKILL after ``KILL_AFTER_S``."""
    # The executor's own table of worker processes: Python < 3.14 has no public way to end
    # running workers (3.14 adds terminate_workers()); shutdown() alone waits for them.
    processes = list(pool._processes.values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + KILL_AFTER_S
    for proc in processes:
        proc.join(max(deadline - time.monotonic(), 0.0))
        if proc.is_alive():
            proc.kill()
            proc.join()


def _run_parallel(pending: list[Any], out: Path, device: str, env: dict[str, Any], jobs: int, threads: int,
                  bar: Any) -> None:
    """Run ``pending`` on ``jobs`` worker processes; any interrupt (or error here) ends the workers at once.

    A run that fails lets the others finish (their results are saved); the first failure is then
    raised.
    """
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                               initargs=(threads, os.getpid()))
    try:
        futures = {pool.submit(_execute_and_save, asdict(cfg), str(out), device, env): cfg for cfg in pending}
        failed: Future[tuple[str, float]] | None = None
        for fut in as_completed(futures):
            cfg = futures[fut]
            if failed is None and fut.exception() is not None:
                failed = fut
            bar.set_postfix_str(f"{cfg.experiment}/{cfg.dataset}/{cfg.name}", refresh=False)
            bar.update(1)
        pool.shutdown(wait=True)
        if failed is not None:
            failed.result()
    except BaseException:
        _stop_workers(pool)
        for tmp in (out / "runs").glob("*.tmp"):  # a worker ended while writing (its run is not saved)
            tmp.unlink(missing_ok=True)
        raise


def _run_all(pending: list[Any], out: Path, device: str, env: dict[str, Any], jobs: int, threads: int) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(pending), desc="reproduce", unit="run", disable=None if len(pending) else True)
    try:
        if jobs <= 1:
            for cfg in pending:
                bar.set_postfix_str(f"{cfg.experiment}/{cfg.dataset}/{cfg.name}", refresh=True)
                _execute_and_save(asdict(cfg), str(out), device, env)
                bar.update(1)
            return
        _run_parallel(pending, out, device, env, jobs, threads, bar)
    finally:
        bar.close()


def _reproduce(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gaussnewton reproduce: --device cuda was requested but CUDA is not available "
            f"(torch {torch.__version__}, torch.version.cuda = {torch.version.cuda}). Use --device cpu.",
            file=sys.stderr,
        )
        return 2
    if args.threads < 1 or (args.jobs is not None and args.jobs < 1):
        print("gaussnewton reproduce: --threads and --jobs must be >= 1.", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    from . import io
    from .claims import Runs, evaluate
    from .config import SIZES
    from .registry import configs_for
    from .report import claims_json, console_claims, console_theory, write_report, write_theory_csv

    start = time.perf_counter()
    mode = "tiny" if args.tiny else ("quick" if args.quick else "full")
    sizes = SIZES[mode]
    names = _expand(args.experiments)
    configs = configs_for(names, sizes, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = io.environment(args.device, args.seed, ["gaussnewton", *argv])
    io.save_json(out / "environment.json", env)
    pending = [c for c in configs if not (args.resume and io.run_path(out, c.key()).exists())]
    pending.sort(key=_cost, reverse=True)  # longest first: better balance across workers
    jobs = args.jobs if args.jobs is not None else (1 if args.device == "cuda" else min(2, len(pending) or 1))
    print(
        f"gaussnewton reproduce {' '.join(names)} ({mode}): {len(configs)} runs, {len(configs) - len(pending)} "
        f"resumed from {out / 'runs'}, {len(pending)} to run on {args.device} with {jobs} worker(s)"
    )
    try:
        _run_all(pending, out, args.device, env, jobs, args.threads)
    except Interrupted as stop:
        saved = sum(io.run_path(out, c.key()).exists() for c in configs)
        print(
            f"\ngaussnewton reproduce: stopped by {stop}; {saved} of {len(configs)} runs are saved in {out / 'runs'} "
            "(rerun with --resume to continue from them).",
            file=sys.stderr,
        )
        return stop.exit_code
    records = [io.load_json(io.run_path(out, c.key())) for c in configs]
    runs = Runs(records)
    claims = evaluate(runs)
    surf = None
    if "fig1" in names:
        from .manifold import surface

        surf = surface([r for r in records if r["config"]["experiment"] == "fig1"])
    from .plotting import draw_all

    figures = draw_all(runs, surf, out)
    write_theory_csv(out / "theory_check.csv", runs)
    io.save_json(out / "theory_check.json", runs.rows)
    io.save_json(out / "claims.json", claims_json(claims))
    timing = {"total_s": time.perf_counter() - start, "executed": len(pending), "resumed": len(configs) - len(pending)}
    write_report(
        out / "report.md",
        runs,
        claims,
        sizes=sizes,
        env=env,
        figures=figures,
        timing=timing,
        command="gaussnewton " + " ".join(argv),
    )
    print("\nTheory check (rates per unit time; details in report.md and theory_check.csv):")
    print(console_theory(runs))
    print("\nClaims (paper_spec.md §8):")
    print(console_claims(claims))
    print(
        f"\nWrote {len(figures)} figure files, report.md, theory_check.csv, claims.json and {len(configs)} runs "
        f"(JSON + CSV) to {out} in {timing['total_s']:.0f} s."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gaussnewton`` console script.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        int: the exit status (0 on success, 2 on a usage error, 130/143 when stopped by SIGINT/SIGTERM).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list()
    try:
        with _interrupts_raise():
            return _reproduce(args, argv)
    except Interrupted as stop:  # outside the runs (set-up, figures, report): nothing half-written to keep
        print(f"\ngaussnewton reproduce: stopped by {stop}.", file=sys.stderr)
        return stop.exit_code
