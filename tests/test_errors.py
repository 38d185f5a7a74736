"""Bad input → a clear exception naming the argument, expected vs actual (messages pinned)."""

import numpy as np
import pytest
import torch
from torch import nn

import gaussnewton as gn
from gaussnewton import GaussNewtonError, NonFiniteError

X, Y = gn.datasets.single_index(10, 3, seed=0)


def net():
    return gn.MLP(3, width=4, seed=0)


def lin(x):
    return x - 1.0


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1).double()

    def forward(self, x):
        return self.lin(x).detach().squeeze(-1)


class Returns(nn.Module):
    """A model whose forward returns a tuple or a dict (issue 14, unclear errors)."""

    def __init__(self, kind):
        super().__init__()
        self.lin, self.kind = nn.Linear(3, 1).double(), kind

    def forward(self, x):
        out = self.lin(x).squeeze(-1)
        return (out, x) if self.kind == "tuple" else {"out": out}


class Checkpointed(nn.Module):
    """Activation checkpointing: saved-tensor hooks that torch.func cannot differentiate."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 6).double(), nn.Linear(6, 1).double()

    def forward(self, x):
        from torch.utils.checkpoint import checkpoint

        return self.b(checkpoint(lambda z: torch.tanh(self.a(z)), x, use_reentrant=False)).squeeze(-1)


class Dropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1).double()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.lin(x)).squeeze(-1)


class IntModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1).double()

    def forward(self, x):
        return (self.lin(x).squeeze(-1) > 0).long()


X_NAN = X.clone()
X_NAN[2, 1] = float("nan")
Y_INF = Y.clone()
Y_INF[0] = float("inf")

CASES = [
    # least_squares
    (lambda: gn.least_squares(lin, [0.0, float("nan")]), NonFiniteError, r"`x0` must be finite; got 1 NaN/Inf entry"),
    (lambda: gn.least_squares(lin, [[0.0, 1.0]]), GaussNewtonError, r"`x0` must have at most 1 dimension; got shape \(1, 2\)"),
    (lambda: gn.least_squares(lin, []), GaussNewtonError, r"`x0` must have at least one entry"),
    (lambda: gn.least_squares(lin, ["a"]), GaussNewtonError, r"`x0` must be"),
    (lambda: gn.least_squares(lin, [1j]), GaussNewtonError, r"`x0` must be real; got a complex value"),
    (lambda: gn.least_squares(lin, [0.0], method="bfgs"), GaussNewtonError,
     r"`method` must be one of 'trf', 'dogbox', 'lm', 'gn'; got 'bfgs'"),
    (lambda: gn.least_squares(lin, [0.0], ftol=-1), GaussNewtonError, r"`ftol` must be a finite number >= 0; got ftol = -1"),
    (lambda: gn.least_squares(lin, [0.0], ftol=0, xtol=0, gtol=0), GaussNewtonError, r"At least one of the tolerances must be higher than machine epsilon \(2.22e-16\); got ftol = 0"),
    (lambda: gn.least_squares(lin, [0.0], max_nfev=0), GaussNewtonError, r"`max_nfev` must be None or a positive integer; got max_nfev = 0"),
    (lambda: gn.least_squares(lin, [0.0], solver="qr"), GaussNewtonError, r"`solver` must be one of 'auto', 'normal', 'kernel', 'cg', 'truncated_cg', 'lstsq'; got 'qr'"),
    (lambda: gn.least_squares(lin, [0.0], damping="fast"), GaussNewtonError, r"`damping` must be one of .*got 'fast'"),
    (lambda: gn.least_squares(lin, [0.0], damping=gn.damping.Adaptive()), GaussNewtonError, r"`damping` for method='trf' must be a trust-region rule"),
    (lambda: gn.least_squares(lin, [0.0], verbose=3), GaussNewtonError, r"`verbose` must be 0, 1 or 2; got 3"),
    (lambda: gn.least_squares(lambda x: torch.log(x), [-1.0]), NonFiniteError, r"The cost at `fun\(x0\)` must be finite"),
    (lambda: gn.least_squares(lambda x: x.sum() * torch.ones(2, 2), [0.0, 1.0]), GaussNewtonError,
     r"`fun` must return a 1-D tensor of residuals; got shape \(2, 2\)"),
    (lambda: gn.least_squares(lambda x: x[:0], [0.0, 1.0]), GaussNewtonError, r"`fun` must return at least one residual; got n = 0"),
    (lambda: gn.least_squares(lin, [0.0, 1.0], jac=lambda x: np.zeros((3, 2))), GaussNewtonError,
     r"The return value of `jac` has wrong shape: expected \(2, 2\), actual \(3, 2\)"),
    (lambda: gn.least_squares("f", [0.0]), GaussNewtonError, r"`fun` must be callable; got str"),
    # fit
    (lambda: gn.fit(net(), X_NAN, Y), NonFiniteError, r"`X` must be finite; got 1 NaN/Inf entry \(first at index \(2, 1\)\)"),
    (lambda: gn.fit(net(), X, Y_INF), NonFiniteError, r"`y` must be finite"),
    (lambda: gn.fit(net(), X, Y[:5]), GaussNewtonError, r"`X` and `y` must have the same number of samples; got X with 10 and y with 5"),
    (lambda: gn.fit(net(), X[:0], Y[:0]), GaussNewtonError, r"`X` must have at least one sample \(n >= 1\)"),
    (lambda: gn.fit(net(), X[:, :2], Y), GaussNewtonError, r"`x` must have shape \(N, 3\); got \(10, 2\)"),
    (lambda: gn.fit("net", X, Y), GaussNewtonError, r"`model` must be a torch.nn.Module; got str"),
    (lambda: gn.fit(Detached(), X, Y), GaussNewtonError, r"`model` is not differentiable"),
    (lambda: gn.fit(Dropout(), X, Y), GaussNewtonError, r"`model` is not deterministic"),
    (lambda: gn.fit(IntModel(), X, Y), GaussNewtonError, r"`model` must return floating-point outputs"),
    (lambda: gn.fit(net(), X, Y, method="adam"), GaussNewtonError, r"`method` must be one of 'gn', 'gn_halving', 'lm', 'gd'; got 'adam'"),
    (lambda: gn.fit(net(), X, Y, lr=0), GaussNewtonError, r"`lr` must be a finite number > 0; got lr = 0"),
    (lambda: gn.fit(net(), X, Y, steps=0), GaussNewtonError, r"`steps` must be an integer >= 1; got steps = 0"),
    (lambda: gn.fit(net(), X, Y, loss="l1"), GaussNewtonError, r"`loss` must be one of .*got 'l1'"),
    (lambda: gn.fit(net(), X, Y, dynamics="rk4"), GaussNewtonError, r"`dynamics` must be one of 'discrete', 'euler'(, 'flow')?; got 'rk4'"),
    (lambda: gn.fit(net(), X, Y, method="lm", damping=gn.damping.Adaptive()), GaussNewtonError, r"must be a trust-region rule"),
    (lambda: gn.fit(net(), X, Y, method="gn", damping="nielsen"), GaussNewtonError, r"is a trust-region rule; use method='lm'"),
    (lambda: gn.fit(net(), X, Y, damping=-1.0), GaussNewtonError, r"`damping` must be a finite number >= 0; got damping = -1.0"),
    (lambda: gn.fit(net(), X, torch.ones(10, 2, dtype=torch.float64)), GaussNewtonError, r"`y` must match the model output shape \(10,\); got \(10, 2\)"),
    (lambda: gn.fit(net(), X, Y, loss="cross_entropy"), GaussNewtonError, r"`y` must hold integer class labels"),
    (lambda: gn.fit(net(), X, torch.where(Y > 0, 1.0, -1.0), loss="logistic"), GaussNewtonError,
     r"`y` for logistic must lie in \[0, 1\] \(0/1 class labels or probabilities\); got \d+ outside it, values -1 "
     r"\(first at index \d+\)\. For ±1 labels pass \(y \+ 1\) / 2"),
    (lambda: gn.fit(nn.Linear(3, 3).double(), X, torch.tensor([3, 0, 1, 2, -1, 0, 1, 2, 0, 1]), loss="cross_entropy"),
     GaussNewtonError, r"`y` for cross_entropy must be integer class labels in \[0, 3\) \(k = 3 logits\); got 2 "
     r"outside it, values -1, 3 \(first at index 0\)"),
    (lambda: gn.fit(net(), X, (Y > 0).double(), loss="logistic", validation=(X, (Y > 0) + 2.0)), GaussNewtonError,
     r"`validation y` for logistic must lie in \[0, 1\]"),
    # unclear errors from deep inside torch, now named (issue 14)
    (lambda: gn.fit(net().half(), X, Y, steps=2), GaussNewtonError,
     r"`model` parameters must be float32 or float64 .*; got torch.float16. Convert with .float\(\)"),
    (lambda: gn.fit(net().bfloat16(), X, Y, steps=2), GaussNewtonError,
     r"`model` parameters must be float32 or float64 .*; got torch.bfloat16"),
    (lambda: gn.optim.GaussNewton(nn.Linear(3, 1).half().parameters()), GaussNewtonError,
     r"`params` must be float32 or float64 .*; got torch.float16"),
    (lambda: gn.least_squares(lin, torch.zeros(2, dtype=torch.float16)), GaussNewtonError,
     r"`x0` must be float32 or float64 .*; got torch.float16"),
    (lambda: gn.fit(Returns("tuple"), X, Y, steps=2), GaussNewtonError,
     r"`model` must return one tensor of outputs \(n,\) or \(n, k\); got a tuple of \(Tensor, Tensor\)\. Wrap"),
    (lambda: gn.fit(Returns("dict"), X, Y, steps=2), GaussNewtonError,
     r"`model` must return one tensor of outputs .*; got a dict of \(Tensor\)"),
    (lambda: gn.fit(Checkpointed(), X, Y, steps=2), GaussNewtonError,
     r"`model` uses saved-tensor hooks \(activation checkpointing"),
    (lambda: gn.fit(net(), X, Y, steps=2, target_loss="0.1"), GaussNewtonError,
     r"`target_loss` must be a real number or None; got str '0.1'"),
    (lambda: gn.fit(net(), X, Y, method="gd", solver="cg"), GaussNewtonError,
     r"`solver` is not used by method='gd' \(no linear system\); got 'cg'"),
    (lambda: gn.least_squares(lin, np.zeros(2), damping="adaptive"), GaussNewtonError,
     r"`damping` for method='trf' must be a trust-region rule"),
    # model and schedules
    (lambda: gn.MLP(0, 5), GaussNewtonError, r"`in_features` must be an integer >= 1; got in_features = 0"),
    (lambda: gn.MLP(3, 5, alpha=0.0), GaussNewtonError, r"`alpha` must be a finite number > 0; got alpha = 0.0"),
    (lambda: gn.MLP(3, 5, activation="swish"), GaussNewtonError, r"`activation` must be one of .*got 'swish'"),
    (lambda: gn.damping.Adaptive(kappa=-1), GaussNewtonError, r"`kappa` must be a finite number > 0; got kappa = -1"),
    (lambda: gn.damping.Constant(rho=float("nan")), GaussNewtonError, r"`rho` must be a finite number >= 0; got rho = nan"),
    (lambda: gn.damping.Marquardt(up=0.5), GaussNewtonError, r"`up` and `down` must be > 1"),
    (lambda: gn.damping.CurvatureSwitching(switch_at=2), GaussNewtonError, r"`switch_at` must lie in \(0, 1\); got switch_at = 2"),
    (lambda: gn.datasets.california_housing(n=10**6), GaussNewtonError, r"`n` must be at most 20640"),
    (lambda: gn.datasets.single_index(10, 3, spread=0), GaussNewtonError, r"`spread` must lie in \(0, 1\]; got spread = 0"),
    (lambda: gn.linsolve.CGSolver(rtol=0), GaussNewtonError, r"`rtol` must be a finite number > 0; got rtol = 0"),
]


@pytest.mark.parametrize("call,exc,pattern", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_bad_input_message(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_relu_warns():
    with pytest.warns(UserWarning, match="activation='relu' is not smooth"):
        gn.MLP(3, 5, activation="relu")


def test_tiny_tolerance_warns():
    with pytest.warns(UserWarning, match=r"`ftol` = 1e-20 below the machine epsilon of float64 \(2.22e-16\) effectively disables"):
        gn.least_squares(lin, [0.0], ftol=1e-20)
