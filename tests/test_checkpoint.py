"""Checkpoints: a run killed with SIGKILL and resumed ends exactly like an uninterrupted one."""

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


@pytest.mark.parametrize("method,damping", [("lm", None), ("gn", gn.damping.DataDependent()),
                                            ("gn", gn.damping.CurvatureSwitching()), ("gd", None)])
def test_checkpoint_is_a_typed_solver_state_loaded_weights_only(tmp_path, method, damping):
    """The file is SolverState.to_dict(): plain data that torch.load(weights_only=True) reads back exactly."""
    from gaussnewton._state import STATE_VERSION, SolverState

    path = tmp_path / "run.ckpt"
    X, y = gn.datasets.single_index(40, 3, seed=0)
    res = gn.fit(gn.MLP(3, width=30, alpha=2.0, seed=1), X, y, method=method, damping=damping, steps=4,
                 checkpoint=path)
    saved = torch.load(path, weights_only=True)
    assert saved["version"] == STATE_VERSION and saved["nit"] == 4 and saved["termination"] == "STEPS_DONE"
    state = SolverState.from_dict(saved)
    assert torch.equal(state.theta, res.params) and state.cost == res.loss
    assert state.history is not None and state.history.rows["cost"] == res.history["cost"]
    kind = {None: None, "lm": "TrustState"}.get(method if damping is None else None)
    if damping is not None:
        kind = damping.state_type.__name__ if damping.state_type else None
    assert (saved["damping_state"] or {}).get("type") == kind
    again = state.to_dict()
    assert again["damping_state"] == saved["damping_state"] and torch.equal(again["theta"], saved["theta"])


def test_checkpoint_of_another_version_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    torch.save({"format": 1, "nit": 3}, path)  # the layout of gaussnewton 0.1
    X, y = gn.datasets.single_index(40, 3, seed=0)
    with pytest.raises(gn.GaussNewtonError, match=r"`checkpoint` file .* has format 1, not 2"):
        gn.fit(gn.MLP(3, width=30, alpha=2.0, seed=1), X, y, steps=2, checkpoint=path)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ("data", r"the data \(X, y\) differ: saved X \(n, 3\) torch.float64 #\w+; y \(n,\) torch.float64 #\w+, now"),
        ("init", r"the initial parameters θ₀ differ: saved θ₀ \(90,\) torch.float64 #\w+, now"),
        ("activation", r"the model's structure differs: saved MLP #\w+, now MLP #\w+"),
    ],
)
def test_checkpoint_of_other_data_init_or_structure_is_refused(tmp_path, change, pattern):
    """Same path, n and p; other data, θ₀ or activation: refused, naming what differs and how to start fresh."""
    path = tmp_path / "run.ckpt"
    _run("lm", 2, path)
    X, y = gn.datasets.single_index(40, 3, seed=0)
    kwargs = {"seed": 1}
    if change == "data":
        y = y + 0.5
    elif change == "init":
        kwargs["seed"] = 2
    else:
        kwargs["activation"] = "sigmoid"
    with pytest.raises(gn.GaussNewtonError, match=pattern + r".*delete the file or pass another `checkpoint` path"):
        gn.fit(gn.MLP(3, width=30, alpha=2.0, **kwargs), X, y, method="lm", steps=4, checkpoint=path,
               checkpoint_every=1)
    if change == "data":  # a permutation of the rows is other data too
        perm = torch.arange(39, -1, -1)
        X0, y0 = gn.datasets.single_index(40, 3, seed=0)
        with pytest.raises(gn.GaussNewtonError, match=r"the data \(X, y\) differ"):
            gn.fit(gn.MLP(3, width=30, alpha=2.0, seed=1), X0[perm], y0[perm], method="lm", steps=4,
                   checkpoint=path, checkpoint_every=1)


@pytest.mark.parametrize("how", ["raise", "sigint"])
def test_interrupt_keeps_last_accepted_params_and_checkpoint_resumes(tmp_path, how):
    """Ctrl-C on step 3: the model holds θ after 3 steps, the checkpoint too; the same model resumes.

    ``"sigint"`` sends a real SIGINT to this process (Python's default handler raises
    KeyboardInterrupt in the main thread at the next bytecode); ``"raise"`` raises it directly.
    """
    import os
    import signal
    import time

    X, y = gn.datasets.single_index(40, 3, seed=0)
    ref3 = gn.fit(gn.MLP(3, width=30, alpha=2.0, seed=1), X, y, method="lm", steps=3)
    ref8 = gn.fit(gn.MLP(3, width=30, alpha=2.0, seed=1), X, y, method="lm", steps=8)

    def interrupt(info):
        if info.iteration == 3:
            if how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler's KeyboardInterrupt ends the sleep
            pytest.fail("SIGINT was not delivered within 5 s")

    path = tmp_path / "run.ckpt"
    net = gn.MLP(3, width=30, alpha=2.0, seed=1)
    with pytest.raises(KeyboardInterrupt):
        gn.fit(net, X, y, method="lm", steps=8, checkpoint=path, checkpoint_every=100, callback=interrupt)
    flat = torch.cat([q.detach().reshape(-1) for q in net.parameters() if q.requires_grad])
    assert torch.equal(flat, ref3.params)
    saved = torch.load(path, weights_only=True)
    assert saved["nit"] == 3 and torch.equal(saved["theta"], ref3.params)
    resumed = gn.fit(net, X, y, method="lm", steps=8, checkpoint=path)  # the model now holds the saved θ
    assert torch.equal(resumed.params, ref8.params) and resumed.history["loss"] == ref8.history["loss"]


class _Payload:
    """Unpickling this calls ``Path.touch`` on the marker: code execution at load time."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):  # issue 16, item 4
    path, marker = tmp_path / "run.ckpt", tmp_path / "executed"
    torch.save({"format": 1, "payload": _Payload(str(marker))}, path)
    X, y = gn.datasets.single_index(40, 3, seed=0)
    with pytest.raises(gn.GaussNewtonError, match=r"`checkpoint` file .* could not be read"):
        gn.fit(gn.MLP(3, width=30, alpha=2.0, seed=1), X, y, method="lm", steps=2, checkpoint=path)
    assert not marker.exists()  # torch.load(weights_only=True) never unpickled the payload


def test_two_writers_on_one_path_do_not_collide(tmp_path):  # issue 14, item 10
    """Each writer has its own temporary file; the path always holds one complete checkpoint."""
    from gaussnewton._checkpoint import Checkpointer

    path = tmp_path / "run.ckpt"
    a, b = Checkpointer(path, every=1, fingerprint={"run": "a"}), Checkpointer(path, every=1, fingerprint={"run": "b"})
    for k in range(3):
        a.save({"nit": k, "theta": torch.zeros(2)})
        b.save({"nit": k, "theta": torch.ones(2)})
    saved = torch.load(path, weights_only=True)
    assert saved["fingerprint"] == {"run": "b"} and saved["nit"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temporary file left


def test_mixed_dtype_parameters_are_refused_in_fit():  # issue 14, item 5
    from torch import nn

    model = nn.Sequential(nn.Linear(3, 4).double(), nn.Tanh(), nn.Linear(4, 1))  # float64 then float32
    X, y = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    with pytest.raises(gn.GaussNewtonError, match=r"`model` parameters must share one dtype; got torch.float64: "
                                                  r"0.weight, 0.bias; torch.float32: 2.weight, 2.bias\. Convert"):
        gn.fit(model, X, y, steps=2)
