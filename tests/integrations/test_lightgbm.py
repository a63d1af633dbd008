"""LightGBM autologging: native train/cv and the scikit-learn API, read back from the store."""

from __future__ import annotations

import pickle
import warnings

import lightgbm as lgb
import numpy as np
import pytest

import autolog
from autolog.integrations.lightgbm import LightGBMMetricsCallback
from tests.integrations.runs import (
    artifact_json,
    artifact_names,
    framework_metrics,
    history,
    only_run,
)
from tests.models_roundtrip import assert_roundtrip_in_fresh_process

PARAMS = {"objective": "binary", "num_threads": 1, "verbose": -1, "num_leaves": 4, "seed": 0}


@pytest.fixture(autouse=True)
def _quiet_eval_set_deprecation():
    # LightGBM 4.7 deprecates fit(eval_set=...) for eval_X/eval_y; we test the
    # argument every supported version has.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*eval_set.*deprecated", category=Warning)
        yield


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(300, 4)
    y = (X[:, 0] + 0.3 * rng.rand(300) > 0.6).astype(int)
    return X[:200], y[:200], X[200:], y[200:]


@pytest.fixture
def datasets(data):
    X, y, Xv, yv = data
    train = lgb.Dataset(X, y)
    return train, lgb.Dataset(Xv, yv, reference=train)


def test_train_logs_params_metrics_importance_and_model(data, datasets):
    autolog.autolog("lightgbm")
    train, valid = datasets
    booster = lgb.train(
        {**PARAMS, "metric": ["binary_logloss", "auc"]},
        train,
        num_boost_round=6,
        valid_sets=[train, valid],
        valid_names=["train", "valid"],
    )
    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "lightgbm"
    params = run.data.params
    assert params["num_leaves"] == "4"
    assert params["metric"] == "['binary_logloss', 'auc']"
    assert params["num_boost_round"] == "6"
    assert params["valid_names"] == "['train', 'valid']"
    assert not {"train_set", "valid_sets", "callbacks"} & set(params)
    for key in ("train-binary_logloss", "train-auc", "valid-binary_logloss", "valid-auc"):
        assert [step for step, _ in history(run, key)] == list(range(6))
    assert "best_iteration" not in run.data.metrics  # no early stopping
    importance = artifact_json(run, "feature_importance.json")
    assert set(importance) == {"split", "gain"}
    split = dict(zip(booster.feature_name(), booster.feature_importance("split").tolist()))
    assert importance["split"] == pytest.approx(split)
    model = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert isinstance(model, lgb.Booster)
    np.testing.assert_array_equal(model.predict(data[2]), booster.predict(data[2]))


def test_default_validation_names(datasets):
    autolog.autolog("lightgbm")
    lgb.train({**PARAMS, "metric": "auc"}, datasets[0], 3, valid_sets=[datasets[1]])
    assert len(history(only_run(), "valid_0-auc")) == 3  # LightGBM's own name


def test_train_without_validation_logs_no_metrics(datasets):
    autolog.autolog("lightgbm")
    lgb.train(PARAMS, datasets[0], num_boost_round=3)
    run = only_run()
    assert framework_metrics(run) == {}
    assert artifact_names(run) - {"provenance"} == {"feature_importance.json", "model"}


def test_early_stopping_summary_and_user_callbacks(data, datasets):
    autolog.autolog("lightgbm")
    train, valid = datasets
    recorded = {}
    callbacks = [lgb.early_stopping(3, verbose=False), lgb.record_evaluation(recorded)]
    original = list(callbacks)
    booster = lgb.train(
        {**PARAMS, "learning_rate": 0.5, "num_leaves": 31, "min_data_in_leaf": 1},
        train,
        num_boost_round=300,
        valid_sets=[valid],
        callbacks=callbacks,
    )
    assert callbacks == original  # same list, same objects, nothing added
    run = only_run()
    steps = [step for step, _ in history(run, "valid_0-binary_logloss")]
    assert len(steps) == len(recorded["valid_0"]["binary_logloss"]) < 300
    metrics = run.data.metrics
    assert metrics["stopped_iteration"] == steps[-1]
    assert metrics["best_iteration"] == booster.best_iteration - 1  # a step: 0-based
    assert metrics["best_score"] == pytest.approx(booster.best_score["valid_0"]["binary_logloss"])
    assert run.data.params["early_stopping_patience"] == "3"
    assert run.data.params["early_stopping_monitor"] == "valid_0-binary_logloss"
    # the model keeps the best iteration: the same predictions after loading
    model = autolog.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(model.predict(data[2]), booster.predict(data[2]))


@pytest.mark.parametrize("configured_by", ["callback", "params"])
@pytest.mark.parametrize("first_only", [False, True])
def test_early_stopping_names_the_metric_that_stopped_it(datasets, configured_by, first_only):
    """Two metrics: AUC stops improving first while the log loss, listed first, still
    improves. LightGBM stops on AUC (on the log loss with ``first_metric_only``)."""
    autolog.autolog("lightgbm")
    train, valid = datasets
    params = {**PARAMS, "metric": ["binary_logloss", "auc"], "learning_rate": 0.05}
    callbacks = []
    if configured_by == "params":
        params.update(early_stopping_round=5, first_metric_only=first_only)
    else:
        callbacks.append(lgb.early_stopping(5, first_only, verbose=False))
    booster = lgb.train(params, train, 500, valid_sets=[valid], callbacks=callbacks)

    run = only_run()
    auc, logloss = history(run, "valid_0-auc"), history(run, "valid_0-binary_logloss")
    if first_only:
        monitor, watched, best_step = "valid_0-binary_logloss", logloss, min(logloss, key=_value)[0]
    else:
        monitor, watched, best_step = "valid_0-auc", auc, max(auc, key=_value)[0]
        # the log loss (the first metric) had not stopped improving
        assert min(logloss, key=_value)[0] == logloss[-1][0] > best_step
    metrics = run.data.metrics
    assert run.data.params["early_stopping_monitor"] == monitor
    assert run.data.params["early_stopping_patience"] == "5"
    assert metrics["best_iteration"] == best_step == booster.best_iteration - 1
    assert metrics["best_score"] == pytest.approx(dict(watched)[best_step])
    assert metrics["stopped_iteration"] == watched[-1][0]
    assert watched[-1][0] - best_step == 5 or watched[-1][0] == 499


def _value(point):
    return point[1]


def test_cv_logs_mean_and_std_per_round(data):
    autolog.autolog("lightgbm")
    X, y, _, _ = data
    results = lgb.cv(PARAMS, lgb.Dataset(X, y), num_boost_round=4, nfold=3)
    run = only_run()
    assert run.data.params["nfold"] == "3"
    means = [v for _, v in history(run, "valid-binary_logloss-mean")]
    stds = [v for _, v in history(run, "valid-binary_logloss-std")]
    assert means == pytest.approx(results["valid binary_logloss-mean"])
    assert stds == pytest.approx(results["valid binary_logloss-stdv"])
    assert "model" not in artifact_names(run)


def test_cv_early_stopping(data):
    autolog.autolog("lightgbm")
    X, y, _, _ = data
    results = lgb.cv(
        {**PARAMS, "learning_rate": 0.5, "num_leaves": 31, "min_data_in_leaf": 1},
        lgb.Dataset(X, y),
        num_boost_round=300,
        nfold=3,
        callbacks=[lgb.early_stopping(2, verbose=False)],
    )
    metrics = only_run().data.metrics
    rounds = len(results["valid binary_logloss-mean"])
    assert metrics["best_iteration"] == rounds - 1  # the step of the last row cv keeps
    assert metrics["best_score"] == pytest.approx(results["valid binary_logloss-mean"][-1])
    assert metrics["stopped_iteration"] == rounds - 1 + 2


@pytest.mark.parametrize("estimator_class", [lgb.LGBMClassifier, lgb.LGBMRegressor])
def test_sklearn_api_one_run_with_get_params_and_eval_metrics(data, estimator_class):
    autolog.autolog("lightgbm")
    X, y, Xv, yv = data
    callbacks = [lgb.log_evaluation(period=0)]
    original = list(callbacks)
    model = estimator_class(n_estimators=5, num_leaves=4, n_jobs=1, verbose=-1)
    model.fit(X, y, eval_set=[(Xv, yv)], eval_metric="l1", callbacks=callbacks)
    assert callbacks == original
    run = only_run()  # fit calls lightgbm's train inside: still one run
    assert run.data.params["n_estimators"] == "5"
    assert run.data.params["eval_metric"] == "l1"
    for metric, values in model.evals_result_["valid_0"].items():
        assert [v for _, v in history(run, f"valid_0-{metric}")] == pytest.approx(values)
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded) is estimator_class
    np.testing.assert_array_equal(loaded.predict(Xv), model.predict(Xv))


def test_sklearn_api_early_stopping(data):
    autolog.autolog("lightgbm")
    X, y, Xv, yv = data
    model = lgb.LGBMClassifier(
        n_estimators=300, learning_rate=0.5, min_child_samples=1, n_jobs=1, verbose=-1
    )
    model.fit(X, y, eval_set=[(Xv, yv)], callbacks=[lgb.early_stopping(3, verbose=False)])
    metrics = only_run().data.metrics
    assert metrics["best_iteration"] == model.best_iteration_ - 1
    assert metrics["stopped_iteration"] == len(model.evals_result_["valid_0"]["binary_logloss"]) - 1


def test_sklearn_api_without_eval_set(data):
    autolog.autolog("lightgbm")
    X, y, _, _ = data
    lgb.LGBMRanker(n_estimators=3, n_jobs=1, verbose=-1).fit(X, y, group=[20] * 10)
    run = only_run()
    assert framework_metrics(run) == {}
    assert run.data.params["n_estimators"] == "3"


@pytest.mark.parametrize("order", ["sklearn first", "lightgbm first"])
def test_one_run_with_the_sklearn_integration_enabled(data, order):
    names = ["sklearn", "lightgbm"] if order == "sklearn first" else ["lightgbm", "sklearn"]
    for name in names:
        autolog.autolog(name)
    X, y, Xv, yv = data
    lgb.LGBMClassifier(n_estimators=3, n_jobs=1, verbose=-1).fit(X, y, eval_set=[(Xv, yv)])
    run = only_run()
    assert run.data.tags["mlflow.autologging"] == "lightgbm"
    assert len(history(run, "valid_0-binary_logloss")) == 3


def test_feature_importance_plot_only_when_asked(datasets):
    autolog.autolog("lightgbm", log_feature_importance_plot=True)
    lgb.train(PARAMS, datasets[0], 2)
    assert "feature_importance.png" in artifact_names(only_run())


def test_callback_is_picklable_and_runs_before_early_stopping():
    callback = LightGBMMetricsCallback("0" * 32)
    copy = pickle.loads(pickle.dumps(callback))
    assert copy.logger.run_id == "0" * 32
    assert copy.order < lgb.early_stopping(1).order


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "predict"),
    [
        (
            """
            import numpy as np, lightgbm as lgb
            X = np.random.RandomState(0).rand(80, 3)
            y = np.where(X[:, 0] > 0.5, "yes", "no")
            model = lgb.LGBMClassifier(n_estimators=4, n_jobs=1, verbose=-1).fit(X, y)
            """,
            "(type(model).__name__, model.predict(X), model.predict_proba(X))",
        ),
        (
            """
            import numpy as np, lightgbm as lgb
            X = np.random.RandomState(0).rand(80, 3)
            model = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(X, X[:, 0]), 4)
            """,
            "model.predict(X)",
        ),
    ],
    ids=["sklearn-api", "booster"],
)
def test_model_round_trip_in_a_fresh_process(script, predict):
    result = assert_roundtrip_in_fresh_process(script, predict, expected_flavor="lightgbm")
    assert "model.txt" in result.metadata["files"]


def test_a_booster_that_trains_no_more_is_written_by_the_writer_thread(datasets):
    # What lightgbm.train returns by default was reloaded from its own text and
    # freed of its data: its text is made later, on the writer thread; a booster
    # kept for training (keep_training_booster=True) is saved at once.
    from autolog.integrations.lightgbm import LightGBMFlavor

    train, valid = datasets
    finished = lgb.train(PARAMS, train, 5)
    kept = lgb.train(PARAMS, train, 5, keep_training_booster=True)
    later = LightGBMFlavor().snapshot(finished)
    assert list(later.deferred) == ["model.txt"] and not later.files
    assert later.deferred["model.txt"]() == finished.model_to_string().encode()
    now = LightGBMFlavor().snapshot(kept)
    assert list(now.files) == ["model.txt"] and not now.deferred
    kept.update()  # trained on: the snapshot taken before does not change
    assert now.files["model.txt"] != kept.model_to_string().encode()

    autolog.autolog("lightgbm")
    booster = lgb.train(PARAMS, train, 5, valid_sets=[valid])
    autolog.flush()
    loaded = autolog.load_model(f"runs:/{only_run().info.run_id}/model")
    X = np.random.RandomState(1).rand(10, 4)
    np.testing.assert_allclose(loaded.predict(X), booster.predict(X))
