"""XGBoost autologging: native train/cv and the scikit-learn API, read back from the store."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xgboost as xgb

import autolog
from autolog.integrations.xgboost import XGBoostMetricsCallback
from tests.integrations.runs import (
    artifact_json,
    artifact_names,
    framework_metrics,
    history,
    only_run,
)
from tests.models_roundtrip import assert_roundtrip_in_fresh_process

PARAMS = {"objective": "binary:logistic", "nthread": 1, "max_depth": 2, "seed": 0}


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 4)
    y = (X[:, 0] + 0.3 * rng.rand(120) > 0.6).astype(int)
    return X[:90], y[:90], X[90:], y[90:]


@pytest.fixture
def dmatrices(data):
    X, y, Xv, yv = data
    return xgb.DMatrix(X, y), xgb.DMatrix(Xv, yv)


def test_train_logs_params_metrics_importance_and_model(dmatrices):
    autolog.autolog("xgboost")
    dtrain, dvalid = dmatrices
    booster = xgb.train(
        {**PARAMS, "eval_metric": ["logloss", "auc"]},
        dtrain,
        num_boost_round=6,
        evals=[(dtrain, "train"), (dvalid, "valid")],
        verbose_eval=False,
    )
    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "xgboost"
    params = run.data.params
    assert params["max_depth"] == "2"
    assert params["eval_metric"] == "['logloss', 'auc']"
    assert params["num_boost_round"] == "6"
    assert params["verbose_eval"] == "False"
    assert not {"dtrain", "evals", "callbacks"} & set(params)  # data and objects are not params
    # XGBoost's names, one point per iteration, step = iteration
    for key in ("train-logloss", "train-auc", "valid-logloss", "valid-auc"):
        assert [step for step, _ in history(run, key)] == list(range(6))
    assert "best_iteration" not in run.data.metrics  # no early stopping
    importance = artifact_json(run, "feature_importance.json")
    assert set(importance) == {"weight", "gain", "cover", "total_gain", "total_cover"}
    assert importance["weight"] == pytest.approx(booster.get_score(importance_type="weight"))
    model = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert isinstance(model, xgb.Booster)
    np.testing.assert_array_equal(model.predict(dvalid), booster.predict(dvalid))


def test_train_without_evals_logs_no_metrics(dmatrices):
    autolog.autolog("xgboost")
    xgb.train(PARAMS, dmatrices[0], num_boost_round=3)
    run = only_run()
    assert framework_metrics(run) == {}
    assert run.data.params["num_boost_round"] == "3"
    assert artifact_names(run) - {"provenance"} == {"feature_importance.json", "model"}


def test_early_stopping_summary(dmatrices):
    autolog.autolog("xgboost")
    dtrain, dvalid = dmatrices
    booster = xgb.train(
        {**PARAMS, "eta": 1.0, "max_depth": 6},
        dtrain,
        num_boost_round=200,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=2,
        verbose_eval=False,
    )
    run = only_run()
    metrics = run.data.metrics
    last_step = history(run, "valid-logloss")[-1][0]
    assert last_step < 199, "the data must make early stopping stop"
    assert metrics["stopped_iteration"] == last_step
    assert metrics["best_iteration"] == booster.best_iteration
    assert metrics["best_score"] == pytest.approx(booster.best_score)
    assert run.data.params["early_stopping_rounds"] == "2"
    assert run.data.params["early_stopping_patience"] == "2"
    assert run.data.params["early_stopping_monitor"] == "valid-logloss"


def test_user_callbacks_are_kept_and_not_changed(dmatrices):
    autolog.autolog("xgboost")
    dtrain, dvalid = dmatrices
    seen = []

    class Counting(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            seen.append(epoch)
            return False

    callbacks = [Counting()]
    original = list(callbacks)
    xgb.train(PARAMS, dtrain, 4, evals=[(dvalid, "valid")], callbacks=callbacks, verbose_eval=False)
    assert callbacks == original  # same list, same objects, nothing added
    assert seen == [0, 1, 2, 3]
    assert len(history(only_run(), "valid-logloss")) == 4


def test_cv_logs_mean_and_std_per_round(dmatrices):
    autolog.autolog("xgboost")
    results = xgb.cv(PARAMS, dmatrices[0], num_boost_round=4, nfold=3, as_pandas=False)
    run = only_run()
    assert run.data.params["nfold"] == "3"
    for key in ("train-logloss-mean", "train-logloss-std", "test-logloss-mean", "test-logloss-std"):
        assert [value for _, value in history(run, key)] == pytest.approx(results[key])
    assert "model" not in artifact_names(run)


def test_cv_early_stopping(dmatrices):
    autolog.autolog("xgboost")
    results = xgb.cv(
        {**PARAMS, "eta": 1.0, "max_depth": 6},
        dmatrices[0],
        num_boost_round=200,
        nfold=3,
        early_stopping_rounds=2,
        as_pandas=False,
    )
    metrics = only_run().data.metrics
    rounds = len(results["test-logloss-mean"])
    assert metrics["best_iteration"] == rounds - 1
    assert metrics["best_score"] == pytest.approx(results["test-logloss-mean"][-1])
    assert metrics["stopped_iteration"] == rounds - 1 + 2


@pytest.mark.parametrize("estimator_class", [xgb.XGBClassifier, xgb.XGBRegressor])
def test_sklearn_api_one_run_with_get_params_and_eval_metrics(data, estimator_class):
    autolog.autolog("xgboost")
    X, y, Xv, yv = data
    model = estimator_class(n_estimators=5, max_depth=2, n_jobs=1)
    model.fit(X, y, eval_set=[(X, y), (Xv, yv)], verbose=False)
    run = only_run()  # fit calls xgboost's train inside: still one run
    assert run.data.params["n_estimators"] == "5"
    assert run.data.params["max_depth"] == "2"
    metric = "logloss" if estimator_class is xgb.XGBClassifier else "rmse"
    for dataset in ("validation_0", "validation_1"):
        values = [v for _, v in history(run, f"{dataset}-{metric}")]
        assert values == pytest.approx(model.evals_result()[dataset][metric])
    assert model.callbacks is None  # restored after fit
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded) is estimator_class


def test_sklearn_api_early_stopping_and_user_callbacks(data):
    autolog.autolog("xgboost")
    X, y, Xv, yv = data
    callbacks = [xgb.callback.EvaluationMonitor(period=100)]
    original = list(callbacks)
    model = xgb.XGBClassifier(
        n_estimators=200,
        learning_rate=1.0,
        max_depth=6,
        n_jobs=1,
        early_stopping_rounds=2,
        callbacks=callbacks,
    )
    model.fit(X, y, eval_set=[(Xv, yv)], verbose=False)
    assert model.callbacks is callbacks and callbacks == original
    metrics = only_run().data.metrics
    assert metrics["best_iteration"] == model.best_iteration
    assert metrics["stopped_iteration"] == len(model.evals_result()["validation_0"]["logloss"]) - 1


def test_sklearn_api_without_eval_set(data):
    autolog.autolog("xgboost")
    X, y, _, _ = data
    xgb.XGBRanker(n_estimators=3, n_jobs=1).fit(X, y, qid=np.repeat(np.arange(9), 10))
    run = only_run()
    assert framework_metrics(run) == {}
    assert run.data.params["n_estimators"] == "3"


def test_random_forest_api_logs_history_after_fit(data):
    # XGBRF* refuse callbacks: their (one round) history is logged after fit.
    autolog.autolog("xgboost")
    X, y, Xv, yv = data
    xgb.XGBRFClassifier(n_estimators=4, n_jobs=1).fit(X, y, eval_set=[(Xv, yv)], verbose=False)
    assert len(history(only_run(), "validation_0-logloss")) == 1


@pytest.mark.parametrize("order", ["sklearn first", "xgboost first"])
def test_one_run_with_the_sklearn_integration_enabled(data, order):
    names = ["sklearn", "xgboost"] if order == "sklearn first" else ["xgboost", "sklearn"]
    for name in names:
        autolog.autolog(name)
    X, y, Xv, yv = data
    xgb.XGBClassifier(n_estimators=3, n_jobs=1).fit(X, y, eval_set=[(Xv, yv)], verbose=False)
    run = only_run()
    assert run.data.tags["mlflow.autologging"] == "xgboost"
    assert len(history(run, "validation_0-logloss")) == 3


def test_feature_importance_plot_only_when_asked(dmatrices):
    autolog.autolog("xgboost", log_feature_importance_plot=True)
    xgb.train(PARAMS, dmatrices[0], 2)
    assert "feature_importance.png" in artifact_names(only_run())


def test_log_models_off(dmatrices):
    autolog.autolog("xgboost", log_models=False)
    xgb.train(PARAMS, dmatrices[0], 2)
    assert artifact_names(only_run()) - {"provenance"} == {"feature_importance.json"}


def test_logs_into_the_users_active_run(dmatrices):
    autolog.autolog("xgboost")
    with autolog.start_run() as run:
        xgb.train(PARAMS, dmatrices[0], 2)
        assert autolog.active_run().info.run_id == run.info.run_id
    assert only_run().data.params["num_boost_round"] == "2"


def test_callback_is_picklable_and_keeps_its_run():
    callback = XGBoostMetricsCallback("0" * 32)
    copy = pickle.loads(pickle.dumps(callback))
    assert isinstance(copy, xgb.callback.TrainingCallback)
    assert copy.logger.run_id == "0" * 32


def test_callback_failure_never_reaches_training(dmatrices, monkeypatch):
    # Outside test mode our errors are warnings; the user's training completes.
    monkeypatch.setenv("AUTOLOG_TESTING", "0")
    autolog.autolog("xgboost")
    dtrain, dvalid = dmatrices

    def broken(self, iteration, scores):
        raise RuntimeError("bug in autolog")

    monkeypatch.setattr(
        "autolog.integrations._boosting.IterationMetricsLogger.log_iteration", broken
    )
    with pytest.warns(autolog.errors.AutologWarning, match="bug in autolog"):
        booster = xgb.train(PARAMS, dtrain, 3, evals=[(dvalid, "valid")], verbose_eval=False)
    assert booster.num_boosted_rounds() == 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "predict"),
    [
        (
            """
            import numpy as np, xgboost as xgb
            X = np.random.RandomState(0).rand(60, 3)
            model = xgb.XGBClassifier(n_estimators=4, n_jobs=1).fit(X, X[:, 0] > 0.5)
            """,
            "(type(model).__name__, model.predict_proba(X))",
        ),
        (
            """
            import numpy as np, xgboost as xgb
            X = np.random.RandomState(0).rand(60, 3)
            model = xgb.train({"nthread": 1}, xgb.DMatrix(X, X[:, 0]), 4)
            """,
            "model.predict(__import__('xgboost').DMatrix(X))",
        ),
    ],
    ids=["sklearn-api", "booster"],
)
def test_model_round_trip_in_a_fresh_process(script, predict):
    result = assert_roundtrip_in_fresh_process(script, predict, expected_flavor="xgboost")
    assert result.metadata["framework"]["distribution"] == "xgboost"
    assert result.metadata["files"][0] == "model.ubj"


def test_importance_comes_from_a_copy_taken_when_the_training_returned(dmatrices):
    # The importances are computed on the writer thread from the model's bytes
    # taken at the end of train(): training the booster on afterwards does not
    # change what was logged.
    autolog.autolog("xgboost")
    dtrain, dvalid = dmatrices
    booster = xgb.train(PARAMS, dtrain, 3, evals=[(dvalid, "valid")])
    expected = booster.get_score(importance_type="weight")
    for i in range(5):
        booster.update(dtrain, 3 + i)
    autolog.flush()
    importance = artifact_json(only_run(), "feature_importance.json")
    assert importance["weight"] == pytest.approx(expected)
    assert booster.get_score(importance_type="weight") != expected


def test_a_linear_booster_gets_its_model_and_the_one_importance_type_it_has(dmatrices):
    # gblinear defines only the weight importance: the others are left out
    # instead of failing the model's logging.
    autolog.autolog("xgboost")
    dtrain, _ = dmatrices
    linear = {k: v for k, v in PARAMS.items() if k != "max_depth"}
    booster = xgb.train({**linear, "booster": "gblinear"}, dtrain, 3)
    autolog.flush()
    run = only_run()
    assert set(artifact_json(run, "feature_importance.json")) == {"weight"}
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_allclose(loaded.predict(dtrain), booster.predict(dtrain))
