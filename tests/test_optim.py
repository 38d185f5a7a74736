"""gaussnewton.optim.GaussNewton: one step against hand-built dense GN/GGN steps, param groups,
state_dict round-trips, a plain training loop, and argument errors."""

import io
import math

import pytest
import torch
from torch import nn

import gaussnewton as gn
from gaussnewton import GaussNewtonError, NonFiniteError
from gaussnewton.damping import Marquardt, Nielsen
from gaussnewton.losses import CrossEntropy, PseudoHuber
from gaussnewton.optim import GaussNewton, closure_jacobian, closure_operator

N_BIG, N_SMALL = 40, 6  # p = 3*5 + 5 + 5 + 1 = 26: N > p and N < p




def tiny_net(d=3, width=5, k=1, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, k)).double()


def data(n, d=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64), torch.randn(n, generator=gen, dtype=torch.float64)


def flat(net):
    return torch.cat([q.detach().reshape(-1) for q in net.parameters()])


def dense_jacobian(net, x):
    """Reference J (N, p) of net(x).reshape(-1) by torch.func.jacrev over all parameters."""
    names = [n for n, _ in net.named_parameters()]
    theta = {n: q.detach() for n, q in net.named_parameters()}
    jac = torch.func.jacrev(lambda t: torch.func.functional_call(net, t, (x,)).reshape(-1))(theta)
    return torch.cat([jac[n].reshape(jac[n].shape[0], -1) for n in names], dim=1)


def reference_gn_step(jac, lam, grad_u, n, rho):
    """δ = −(JᵀΛJ/n + ρI)⁻¹ Jᵀg/n in float64 by a dense solve (Λ block diagonal (N, N))."""
    p = jac.shape[1]
    h = jac.T @ lam @ jac / n + rho * torch.eye(p, dtype=jac.dtype)
    return -torch.linalg.solve(h, jac.T @ grad_u / n)


@pytest.mark.parametrize("n", [N_BIG, N_SMALL])
@pytest.mark.parametrize("solver", ["auto", "normal", "kernel", "lstsq", "cg"])
def test_one_step_equals_dense_damped_gn_step(n, solver):
    net = tiny_net()
    x, y = data(n)
    theta0 = flat(net)
    jac = dense_jacobian(net, x)
    r = net(x).squeeze(1).detach() - y
    rho, lr = 0.3, 0.7
    expected = theta0 + lr * reference_gn_step(jac, torch.eye(n, dtype=torch.float64), r, n, rho)
    opt = GaussNewton(net.parameters(), damping=rho, lr=lr, solver=solver)
    loss = opt.step(lambda: net(x).squeeze(1) - y)
    assert float(loss) == pytest.approx(0.5 * float(r @ r) / n, rel=1e-12)
    tol = 1e-7 if solver == "cg" else 1e-10
    torch.testing.assert_close(flat(net), expected, rtol=tol, atol=tol)
    state = opt.state_dict()["state"][0]
    assert state["step"] == 1 and state["accepted"] and state["trials"] == 1


def test_first_nielsen_step_equals_fit_lm():
    x, y = data(N_BIG)
    net_a, net_b = tiny_net(), tiny_net()
    opt = GaussNewton(net_a.parameters())  # Nielsen, ρ₀ = τ·max diag(JᵀJ)/n, same units as fit
    opt.step(lambda: net_a(x).squeeze(1) - y)
    state = opt.state[next(net_a.parameters())]
    trials = state["trials"]
    res = gn.fit(net_b, x, y, method="lm", steps=trials)  # fit counts every trial as a step
    assert res.history["accepted"] == [False] * (trials - 1) + [True]
    torch.testing.assert_close(flat(net_a), flat(net_b), rtol=1e-10, atol=1e-12)
    assert state["rho"] == pytest.approx(res.history["damping"][-1], rel=1e-12)
    assert state["loss"] == pytest.approx(res.loss, rel=1e-12)


def test_triple_closure_cross_entropy_matches_dense_ggn():
    n, k, rho = 12, 3, 0.05
    net = tiny_net(k=k)
    x, _ = data(n)
    labels = torch.arange(n) % k
    theta0 = flat(net)
    logits = net(x).detach()
    prob = torch.softmax(logits, dim=1)
    lam = torch.block_diag(*[torch.diag(q) - torch.outer(q, q) for q in prob])  # Λ = diag(p) − ppᵀ
    grad_u = (prob - nn.functional.one_hot(labels, k).double()).reshape(-1)
    expected = theta0 + reference_gn_step(dense_jacobian(net, x), lam, grad_u, n, rho)
    opt = GaussNewton(net.parameters(), damping=rho)
    loss = opt.step(lambda: (net(x), labels, "cross_entropy"))
    assert float(loss) == pytest.approx(float(nn.functional.cross_entropy(logits, labels)), rel=1e-12)
    torch.testing.assert_close(flat(net), expected, rtol=1e-9, atol=1e-11)


def test_triple_closure_pseudo_huber_matches_dense_ggn():
    n, rho, delta = 15, 0.1, 0.5
    net = tiny_net()
    x, y = data(n)
    theta0 = flat(net)
    r = net(x).squeeze(1).detach() - y
    lam = torch.diag((1 + (r / delta) ** 2) ** -1.5)
    expected = theta0 + reference_gn_step(dense_jacobian(net, x), lam, r / torch.sqrt(1 + (r / delta) ** 2), n, rho)
    opt = GaussNewton(net.parameters(), damping=rho)
    opt.step(lambda: (net(x), y, PseudoHuber(delta)))  # (n, 1) prediction, (n,) target: reshaped
    torch.testing.assert_close(flat(net), expected, rtol=1e-9, atol=1e-11)


def test_closure_jacobian_matches_reference_and_zero_for_unused():
    net = tiny_net(k=2)
    x, _ = data(7)
    unused = nn.Parameter(torch.ones(4, dtype=torch.float64))
    params = [*net.parameters(), unused]
    out = net(x)
    ref = dense_jacobian(net, x)
    for budget in (1e9, 1.0):  # all basis vectors in one batched VJP / one per chunk
        jac = closure_jacobian(out, params, budget)
        torch.testing.assert_close(jac[:, : ref.shape[1]], ref, rtol=1e-12, atol=1e-14)
        assert torch.all(jac[:, ref.shape[1]:] == 0)


def test_closure_operator_products_match_dense():
    net = tiny_net(k=3)
    x, _ = data(5)
    params = list(net.parameters())
    with torch.enable_grad():
        out = net(x)
    curv = CrossEntropy().curvature(out.detach(), torch.tensor([0, 1, 2, 0, 1]))
    a_dense = curv.rows(dense_jacobian(net, x))
    op = closure_operator(out, params, curv)
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(op.shape[1], generator=gen, dtype=torch.float64)
    w = torch.randn(op.shape[0], generator=gen, dtype=torch.float64)
    torch.testing.assert_close(op.mv(v), a_dense @ v, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(op.rmv(w), a_dense.T @ w, rtol=1e-11, atol=1e-13)


def test_param_groups_train_only_chosen_params_with_group_lr():
    n, rho = 20, 0.2
    net = tiny_net()
    x, y = data(n)
    first, last = net[0], net[2]
    frozen_before = [q.detach().clone() for q in last.parameters()]
    first_bias_before = first.bias.detach().clone()
    first.bias.requires_grad_(False)  # in a group but not trainable: untouched
    # reference: GN step in the first layer's weight only (the other parameters are constants)
    jac = dense_jacobian(net, x)[:, : first.weight.numel()]
    r = net(x).squeeze(1).detach() - y
    eye = torch.eye(n, dtype=torch.float64)
    expected = first.weight.detach().reshape(-1) + 0.5 * reference_gn_step(jac, eye, r, n, rho)
    opt = GaussNewton([{"params": [first.weight, first.bias], "lr": 0.5}], damping=rho)
    opt.step(lambda: net(x).squeeze(1) - y)
    torch.testing.assert_close(first.weight.detach().reshape(-1), expected, rtol=1e-10, atol=1e-12)
    assert torch.equal(first.bias, first_bias_before)
    for q, q0 in zip(last.parameters(), frozen_before, strict=True):
        assert torch.equal(q, q0)


def test_two_groups_scale_their_blocks_of_one_joint_step():
    n, rho = 20, 0.2
    x, y = data(n)
    net_a, net_b = tiny_net(), tiny_net()
    GaussNewton(net_a.parameters(), damping=rho).step(lambda: net_a(x).squeeze(1) - y)
    step_full = flat(net_a) - flat(net_b)
    opt = GaussNewton([{"params": net_b[0].parameters(), "lr": 0.25}, {"params": net_b[2].parameters()}], damping=rho)
    before = flat(net_b)
    opt.step(lambda: net_b(x).squeeze(1) - y)
    split = sum(q.numel() for q in net_b[0].parameters())
    torch.testing.assert_close((flat(net_b) - before)[:split], 0.25 * step_full[:split], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close((flat(net_b) - before)[split:], step_full[split:], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("damping", ["nielsen", Marquardt(scaling="diag")])
def test_state_dict_round_trip_continues_identically(damping):
    x, y = data(30)
    gen = torch.Generator().manual_seed(5)
    batches = [torch.randperm(30, generator=gen)[:12] for _ in range(6)]  # mini-batches

    def run(net, opt, idx):
        for i in idx:
            opt.step(lambda i=i: net(x[i]).squeeze(1) - y[i])

    net = tiny_net()
    opt = GaussNewton(net.parameters(), damping=damping)
    run(net, opt, batches[:3])
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buf)
    run(net, opt, batches[3:])
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # the state holds only plain Python and tensors
    net2 = tiny_net(seed=123)
    net2.load_state_dict(saved["model"])
    opt2 = GaussNewton(net2.parameters(), damping=damping)
    opt2.load_state_dict(saved["opt"])
    state = opt2.state[next(net2.parameters())]
    assert state["step"] == 3 and set(state["damping_state"]) == {"rho", "nu"}
    run(net2, opt2, batches[3:])
    assert torch.equal(flat(net2), flat(net))
    assert opt2.state[next(net2.parameters())]["damping_state"] == opt.state[next(net.parameters())]["damping_state"]


def test_rejected_trials_restore_params_and_raise_damping():
    theta = nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    closure = lambda: torch.atan(theta)  # noqa: E731  # the GN step from 2 overshoots to -3.5
    opt = GaussNewton([theta], damping=Nielsen(rho0=1e-12), max_trials=1)
    opt.step(closure)
    state = opt.state[theta]
    assert not state["accepted"] and theta.item() == 2.0
    assert state["damping_state"]["rho"] == pytest.approx(2e-12) and state["damping_state"]["nu"] == 4.0
    opt = GaussNewton([theta], damping=Nielsen(rho0=1e-12), max_trials=10)
    loss = opt.step(closure)
    assert opt.state[theta]["accepted"] and opt.state[theta]["trials"] > 1
    assert opt.state[theta]["loss"] < float(loss)


def test_plain_training_loop_reaches_low_loss():
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, 80, dtype=torch.float64)[:, None]
    y = torch.sin(2 * x).squeeze(1)
    net = nn.Sequential(nn.Linear(1, 20), nn.Tanh(), nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 1)).double()
    opt = GaussNewton(net.parameters())
    with torch.no_grad():
        loss0 = float(0.5 * ((net(x).squeeze(1) - y) ** 2).mean())
    for _ in range(15):
        def closure():
            return net(x).squeeze(1) - y
        opt.step(closure)
    with torch.no_grad():
        loss = float(0.5 * ((net(x).squeeze(1) - y) ** 2).mean())
    assert loss < 1e-5 < 1e-2 < loss0


def test_mini_batch_loop_with_cross_entropy_learns():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=gen, dtype=torch.float64)
    labels = (x[:, 0] * x[:, 1] > 0).long()  # XOR-like quadrants
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    opt = GaussNewton(net.parameters())
    for _epoch in range(6):
        for idx in torch.randperm(200, generator=gen).split(50):
            opt.step(lambda idx=idx: (net(x[idx]), labels[idx], "cross_entropy"))
    accuracy = float((net(x).argmax(1) == labels).double().mean())
    assert accuracy > 0.9


def test_paper_schedule_accepts_every_step_and_matches_fit_gn():
    x, y = data(10)
    net = tiny_net(width=20)
    opt = GaussNewton(net.parameters(), damping=gn.damping.Adaptive(1.0))  # p = 101 > n: ρ = λ_min(K)
    state = opt.state[next(net.parameters())]
    losses, accepted = [], []
    for _ in range(5):
        losses.append(float(opt.step(lambda: net(x).squeeze(1) - y)))
        accepted.append((state["accepted"], state["trials"]))
    assert accepted == [(True, 1)] * 5 and state["damping_state"] is None
    reference = tiny_net(width=20)  # the same schedule in fit (GN-DT, eq. 13) takes the same steps
    res = gn.fit(reference, x, y, method="gn", damping=gn.damping.Adaptive(1.0), steps=5)
    assert losses[1:] == pytest.approx(res.history["loss"][:-1], rel=1e-8)
    torch.testing.assert_close(flat(net), flat(reference), rtol=1e-8, atol=1e-10)


def _bad_closures():
    theta = nn.Parameter(torch.ones(3, dtype=torch.float64))
    err = GaussNewtonError
    ones = torch.ones(3)
    return theta, [
        (lambda: (theta**2).sum(), err, r"`closure` must return the residual vector .*got a scalar"),
        (lambda: theta.detach() - 1, err, r"`closure` output does not depend on the optimizer's parameters"),
        (lambda: [theta], err, r"`closure` must return a residual tensor .* got list"),
        (lambda: (theta, torch.ones(4), "squared"), err, r"`closure` target must have .*\(3,\); got \(4,\)"),
        (lambda: (theta, ones, "hinge"), err, r"`loss` must be one of .*got 'hinge'"),
        (lambda: (theta, ones, "cross_entropy"), err, r"`closure` for cross_entropy must return logits \(n, k\)"),
        (lambda: (theta[:, None], ones, "cross_entropy"), err, r"labels for cross_entropy must be .*\[0, 1\)"),
        (lambda: (theta, -ones, "logistic"), err, r"`closure` labels for logistic must lie in \[0, 1\] .*values -1"),
        (lambda: theta * math.inf, NonFiniteError, r"loss returned by `closure` must be finite; got nan"),
        (None, err, r"`closure` must be callable"),
    ]


@pytest.mark.parametrize("case", range(10))
def test_bad_closure_messages(case):
    theta, cases = _bad_closures()
    closure, exc, pattern = cases[case]
    opt = GaussNewton([theta], damping=0.1)
    with pytest.raises(exc, match=pattern):
        opt.step(closure)
    assert torch.equal(theta, torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"lr": 0.0}, r"`lr` must be a finite number > 0; got lr = 0.0"),
        ({"lr": "1"}, r"`lr` must be a positive number; got '1'"),
        ({"damping": "fast"}, r"`damping` must be one of .*got 'fast'"),
        ({"damping": -1.0}, r"`damping` must be a finite number >= 0; got damping = -1.0"),
        ({"damping": None}, r"`damping` must be a schedule.*got None"),
        ({"solver": "qr"}, r"`solver` must be one of 'auto', .*got 'qr'"),
        ({"memory_budget": 0}, r"`memory_budget` must be a finite number > 0"),
        ({"max_trials": 0}, r"`max_trials` must be an integer >= 1; got max_trials = 0"),
        ({"max_trials": 2.5}, r"`max_trials` must be an integer >= 1; got max_trials = 2.5"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, pattern):
    with pytest.raises(GaussNewtonError, match=pattern):
        GaussNewton(tiny_net().parameters(), **kwargs)


def test_bad_params_name_the_argument():
    frozen = nn.Parameter(torch.ones(2), requires_grad=False)
    with pytest.raises(GaussNewtonError, match=r"`params` must contain at least one parameter with requires_grad"):
        GaussNewton([frozen])
    mixed = [nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2, dtype=torch.float64))]
    with pytest.raises(GaussNewtonError, match=r"`params` must share one floating dtype and device"):
        GaussNewton(mixed)
    opt = GaussNewton([nn.Parameter(torch.ones(2))])
    with pytest.raises(GaussNewtonError, match=r"`lr` must be a finite number > 0; got lr = -1"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(2))], "lr": -1})
    with pytest.raises(GaussNewtonError, match=r"`params` must share one floating dtype"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(2, dtype=torch.float64))]})
    assert len(opt.param_groups) == 1  # the rejected groups were not added


@pytest.mark.parametrize("method,damping,loss", [
    ("lm", Nielsen(), "squared"),
    ("lm", Marquardt(scaling="diag"), "squared"),
    ("gn", gn.damping.Adaptive(1.0), "squared"),
    ("gn", gn.damping.CurvatureGlobal(1.0), "log_cosh"),
])
def test_optimizer_and_fit_take_identical_iterates(method, damping, loss):
    """Both front doors run the same Stepper: every accepted iterate agrees to rounding."""
    x, y = data(12)
    net, reference = tiny_net(width=20), tiny_net(width=20)  # p = 101 > n = 12
    opt = GaussNewton(net.parameters(), damping=damping, max_trials=50)
    iterates, trials = [], 0
    for _ in range(6):
        opt.step(lambda: (net(x).squeeze(1), y, loss))
        state = opt.state[next(net.parameters())]
        assert state["accepted"]
        iterates.append(flat(net))
        trials += state["trials"]
    accepted = []
    res = gn.fit(reference, x, y, method=method, damping=damping, loss=loss, steps=trials,
                 callback=lambda info: accepted.append(info.params) if info.accepted else None)
    assert res.steps == trials and len(accepted) == len(iterates) == 6
    for mine, theirs in zip(iterates, accepted, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-8, atol=1e-9)  # per-sample vs closure Jacobians


@pytest.mark.parametrize("solver", ["normal", "cg"])
def test_closure_raising_in_a_trial_restores_the_accepted_params(solver):
    """A closure that dies on a trial evaluation (a data loader) leaves the parameters at the last accepted θ."""
    x, y = data(30)
    net = tiny_net()
    opt = GaussNewton(net.parameters(), solver=solver)
    opt.step(lambda: net(x).squeeze(1) - y)
    before, calls = flat(net).clone(), []

    def dies():
        calls.append(1)
        if len(calls) == 2:  # the first trial (call 1 builds the Jacobian's graph)
            raise RuntimeError("data loader died")
        return net(x).squeeze(1) - y

    with pytest.raises(RuntimeError, match="data loader died"):
        opt.step(dies)
    assert torch.equal(flat(net), before)


def test_lr_zero_is_a_no_op_and_bad_lr_is_refused_at_step():
    x, y = data(30)
    net = tiny_net()
    opt = GaussNewton(net.parameters())
    closure = lambda: net(x).squeeze(1) - y  # noqa: E731
    opt.step(closure)
    state = opt.state[next(net.parameters())]
    before, damping_before = flat(net).clone(), dict(state["damping_state"])
    opt.param_groups[0]["lr"] = 0.0  # a warm-up scheduler's first step
    loss = opt.step(closure)
    assert torch.equal(flat(net), before) and state["damping_state"] == damping_before
    assert float(loss) == pytest.approx(float(0.5 * (closure().detach() ** 2).mean()), rel=1e-12)
    opt.param_groups[0]["lr"] = 1.0  # and training goes on as before
    assert float(opt.step(closure)) == pytest.approx(float(loss), rel=1e-12) and state["accepted"]
    after = flat(net).clone()
    for bad in (-0.1, math.nan, math.inf, "1"):
        opt.param_groups[0]["lr"] = bad
        with pytest.raises(GaussNewtonError, match=r"`lr` of param group 0 must be a finite number >= 0 .*got lr = "):
            opt.step(closure)
    assert torch.equal(flat(net), after)
    good = GaussNewton(tiny_net().parameters()).state_dict()
    good["param_groups"][0]["lr"] = -1.0
    with pytest.raises(GaussNewtonError, match=r"`lr` of param group 0 must be a finite number >= 0 .*got lr = -1.0"):
        GaussNewton(tiny_net().parameters()).load_state_dict(good)


def _trained_state(net, x, y):
    opt = GaussNewton(net.parameters())
    opt.step(lambda: net(x).squeeze(1) - y)
    return opt.state_dict()


def test_load_state_dict_refuses_other_optimizers_models_and_dampings():
    x, y = data(30)
    net = tiny_net()
    adam = torch.optim.Adam(net.parameters())
    (net(x).squeeze(1) - y).pow(2).sum().backward()
    adam.step()
    cases = [
        (adam.state_dict(),
         r"`state_dict` is not a GaussNewton state: param group 0 has options \['amsgrad', .*Adam or SGD"),
        (torch.optim.SGD(net.parameters(), lr=0.1).state_dict(), r"param group 0 has options .*'momentum'"),
        ({"state": {0: {"step": 1, "exp_avg": torch.ones(2)}, 1: {"exp_avg": torch.ones(2)}},
          "param_groups": [{"lr": 1.0, "params": [0, 1, 2, 3]}]}, r"per-parameter state \['exp_avg'\] for 1 more"),
        ({"state": {0: {"step": 1, "exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 1.0, "params": [0, 1, 2, 3]}]},
         r"its state lacks \['version', 'cost'"),
        (_trained_state(tiny_net(width=6), x, y),
         r"saved for parameters of sizes \[18, 6, 6, 1\] \(p = 31\); this optimizer's have sizes "
         r"\[15, 5, 5, 1\] \(p = 26\)"),
        (_trained_state(nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1), nn.Linear(1, 1)).double(), x, y),
         r"param group 0 has 6 parameters; this optimizer's has 4"),
        ([1, 2], r"`state_dict` must be a dict from GaussNewton.state_dict\(\) with 'state' and 'param_groups'; "
                 r"got list"),
    ]
    for state_dict, pattern in cases:
        opt = GaussNewton(tiny_net().parameters())
        with pytest.raises(GaussNewtonError, match=pattern):
            opt.load_state_dict(state_dict)
        assert not opt.state  # nothing was loaded
    with pytest.raises(GaussNewtonError,
                       match=r"damping state with \['nu', 'rho'\]; this optimizer's damping .* keeps none"):
        GaussNewton(tiny_net().parameters(), damping=0.1).load_state_dict(_trained_state(tiny_net(), x, y))
    GaussNewton(tiny_net().parameters()).load_state_dict(_trained_state(tiny_net(), x, y))  # the same layout loads
