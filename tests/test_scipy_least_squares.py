"""least_squares as a drop-in for scipy.optimize.least_squares: compared with SciPy itself.

Bounded, robust, scaled and args problems give SciPy's x (to tolerance) and status where both
apply; NumPy and torch residuals give the same answer; SciPy's error conditions are raised.
"""

import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
import torch
from scipy.sparse.linalg import aslinearoperator

import gaussnewton as gn
from gaussnewton import GaussNewtonError, Termination

T = np.linspace(0, 3, 40)
Y = 2.0 * np.exp(-0.7 * T) + 0.01 * np.sin(9 * T)
Y_OUT = Y.copy()
Y_OUT[::7] += 2.0  # outliers


def decay(x, t=T, y=Y):
    return x[0] * np.exp(-x[1] * t) - y


def decay_jac(x, t=T, y=Y):
    e = np.exp(-x[1] * t)
    return np.stack([e, -x[0] * t * e], axis=1)


def broyden(x):
    f = (3 - x) * x + 1
    f[1:] -= x[:-1]
    f[:-1] -= 2 * x[1:]
    return f


def broyden_jac(x):
    n = x.size
    return scipy.sparse.diags([3 - 2 * x, -2 * np.ones(n - 1), -np.ones(n - 1)], [0, 1, -1], format="csr")


TIGHT = dict(ftol=1e-12, xtol=1e-12, gtol=1e-12)


@pytest.mark.parametrize("bounds", [([0.0, 1.0], [10.0, 10.0]), ([2.1, -np.inf], np.inf), (0.0, [1.5, 0.5]),
                                    scipy.optimize.Bounds([0.0, 0.0], [5.0, 0.6])])
@pytest.mark.parametrize("jac", [None, decay_jac, "3-point"])
def test_bounded_problems_match_scipy(bounds, jac):
    lb, ub = (bounds.lb, bounds.ub) if isinstance(bounds, scipy.optimize.Bounds) else bounds
    x0 = np.clip([1.0, 0.3], np.asarray(lb, float) + 1e-3, np.asarray(ub, float) - 1e-3)
    ours = gn.least_squares(decay, x0, jac=jac, bounds=bounds, **TIGHT)
    ref = scipy.optimize.least_squares(decay, x0, jac=jac or "2-point", bounds=bounds, **TIGHT)
    assert isinstance(ours.x, np.ndarray) and ours.success
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.cost, ref.cost, rtol=1e-9)
    np.testing.assert_array_equal(ours.active_mask, ref.active_mask)
    assert np.all(ours.x >= lb) and np.all(ours.x <= ub)


def test_x0_on_a_bound_is_moved_inside_and_infeasible_x0_is_refused():
    res = gn.least_squares(decay, [0.0, 0.5], bounds=([0.0, 0.0], [10.0, 10.0]))
    assert res.success and res.x[0] > 0
    with pytest.raises(ValueError, match=r"Initial guess is outside of provided bounds"):
        gn.least_squares(decay, [-1.0, 0.5], bounds=([0.0, 0.0], [10.0, 10.0]))
    with pytest.raises(ValueError, match=r"Each lower bound must be strictly less than each upper bound; "
                                         r"got lb\[1\] = 2.0 >= ub\[1\] = 1.0"):
        gn.least_squares(decay, [1.0, 0.5], bounds=([0.0, 2.0], [10.0, 1.0]))
    with pytest.raises(ValueError, match=r"Inconsistent shapes between bounds and `x0`"):
        gn.least_squares(decay, [1.0, 0.5], bounds=([0.0, 0.0, 0.0], 10.0))
    with pytest.raises(ValueError, match=r"`bounds` must contain 2 elements \(lb, ub\); got 3"):
        gn.least_squares(decay, [1.0, 0.5], bounds=(0.0, 1.0, 2.0))
    with pytest.raises(ValueError, match=r"Method 'lm' doesn't support bounds"):
        gn.least_squares(decay, [1.0, 0.5], bounds=(0.0, 10.0), method="lm")


@pytest.mark.parametrize("loss", ["soft_l1", "huber", "cauchy", "arctan"])
def test_robust_losses_match_scipy(loss):
    fun = lambda x: decay(x, y=Y_OUT)  # noqa: E731
    with np.errstate(over="ignore"):  # trial points where exp overflows are rejected (by both)
        ours = gn.least_squares(fun, [1.0, 1.0], loss=loss, f_scale=0.1, **TIGHT)
        ref = scipy.optimize.least_squares(fun, [1.0, 1.0], loss=loss, f_scale=0.1, **TIGHT)
    if loss == "arctan":  # SciPy's trf stops in a worse local minimum from this start
        assert ours.cost <= ref.cost
        return
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-6)
    np.testing.assert_allclose(ours.cost, ref.cost, rtol=1e-9)
    # SciPy's modified Jacobian: JᵀJ is the GN Hessian of the robust cost, grad = Jᵀρ'r
    np.testing.assert_allclose(ours.grad, ref.grad, atol=1e-6)
    assert ours.jac.shape == (T.size, 2)


def test_callable_loss_equals_the_named_one():
    def soft_l1(z):
        t = 1 + z
        return np.stack([2 * (t**0.5 - 1), t**-0.5, -0.5 * t**-1.5])

    fun = lambda x: decay(x, y=Y_OUT)  # noqa: E731
    a = gn.least_squares(fun, [1.0, 1.0], loss=soft_l1, f_scale=0.2)
    b = gn.least_squares(fun, [1.0, 1.0], loss="soft_l1", f_scale=0.2)
    np.testing.assert_allclose(a.x, b.x, rtol=1e-8)
    with pytest.raises(ValueError, match=r"The return value of `loss` callable has wrong shape: expected \(3, 40\)"):
        gn.least_squares(fun, [1.0, 1.0], loss=lambda z: z)
    with pytest.raises(ValueError, match=r"method='lm' supports only 'linear' loss function; got loss='huber'"):
        gn.least_squares(fun, [1.0, 1.0], loss="huber", method="lm")
    with pytest.raises(ValueError, match=r"`f_scale` must be a finite number > 0; got f_scale = 0"):
        gn.least_squares(fun, [1.0, 1.0], f_scale=0)


@pytest.mark.parametrize("x_scale", ["jac", 1.0, [1.0, 0.1], np.array([10.0, 1.0])])
def test_x_scale_reaches_scipys_solution(x_scale):
    ours = gn.least_squares(decay, [1.0, 1.0], x_scale=x_scale, **TIGHT)
    ref = scipy.optimize.least_squares(decay, [1.0, 1.0], x_scale=x_scale, **TIGHT)
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-8)


def test_x_scale_is_validated():
    for bad in ("auto", -1.0, 1.0 + 2.0j, [1.0, 0.0]):
        with pytest.raises(ValueError, match=r"`x_scale` must be 'jac' or array_like with positive numbers"):
            gn.least_squares(decay, [1.0, 1.0], x_scale=bad)
    with pytest.raises(ValueError, match=r"Inconsistent shapes between `x_scale` \(3,\) and `x0` \(2,\)"):
        gn.least_squares(decay, [1.0, 1.0], x_scale=[1.0, 1.0, 1.0])


def test_args_and_kwargs_as_scipy():
    ours = gn.least_squares(decay, [1.0, 1.0], decay_jac, args=(T,), kwargs={"y": Y_OUT}, **TIGHT)
    ref = scipy.optimize.least_squares(decay, [1.0, 1.0], decay_jac, args=(T,), kwargs={"y": Y_OUT}, **TIGHT)
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-7)


def test_positional_order_is_scipys():
    # least_squares(fun, x0, jac, bounds, method, ftol, xtol, gtol, x_scale, loss, f_scale, ...)
    args = (decay, [1.0, 0.3], decay_jac, (0.0, [1.5, 0.5]), "trf", 1e-12, 1e-12, 1e-12, 1.0, "linear", 1.0)
    np.testing.assert_allclose(gn.least_squares(*args).x, scipy.optimize.least_squares(*args).x, rtol=1e-6)


def test_numpy_and_torch_residuals_give_the_same_answer():
    t, y = torch.as_tensor(T), torch.as_tensor(Y)
    res_t = gn.least_squares(lambda x: x[0] * torch.exp(-x[1] * t) - y, torch.tensor([1.0, 1.0], dtype=torch.float64))
    res_n = gn.least_squares(decay, np.array([1.0, 1.0]))
    assert isinstance(res_t.x, torch.Tensor) and isinstance(res_n.x, np.ndarray)
    assert isinstance(res_n.fun, np.ndarray) and isinstance(res_n.jac, np.ndarray)
    np.testing.assert_allclose(res_t.x.numpy(), res_n.x, rtol=1e-7)
    # the torch residual given a list still returns tensors; a NumPy one NumPy arrays
    assert isinstance(gn.least_squares(lambda x: x[0] * torch.exp(-x[1] * t) - y, [1.0, 1.0]).x, torch.Tensor)
    assert isinstance(gn.least_squares(decay, [1.0, 1.0]).x, np.ndarray)


@pytest.mark.parametrize("jac", ["2-point", "3-point", "cs"])
def test_finite_difference_jacobians_reach_the_analytic_solution(jac):
    ref = gn.least_squares(decay, [1.0, 1.0], decay_jac, **TIGHT)
    res = gn.least_squares(decay, [1.0, 1.0], jac, **TIGHT)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-6)
    np.testing.assert_allclose(res.jac, decay_jac(res.x), rtol=1e-5, atol=1e-7)


def test_sparse_jacobian_and_jac_sparsity_and_linear_operator():
    x0 = -np.ones(50)
    dense = gn.least_squares(broyden, x0, lambda x: broyden_jac(x).toarray())
    sparse = gn.least_squares(broyden, x0, broyden_jac)
    op = gn.least_squares(broyden, x0, lambda x: aslinearoperator(broyden_jac(x)))
    grouped = gn.least_squares(broyden, x0, jac_sparsity=broyden_jac(x0) != 0)
    assert scipy.sparse.issparse(sparse.jac) and isinstance(dense.jac, np.ndarray) and op.jac is None
    for res in (dense, sparse, op, grouped):
        assert res.cost < 1e-20, res.cost  # SciPy's test asserts < 1e-20 for Broyden tridiagonal
    np.testing.assert_allclose(sparse.x, dense.x, atol=1e-12)
    with pytest.raises(ValueError, match=r"method='lm' works only with dense Jacobian matrices"):
        gn.least_squares(broyden, x0, broyden_jac, method="lm")
    with pytest.raises(ValueError, match=r"tr_solver='exact' works only with dense Jacobian matrices"):
        gn.least_squares(broyden, x0, broyden_jac, tr_solver="exact")
    with pytest.raises(ValueError, match=r"`jac_sparsity` has wrong shape: expected \(50, 50\), got \(49, 50\)"):
        gn.least_squares(broyden, x0, jac_sparsity=np.ones((49, 50)))
    with pytest.raises(ValueError, match=r"x_scale='jac' can't be used when `jac` returns LinearOperator"):
        gn.least_squares(broyden, x0, lambda x: aslinearoperator(broyden_jac(x)), x_scale="jac")
    with pytest.raises(TypeError, match=r"`tr_options` got unexpected keyword\(s\) \['tol'\]"):
        gn.least_squares(broyden, x0, broyden_jac, tr_solver="lsmr", tr_options={"tol": 1e-10})


def test_max_nfev_is_never_exceeded_and_nfev_counts_every_call():
    res = gn.least_squares(lambda x: x**2 + 5.0, [2.0], max_nfev=1)  # issue 15, item 1
    assert res.x.tolist() == [2.0] and res.nfev == 1 and res.njev == 1 and res.status == 0

    calls = []

    def rosen(x):
        calls.append(x.copy())
        return np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])

    def rosen_jac(x):
        return np.array([[-20 * x[0], 10], [-1, 0]])

    for max_nfev in (1, 2, 5, None):  # issue 15, item 2
        calls.clear()
        res = gn.least_squares(rosen, [-1.2, 1.0], rosen_jac, max_nfev=max_nfev)
        assert res.nfev == len(calls)
        assert all(not np.array_equal(a, b) for a, b in zip(calls, calls[1:], strict=False))
        if max_nfev is not None:
            assert res.nfev <= max_nfev


def test_float32_residual_with_a_float64_iterate():  # issue 15, item 3
    t = torch.linspace(0, 1, 20)  # float32 data
    y = 2.0 * torch.exp(-1.5 * t)
    res = gn.least_squares(lambda x: x[0] * torch.exp(-x[1] * t) - y, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert res.success and res.x.dtype == torch.float64
    np.testing.assert_allclose(res.x.numpy(), [2.0, 1.5], rtol=1e-5)


def test_float32_numpy_residuals_get_float32_difference_steps():
    x = np.linspace(0, 1, 20, dtype=np.float32)
    y = (2.0 * np.exp(-1.5 * x)).astype(np.float32)
    res = gn.least_squares(lambda p: (p[0] * np.exp(-p[1] * x) - y).astype(np.float32), [1.0, 1.0])
    assert res.nfev > 2
    np.testing.assert_allclose(res.x, [2.0, 1.5], rtol=1e-3)


def test_callback_protocols_and_status_minus_two():  # issue 15, item 4: SciPy's -2
    seen = []

    def new_style(intermediate_result):
        seen.append(intermediate_result)
        return len(seen) >= 2

    res = gn.least_squares(decay, [1.0, 1.0], callback=new_style)
    assert res.status == -2 and res.termination is Termination.CALLBACK and not res.success
    assert isinstance(seen[0], scipy.optimize.OptimizeResult) and isinstance(seen[0].x, np.ndarray)
    assert {"x", "fun", "nit", "nfev", "cost"} <= set(seen[0])

    def stop(x):
        raise StopIteration

    assert gn.least_squares(decay, [1.0, 1.0], callback=stop).status == -2
    assert gn.least_squares(decay, [1.0, 1.0], callback=lambda x: isinstance(x, np.ndarray) and False).success


def test_endgame_converges_fast_to_zero_residual():  # issue 15, item 5
    res = gn.least_squares(lambda x: x, [1.0, 2.0])
    assert res.cost < 1e-20 and res.nfev <= 5
    ref = scipy.optimize.least_squares(broyden, -np.ones(100), method="trf")
    ours = gn.least_squares(broyden, -np.ones(100))
    assert ours.cost < 1e-20 and ours.nfev <= ref.nfev + 2


def test_minimum_where_the_jacobian_vanishes():  # issue 15, item 6
    """r = x² + 5 from x0 = 2: J = 2x → 0 at the minimum; the damping must supply r·r'' = 10."""
    fun = lambda x: x**2 + 5.0  # noqa: E731
    ref = scipy.optimize.least_squares(fun, [2.0], method="lm")  # MINPACK: x ≈ −3e-10, 12 evaluations
    for jac in ("2-point", lambda x: np.array([[2.0 * x[0]]])):
        res = gn.least_squares(fun, [2.0], jac=jac)
        assert res.success and res.nfev <= 10  # was 14 evaluations, x = −9e-6 (Nielsen's cubic rule)
        assert abs(res.x[0]) < 1e-6 and res.cost == pytest.approx(ref.cost, rel=1e-12)
        assert abs(res.x[0]) < 1e-4 and res.optimality < 1e-2  # SciPy's own test_full_result bounds


def test_complex_residual_and_bad_x0_are_refused_clearly():  # issue 15, item 9
    with pytest.raises(ValueError, match=r"`fun` must return real residuals; got dtype complex128"):
        gn.least_squares(lambda x: x * (1 + 1j), [1.0])
    with pytest.raises(ValueError, match=r"`fun` must return real residuals; got dtype torch.complex128"):
        gn.least_squares(lambda x: x * (1 + 1j), torch.tensor([1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"`x0` must be real; got a complex value"):
        gn.least_squares(decay, [1.0 + 1j, 1.0])
    with pytest.raises(ValueError, match=r"`x0` must have at most 1 dimension; got shape \(2, 1\)"):
        gn.least_squares(decay, [[1.0], [1.0]])


def test_float32_problem_warns_once_about_tolerances():
    t = torch.linspace(0, 1, 20)
    y = 2.0 * torch.exp(-1.5 * t)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gn.least_squares(lambda x: x[0] * torch.exp(-x[1] * t) - y, torch.tensor([1.0, 1.0]))
    tol_warnings = [w for w in caught if "machine epsilon" in str(w.message)]
    assert len(tol_warnings) == 1
    assert "float32" in str(tol_warnings[0].message)


def test_scalar_x0_none_tolerances_and_key_access():
    res = gn.least_squares(lambda x: x - 3.0, 1.0, ftol=None, xtol=None)
    assert res.x.shape == (1,) and abs(res.x[0] - 3.0) < 1e-10
    assert res["x"] is res.x and "active_mask" in res and res.get("nope", 7) == 7
    with pytest.raises(ValueError, match=r"At least one of the tolerances must be higher than machine epsilon"):
        gn.least_squares(lambda x: x - 3.0, 1.0, ftol=None, xtol=None, gtol=None)
    with pytest.raises(KeyError):
        res["nope"]


def test_autodiff_failure_says_what_to_pass():
    def leaves_torch(x):
        return torch.as_tensor(np.cos(x.numpy())) - 0.5

    with pytest.raises(GaussNewtonError, match=r"Automatic differentiation of `fun` failed.*Pass jac='2-point'"):
        gn.least_squares(leaves_torch, torch.tensor([0.1], dtype=torch.float64))
    res = gn.least_squares(leaves_torch, torch.tensor([0.1], dtype=torch.float64), jac="2-point")
    assert abs(np.cos(float(res.x[0])) - 0.5) < 1e-8  # a root (Newton from 0.1 jumps to 5π/3)


def test_standard_errors_match_a_dense_reference():
    res = gn.least_squares(decay, [1.0, 1.0], decay_jac, **TIGHT)
    j = decay_jac(res.x)
    s2 = 2 * res.cost / (T.size - 2)
    np.testing.assert_allclose(res.covariance(), s2 * np.linalg.inv(j.T @ j), rtol=1e-6)
    np.testing.assert_allclose(res.standard_errors(), np.sqrt(np.diag(s2 * np.linalg.inv(j.T @ j))), rtol=1e-6)
    assert res.dof == T.size - 2


def test_residual_that_writes_into_its_argument_does_not_move_the_iterate():  # issue 16, item 5
    def clobbers(x):
        r = decay(x)
        x[:] = 0.0
        return r

    res = gn.least_squares(clobbers, [1.0, 1.0])
    np.testing.assert_allclose(res.cost, 0.5 * np.sum(decay(res.x) ** 2), rtol=1e-12)
    np.testing.assert_allclose(res.x, gn.least_squares(decay, [1.0, 1.0]).x, rtol=1e-12)


def test_wrong_jacobian_that_stalls_at_x0_is_reported():  # issue 14, item 8
    assert gn.check_jacobian(decay, [1.0, 1.0], decay_jac) < 1e-8
    assert gn.check_jacobian(decay, [1.0, 1.0], lambda x: -decay_jac(x)) > 1
    with pytest.warns(UserWarning, match=r"never left x0, and the Jacobian disagrees with `fun` there \(relative "
                                         r"error 2 of J·v"):
        res = gn.least_squares(decay, [1.0, 1.0], lambda x: -decay_jac(x))
    assert res.x.tolist() == [1.0, 1.0]


def test_halved_gn_steps_do_not_trigger_ftol():  # issue 15, item 7
    def bvp(x):  # the discrete boundary-value problem of SciPy's test_bvp, on a 10 × 10 grid
        u = np.zeros((12, 12))
        y = x.reshape(10, 10)
        u[1:-1, 1:-1] = y
        return (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4 * y + y**3).ravel()

    gn_res = gn.least_squares(bvp, np.ones(100), ftol=1e-2, method="gn", max_nfev=100)
    # the 0.1 behaviour: FTOL "success" at cost 29.6 after a 1/64 step; now no false convergence
    assert gn_res.status == Termination.MAX_EVALS.value and not gn_res.success
    lm = gn.least_squares(bvp, np.ones(100), ftol=1e-2, max_nfev=100)
    assert lm.success and lm.cost < 0.5  # SciPy's test_bvp bound


def test_fun_raising_mid_run_hands_over_the_last_accepted_x():  # issue 14, item 3
    calls = []

    def dies(x):
        calls.append(1)
        if len(calls) > 15:  # finite differences call it too (2 per Jacobian)
            raise RuntimeError("data source gone")
        return decay(x)

    with pytest.raises(RuntimeError, match="data source gone") as info:
        gn.least_squares(dies, [1.0, 1.0])
    x_last = info.value.x
    assert isinstance(x_last, np.ndarray) and x_last.shape == (2,)
    assert 0.5 * np.sum(decay(x_last) ** 2) < 0.5 * np.sum(decay(np.array([1.0, 1.0])) ** 2)
    assert any("last accepted x" in note for note in info.value.__notes__)


def test_residual_whose_length_changes_is_refused():  # issue 14, unclear errors
    calls = []

    def grows(x):
        calls.append(1)
        return torch.cat([x - 1.0, x[:1]]) if len(calls) > 1 else x - 1.0

    with pytest.raises(ValueError, match=r"`fun` must return 2 residuals at every x \(as at x0\); got shape \(3,\)"):
        gn.least_squares(grows, torch.tensor([3.0, 4.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"`fun` must return 2 residuals at every x; got shape \(3,\)"):
        gn.least_squares(lambda x: np.r_[x, x[:1]] if x[0] < 2.9 else x, [3.0, 4.0])
