"""Validation of the test-problem catalogue itself (no solver involved).

Checks, for every registered problem:

* shapes and metadata are consistent (``n``, ``p``, ``x0``, ``x_star``, ``kind``);
* ``0.5 * ||fun(x_star)||^2`` matches ``min_cost`` (NIST: certified RSS / 2);
* ``min_cost`` agrees with independently written-down literature values, i.e.
  the ``||r||^2 -> 0.5 ||r||^2`` halving was applied;
* ``fun`` has correct derivatives (``torch.autograd.gradcheck``) and works with
  ``torch.func`` transforms and other dtypes.
"""

from __future__ import annotations

import math

import pytest
import torch

from gaussnewton.testing.catalogue import (
    _SCIPY_LM_COST,
    PROBLEMS,
    TestProblem,
    get_problem,
)

NAMES = sorted(PROBLEMS)
NAMES_WITH_STAR = [k for k in NAMES if PROBLEMS[k].x_star is not None]
KINDS = {"mgh", "exponential", "rational", "gaussian_peak", "other"}

# Published optimal values in the *literature* convention f = ||r||^2
# (Moré-Garbow-Hillstrom 1981, as printed) or NIST certified residual sums of
# squares.  Written down independently of catalogue.py to catch a missing or
# doubled factor 1/2.
_MGH_PUBLISHED_F = {
    "rosenbrock": 0.0,
    "freudenstein_roth": 0.0,
    "powell_badly_scaled": 0.0,
    "brown_badly_scaled": 0.0,
    "beale": 0.0,
    "jennrich_sampson": 124.362,
    "helical_valley": 0.0,
    "bard": 8.21487e-3,
    "gaussian": 1.12793e-8,
    "meyer": 87.9458,
    "box3d": 0.0,
    "powell_singular": 0.0,
    "wood": 0.0,
    "kowalik_osborne": 3.07505e-4,
    "brown_dennis": 85822.2,
    "osborne1": 5.46489e-5,
    "biggs_exp6": 0.0,
    "osborne2": 4.01377e-2,
    "watson": 2.28767e-3,
}
_NIST_CERTIFIED_RSS = {
    "nist_misra1a": 1.2455138894e-01,
    "nist_chwirut2": 5.1304802941e02,
    "nist_danwood": 4.3173084083e-03,
    "nist_gauss1": 1.3158222432e03,
    "nist_lanczos3": 1.6117193594e-08,
    "nist_boxbod": 1.1680088766e03,
    "nist_rat42": 8.0565229338e00,
    "nist_rat43": 8.7864049080e03,
    "nist_mgh09": 3.0750560385e-04,
    "nist_mgh10": 8.7945855171e01,
    "nist_thurber": 5.6427082397e03,
    "nist_eckerle4": 1.4635887487e-03,
}


def _cost(prob: TestProblem, x: tuple[float, ...]) -> float:
    r = prob.fun(torch.tensor(x, dtype=torch.float64))
    return 0.5 * float(torch.sum(r**2))


def _base_name(name: str) -> str:
    return name[: -len("_start2")] if name.endswith("_start2") else name


def test_registry_contents() -> None:
    required = set(_MGH_PUBLISHED_F) | set(_NIST_CERTIFIED_RSS)
    assert required <= set(PROBLEMS)
    for name, prob in PROBLEMS.items():
        assert isinstance(prob, TestProblem)
        assert prob.name == name
        assert prob.kind in KINDS
        assert prob.source.strip()
        if name.endswith("_start2"):
            base = PROBLEMS[_base_name(name)]
            assert prob.fun is base.fun
            assert (prob.n, prob.p) == (base.n, base.p)
            assert prob.min_cost == base.min_cost
            assert prob.x_star == base.x_star
            assert prob.x0 != base.x0
            assert "Start 2" in prob.source


@pytest.mark.parametrize("name", NAMES)
def test_shapes(name: str) -> None:
    prob = PROBLEMS[name]
    assert prob.p == len(prob.x0) > 0
    assert prob.n >= prob.p or prob.kind == "mgh"
    x0 = prob.x0_tensor()
    assert x0.shape == (prob.p,) and x0.dtype == torch.float64
    r = prob.fun(x0)
    assert r.shape == (prob.n,)
    assert r.dtype == torch.float64
    assert torch.isfinite(r).all()
    if prob.x_star is not None:
        assert len(prob.x_star) == prob.p
    if prob.min_cost is not None:
        assert prob.min_cost >= 0.0
        assert 0.5 * float(torch.sum(r**2)) >= prob.min_cost * (1 - 1e-9)


@pytest.mark.parametrize("name", NAMES_WITH_STAR)
def test_min_cost_at_x_star(name: str) -> None:
    prob = PROBLEMS[name]
    assert prob.min_cost is not None
    cost = _cost(prob, prob.x_star)
    assert abs(cost - prob.min_cost) <= 1e-6 * prob.min_cost + 1e-12, (cost, prob.min_cost)


@pytest.mark.parametrize("name", NAMES)
def test_min_cost_is_half_literature_value(name: str) -> None:
    prob = PROBLEMS[name]
    base = _base_name(name)
    if base in _MGH_PUBLISHED_F:
        # MGH print about 6 significant digits.
        expected, rtol = 0.5 * _MGH_PUBLISHED_F[base], 1e-5
    elif base in _NIST_CERTIFIED_RSS:
        expected, rtol = 0.5 * _NIST_CERTIFIED_RSS[base], 1e-10
    else:
        pytest.skip("no independent literature value recorded")
    assert prob.min_cost == pytest.approx(expected, rel=rtol, abs=0.0)


def _random_point(prob: TestProblem, gen: torch.Generator) -> torch.Tensor:
    """Random point within ~5% (relative) of x_star, or x0 if x_star is unknown."""
    ref = torch.tensor(prob.x_star if prob.x_star is not None else prob.x0, dtype=torch.float64)
    u = 2.0 * torch.rand(prob.p, generator=gen, dtype=torch.float64) - 1.0
    return torch.where(ref != 0, ref * (1.0 + 0.05 * u), 0.01 * u)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name: str) -> None:
    prob = PROBLEMS[name]
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    xp = _random_point(prob, gen)
    # Finite differences are taken in relative coordinates x = xp + s * z, and the
    # residuals are rescaled to O(1), so that gradcheck's fixed eps/atol suit
    # parameters spanning 1e-6 .. 1e6 (e.g. brown_badly_scaled, nist_mgh10).
    s = torch.where(xp != 0, xp.abs(), torch.ones_like(xp))
    rscale = max(1.0, float(prob.fun(xp).abs().max()))

    def g(z: torch.Tensor) -> torch.Tensor:
        return prob.fun(xp + s * z) / rscale

    z = torch.zeros(prob.p, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(g, (z,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_torch_func_and_dtypes(name: str) -> None:
    prob = PROBLEMS[name]
    gen = torch.Generator().manual_seed(1 + sum(map(ord, name)))
    x = _random_point(prob, gen)
    j_rev = torch.func.jacrev(prob.fun)(x)
    j_fwd = torch.func.jacfwd(prob.fun)(x)
    assert j_rev.shape == (prob.n, prob.p)
    torch.testing.assert_close(j_rev, j_fwd, rtol=1e-9, atol=1e-12 * float(j_rev.abs().max()))
    xs = torch.stack([x, prob.x0_tensor()])
    torch.testing.assert_close(torch.vmap(prob.fun)(xs), torch.stack([prob.fun(v) for v in xs]))
    r32 = prob.fun(x.to(torch.float32))
    assert r32.dtype == torch.float32 and r32.shape == (prob.n,)


def test_x0_tensor() -> None:
    prob = get_problem("rosenbrock")
    x = prob.x0_tensor(dtype=torch.float32, device="cpu")
    assert x.dtype == torch.float32 and x.device.type == "cpu"
    assert x.tolist() == pytest.approx([-1.2, 1.0])
    x[0] = 0.0  # a fresh tensor each call
    assert prob.x0_tensor()[0].item() == -1.2


def test_get_problem() -> None:
    assert get_problem("nist_misra1a") is PROBLEMS["nist_misra1a"]
    with pytest.raises(ValueError, match="no_such_problem") as info:
        get_problem("no_such_problem")
    assert "rosenbrock" in str(info.value)


def test_scipy_reference_costs() -> None:
    assert set(_SCIPY_LM_COST) == set(PROBLEMS)
    for name, cost in _SCIPY_LM_COST.items():
        min_cost = PROBLEMS[name].min_cost
        assert math.isfinite(cost)
        if min_cost is not None:
            # Nobody beats the optimum (up to the 11-digit rounding of NIST values).
            assert cost >= min_cost * (1 - 1e-9) - 1e-12, name
