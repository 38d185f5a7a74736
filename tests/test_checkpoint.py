"""Checkpoints: a run killed with SIGKILL and resumed ends exactly like an uninterrupted one."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import gaussnewton as gn

SCRIPT = textwrap.dedent(
    """
    import sys, time, gaussnewton as gn
    X, y = gn.datasets.single_index(40, 3, seed=0)
    net = gn.MLP(3, width=30, alpha=2.0, seed=1)
    gn.fit(net, X, y, method=sys.argv[2], steps=int(sys.argv[3]), checkpoint=sys.argv[1], checkpoint_every=1,
           callback=lambda info: time.sleep(0.2))
    """
)


def _run(method, steps, path=None):
    X, y = gn.datasets.single_index(40, 3, seed=0)
    net = gn.MLP(3, width=30, alpha=2.0, seed=1)
    return gn.fit(net, X, y, method=method, steps=steps, checkpoint=path, checkpoint_every=1)


@pytest.mark.parametrize("method", ["lm", "gd"])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, method):
    steps = 12
    ref = _run(method, steps)
    path = tmp_path / "run.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path), method, str(steps)])
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if path.exists() and torch.load(path, weights_only=False)["nit"] >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint written")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = torch.load(path, weights_only=False)
    assert 3 <= saved["nit"] < steps  # killed mid-run
    resumed = _run(method, steps, path)
    assert torch.equal(resumed.params, ref.params)
    for key in ("loss", "damping", "step_norm", "accepted", "param_distance"):
        assert resumed.history[key] == ref.history[key], key


def test_checkpoint_of_another_run_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    _run("lm", 2, path)
    X, y = gn.datasets.single_index(40, 3, seed=0)
    with pytest.raises(gn.GaussNewtonError, match=r"`checkpoint` file .* belongs to a different run"):
        gn.fit(gn.MLP(3, width=30, alpha=2.0, seed=1), X, y, method="gn", steps=2, checkpoint=path)


def test_finished_checkpoint_returns_without_recomputing(tmp_path):
    path = tmp_path / "run.ckpt"
    first = _run("lm", 5, path)
    again = _run("lm", 5, path)
    assert torch.equal(first.params, again.params) and again.history["loss"] == first.history["loss"]
    more = _run("lm", 8, path)  # continue a finished run for more steps
    assert len(more.history["loss"]) == 8
    assert more.history["loss"][:5] == first.history["loss"]
