"""Damping schedules: each against its formula, plus one common battery over the registry."""

import math

import pytest

import gaussnewton as gn
from gaussnewton.damping import (
    SCHEDULES,
    Adaptive,
    Constant,
    CurvatureGlobal,
    CurvatureLocal,
    CurvatureSwitching,
    DampingContext,
    DataDependent,
    Marquardt,
    Nielsen,
)


def ctx(lam=0.5, lam_kernel=0.5, lam_curv=0.2, diag_max=4.0, progress=1.0, it=0):
    return DampingContext(it, lambda: lam, lambda: lam_kernel, lam_curv, diag_max, progress)


def test_constant():
    s = Constant(0.3)
    assert s.damping(s.init(ctx()), ctx())[1] == 0.3
    assert Constant().damping(None, ctx())[1] == 0.0


def test_data_dependent_freezes_initial_lambda():
    s = DataDependent(kappa=2.0)
    state = s.init(ctx(lam=0.25))
    assert s.damping(state, ctx(lam=10.0))[1] == pytest.approx(0.5)  # κ·λ_min(K_0), not K_t


def test_adaptive_follows_current_lambda():
    s = Adaptive(kappa=3.0)
    state = s.init(ctx())
    assert s.damping(state, ctx(lam=9.9, lam_kernel=0.1))[1] == pytest.approx(0.3)  # K_t, not Λ-weighted
    assert s.damping(state, ctx(lam=9.9, lam_kernel=2.0))[1] == pytest.approx(6.0)
    assert s.needs_spectrum


def test_curvature_global_and_local():
    c = ctx(lam=0.05, lam_kernel=0.5, lam_curv=0.2)
    assert CurvatureGlobal(2.0).damping(None, c)[1] == pytest.approx(2.0 * 0.5 * 0.2)  # eq. 16
    assert CurvatureLocal(2.0).damping(None, c)[1] == pytest.approx(2.0 * 0.05)  # eq. 17


def test_curvature_switching_switches_once():
    s = CurvatureSwitching(kappa=1.0, switch_at=1e-3)
    state = s.init(ctx())
    state, rho = s.damping(state, ctx(lam=0.05, lam_kernel=0.5, lam_curv=0.2, progress=0.5))
    assert rho == pytest.approx(0.1) and state.switched is False  # typed state: Switched
    state, rho = s.damping(state, ctx(lam=0.05, progress=1e-4))
    assert rho == pytest.approx(0.05) and state.switched is True
    state, rho = s.damping(state, ctx(lam=0.05, progress=0.9))  # stays switched
    assert rho == pytest.approx(0.05)


def test_nielsen_fast_endgame_shrinks_ten_times_after_well_predicted_steps():
    s = Nielsen(tau=1e-3, fast_endgame=True)
    state = s.init(ctx(diag_max=4.0))
    for gain, factor in [(1.0, 0.1), (0.8, 0.1), (0.75, 1 - 0.5**3), (0.5, 1.0)]:
        assert s.update(state, gain)[0].rho == pytest.approx(4e-3 * factor)
    assert "fast_endgame=True" in repr(s)
    with pytest.raises(gn.GaussNewtonError, match=r"`fast_endgame` must be True or False; got 1"):
        Nielsen(fast_endgame=1)


def test_nielsen_secant_matches_the_curvature_along_the_step():  # issue 15, item 6
    """secant_factor against a 1-D quadratic, and the Nielsen update that uses it (never raising ρ)."""
    from gaussnewton._objective import secant_factor

    # cost(x) = 5x² (curvature 10) seen through a GN model with curvature 0 and damping ρD = 16:
    # s = −g/16 from x = 1 (g = 10): slope −g·s = 100/16, curvature 0, actual reduction 5 − 5(1 − 10/16)²
    s, g = -10 / 16, 10.0
    actual = 5.0 - 5.0 * (1 + s) ** 2
    assert secant_factor(-g * s, 0.0, actual) == pytest.approx(10 / 16)  # ρ' D = 10: the Newton step
    assert math.isnan(secant_factor(1.0, 1.0, 0.5)) and math.isnan(secant_factor(2.0, 1.0, math.nan))
    rule = Nielsen(tau=1e-3, fast_endgame=True, secant=True)
    state = rule.init(ctx(diag_max=4.0))
    assert rule.update(state, 0.6, 0.5)[0].rho == pytest.approx(4e-3 * 0.5)  # below Nielsen's 0.992
    assert rule.update(state, 0.6, 0.01)[0].rho == pytest.approx(4e-3 * 0.1)  # floored at 1/10
    assert rule.update(state, 0.6, 5.0)[0].rho == pytest.approx(4e-3 * (1 - 0.2**3))  # never raised
    assert rule.update(state, -1.0, 0.5) == Nielsen(tau=1e-3).update(state, -1.0)  # rejections as before
    assert "secant=True" in repr(rule)
    with pytest.raises(gn.GaussNewtonError, match=r"`secant` must be True or False; got 'yes'"):
        Nielsen(secant="yes")


@pytest.mark.parametrize(
    "gain,expected_factor,accepted",
    [(1.0, 1 / 3, True), (0.5, 1.0, True), (0.75, 1 - 0.5**3, True), (0.0, 2.0, False), (-1.0, 2.0, False),
     (float("-inf"), 2.0, False)],
)
def test_nielsen_update_table(gain, expected_factor, accepted):
    s = Nielsen(tau=1e-3)
    state = s.init(ctx(diag_max=4.0))
    assert state.rho == pytest.approx(4e-3)
    new, ok = s.update(state, gain)
    assert ok is accepted
    assert new.rho == pytest.approx(4e-3 * expected_factor)
    if not ok:  # ν doubles on consecutive rejections
        newer, _ = s.update(new, -1.0)
        assert newer.rho == pytest.approx(new.rho * 4.0)


def test_marquardt_update_table():
    s = Marquardt(rho0=1.0, up=10, down=5)
    st = s.init(ctx())
    st, ok = s.update(st, 0.5)
    assert ok and st.rho == pytest.approx(0.2)
    st, ok = s.update(st, -0.1)
    assert not ok and st.rho == pytest.approx(2.0)
    assert Marquardt(scaling="diag").init(ctx(diag_max=100.0)).rho == pytest.approx(1e-3)


def _problem():
    X, y = gn.datasets.single_index(30, 3, seed=1)
    return X, y


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_common_battery(name):
    """Every registered schedule trains a small overparameterized MLP and keeps ρ ≥ 0 and finite."""
    X, y = _problem()
    net = gn.MLP(3, width=40, alpha=4.0, seed=0)  # p = 120 > n = 30
    schedule = SCHEDULES[name]()
    method = "lm" if schedule.trust_region else "gn"
    res = gn.fit(net, X, y, method=method, damping=schedule, steps=40, track_kernel=True)
    rhos = res.history["damping"]
    assert all(math.isfinite(r) and r >= 0 for r in rhos)
    assert res.loss < 1e-2 * res.initial_loss, (name, res.loss, res.initial_loss)
    if isinstance(schedule, (Adaptive, CurvatureLocal)):  # ρ_t = κ·λ_min(K_t), K_t tracked
        assert rhos == pytest.approx([schedule.kappa * lam for lam in res.history["lambda_min"]], rel=1e-9)
    if isinstance(schedule, DataDependent):
        assert len(set(rhos)) == 1
        assert rhos[0] == pytest.approx(res.history["lambda_min"][0] * schedule.kappa, rel=1e-9)
    if schedule.trust_region:  # the accepted iterates never increase the loss
        losses = [res.initial_loss, *res.history["loss"]]
        assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
