"""XGBoost and LightGBM: what autolog adds to a small training, and per iteration.

Rows (each bare vs autolog, interleaved in the same process):

- native ``train`` with one evaluation set (so the callback logs every round)
  and the scikit-learn API ``fit`` with defaults: 50 rounds on 2,000 x 20 rows,
  1 thread in both arms (the machine is shared). The autolog arm includes everything a user gets by
  default: run creation, params, per-iteration metrics, feature importance,
  the native model, and the end of the run (which flushes the writer);
- the callback alone, per iteration: its method called with a two-metric
  evaluation result inside an active run (what it adds to each round).

Issue 6 measured MLflow 3.17 on this machine kind: about 70 ms bare and
+2.2 s with its XGBoost or LightGBM autolog (MLflow is not installed here).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

import autolog

ROUNDS = 50
THREADS = 1
GOAL = "<= +5% or +15 ms"
MLFLOW = "mlflow 3.17: ~70 ms bare, +2.2 s (issue 6)"


def _data():
    rng = np.random.RandomState(0)
    X = rng.rand(2000, 20)
    y = (X[:, 0] + X[:, 1] + 0.5 * rng.rand(2000) > 1.2).astype(int)
    return X, y


def _bare(patched):
    """The original callable behind our wrapper (wrapt keeps it as ``__wrapped__``)."""
    return patched.__wrapped__


def _xgboost_rows(h, X, y):
    import xgboost as xgb

    dtrain, dvalid = xgb.DMatrix(X[:1600], y[:1600]), xgb.DMatrix(X[1600:], y[1600:])
    params = {"objective": "binary:logistic", "nthread": THREADS}

    def train(fn):
        return lambda: fn(params, dtrain, ROUNDS, evals=[(dvalid, "valid")], verbose_eval=False)

    h.compare(
        "xgboost.train 50 rounds 2000x20 + eval set",
        train(_bare(xgb.train)),
        train(xgb.train),
        repeat=7,
        number=2,
        goal=GOAL,
        base_label="bare",
        notes=MLFLOW,
    )
    model = xgb.XGBClassifier(n_estimators=ROUNDS, n_jobs=THREADS)
    bare_fit = _bare(xgb.XGBClassifier.__dict__["fit"])
    h.compare(
        "XGBClassifier.fit 50 rounds 2000x20 defaults",
        lambda: bare_fit(model, X, y),
        lambda: model.fit(X, y),
        repeat=7,
        number=2,
        goal=GOAL,
        base_label="bare",
    )

    from autolog.integrations.xgboost import XGBoostMetricsCallback

    evals_log = {"valid": {"logloss": [0.5, 0.4], "error": [0.2, 0.1]}}
    with autolog.start_run() as run:
        callback = XGBoostMetricsCallback(run.info.run_id)
        step = iter(range(10**9))
        h.time(
            "xgboost callback per iteration (2 metrics)",
            lambda: callback.after_iteration(None, next(step), evals_log),
            repeat=5,
            number=2000,
            unit="us",
            goal="<= 20 us",
        )


def _lightgbm_rows(h, X, y):
    import lightgbm as lgb

    train_set = lgb.Dataset(X[:1600], y[:1600], free_raw_data=False)
    valid_set = lgb.Dataset(X[1600:], y[1600:], reference=train_set, free_raw_data=False)
    params = {"objective": "binary", "num_threads": THREADS, "verbose": -1}

    def train(fn):
        return lambda: fn(params, train_set, ROUNDS, valid_sets=[valid_set])

    h.compare(
        "lightgbm.train 50 rounds 2000x20 + valid set",
        train(_bare(lgb.train)),
        train(lgb.train),
        repeat=7,
        number=2,
        goal=GOAL,
        base_label="bare",
        notes=MLFLOW,
    )
    model = lgb.LGBMClassifier(n_estimators=ROUNDS, n_jobs=THREADS, verbose=-1)
    bare_fit = _bare(lgb.LGBMClassifier.__dict__["fit"])
    h.compare(
        "LGBMClassifier.fit 50 rounds 2000x20 defaults",
        lambda: bare_fit(model, X, y),
        lambda: model.fit(X, y),
        repeat=7,
        number=2,
        goal=GOAL,
        base_label="bare",
    )

    from lightgbm.callback import CallbackEnv

    from autolog.integrations.lightgbm import LightGBMMetricsCallback

    results = [("valid_0", "binary_logloss", 0.4, False), ("valid_0", "auc", 0.9, True)]
    with autolog.start_run() as run:
        callback = LightGBMMetricsCallback(run.info.run_id)
        envs = (CallbackEnv(None, params, i, 0, 10**9, results) for i in range(10**9))
        h.time(
            "lightgbm callback per iteration (2 metrics)",
            lambda: callback(next(envs)),
            repeat=5,
            number=2000,
            unit="us",
            goal="<= 20 us",
        )


def run(h) -> None:
    X, y = _data()
    with tempfile.TemporaryDirectory(prefix="autolog-bench-boosting-") as tmp:
        autolog.set_tracking_uri(Path(tmp, "mlruns").as_uri())
        autolog.autolog("xgboost", "lightgbm", silent=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _xgboost_rows(h, X, y)
                _lightgbm_rows(h, X, y)
        finally:
            autolog.autolog("xgboost", "lightgbm", disable=True)
            autolog.flush()
