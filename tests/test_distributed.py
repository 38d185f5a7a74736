"""Data-parallel GN on torch.distributed (gloo): iterates match one process; faults stop cleanly."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import gaussnewton as gn

WORKER = Path(__file__).parent / "helpers" / "dist_worker.py"
sys.path.insert(0, str(WORKER.parent))
from dist_worker import global_data, run_optimizer  # noqa: E402


def reference(case):
    X, y = global_data()
    if case == "optim":
        return run_optimizer(X, y)
    if case == "optim_curvature":
        return run_optimizer(X, y, damping=gn.damping.CurvatureGlobal(1.0), loss="log_cosh")
    if case == "lsq":
        t = torch.linspace(0, 3, 40, dtype=torch.float64)
        yt = 2.0 * torch.exp(-0.7 * t) + 0.05 * torch.sin(7 * t)
        return gn.least_squares(lambda x: x[0] * torch.exp(-x[1] * t) - yt, [1.0, 1.0]).x
    method, width, solver = {"lm_kernel": ("lm", 30, "kernel"), "lm_normal": ("lm", 4, "normal"),
                             "gn_default": ("gn", 4, "auto"), "lm_decay": ("lm", 30, "kernel"),
                             "gn_adaptive": ("gn", 30, "auto"), "gd": ("gd", 30, "auto"),
                             "lm_cg": ("lm", 30, gn.linsolve.CGSolver(rtol=1e-13, max_iter=500)),
                             "lm_tcg": ("lm", 30, "truncated_cg")}[case]
    damping = gn.damping.Adaptive(1.0) if case == "gn_adaptive" else None
    net = gn.MLP(8, width=width, alpha=2.0, seed=1)
    return gn.fit(net, X, y, method=method, steps=8, solver=solver, damping=damping,
                  weight_decay=0.01 if case == "lm_decay" else 0.0).params


def torchrun(nproc, *args, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(WORKER), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("nproc,case", [(2, "lm_kernel"), (2, "lm_normal"), (2, "gn_adaptive"), (2, "gd"), (2, "lsq"),
                                        (2, "optim"), (2, "optim_curvature"), (2, "gn_default"), (2, "lm_decay"),
                                        (2, "lm_cg"), (2, "lm_tcg"), (4, "lm_kernel")])
def test_iterates_match_single_process(tmp_path, nproc, case):
    out = tmp_path / "params.pt"
    proc = torchrun(nproc, out, case)
    assert proc.returncode == 0, proc.stderr[-3000:]
    params = torch.load(out)
    ref = reference(case)
    rel = float((params - ref).norm() / ref.norm())
    # atol 1e-10 on O(1) parameters: undamped GN ("gn_default", 8 steps) carries the summation-order
    # difference of the sharded Gram matrix to ~3e-11 on entries near zero (norm-wise 1.2e-11)
    assert rel < 1e-10 and torch.allclose(params, ref, rtol=1e-10, atol=1e-10), (rel, float((params - ref).abs().max()),
                                                                 proc.stderr[-2000:])
    for rank in range(1, nproc):  # every rank took the same steps (identical ρ, identical iterates)
        assert torch.equal(torch.load(f"{out}.rank{rank}"), params), rank


def test_default_damping_follows_the_global_sample_count():
    """p = 32 lies between a shard's n (18, 19) and the global n = 37: the default is ρ = 0 (p < n)."""
    X, y = global_data()
    undamped = gn.fit(gn.MLP(8, width=4, alpha=2.0, seed=1), X, y, method="gn", steps=8, damping="none").params
    adaptive = gn.fit(gn.MLP(8, width=4, alpha=2.0, seed=1), X, y, method="gn", steps=8, damping="adaptive").params
    assert torch.equal(reference("gn_default"), undamped)
    assert not torch.allclose(undamped, adaptive, rtol=1e-6)  # the case "gn_default" tells the two apart


def test_dead_rank_stops_the_others_and_resume_finishes(tmp_path):
    out, ckpt = tmp_path / "params.pt", tmp_path / "run.ckpt"
    start = time.time()
    proc = torchrun(2, out, "lm_kernel", ckpt, 4)
    assert proc.returncode != 0  # the survivors did not hang and the launcher reported the failure
    assert time.time() - start < 120
    assert "exitcode" in proc.stderr or "17" in proc.stderr
    assert ckpt.exists() and not out.exists()
    saved = torch.load(ckpt, weights_only=False)
    assert 1 <= saved["nit"] < 8
    proc = torchrun(2, out, "lm_kernel", ckpt)  # restart: resumes from the checkpoint
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.allclose(torch.load(out), reference("lm_kernel"), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case,clause", [
    ("mismatch_width", r"`p`: rank 0 = \d+, rank 1 = \d+"),
    ("mismatch_solver", r"`solver`: rank 0 = 'kernel', rank 1 = 'normal'"),
    ("mismatch_optim", r"`damping`: rank 0 = Nielsen\(.*\), rank 1 = Marquardt\("),
    ("mismatch_lsq", r"`loss`: rank 0 = 'linear', rank 1 = 'soft_l1'"),
])
def test_ranks_that_disagree_fail_fast_on_every_rank(tmp_path, case, clause):
    """A width or solver that differs on one rank fails every rank at the start (not a C++ abort, not a hang)."""
    out = tmp_path / "params.pt"
    proc = torchrun(2, out, case, timeout=120)
    assert proc.returncode != 0
    for rank in range(2):
        err = tmp_path / f"params.pt.rank{rank}.err"
        assert err.exists(), (rank, proc.stderr[-3000:])
        report = json.loads(err.read_text())
        assert report["seconds"] < 10, report  # the worker's group timeout (a hang) is 30 s
        assert re.search(r"ranks of the process group were configured differently", report["message"]), report
        assert re.search(clause, report["message"]), report


def test_disagreement_names_each_differing_field_with_its_values_per_rank():
    ranks = [{"p": "241", "dtype": "torch.float64", "solver": "'kernel'"},
             {"p": "271", "dtype": "torch.float64", "solver": "'normal'"}]
    assert gn.distributed.disagreement(ranks) == ("`p`: rank 0 = 241, rank 1 = 271; "
                                                  "`solver`: rank 0 = 'kernel', rank 1 = 'normal'")
    assert gn.distributed.disagreement([ranks[0], dict(ranks[0])]) is None
    assert gn.distributed.disagreement([{"p": "1"}, {}]) == "`p`: rank 0 = 1, rank 1 = (missing)"
    # memory addresses (object.__repr__) never make equal configurations differ
    assert gn.distributed.describe(gn.linsolve.CGSolver(rtol=1e-9)) == gn.distributed.describe(
        gn.linsolve.CGSolver(rtol=1e-9))
    assert "0x" not in gn.distributed.describe(lambda x: x)
