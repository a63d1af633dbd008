"""CatBoost autologging: fit of CatBoost and its scikit-learn-style classes, read back."""

from __future__ import annotations

import pickle

import catboost
import numpy as np
import pytest
from catboost import CatBoost, CatBoostClassifier, CatBoostRegressor, Pool

import autolog
from autolog.integrations.catboost import CatBoostMetricsCallback
from tests.integrations.runs import artifact_json, artifact_names, history, only_run
from tests.models_roundtrip import assert_roundtrip_in_fresh_process

QUIET = {"verbose": 0, "thread_count": 1, "allow_writing_files": False, "random_seed": 0}


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(160, 4)
    y = (X[:, 0] + 0.3 * rng.rand(160) > 0.6).astype(int)
    return X[:120], y[:120], X[120:], y[120:]


@pytest.fixture(params=[False, True], ids=["after-fit", "live"])
def live(request):
    """Both ways of logging the per-iteration metrics: from the history when fit
    returns (the default) and through our callback (``live_metrics=True``)."""
    return request.param


def test_classifier_logs_params_iteration_metrics_best_importance_and_model(data, live):
    autolog.autolog("catboost", live_metrics=live)
    X, y, Xv, yv = data
    model = CatBoostClassifier(iterations=6, depth=3, eval_metric="AUC", **QUIET)
    model.fit(X, y, eval_set=(Xv, yv), use_best_model=False)
    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "catboost"
    params = run.data.params
    assert params["depth"] == "3" and params["iterations"] == "6"
    assert params["eval_metric"] == "AUC"
    assert params["use_best_model"] == "False"  # a setting of fit
    assert not {"X", "y", "eval_set", "callbacks"} & set(params)
    assert run.data.tags["autolog.datasets.name"] == "|X|y|"  # the training data, by name
    # chosen by CatBoost when left out
    assert float(params["learning_rate"]) == pytest.approx(model.get_all_params()["learning_rate"])
    assert params["loss_function"] == "Logloss"
    evals = model.get_evals_result()
    for dataset, metrics in evals.items():
        for metric, values in metrics.items():
            points = history(run, f"{dataset}-{metric}")
            assert [step for step, _ in points] == list(range(6))
            assert [value for _, value in points] == pytest.approx(values)
    assert {"learn-Logloss", "validation-Logloss", "validation-AUC"} <= set(run.data.metrics)
    assert run.data.metrics["best_iteration"] == model.get_best_iteration()
    assert run.data.metrics["best_score"] == pytest.approx(
        model.get_best_score()["validation"]["AUC"]
    )
    assert run.data.metrics["stopped_iteration"] == 5
    assert run.data.params["early_stopping_monitor"] == "validation-AUC"
    importance = artifact_json(run, "feature_importance.json")["PredictionValuesChange"]
    expected = model.get_feature_importance(type="PredictionValuesChange")
    assert [importance[str(i)] for i in range(4)] == pytest.approx(expected)
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded) is CatBoostClassifier
    np.testing.assert_array_equal(loaded.predict_proba(Xv), model.predict_proba(Xv))
    assert "model.cbm" in {p.rsplit("/", 1)[-1] for p in _model_files(run)}


def _model_files(run):
    return {f.path for f in autolog.Client().list_artifacts(run.info.run_id, "model")}


def test_early_stopping_summary(data, live):
    autolog.autolog("catboost", live_metrics=live)
    X, y, Xv, yv = data
    model = CatBoostClassifier(iterations=300, learning_rate=0.9, **QUIET)
    model.fit(X, y, eval_set=(Xv, yv), early_stopping_rounds=3)
    run = only_run()
    ran = len(model.get_evals_result()["validation"]["Logloss"])
    assert ran < 300  # it stopped
    assert run.data.metrics["stopped_iteration"] == ran - 1
    assert run.data.metrics["best_iteration"] == model.get_best_iteration()
    assert run.data.params["early_stopping_patience"] == "3"
    assert run.data.params["early_stopping_monitor"] == "validation-Logloss"
    assert run.data.params["learning_rate"] == "0.9"  # the user's value, not CatBoost's float


def test_native_catboost_with_pools_and_two_eval_sets(data, live):
    autolog.autolog("catboost", live_metrics=live)
    X, y, Xv, yv = data
    model = CatBoost({"iterations": 4, "loss_function": "RMSE", **QUIET})
    model.fit(Pool(X, y.astype(float)), eval_set=[Pool(Xv[:20], yv[:20]), Pool(Xv[20:], yv[20:])])
    run = only_run()
    for key in ("learn-RMSE", "validation_0-RMSE", "validation_1-RMSE"):
        assert [step for step, _ in history(run, key)] == list(range(4)), key
    assert run.data.params["early_stopping_monitor"] == "validation_1-RMSE"  # the last set
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded) is CatBoost
    np.testing.assert_array_equal(loaded.predict(Xv), model.predict(Xv))


def test_catboost_train_gives_one_run(data):
    autolog.autolog("catboost")
    X, y, _, _ = data
    catboost.train(Pool(X, y), {"iterations": 3, "loss_function": "Logloss", **QUIET})
    run = only_run()
    assert run.data.params["iterations"] == "3"
    assert "best_iteration" not in run.data.metrics  # no eval set: nothing watched
    assert [step for step, _ in history(run, "learn-Logloss")] == [0, 1, 2]


def test_metric_period_logs_only_evaluated_iterations(data, live):
    autolog.autolog("catboost", live_metrics=live)
    X, y, Xv, yv = data
    CatBoostRegressor(iterations=7, metric_period=3, **QUIET).fit(X, y, eval_set=(Xv, yv))
    run = only_run()
    assert [step for step, _ in history(run, "learn-RMSE")] == [0, 3, 6]
    # 8 iterations: CatBoost evaluates the last one too, off the period
    CatBoostRegressor(iterations=8, metric_period=3, **QUIET).fit(X, y, eval_set=(Xv, yv))
    run = autolog.search_runs(order_by=["attributes.start_time DESC"])[0]
    assert [step for step, _ in history(run, "learn-RMSE")] == [0, 3, 6, 7]
    assert run.data.metrics["stopped_iteration"] == 7


def test_metric_period_with_early_stopping_logs_the_steps_the_callback_sees(data):
    """The overfitting detector has the eval metric evaluated every iteration and
    the others every metric_period-th: the after-fit steps are the live ones."""
    X, y, Xv, yv = data
    steps = {}
    for live in (True, False):
        autolog.autolog("catboost", live_metrics=live)
        model = CatBoostClassifier(
            iterations=300, learning_rate=0.9, metric_period=4, eval_metric="AUC", **QUIET
        )
        model.fit(X, y, eval_set=(Xv, yv), early_stopping_rounds=3)
        run = autolog.search_runs(order_by=["attributes.start_time DESC"])[0]
        ran = len(model.get_evals_result()["validation"]["AUC"])
        assert ran < 300  # it stopped
        assert run.data.metrics["stopped_iteration"] == ran - 1
        steps[live] = {
            key: [step for step, _ in history(run, key)]
            for key in ("learn-Logloss", "validation-Logloss", "validation-AUC")
        }
        assert steps[live]["validation-AUC"] == list(range(ran))
        assert steps[live]["learn-Logloss"][:2] == [0, 4]
    assert steps[False] == steps[True]


def test_no_callback_reaches_catboost_unless_live_metrics(data, monkeypatch):
    """The default installs no Python callback (CatBoost would rebuild its metric
    history for it at every iteration); live_metrics=True installs ours."""
    calls = []
    original = CatBoostMetricsCallback.after_iteration

    def counting(self, info):
        calls.append(info.iteration)
        return original(self, info)

    monkeypatch.setattr(CatBoostMetricsCallback, "after_iteration", counting)
    X, y, _, _ = data
    autolog.autolog("catboost")
    CatBoostClassifier(iterations=4, **QUIET).fit(X, y)
    assert calls == []
    assert [s for s, _ in history(only_run(), "learn-Logloss")] == [0, 1, 2, 3]
    autolog.autolog("catboost", live_metrics=True)
    CatBoostClassifier(iterations=4, **QUIET).fit(X, y)
    assert calls == [1, 2, 3, 4]


def test_live_metrics_of_the_wrong_type_is_refused():
    with pytest.raises(autolog.InvalidParameterError, match="live_metrics"):
        autolog.autolog("catboost", live_metrics="yes")


def test_user_callbacks_are_kept_and_their_list_unchanged(data, live):
    autolog.autolog("catboost", live_metrics=live)
    X, y, _, _ = data
    seen = []

    class Counter:
        def after_iteration(self, info):
            seen.append(info.iteration)
            return True

    callbacks = [Counter()]
    CatBoostClassifier(iterations=3, **QUIET).fit(X, y, callbacks=callbacks)
    assert seen == [1, 2, 3]
    assert len(callbacks) == 1
    assert [s for s, _ in history(only_run(), "learn-Logloss")] == [0, 1, 2]


def test_logs_into_the_users_run_and_log_models_off(data):
    autolog.autolog("catboost", log_models=False)
    X, y, _, _ = data
    with autolog.start_run() as run:
        CatBoostClassifier(iterations=2, **QUIET).fit(X, y)
    logged = only_run()
    assert logged.info.run_id == run.info.run_id
    assert artifact_names(logged) - {"provenance"} == {"feature_importance.json"}


def test_callback_is_picklable_and_keeps_its_run():
    callback = pickle.loads(pickle.dumps(CatBoostMetricsCallback("0" * 32)))
    assert callback.run_id == "0" * 32


def test_callback_failure_never_reaches_training(data, monkeypatch, live):
    monkeypatch.setenv("AUTOLOG_TESTING", "0")  # our errors are warnings, as for users
    autolog.autolog("catboost", live_metrics=live)
    X, y, _, _ = data

    def broken(*args, **kwargs):
        raise RuntimeError("bug in autolog")

    monkeypatch.setattr("autolog.plugin.log_epoch_metrics", broken)
    with pytest.warns(autolog.AutologWarning, match="bug in autolog"):
        model = CatBoostClassifier(iterations=3, **QUIET).fit(X, y)
    assert model.tree_count_ == 3


def test_one_run_when_every_integration_is_on(data):
    autolog.autolog()  # scikit-learn's too: CatBoost's classes are not its estimators
    X, y, _, _ = data
    CatBoostClassifier(iterations=2, **QUIET).fit(X, y)
    assert only_run().data.tags["mlflow.autologging"] == "catboost"


@pytest.mark.slow
def test_model_round_trip_in_a_fresh_process():
    result = assert_roundtrip_in_fresh_process(
        """
        import numpy as np
        from catboost import CatBoostRegressor
        X = np.random.RandomState(0).rand(60, 3)
        model = CatBoostRegressor(iterations=5, verbose=0, thread_count=1,
                                  allow_writing_files=False).fit(X, X[:, 0])
        """,
        "model.predict(X)",
        expected_flavor="catboost",
    )
    assert result.metadata["files"][0] == "model.cbm"
