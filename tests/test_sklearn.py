"""gaussnewton.sklearn: scikit-learn's estimator checks, Pipeline, GridSearchCV, probabilities,
reproducibility and parameter errors."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import gaussnewton as gn
from gaussnewton import GaussNewtonError
from gaussnewton.sklearn import GNClassifier, GNRegressor

# Small networks and few steps keep the ~45 checks per estimator fast.
CHECKED = [
    GNRegressor(hidden_layer_sizes=(8,), max_iter=8),
    GNClassifier(hidden_layer_sizes=(8,), max_iter=8),
]


def expected_failed_checks(estimator):
    """Checks these estimators are known to fail, with the reason (none at present).

    scikit-learn >= 1.6 declares expected failures through this callable (passed to
    ``parametrize_with_checks``/``check_estimator``); the old ``_xfail_checks`` tag is gone.
    """
    return {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def regression_data(n=150):
    rng = np.random.RandomState(0)
    x = rng.uniform(-2, 2, (n, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, 0.0]  # badly scaled columns
    return x, np.sin(2 * x[:, 0]) + ((x[:, 1] - 50) / 10) ** 2 - 5 * x[:, 2] + 100


def test_regressor_fits_a_smooth_function():
    x, y = regression_data()
    reg = GNRegressor(hidden_layer_sizes=(20,), max_iter=60, random_state=0).fit(x, y)
    assert reg.score(x, y) > 0.99
    assert reg.n_features_in_ == 3 and reg.n_iter_ <= 60 and reg.loss_ == reg.loss_curve_[-1]
    assert reg.predict(x).shape == (150,)


def test_regressor_multi_output_shape():
    x, y = regression_data()
    y2 = np.column_stack([y, -2 * y])
    reg = GNRegressor(hidden_layer_sizes=(10,), max_iter=20, random_state=0).fit(x, y2)
    assert reg.predict(x).shape == (150, 2)


def test_classifier_predict_proba_rows_sum_to_one_and_string_labels():
    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = GNClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(x, names)
    proba = clf.predict_proba(x)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(x)), proba, rtol=1e-12)
    assert list(clf.classes_) == list(names[[0, 50, 100]])
    assert np.array_equal(clf.predict(x), clf.classes_[proba.argmax(1)])
    assert clf.score(x, names) > 0.95


def test_binary_classifier_uses_two_logits():
    x, y = load_iris(return_X_y=True)
    clf = GNClassifier(hidden_layer_sizes=(4,), max_iter=15, random_state=0).fit(x, y == 2)
    assert clf.predict_proba(x).shape == (150, 2) and clf.predict(x).dtype == bool


def test_reproducible_with_random_state_and_global_rng_untouched():
    x, y = regression_data()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = GNRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=7).fit(x, y).predict(x)
    assert torch.equal(torch.rand(1), before)  # fit does not consume the global torch RNG
    b = GNRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=7).fit(x, y).predict(x)
    c = GNRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=8).fit(x, y).predict(x)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    rs = np.random.RandomState(3)
    d = GNRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=rs).fit(x, y).predict(x)
    e = GNRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=np.random.RandomState(3)).fit(x, y).predict(x)
    assert np.array_equal(d, e)


def test_tol_stops_early():
    x, y = regression_data()
    # without early stopping, tol and n_iter_no_change act on the training loss (as in MLPRegressor)
    loose = GNRegressor(hidden_layer_sizes=(10,), max_iter=100, tol=1e-1, early_stopping=False,
                        random_state=0).fit(x, y)
    tight = GNRegressor(hidden_layer_sizes=(10,), max_iter=100, tol=0.0, early_stopping=False,
                        random_state=0).fit(x, y)
    assert loose.n_iter_ < tight.n_iter_
    assert loose.termination_ is gn.Termination.EARLY_STOP and loose.validation_scores_ is None


def test_alpha_is_the_l2_penalty_and_early_stopping_keeps_the_best_split_score():
    x, y = regression_data()
    free = GNRegressor(hidden_layer_sizes=(30,), alpha=0.0, early_stopping=False, max_iter=60, random_state=0).fit(x, y)
    decayed = GNRegressor(hidden_layer_sizes=(30,), alpha=10.0, early_stopping=False, max_iter=60,
                          random_state=0).fit(x, y)
    norm = lambda m: float(torch.cat([q.detach().reshape(-1) for q in m.model_.parameters()]).norm())  # noqa: E731
    assert norm(decayed) < norm(free)
    es = GNRegressor(hidden_layer_sizes=(30,), random_state=0).fit(x, y)  # defaults: early stopping on
    assert es.validation_scores_ is not None and len(es.validation_scores_) == es.n_iter_
    assert es.best_validation_score_ == max(es.validation_scores_)


def test_pipeline():
    x, y = load_iris(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    pipe = make_pipeline(MinMaxScaler(), GNClassifier(hidden_layer_sizes=(8,), max_iter=30, standardize=False,
                                                      random_state=0))
    pipe.fit(xtr, ytr)
    assert pipe.score(xte, yte) > 0.9
    assert pipe.predict_proba(xte).shape == (len(xte), 3)


def test_grid_search():
    x, y = regression_data()
    grid = GridSearchCV(GNRegressor(max_iter=12, random_state=0),
                        {"hidden_layer_sizes": [(1,), (10,)], "method": ["lm", "gd"]}, cv=2)
    grid.fit(x, y)
    assert grid.best_params_ == {"hidden_layer_sizes": (10,), "method": "lm"}
    assert grid.best_estimator_.n_iter_ <= 12 and grid.score(x, y) > 0.95


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"hidden_layer_sizes": (10, 0)}, r"`hidden_layer_sizes` must be a tuple of integers >= 1.*got \(10, 0\)"),
        ({"hidden_layer_sizes": "10"}, r"`hidden_layer_sizes` must be a tuple of integers >= 1.*got '10'"),
        ({"activation": "swish"}, r"`activation` must be one of .*got 'swish'"),
        ({"method": "adam"}, r"`method` must be one of 'lm', 'gn', 'gn_halving', 'gd'; got 'adam'"),
        ({"alpha": -1.0}, r"`alpha` must be a finite number >= 0; got alpha = -1.0"),
        ({"output_scale": 0.0}, r"`output_scale` must be a finite number > 0; got output_scale = 0.0"),
        ({"validation_fraction": 1.0}, r"`validation_fraction` must lie in \(0, 1\); got validation_fraction = 1.0"),
        ({"n_iter_no_change": 0}, r"`n_iter_no_change` must be an integer >= 1; got n_iter_no_change = 0"),
        ({"early_stopping": "yes"}, r"`early_stopping` must be True or False; got 'yes'"),
        ({"max_iter": 0}, r"`max_iter` must be an integer >= 1; got max_iter = 0"),
        ({"tol": -1.0}, r"`tol` must be a number >= 0; got tol = -1.0"),
        ({"standardize": "yes"}, r"`standardize` must be True or False; got 'yes'"),
        ({"damping": "fast"}, r"`damping` must be one of .*got 'fast'"),
        ({"solver": "qr"}, r"`solver` must be one of 'auto', 'normal', .*got 'qr'"),
        ({"solver": 3}, r"`solver` must be 'auto', 'normal', 'kernel', 'cg', 'truncated_cg', 'lstsq' or a "
                        r"LinearSolver; got int"),
    ],
)
def test_bad_parameters_are_reported_at_fit(params, pattern):
    x, y = regression_data()
    reg = GNRegressor(**params)  # scikit-learn convention: no validation in __init__
    with pytest.raises(GaussNewtonError, match=pattern):
        reg.fit(x, y)


def test_classifier_needs_two_classes():
    with pytest.raises(GaussNewtonError, match=r"`y` must contain at least 2 classes.*got 1 class"):
        GNClassifier(max_iter=2).fit(np.ones((5, 2)), np.zeros(5))


def test_defaults_do_not_interpolate_noise_on_a_small_data_set():
    """p = 1001 > n = 200 rows of California Housing: the defaults (early stopping, L2) keep a positive
    test R²; without them the network interpolates and scores below zero (measured: −0.29, −0.03, −0.18)."""
    x, y = gn.datasets.california_housing(n=2000, seed=0, unit_norm=False, standardize_target=False)
    x, y = x.numpy(), y.numpy()
    for seed in range(3):
        xtr, xte, ytr, yte = train_test_split(x, y, train_size=200, random_state=seed)
        default = GNRegressor(hidden_layer_sizes=(100,), random_state=seed).fit(xtr, ytr)
        bare = GNRegressor(hidden_layer_sizes=(100,), alpha=0.0, early_stopping=False, max_iter=100,
                           random_state=seed).fit(xtr, ytr)
        assert default.score(xte, yte) > 0.1
        assert bare.score(xte, yte) < default.score(xte, yte)


def test_bayesian_regularization_on_a_small_data_set():
    """trainbr-style regularization on 200 rows (measured test R² 0.65, 0.64, 0.58 for seeds 0–2)."""
    x, y = gn.datasets.california_housing(n=2000, seed=0, unit_norm=False, standardize_target=False)
    x, y = x.numpy(), y.numpy()
    for seed in range(3):
        xtr, xte, ytr, yte = train_test_split(x, y, train_size=200, random_state=seed)
        reg = GNRegressor(hidden_layer_sizes=(100,), regularization="bayesian", early_stopping=False, max_iter=50,
                          random_state=seed).fit(xtr, ytr)
        assert reg.score(xte, yte) > 0.5
    with pytest.raises(GaussNewtonError, match=r"`regularization` must be one of 'bayesian'; got 'l2'"):
        GNRegressor(regularization="l2").fit(xtr, ytr)


def test_auto_solver_is_exact_for_small_gram_matrices_and_cg_for_large_ones():
    """The cost rule of ``solver="auto"``: N·p·min(N, p) multiply-adds against 2e10."""
    from gaussnewton.linsolve import CGSolver
    from gaussnewton.sklearn import estimator_solver

    assert estimator_solver("auto", 3600, 501, None) == "auto"  # California: 0.9e9
    cg = estimator_solver("auto", 12_000, 3_760, None)  # digits: 1.7e11
    assert isinstance(cg, CGSolver) and cg.rtol == 1e-3 and cg.max_iter == 50 and cg.preconditioner == "jacobi"
    assert estimator_solver("auto", 12_000, 3_760, "bayesian") == "auto"  # needs an exact solve
    assert estimator_solver("normal", 12_000, 3_760, None) == "normal"  # explicit names pass through


def test_classifier_with_cg_solver_matches_exact_accuracy():
    """An explicit inexact solver trains as well as the exact one on iris (held-out accuracy)."""
    x, y = load_iris(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    from gaussnewton.linsolve import CGSolver

    exact = GNClassifier(hidden_layer_sizes=(16,), random_state=0, solver="normal").fit(xtr, ytr)
    inexact = GNClassifier(hidden_layer_sizes=(16,), random_state=0,
                           solver=CGSolver(rtol=1e-3, max_iter=50, preconditioner="jacobi")).fit(xtr, ytr)
    assert inexact.score(xte, yte) >= exact.score(xte, yte) - 0.05
    assert inexact.score(xte, yte) > 0.85
