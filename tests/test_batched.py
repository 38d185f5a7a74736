"""least_squares_batched: per problem the same answer as the single-problem LM loop and SciPy.

Oracles: ``gaussnewton.least_squares(..., method="lm")`` on each problem (same x, cost,
status, nfev, nit: the batched loop applies the same rules), and
``scipy.optimize.least_squares`` (same cost to 1e-8 relative). Float64, fixed seeds.
"""

import math

import numpy as np
import pytest
import scipy.optimize
import torch

import gaussnewton as gn
from gaussnewton import GaussNewtonError, NonFiniteError, Termination
from gaussnewton.batched import BatchedLeastSquaresResult, _nielsen_update, least_squares_batched
from gaussnewton.damping import Nielsen, TrustState

F64 = torch.float64
T_EXP = torch.linspace(0.0, 4.0, 40, dtype=F64)
T_GAUSS = torch.linspace(0.0, 1.0, 50, dtype=F64)


def exp_decay(x, y):
    return x[0] * torch.exp(-x[1] * T_EXP) + x[2] - y


def gaussian(x, y):
    return x[0] * torch.exp(-0.5 * ((T_GAUSS - x[1]) / x[2]) ** 2) + x[3] - y


def gaussian_jac(x, y):
    z = (T_GAUSS - x[1]) / x[2]
    e = torch.exp(-0.5 * z * z)
    return torch.stack([e, x[0] * e * z / x[2], x[0] * e * z * z / x[2], torch.ones_like(e)], dim=-1)


def rosenbrock(x):
    return torch.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def exp_data(b, seed=0, noise=0.02):
    gen = torch.Generator().manual_seed(seed)
    truth = torch.stack([1.0 + 4.0 * torch.rand(b, generator=gen, dtype=F64),
                         0.3 + 1.5 * torch.rand(b, generator=gen, dtype=F64),
                         0.5 * torch.rand(b, generator=gen, dtype=F64) - 0.25], dim=1)
    y = torch.vmap(exp_decay)(truth, torch.zeros(b, T_EXP.numel(), dtype=F64))
    return y + noise * torch.randn(y.shape, generator=gen, dtype=F64)


def gauss_data(b, seed=0, noise=0.05):
    gen = torch.Generator().manual_seed(seed)
    truth = torch.stack([1.0 + torch.rand(b, generator=gen, dtype=F64),
                         0.3 + 0.4 * torch.rand(b, generator=gen, dtype=F64),
                         0.05 + 0.1 * torch.rand(b, generator=gen, dtype=F64),
                         0.2 * torch.rand(b, generator=gen, dtype=F64)], dim=1)
    y = torch.vmap(gaussian)(truth, torch.zeros(b, T_GAUSS.numel(), dtype=F64))
    return y + noise * torch.randn(y.shape, generator=gen, dtype=F64)


def single(fun, x0, *data, **kw):
    # keywords only: least_squares is taking SciPy's positional order
    return gn.least_squares(fun=lambda x: fun(x, *data), x0=x0.clone(), method="lm", **kw)


def assert_matches_loop(res, fun, x0s, data, every=2, **kw):
    """Problem by problem (every ``every``-th, to keep the loop short): the batched result equals
    least_squares(method="lm") on that problem."""
    for b in range(0, len(res), every):
        ref = single(fun, x0s[b], *(d[b] for d in data), **kw)
        assert int(res.status[b]) == ref.status, (b, res.message(b), ref.message)
        assert int(res.nfev[b]) == ref.nfev and int(res.nit[b]) == ref.nit, b
        assert torch.allclose(res.x[b], ref.x, rtol=1e-9, atol=1e-12), (b, res.x[b], ref.x)
        assert math.isclose(float(res.cost[b]), ref.cost, rel_tol=1e-9, abs_tol=1e-300), b
        assert torch.allclose(res.fun[b], ref.fun, rtol=1e-9, atol=1e-12), b


def test_exponential_decays_match_single_problem_loop():
    y = exp_data(24)
    x0 = torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    res = least_squares_batched(exp_decay, x0, (y,))
    assert isinstance(res, BatchedLeastSquaresResult) and len(res) == 24
    assert res.x.shape == (24, 3) and res.cost.shape == (24,) and res.fun.shape == (24, 40)
    assert res.status.dtype == torch.int64 and res.success.dtype == torch.bool
    assert bool(res.success.all()), res.counts()
    assert_matches_loop(res, exp_decay, x0.expand(24, 3), (y,))
    assert res.iterations == int(res.nit.max())


def test_exponential_decays_match_scipy_lm():
    y = exp_data(16, seed=1)
    x0 = np.array([1.0, 1.0, 0.0])
    res = least_squares_batched(exp_decay, x0, (y.numpy(),))
    t = T_EXP.numpy()

    def f(x, yb):
        return x[0] * np.exp(-x[1] * t) + x[2] - yb

    def j(x, yb):
        e = np.exp(-x[1] * t)
        return np.stack([e, -x[0] * t * e, np.ones_like(t)], axis=1)

    for b in range(16):
        ref = scipy.optimize.least_squares(f, x0, jac=j, args=(y[b].numpy(),), method="lm",
                                           ftol=1e-8, xtol=1e-8, gtol=1e-8)
        assert ref.success and res.success[b]
        assert math.isclose(res.cost[b], ref.cost, rel_tol=1e-8), b
        assert np.allclose(res.x[b], ref.x, rtol=1e-4, atol=1e-6), (b, res.x[b], ref.x)


def test_noisy_gaussians_match_loop_and_scipy_trf():
    y = gauss_data(20)
    gen = torch.Generator().manual_seed(5)
    x0s = torch.tensor([1.5, 0.5, 0.1, 0.0], dtype=F64) + 0.05 * torch.randn(20, 4, generator=gen, dtype=F64)
    res = least_squares_batched(gaussian, x0s, (y,))
    assert bool(res.success.all()), res.counts()
    assert_matches_loop(res, gaussian, x0s, (y,))
    t = T_GAUSS.numpy()
    for b in range(0, 20, 4):
        ref = scipy.optimize.least_squares(
            lambda x, yb: x[0] * np.exp(-0.5 * ((t - x[1]) / x[2]) ** 2) + x[3] - yb, x0s[b].numpy(),
            args=(y[b].numpy(),), ftol=1e-10, xtol=1e-10, gtol=1e-10)
        assert math.isclose(float(res.cost[b]), ref.cost, rel_tol=1e-8), b


def test_user_jacobian_gives_the_autodiff_result():
    y = gauss_data(12, seed=2)
    x0 = torch.tensor([1.5, 0.5, 0.1, 0.0], dtype=F64)
    auto = least_squares_batched(gaussian, x0, (y,))
    user = least_squares_batched(gaussian, x0, (y,), jac=gaussian_jac)
    assert torch.equal(auto.status, user.status) and torch.equal(auto.nfev, user.nfev)
    assert torch.allclose(auto.x, user.x, rtol=1e-10, atol=1e-12)


def test_rosenbrock_batch_from_different_starts():
    gen = torch.Generator().manual_seed(0)
    x0s = 2.0 * torch.randn(30, 2, generator=gen, dtype=F64)
    res = least_squares_batched(rosenbrock, x0s)
    assert bool(res.success.all()), res.counts()
    assert torch.allclose(res.x, torch.ones(30, 2, dtype=F64), atol=1e-8)
    assert len(set(res.nfev.tolist())) > 1  # the problems stop at different passes
    assert_matches_loop(res, rosenbrock, x0s, ())


def test_problem_at_its_minimum_stops_at_once_with_gtol():
    x0s = torch.tensor([[1.0, 1.0], [-1.2, 1.0]], dtype=F64)
    res = least_squares_batched(rosenbrock, x0s)
    assert int(res.status[0]) == Termination.GTOL.value
    assert (int(res.nfev[0]), int(res.njev[0]), int(res.nit[0])) == (1, 1, 0)
    assert torch.equal(res.x[0], x0s[0]) and float(res.cost[0]) == 0.0
    assert bool(res.success[1]) and int(res.nfev[1]) > 1


def test_nonfinite_data_and_nonfinite_trials_stay_in_their_problem():
    y = exp_data(12, seed=3)
    bad = y.clone()
    bad[2, 5] = float("nan")  # residuals non-finite at x0
    bad[7, :] = float("inf")
    x0 = torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    res = least_squares_batched(exp_decay, x0, (bad,))
    for b in (2, 7):
        assert int(res.status[b]) == Termination.NONFINITE.value and not bool(res.success[b])
        assert (int(res.nfev[b]), int(res.njev[b]), int(res.nit[b])) == (1, 0, 0)
        assert torch.equal(res.x[b], x0)
    good = [b for b in range(12) if b not in (2, 7)]
    clean = least_squares_batched(exp_decay, x0, (y[good],))
    assert torch.equal(res.x[good], clean.x) and torch.equal(res.nfev[good], clean.nfev)
    assert torch.equal(res.status[good], clean.status) and bool(torch.isfinite(res.x).all())
    assert "non-finite" in res.message(2)


def test_trials_with_nan_residuals_are_rejected_per_problem():
    # the model is undefined (NaN) for rates x[1] <= 0.3; from x[1] = 0.4 some LM trials land there
    t = torch.linspace(0.0, 2.0, 30, dtype=F64)
    gen = torch.Generator().manual_seed(3)
    amp = 1.0 + 9.0 * torch.rand(10, generator=gen, dtype=F64)
    y = amp[:, None] * torch.exp(-(0.5 + 2.0 * torch.rand(10, 1, generator=gen, dtype=F64)) * t)
    nan_rows = []

    def fun(x, yb):  # vectorized: x (m, 2), yb (m, 30); side effects allowed (no vmap)
        r = x[:, :1] * torch.exp(-x[:, 1:] * t) - yb + 0.0 * torch.log(x[:, 1:] - 0.3)
        nan_rows.append(int(torch.isnan(r).any(dim=1).sum()))
        return r

    x0 = torch.tensor([1.0, 0.4], dtype=F64)
    res = least_squares_batched(fun, x0, (y,), vectorized=True)
    assert sum(nan_rows) > 0  # some trials were non-finite
    assert bool(res.success.all()) and bool(torch.isfinite(res.cost).all())
    assert float(res.cost.max()) < 1e-12  # noise-free data: every problem reaches its curve

    def one(x, yb):
        return x[0] * torch.exp(-x[1] * t) - yb + 0.0 * torch.log(x[1] - 0.3)

    assert_matches_loop(res, one, x0.expand(10, 2), (y,))


def test_max_nfev_caps_slow_problems_while_others_converge():
    gen = torch.Generator().manual_seed(0)
    x0s = 2.0 * torch.randn(20, 2, generator=gen, dtype=F64)
    free = least_squares_batched(rosenbrock, x0s)
    cap = int(free.nfev.float().median())
    while cap in free.nfev.tolist():  # at nfev == cap, MAX_EVALS would pre-empt a GTOL found at the next J
        cap += 1
    res = least_squares_batched(rosenbrock, x0s, max_nfev=cap)
    capped = res.status == Termination.MAX_EVALS.value
    done = free.nfev < cap
    assert bool(capped.any()) and bool(done.any())
    assert torch.equal(capped, ~done)
    assert bool((res.nfev[capped] == cap).all())
    assert torch.equal(res.x[done], free.x[done]) and torch.equal(res.status[done], free.status[done])
    assert "max_nfev" in res.message(int(capped.nonzero()[0]))
    assert_matches_loop(res, rosenbrock, x0s, (), max_nfev=cap)


def test_budget_of_one_evaluation_stops_before_any_jacobian():
    x0s = torch.tensor([[-1.2, 1.0], [1.0, 1.0]], dtype=F64)
    res = least_squares_batched(rosenbrock, x0s, max_nfev=1)
    assert res.status.tolist() == [Termination.MAX_EVALS.value] * 2
    assert res.nfev.tolist() == [1, 1] and res.njev.tolist() == [0, 0] and torch.equal(res.x, x0s)
    ref = single(rosenbrock, x0s[0], max_nfev=1)
    assert ref.status == Termination.MAX_EVALS.value and ref.nfev == 1


def test_damping_update_is_nielsens_rule_problem_by_problem():
    """The vectorized update equals Nielsen(scaling="diag", fast_endgame=True, secant=True).update."""
    ratios = [-math.inf, -1.0, 0.0, 1e-12, 0.1, 0.25, 0.5, 0.6, 0.75, 0.76, 0.9, 1.0, 1.7, 50.0, math.inf, math.nan]
    secants = [math.nan, 3.0, 0.5, 0.05, 0.5, math.nan, 0.7, 0.2, 1.0, 0.01, 0.3, -1.0, 0.5, 0.5, math.nan, 2.0]
    rule = Nielsen(scaling="diag", fast_endgame=True, secant=True)
    rho = torch.tensor([1e-3 * (k + 1) for k in range(len(ratios))], dtype=F64)
    nu = torch.tensor([2.0 ** (k % 4 + 1) for k in range(len(ratios))], dtype=F64)
    ratio = torch.tensor(ratios, dtype=F64)
    accepted = torch.isfinite(ratio) & (ratio > 0)
    rho_new, nu_new = _nielsen_update(rho, nu, ratio, accepted, torch.tensor(secants, dtype=F64))
    for k, q in enumerate(ratios):
        state, ok = rule.update(TrustState(float(rho[k]), float(nu[k])), q, secants[k])
        assert ok == bool(accepted[k]), q
        assert math.isclose(state.rho, float(rho_new[k]), rel_tol=1e-15) and state.nu == float(nu_new[k]), q


def test_every_stop_reason_is_reported_per_problem():
    y = exp_data(6, seed=4)
    x0 = torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    xtol_only = least_squares_batched(exp_decay, x0, (y,), ftol=0.0, gtol=0.0, xtol=1e-6)
    assert set(xtol_only.status.tolist()) == {Termination.XTOL.value}
    gtol_only = least_squares_batched(exp_decay, x0, (y,), ftol=0.0, xtol=0.0, gtol=1e-6)
    assert set(gtol_only.status.tolist()) == {Termination.GTOL.value}
    assert xtol_only.messages() == {Termination.XTOL.value: Termination.XTOL.message}
    assert gtol_only.counts() == {"GTOL": 6}
    assert xtol_only.termination(-1) is Termination.XTOL
    with pytest.raises(IndexError, match="out of range for a batch of B = 6"):
        xtol_only.message(6)


def test_vectorized_and_chunked_evaluation_give_the_same_results():
    y = gauss_data(23, seed=6)
    x0 = torch.tensor([1.5, 0.5, 0.1, 0.0], dtype=F64)
    ref = least_squares_batched(gaussian, x0, (y,))

    def vec(x, yb):
        return x[:, 0:1] * torch.exp(-0.5 * ((T_GAUSS - x[:, 1:2]) / x[:, 2:3]) ** 2) + x[:, 3:4] - yb

    for kw in ({"vectorized": True, "fun": vec}, {"chunk_size": 5, "fun": gaussian},
               {"vectorized": True, "fun": vec, "chunk_size": 4}):
        fun = kw.pop("fun")
        res = least_squares_batched(fun, x0, (y,), **kw)
        assert torch.equal(res.status, ref.status) and torch.equal(res.nfev, ref.nfev), kw
        assert torch.allclose(res.x, ref.x, rtol=1e-10, atol=1e-13), kw


def test_numpy_in_numpy_out_and_dtype_kept():
    y = exp_data(5, seed=7)
    res = least_squares_batched(exp_decay, np.array([[1.0, 1.0, 0.0]] * 5), (y.numpy(),))
    for name, kind in (("x", np.floating), ("cost", np.floating), ("fun", np.floating), ("status", np.integer),
                       ("success", np.bool_), ("nfev", np.integer), ("njev", np.integer), ("nit", np.integer)):
        value = getattr(res, name)
        assert isinstance(value, np.ndarray) and np.issubdtype(value.dtype, kind), name
    assert res.x.shape == (5, 3) and res.x.dtype == np.float64
    assert res.message(0) == Termination(int(res.status[0])).message
    as_list = least_squares_batched(exp_decay, [1.0, 1.0, 0.0], (y,))
    assert isinstance(as_list.x, np.ndarray) and np.allclose(as_list.x, res.x, rtol=1e-12)
    f32 = least_squares_batched(exp_decay, torch.ones(5, 3), (y.float(),), ftol=1e-5, xtol=1e-5, gtol=1e-5)
    assert f32.x.dtype == torch.float32 and f32.cost.dtype == torch.float32


def test_runs_on_every_available_device():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    y = exp_data(8, seed=8)
    x0 = torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    ref = least_squares_batched(exp_decay, x0, (y,))
    for dev in devices:
        t = T_EXP.to(dev)

        def fun(x, yb, t=t):
            return x[0] * torch.exp(-x[1] * t) + x[2] - yb

        res = least_squares_batched(fun, x0.to(dev), (y.to(dev),))
        assert res.x.device.type == dev and res.status.device.type == dev
        assert torch.equal(res.status.cpu(), ref.status)
        assert torch.allclose(res.x.cpu(), ref.x, rtol=1e-8, atol=1e-10)


Y5 = torch.zeros(5, 40, dtype=F64)
X5 = torch.ones(5, 3, dtype=F64)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"fun": 3}, GaussNewtonError, r"`fun` must be callable; got int"),
    ({"jac": "2-point"}, GaussNewtonError, r"`jac` must be callable or None; got str"),
    ({"method": "trf"}, GaussNewtonError, r"`method` must be one of 'lm'; got 'trf'"),
    ({"x0": torch.ones(2, 2, 3)}, GaussNewtonError, r"`x0` must be 1 or 2-dimensional; got shape \(2, 2, 3\)"),
    ({"x0": torch.ones(5, 0)}, GaussNewtonError,
     r"`x0` must have at least one parameter per problem; got shape \(5, 0\)"),
    ({"x0": torch.tensor([[1.0, float("nan"), 0.0]] * 5)}, NonFiniteError, r"`x0` must be finite"),
    ({"x0": torch.ones(3), "args": ()}, GaussNewtonError,
     r"`x0` must be 2-dimensional \(B, p\) when no batched `args`"),
    ({"args": (torch.zeros(4, 40),)}, GaussNewtonError,
     r"`args\[0\]` must have a leading batch dimension of size B = 5 .*got shape \(4, 40\)"),
    ({"args": (Y5, Y5[:3])}, GaussNewtonError, r"`args\[1\]` must have a leading batch dimension of size B = 5"),
    ({"args": (1.5,)}, GaussNewtonError, r"`args\[0\]` must be a tensor or array .* got float"),
    ({"args": (torch.tensor(2.0),)}, GaussNewtonError, r"`args\[0\]` must have a leading batch dimension .*0-dim"),
    ({"args": Y5}, GaussNewtonError, r"`args` must be a tuple of arrays.*got Tensor"),
    ({"args": (np.array(["a"] * 5),)}, GaussNewtonError, r"`args\[0\]` must be a numeric array"),
    ({"ftol": -1.0}, GaussNewtonError, r"`ftol` must be a finite number >= 0; got ftol = -1.0"),
    ({"ftol": 0, "xtol": None, "gtol": 1e-17}, GaussNewtonError,
     r"At least one of the tolerances must be higher than machine epsilon"),
    ({"max_nfev": 0}, GaussNewtonError, r"`max_nfev` must be an integer >= 1; got max_nfev = 0"),
    ({"tau": 0.0}, GaussNewtonError, r"`tau` must be a finite number > 0; got tau = 0.0"),
    ({"chunk_size": 0}, GaussNewtonError, r"`chunk_size` must be an integer >= 1; got chunk_size = 0"),
    ({"vectorized": "yes"}, GaussNewtonError, r"`vectorized` must be True or False; got 'yes'"),
    ({"fun": lambda x, y: torch.outer(x, x)}, GaussNewtonError,
     r"`fun` must return a 1-D tensor of n residuals per problem; got per-problem shape \(3, 3\)"),
    ({"fun": lambda x, y: x[0] if float(x[0]) > 0 else x}, GaussNewtonError,
     r"`fun` could not be evaluated on the batch: .*without Python branches on tensor values"),
    ({"fun": lambda x, y: np.zeros(3)}, GaussNewtonError, r"`fun` could not be evaluated on the batch"),
    ({"jac": lambda x, y: torch.zeros(3, 40)}, GaussNewtonError,
     r"`jac` must return the \(n, p\) = \(40, 3\) Jacobian of each problem; got a batch of shape \(5, 3, 40\)"),
])
def test_bad_input_messages(kwargs, exc, match):
    call = {"fun": exp_decay, "x0": X5, "args": (Y5,), **kwargs}
    with pytest.raises(exc, match=match):
        least_squares_batched(call.pop("fun"), call.pop("x0"), call.pop("args"), **call)


def test_errors_are_value_errors():
    assert issubclass(GaussNewtonError, ValueError)
    with pytest.raises(ValueError, match="`method`"):
        least_squares_batched(exp_decay, X5, (Y5,), method="dogbox")
