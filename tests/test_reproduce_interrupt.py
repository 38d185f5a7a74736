"""`gaussnewton reproduce --jobs 2` stops promptly on SIGINT/SIGTERM, keeps finished runs, leaves no process.

The CLI runs in its own session (process group) so that SIGINT can be sent the way a terminal's
Ctrl-C is: to the parent and its workers at once. SIGTERM goes to the parent alone (``kill PID``),
which then has to end its idle and busy workers itself; SIGKILL to the parent alone leaves the
kernel to end them (``PR_SET_PDEATHSIG``). The test hook
``GAUSSNEWTON_PAPER_RUN_DELAY_S`` (see :mod:`gaussnewton_paper.cli`) makes each run last long
enough that runs are still pending when the signal arrives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gaussnewton_paper.cli import RUN_DELAY_ENV
from gaussnewton_paper.config import SIZES
from gaussnewton_paper.registry import configs_for

RUN_DELAY_S = 1.5  # per run: the 16 runs left after the first two would take 12 s more on 2 workers
STOP_WITHIN_S = 6.0  # the parent's grace period for its workers is 3 s (cli.KILL_AFTER_S)
START_TIMEOUT_S = 90.0


def _children() -> dict[int, list[int]]:
    """ppid → pids of every live (non-zombie) process, read from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]  # the command name may hold spaces or ')'
        if state != "Z":
            tree.setdefault(int(ppid), []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "signum,to_group,code",
    [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143), (signal.SIGKILL, False, -signal.SIGKILL)],
    ids=["ctrl-c-to-the-group", "sigterm-to-the-parent", "sigkill-to-the-parent"],
)
def test_interrupt_stops_the_workers_and_keeps_finished_runs(
    tmp_path: Path, signum: int, to_group: bool, code: int
) -> None:
    out = tmp_path / "results"
    total = len(configs_for(["fig2"], SIZES["tiny"], 0))
    log = (tmp_path / "log.txt").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gaussnewton", "reproduce", "fig2", "--tiny", "--jobs", "2", "--out", str(out)],
        env={**os.environ, RUN_DELAY_ENV: str(RUN_DELAY_S)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not list((out / "runs").glob("*.json")):  # wait for the first finished run
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "log.txt").read_text()
            seen |= _descendants(proc.pid)
            time.sleep(0.05)
        seen |= _descendants(proc.pid)
        assert len(seen) >= 2, seen  # the two workers (and multiprocessing's resource tracker)
        start = time.monotonic()
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        rc = proc.wait(timeout=30)
        elapsed = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    printed = (tmp_path / "log.txt").read_text()
    assert rc == code, printed
    assert elapsed < STOP_WITHIN_S, (elapsed, printed)
    if signum != signal.SIGKILL:  # a killed parent says nothing
        assert f"stopped by {signal.Signals(signum).name}" in printed and "--resume" in printed, printed
    runs = sorted((out / "runs").glob("*.json"))
    assert 1 <= len(runs) < total, (len(runs), total)  # the finished runs stayed, the pending ones never ran
    for path in runs:
        assert json.loads(path.read_text())["summary"]["steps_run"] >= 1
        assert path.with_suffix(".csv").exists()
    if signum != signal.SIGKILL:  # (the kernel may end a worker in the middle of a write)
        assert not list((out / "runs").glob("*.tmp"))
    deadline = time.monotonic() + 2.0
    while any(_alive(pid) for pid in seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in seen if _alive(pid)], "worker processes outlived the CLI"
