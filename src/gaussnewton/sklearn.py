"""scikit-learn estimators: MLPs trained by Levenberg–Marquardt / Gauss–Newton.

:class:`GNRegressor` and :class:`GNClassifier` build a float64 ``nn.Sequential`` of
``nn.Linear`` layers (PyTorch's default initialization, seeded by ``random_state``) and train
it full-batch with :func:`gaussnewton.fit`: the squared loss for regression, softmax
cross-entropy with one output per class (generalized Gauss–Newton) for classification. They
follow the scikit-learn estimator API (``fit``/``predict``/``score``, ``get_params``, cloning),
so they work in ``Pipeline`` and ``GridSearchCV``; ``sklearn.utils.estimator_checks`` passes.

Requires the ``sklearn`` extra (``pip install gaussnewton[sklearn]``).

Names follow ``MLPRegressor``/``MLPClassifier``: ``alpha`` is the L2 penalty (the objective is
``R + alpha/(2n)·‖θ‖²``, R the mean loss over the n training rows; unlike scikit-learn the
biases are penalized too), ``early_stopping``/``validation_fraction``/``n_iter_no_change``/``tol``
stop on a held-out split and restore its best parameters (:func:`gaussnewton.fit`'s
``validation``/``patience``/``min_delta``). The paper's output scale α is ``output_scale``.
By default early stopping is on: GN/LM fits the training set in tens of steps, and without a
held-out split an overparameterized network interpolates the noise.

Changed in 0.2: ``alpha`` was the output scale in 0.1; it is now the L2 penalty.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "gaussnewton.sklearn needs scikit-learn >= 1.6: pip install 'gaussnewton[sklearn]'."
    ) from exc

from ._errors import GaussNewtonError, check_choice, check_nonneg, check_positive, check_positive_int
from .damping import DampingSchedule
from .fit import fit as gn_fit
from .linsolve import CGSolver, LinearSolver, get_solver

__all__ = ["GNClassifier", "GNRegressor"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,  # scikit-learn's name for the sigmoid
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
}
_SEED_BOUND = 2**31 - 1
# Above this many multiply-adds for the Gram matrix (N·p·min(N, p), N = rows of the GN system)
# ``solver="auto"`` trains with inexact CG instead of an exact factorization (docs/choosing.md).
_EXACT_GRAM_FLOPS = 2e10


def estimator_solver(solver: str | LinearSolver, n_rows: int, p: int, regularization: str | None,
                     ) -> str | LinearSolver:
    """The linear solver an estimator trains with (``solver="auto"``: by the cost of the Gram matrix).

    An exact step forms the Gram matrix, N·p·min(N, p) multiply-adds for N rows of the GN system
    (n·k for k outputs or classes) and p parameters. Up to :data:`_EXACT_GRAM_FLOPS` (about 10 s
    of 2-core BLAS) it is the best step; above, Jacobi-preconditioned CG stopped at a relative
    residual of 1e-3 or 50 iterations (products with J and Jᵀ only) reaches the same test score
    in a fraction of the time: digits (N ≈ 12,000, p ≈ 3,800) 2.6 s per fit instead of 130 s,
    accuracy equal to Adam's (benchmarks/GENERALIZATION.md). Bayesian regularization needs the
    eigenvalues of an exact solve and keeps it. A name other than ``"auto"`` or a
    :class:`~gaussnewton.linsolve.LinearSolver` is passed through unchanged.
    """
    if isinstance(solver, str) and solver == "auto" and regularization is None \
            and float(n_rows) * p * min(n_rows, p) > _EXACT_GRAM_FLOPS:
        return CGSolver(rtol=1e-3, max_iter=50, preconditioner="jacobi")
    return solver  # torch.manual_seed takes any int; stay in numpy's randint range


class _Scale(nn.Module):
    """Multiply the input by a fixed scalar α (the output scale)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.alpha * x


def build_mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: str, alpha: float, seed: int) -> nn.Sequential:
    """float64 ``Linear → σ → … → Linear → ×α`` with PyTorch's default init from ``seed``.

    The global torch RNG is left untouched (the seed is used inside ``fork_rng``).

    Args:
        n_in: input features d.
        hidden: hidden widths.
        n_out: outputs k.
        activation: a key of :data:`ACTIVATIONS`.
        alpha: output scale α.
        seed: seed of the initialization.

    Returns:
        nn.Sequential: the network (its output has shape (n, k)).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        widths = [n_in, *hidden]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b, dtype=torch.float64), ACTIVATIONS[activation]()]
        layers += [nn.Linear(widths[-1], n_out, dtype=torch.float64), _Scale(alpha)]
    return nn.Sequential(*layers)


class _GNMLPBase(BaseEstimator):
    """Shared constructor, validation and training of the two estimators."""

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] = (50,),
        activation: str = "tanh",
        *,
        alpha: float = 1e-4,
        output_scale: float = 1.0,
        damping: DampingSchedule | str | float | None = None,
        method: str = "lm",
        max_iter: int = 200,
        tol: float = 1e-4,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 6,
        regularization: str | None = None,
        solver: str | LinearSolver = "auto",
        random_state: int | np.random.RandomState | None = None,
        standardize: bool = True,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.output_scale = output_scale
        self.damping = damping
        self.method = method
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.regularization = regularization
        self.solver = solver
        self.random_state = random_state
        self.standardize = standardize

    def _check_params(self) -> tuple[int, ...]:
        """Validate the hyper-parameters (at fit time, as scikit-learn requires)."""
        sizes: Any = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (int(sizes),)
        if not isinstance(sizes, (tuple, list)) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) >= 1 for s in sizes
        ):
            raise GaussNewtonError(
                f"`hidden_layer_sizes` must be a tuple of integers >= 1 (e.g. (50,)); got {self.hidden_layer_sizes!r}."
            )
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("method", self.method, ("lm", "gn", "gn_halving", "gd"))
        check_nonneg("alpha", self.alpha)
        check_positive("output_scale", self.output_scale)
        check_positive_int("max_iter", self.max_iter)
        check_positive_int("n_iter_no_change", self.n_iter_no_change)
        if self.regularization is not None:
            check_choice("regularization", self.regularization, ("bayesian",))
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise GaussNewtonError(f"`early_stopping` must be True or False; got {self.early_stopping!r}.")
        if isinstance(self.validation_fraction, bool) or not isinstance(self.validation_fraction, numbers.Real) \
                or not 0 < self.validation_fraction < 1:
            raise GaussNewtonError(f"`validation_fraction` must lie in (0, 1); got validation_fraction = "
                                   f"{self.validation_fraction!r}.")
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise GaussNewtonError(f"`tol` must be a number >= 0; got tol = {self.tol!r}.")
        get_solver(self.solver, 1, 1, 8)  # validates the name / type (GaussNewtonError names `solver`)
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise GaussNewtonError(f"`standardize` must be True or False; got {self.standardize!r}.")
        return tuple(int(s) for s in sizes)

    def _fit_network(self, x: np.ndarray, targets: np.ndarray, n_out: int, loss: str) -> None:
        """Split off the validation rows, standardize X, build the network and train it."""
        hidden = self._check_params()
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(_SEED_BOUND))
        n_val = int(round(float(self.validation_fraction) * len(x))) if self.early_stopping else 0
        if 1 <= n_val < len(x):  # held-out rows for early stopping (as MLPRegressor: a random split)
            order = rng.permutation(len(x))
            x_val, t_val = x[order[:n_val]], targets[order[:n_val]]
            x, targets = x[order[n_val:]], targets[order[n_val:]]
        else:  # no split: patience on the training loss (scikit-learn's tol / n_iter_no_change)
            x_val, t_val = x, targets
        if self.standardize:
            self._x_mean = x.mean(axis=0)
            scale = x.std(axis=0)
            self._x_scale = np.where(scale > 0, scale, 1.0)
        else:
            self._x_mean, self._x_scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        scale_out = float(self.output_scale)
        self.model_ = build_mlp(x.shape[1], hidden, n_out, self.activation, scale_out, seed)
        p = sum(t.numel() for t in self.model_.parameters())
        solver = estimator_solver(self.solver, len(x) * n_out, p, self.regularization)
        res = gn_fit(self.model_, self._inputs(x), torch.as_tensor(targets), method=self.method, damping=self.damping,
                     steps=int(self.max_iter), loss=loss, alpha=scale_out,
                     weight_decay=float(self.alpha) / len(x),
                     validation=(self._inputs(x_val), torch.as_tensor(t_val)),
                     patience=int(self.n_iter_no_change), min_delta=float(self.tol),
                     regularization=self.regularization, solver=solver)
        self.n_iter_ = int(res.steps)
        self.loss_ = float(res.data_loss)
        self.loss_curve_ = [float(c) for c in res.history["data_loss"]]
        self.validation_scores_ = [float(v) for v in res.history["val_metric"]] if n_val >= 1 else None
        self.best_validation_score_ = None if n_val < 1 else float(max(self.validation_scores_ or [np.nan]))
        self.termination_ = res.termination

    def _inputs(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((np.asarray(x, dtype=np.float64) - self._x_mean) / self._x_scale)

    def _outputs(self, x: Any) -> np.ndarray:
        """Network outputs (n, k) for validated, standardized X."""
        check_is_fitted(self, "model_")
        x = validate_data(self, x, reset=False, dtype=np.float64)
        with torch.no_grad():
            return self.model_(self._inputs(x)).numpy()


class GNRegressor(RegressorMixin, _GNMLPBase):
    """Multi-layer perceptron regressor trained by Levenberg–Marquardt (or GN / GD).

    Minimizes the mean squared loss ``(1/n) Σ_j ½‖f(x_j) − y_j‖²`` on standardized inputs
    and targets, full batch, with :func:`gaussnewton.fit`.

    Args:
        hidden_layer_sizes: width of each hidden layer (default one layer of 50).
        activation: ``"tanh"`` (default), ``"relu"``, ``"logistic"``, ``"identity"``,
            ``"softplus"`` or ``"gelu"``.
        alpha: L2 penalty ≥ 0 as in ``MLPRegressor``: ``alpha/(2n)·‖θ‖²`` is added to the mean
            loss (biases included).
        output_scale: the paper's output scale α > 0 (prediction = α·network(x)).
        damping: damping rule passed to :func:`gaussnewton.fit` (None: Nielsen for ``"lm"``).
        method: ``"lm"`` (default, trust region), ``"gn"`` (damped GN, every step accepted)
            or ``"gd"`` (gradient descent).
        max_iter: maximum number of (trial) steps.
        tol: a step improves only if it lowers the best validation loss (the training loss
            without early stopping) by more than ``tol``.
        early_stopping: hold out ``validation_fraction`` of the rows and stop after
            ``n_iter_no_change`` accepted steps without improvement, keeping the best
            parameters (default True; False: patience on the training loss).
        validation_fraction: share of the rows held out (in (0, 1)).
        n_iter_no_change: accepted steps without improvement before stopping (default 6,
            MATLAB ``trainlm``'s ``max_fail``).
        regularization: None or ``"bayesian"`` (``trainbr``: the L2 penalty re-estimated every
            step from the effective number of parameters; ``alpha`` is then only its start;
            regressor only: it needs the squared loss).
        solver: linear solver of the GN system: ``"auto"`` (default: exact while the Gram
            matrix costs at most 2e10 multiply-adds, else inexact Jacobi-preconditioned CG;
            see :func:`estimator_solver`), any name of :func:`gaussnewton.linsolve.get_solver`
            or a :class:`~gaussnewton.linsolve.LinearSolver`.
        random_state: seed (int), ``RandomState`` or None for the weight initialization.
        standardize: z-score the inputs and the targets inside ``fit`` (undone in ``predict``).

    Attributes:
        model_: the trained ``nn.Sequential`` (on standardized data).
        n_iter_: steps taken (including rejected LM trials).
        loss_: final training data loss, without the penalty (standardized units).
        loss_curve_: training data loss after each step.
        validation_scores_: R² on the held-out rows after each step (None without
            early stopping).
        best_validation_score_: the best of them (None without early stopping).
        termination_: why training stopped (:class:`gaussnewton.Termination`).
        n_features_in_: number of input features.

    Example:
        >>> import numpy as np
        >>> from gaussnewton.sklearn import GNRegressor
        >>> X = np.linspace(-2, 2, 100)[:, None]
        >>> reg = GNRegressor(hidden_layer_sizes=(16,), max_iter=50, random_state=0).fit(X, np.sin(2 * X[:, 0]))
        >>> reg.score(X, np.sin(2 * X[:, 0])) > 0.999
        True
    """

    def __sklearn_tags__(self) -> Any:  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any) -> GNRegressor:
        """Train on X (n, d) and y (n,) or (n, k).

        Args:
            X: array-like (n, d).
            y: array-like (n,) or (n, k).

        Returns:
            GNRegressor: self.

        Raises:
            GaussNewtonError: invalid hyper-parameters (the message names them).
        """
        x, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        y2 = y.reshape(len(y), -1)
        self._y_1d = y.ndim == 1
        if self.standardize:
            self._y_mean = y2.mean(axis=0)
            scale = y2.std(axis=0)
            self._y_scale = np.where(scale > 0, scale, 1.0)
        else:
            self._y_mean, self._y_scale = np.zeros(y2.shape[1]), np.ones(y2.shape[1])
        self._fit_network(x, (y2 - self._y_mean) / self._y_scale, y2.shape[1], "squared")
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions (n,) (or (n, k) for 2-D targets) in the units of y.

        Args:
            X: array-like (n, d).

        Returns:
            np.ndarray: predictions.
        """
        out = self._outputs(X) * self._y_scale + self._y_mean
        return out[:, 0] if self._y_1d else out


class GNClassifier(ClassifierMixin, _GNMLPBase):
    """Multi-layer perceptron classifier trained by generalized Gauss–Newton / LM.

    One output (logit) per class and the softmax cross-entropy, whose Hessian enters the
    generalized GN matrix ``JᵀΛJ`` (:mod:`gaussnewton.losses`); full batch, with
    :func:`gaussnewton.fit`. Binary problems use two logits as well.

    Args:
        hidden_layer_sizes: width of each hidden layer (default one layer of 50).
        activation: ``"tanh"`` (default), ``"relu"``, ``"logistic"``, ``"identity"``,
            ``"softplus"`` or ``"gelu"``.
        alpha: L2 penalty ≥ 0 as in ``MLPClassifier``: ``alpha/(2n)·‖θ‖²`` is added to the mean
            loss (biases included).
        output_scale: the paper's output scale α > 0 of the logits.
        damping: damping rule passed to :func:`gaussnewton.fit` (None: Nielsen for ``"lm"``).
        method: ``"lm"`` (default), ``"gn"`` or ``"gd"``.
        max_iter: maximum number of (trial) steps.
        tol: a step improves only if it lowers the best validation loss (the training loss
            without early stopping) by more than ``tol``.
        early_stopping: hold out ``validation_fraction`` of the rows and stop after
            ``n_iter_no_change`` accepted steps without improvement, keeping the best
            parameters (default True; False: patience on the training loss).
        validation_fraction: share of the rows held out (in (0, 1)).
        n_iter_no_change: accepted steps without improvement before stopping (default 6,
            MATLAB ``trainlm``'s ``max_fail``).
        regularization: None or ``"bayesian"`` (``trainbr``: the L2 penalty re-estimated every
            step from the effective number of parameters; ``alpha`` is then only its start;
            regressor only: it needs the squared loss).
        solver: linear solver of the GN system: ``"auto"`` (default: exact while the Gram
            matrix costs at most 2e10 multiply-adds, else inexact Jacobi-preconditioned CG;
            see :func:`estimator_solver`), any name of :func:`gaussnewton.linsolve.get_solver`
            or a :class:`~gaussnewton.linsolve.LinearSolver`.
        random_state: seed (int), ``RandomState`` or None for the weight initialization.
        standardize: z-score the inputs inside ``fit``.

    Attributes:
        classes_: the class labels (sorted).
        model_: the trained ``nn.Sequential`` (logits on standardized inputs).
        n_iter_: steps taken (including rejected LM trials).
        loss_: final mean cross-entropy on the training rows (without the penalty).
        loss_curve_: training data loss after each step.
        validation_scores_: accuracy on the held-out rows after each step (None without
            early stopping).
        best_validation_score_: the best of them (None without early stopping).
        termination_: why training stopped (:class:`gaussnewton.Termination`).
        n_features_in_: number of input features.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> from gaussnewton.sklearn import GNClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = GNClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(X, y)
        >>> clf.score(X, y) > 0.95
        True
    """

    def fit(self, X: Any, y: Any) -> GNClassifier:
        """Train on X (n, d) and class labels y (n,).

        Args:
            X: array-like (n, d).
            y: array-like (n,) of labels (any sortable type), at least two classes.

        Returns:
            GNClassifier: self.

        Raises:
            GaussNewtonError: invalid hyper-parameters, or fewer than two classes in y.
        """
        x, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise GaussNewtonError(
                f"`y` must contain at least 2 classes to train a classifier; got 1 class ({self.classes_[0]!r})."
            )
        self._fit_network(x, encoded.astype(np.int64), len(self.classes_), "cross_entropy")
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in the order of ``classes_``.

        Args:
            X: array-like (n, d).

        Returns:
            np.ndarray: rows sum to 1.
        """
        return torch.softmax(torch.as_tensor(self._outputs(X)), dim=1).numpy()

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities (n, n_classes).

        Args:
            X: array-like (n, d).

        Returns:
            np.ndarray: log-probabilities.
        """
        return torch.log_softmax(torch.as_tensor(self._outputs(X)), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class for each row.

        Args:
            X: array-like (n, d).

        Returns:
            np.ndarray: labels (n,) from ``classes_``.
        """
        logits = self._outputs(X)  # first: raises NotFittedError before classes_ is touched
        return self.classes_[np.argmax(logits, axis=1)]
