"""Test-set quality and fit time: gaussnewton's estimators at their defaults vs scikit-learn's MLPs.

Regression: California Housing (shipped with gaussnewton; raw features, target in $100k),
3 seeds, each a fixed 75/25 train/test split (``train_test_split(random_state=seed)``), the first
``--n-train`` training rows, one hidden layer of 50. Classification: breast cancer and digits
(shipped with scikit-learn), same protocol. Every estimator runs at its defaults except
``hidden_layer_sizes`` and ``random_state``; scikit-learn's MLPs get a ``StandardScaler`` in a
pipeline (gaussnewton's estimators standardize inside ``fit``). A warm-up fit on a tiny problem
runs first, so no timing includes torch's first-call overhead. Also reported: gaussnewton
without early stopping (``early_stopping=False, alpha=0``: the 0.1 behaviour), which
interpolates the training set.

Writes ``results/generalization_<date>.json`` and ``GENERALIZATION.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gaussnewton as gn
from gaussnewton.sklearn import GNClassifier, GNRegressor

HERE = Path(__file__).parent


def estimators(kind: str, seed: int) -> dict[str, object]:
    hidden = (50,)
    if kind == "regression":
        return {
            "GNRegressor (defaults)": GNRegressor(hidden_layer_sizes=hidden, random_state=seed),
            "GNRegressor (no early stopping, alpha=0)": GNRegressor(hidden_layer_sizes=hidden, alpha=0.0,
                                                                    early_stopping=False, max_iter=100,
                                                                    random_state=seed),
            "MLPRegressor (adam)": make_pipeline(StandardScaler(),
                                                 MLPRegressor(hidden_layer_sizes=hidden, random_state=seed)),
            "MLPRegressor (lbfgs)": make_pipeline(StandardScaler(),
                                                  MLPRegressor(hidden_layer_sizes=hidden, solver="lbfgs",
                                                               random_state=seed)),
        }
    return {
        "GNClassifier (defaults)": GNClassifier(hidden_layer_sizes=hidden, random_state=seed),
        "GNClassifier (no early stopping, alpha=0)": GNClassifier(hidden_layer_sizes=hidden, alpha=0.0,
                                                                  early_stopping=False, max_iter=100,
                                                                  random_state=seed),
        "MLPClassifier (adam)": make_pipeline(StandardScaler(),
                                              MLPClassifier(hidden_layer_sizes=hidden, random_state=seed)),
        "MLPClassifier (lbfgs)": make_pipeline(StandardScaler(),
                                               MLPClassifier(hidden_layer_sizes=hidden, solver="lbfgs",
                                                             random_state=seed)),
    }


def datasets(n_train: int) -> dict[str, tuple[str, np.ndarray, np.ndarray, int]]:
    x, y = gn.datasets.california_housing(unit_norm=False, standardize_target=False)
    bc = load_breast_cancer(return_X_y=True)
    dg = load_digits(return_X_y=True)
    return {"california": ("regression", x.numpy(), y.numpy(), n_train),
            "breast_cancer": ("classification", bc[0], bc[1], n_train),
            "digits": ("classification", dg[0], dg[1], n_train)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=4000)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    GNRegressor(hidden_layer_sizes=(4,), max_iter=3).fit(np.random.rand(20, 3), np.random.rand(20))  # warm-up
    rows = []
    for data, (kind, x, y, n_train) in datasets(args.n_train).items():
        for seed in range(args.seeds):
            xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed,
                                                  stratify=y if kind == "classification" else None)
            xtr, ytr = xtr[:n_train], ytr[:n_train]
            for name, est in estimators(kind, seed).items():
                t0 = time.perf_counter()
                est.fit(xtr, ytr)  # type: ignore[attr-defined]
                fit_s = time.perf_counter() - t0
                score = float(est.score(xte, yte))  # type: ignore[attr-defined]
                rows.append({"data": data, "seed": seed, "estimator": name, "test_score": score, "fit_s": fit_s,
                             "n_train": len(xtr)})
                print(f"{data:14s} seed {seed} {name:45s} score {score:.4f}  fit {fit_s:6.2f} s", flush=True)
    env = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": platform.processor(),
           "machine": platform.machine(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
           "sklearn": sklearn.__version__, "gaussnewton": gn.__version__, "numpy": np.__version__}
    out = HERE / "results" / f"generalization_{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    lines = ["# Generalization: estimators at their defaults (test score, fit time)", "",
             f"Generated by `benchmarks/bench_generalization.py` ({env['date']}; torch {env['torch']}, "
             f"scikit-learn {env['sklearn']}, gaussnewton {env['gaussnewton']}, {env['torch_threads']} torch threads). "
             "Test R² (regression) or accuracy (classification), mean ± sd over "
             f"{args.seeds} seeds (each its own 75/25 split; at most {args.n_train} training rows); fit time in s.",
             "", "| data | estimator | test score | fit time (s) |", "|---|---|---|---|"]
    for data in dict.fromkeys(r["data"] for r in rows):
        for name in dict.fromkeys(r["estimator"] for r in rows if r["data"] == data):
            sel = [r for r in rows if r["data"] == data and r["estimator"] == name]
            sc = [r["test_score"] for r in sel]
            ft = [r["fit_s"] for r in sel]
            sd = statistics.stdev(sc) if len(sc) > 1 else 0.0
            lines.append(f"| {data} | {name} | {statistics.mean(sc):.4f} ± {sd:.4f} | "
                         f"{statistics.mean(ft):.2f} |")
    (HERE / "GENERALIZATION.md").write_text("\n".join(lines) + "\n")
    print("wrote", out, "and GENERALIZATION.md")


if __name__ == "__main__":
    main()
