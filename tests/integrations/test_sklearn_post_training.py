"""scikit-learn autologging after the fit: post-training metrics, picklable metric
functions, cross-validation helpers, the flavor in a fresh process, and the
estimators that XGBoost's integration owns."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import cloudpickle
import numpy as np
import pytest
import sklearn.metrics
from sklearn import metrics, model_selection
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score  # bound before autolog(): originals

import autolog
from tests.integrations.runs import framework_metrics, history, only_run
from tests.models_roundtrip import assert_roundtrip_in_fresh_process


@pytest.fixture
def split():
    rng = np.random.RandomState(0)
    X = rng.rand(160, 4)
    y = (X[:, 0] + 0.5 * rng.rand(160) > 0.7).astype(int)
    return X[:120], y[:120], X[120:], y[120:]


def test_metrics_on_predictions_go_to_the_model_run(split):
    autolog.autolog("sklearn")
    X_train, y_train, X_test, y_test = split
    model = LogisticRegression().fit(X_train, y_train)
    y_pred = model.predict(X_test)
    accuracy = metrics.accuracy_score(y_test, y_pred)
    again = metrics.accuracy_score(y_test, model.predict(X_test))  # a repeat: "-2"
    weighted = metrics.f1_score(y_test, y_pred, average="weighted")
    auc = metrics.roc_auc_score(
        y_test, model.predict_proba(X_test)[:, 1]
    )  # a slice of the prediction
    score = model.score(X_test, y_test)
    metrics.accuracy_score(y_test, y_test)  # not a prediction: not logged
    got = framework_metrics(only_run())
    assert got["accuracy_score_X_test"] == pytest.approx(accuracy)
    assert got["accuracy_score_X_test-2"] == pytest.approx(again)
    assert got["f1_score_X_test"] == pytest.approx(weighted)
    assert got["roc_auc_score_X_test"] == pytest.approx(auc)
    assert got["LogisticRegression_score_X_test"] == pytest.approx(score)
    post = {k for k in got if not k.startswith("training_")}
    assert post == {
        "accuracy_score_X_test",
        "accuracy_score_X_test-2",
        "f1_score_X_test",
        "roc_auc_score_X_test",
        "LogisticRegression_score_X_test",
    }


def test_metric_of_each_model_goes_to_its_own_run(split):
    autolog.autolog("sklearn")
    X_train, y_train, X_test, y_test = split
    first = LogisticRegression(C=0.1).fit(X_train, y_train)
    second = LinearRegression().fit(X_train, y_train)
    metrics.r2_score(y_test, second.predict(X_test))
    metrics.accuracy_score(y_test, first.predict(X_test))
    by_name = {
        r.data.tags["estimator_name"]: r.data.metrics for r in autolog.Client().search_runs(["0"])
    }
    assert "r2_score_X_test" in by_name["LinearRegression"]
    assert "accuracy_score_X_test" not in by_name["LinearRegression"]
    assert "accuracy_score_X_test" in by_name["LogisticRegression"]


def test_pipeline_predictions_are_tracked(split):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    autolog.autolog("sklearn")
    X_train, y_train, X_test, y_test = split
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_train, y_train)
    predictions = pipeline.predict(X_test)
    value = metrics.balanced_accuracy_score(y_test, predictions)
    score = pipeline.score(X_test, y_test)
    got = framework_metrics(only_run())
    assert got["balanced_accuracy_score_X_test"] == pytest.approx(value)
    assert got["Pipeline_score_X_test"] == pytest.approx(score)


def test_unknown_dataset_name_and_cluster_labels(split):
    autolog.autolog("sklearn")
    X_train, y_train, _, _ = split
    labels = KMeans(n_clusters=2, n_init=2, random_state=0).fit_predict(X_train)
    value = metrics.adjusted_rand_score(y_train, labels)
    model = LogisticRegression().fit(X_train, y_train)
    metrics.accuracy_score(
        y_train[:10], model.predict(X_train[:10])
    )  # an expression: no variable name
    kmeans, logistic = sorted(autolog.Client().search_runs(["0"]), key=lambda r: r.info.start_time)
    assert kmeans.data.metrics["adjusted_rand_score_X_train"] == pytest.approx(value)
    assert "accuracy_score_unknown_dataset" in logistic.data.metrics


def test_post_training_metrics_can_be_turned_off(split):
    autolog.autolog("sklearn", log_post_training_metrics=False)
    X_train, y_train, X_test, y_test = split
    model = LogisticRegression().fit(X_train, y_train)
    metrics.accuracy_score(y_test, model.predict(X_test))
    model.score(X_test, y_test)
    assert all(k.startswith("training_") for k in framework_metrics(only_run()))


def test_names_bound_before_autolog_keep_the_original_and_log_nothing(split):
    autolog.autolog("sklearn")
    X_train, y_train, X_test, y_test = split
    model = LogisticRegression().fit(X_train, y_train)
    # these originals fit sklearn's own helpers (LabelEncoder...) inside: no runs for those
    value = accuracy_score(y_test, model.predict(X_test))
    roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    run = only_run()
    assert value == metrics.accuracy_score(y_test, model.predict(X_test))
    assert not any(k.startswith("accuracy_score_X_test") for k in run.data.metrics if "-" in k)


def test_sklearn_internal_calls_log_nothing(split):
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import learning_curve

    autolog.autolog("sklearn")
    X_train, y_train, X_test, y_test = split
    model = LogisticRegression().fit(X_train, y_train)
    permutation_importance(model, X_test, y_test, n_repeats=2, random_state=0)  # scores inside
    learning_curve(LogisticRegression(), X_train, y_train, cv=2, train_sizes=[0.5, 1.0])
    run = only_run()  # learning_curve's clones: fitted by sklearn, no runs
    assert all(k.startswith("training_") for k in framework_metrics(run))


def test_metric_functions_stay_picklable_and_identical(split):
    original = sklearn.metrics.r2_score
    expected = pickle.dumps(original)
    autolog.autolog("sklearn")
    wrapped = sklearn.metrics.r2_score
    assert wrapped is not original  # patched where users take it from
    data = pickle.dumps(wrapped)
    assert b"autolog" not in data  # loads where autolog is not installed
    assert pickle.loads(data) is original
    assert pickle.dumps(sklearn.metrics.accuracy_score) == pickle.dumps(
        sklearn.metrics._classification.accuracy_score
    ) or pickle.loads(pickle.dumps(sklearn.metrics.accuracy_score)) is (
        sklearn.metrics._classification.accuracy_score
    )
    assert copy.deepcopy(wrapped) is wrapped and copy.copy(wrapped) is wrapped
    y_true, y_pred = [1.0, 2.0, 3.0], [1.0, 2.5, 2.0]
    assert cloudpickle.loads(cloudpickle.dumps(wrapped))(y_true, y_pred) == original(y_true, y_pred)
    assert wrapped(y_true, y_pred) == original(y_true, y_pred)
    assert wrapped.__name__ == "r2_score" and wrapped.__doc__ == original.__doc__
    with pytest.raises(ValueError):  # the user's errors are the function's own
        wrapped([1.0], [1.0, 2.0])
    # the bytes load in a fresh interpreter that never imports autolog
    code = "import pickle, sys; f = pickle.loads(sys.stdin.buffer.read()); print(f([1, 2], [1, 2]))"
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True, timeout=120
    )
    assert out.stdout.strip() == b"1.0"
    autolog.autolog("sklearn", disable=True)
    assert sklearn.metrics.r2_score is original
    assert pickle.dumps(sklearn.metrics.r2_score) == expected


def test_cross_validate_gives_one_run_with_folds_and_summary(split):
    autolog.autolog("sklearn")
    X, y, _, _ = split
    result = model_selection.cross_validate(
        LogisticRegression(C=0.3), X, y, cv=4, scoring=["accuracy", "f1"]
    )
    run = only_run()  # not one per fold
    assert run.data.tags["estimator_name"] == "LogisticRegression"
    assert run.data.params["C"] == "0.3"
    assert run.data.params["cross_validation_cv"] == "4"
    folds = history(run, "test_accuracy")
    assert [step for step, _ in folds] == [0, 1, 2, 3]
    assert [value for _, value in folds] == pytest.approx(result["test_accuracy"])
    got = framework_metrics(run)
    assert got["test_f1_mean"] == pytest.approx(result["test_f1"].mean())
    assert got["test_f1_std"] == pytest.approx(result["test_f1"].std())
    assert {"fit_time_mean", "score_time_mean"} <= set(got)


def test_cross_val_score_and_predict(split):
    autolog.autolog("sklearn")
    X, y, _, _ = split
    scores = model_selection.cross_val_score(LogisticRegression(), X, y, cv=3)
    predicted = model_selection.cross_val_predict(LogisticRegression(), X, y, cv=3)
    score_run, predict_run = sorted(
        autolog.Client().search_runs(["0"]), key=lambda r: r.info.start_time
    )
    assert [v for _, v in history(score_run, "test_score")] == pytest.approx(scores)
    assert score_run.data.metrics["test_score_mean"] == pytest.approx(scores.mean())
    assert predict_run.data.metrics["cv_accuracy_score"] == pytest.approx(
        metrics.accuracy_score(y, predicted)
    )


def test_flavor_round_trip_in_a_fresh_process():
    result = assert_roundtrip_in_fresh_process(
        """
        import numpy as np
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.linear_model import LogisticRegression
        X = np.random.RandomState(0).rand(40, 3)
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, X[:, 0] > 0.5)
        """,
        predict="model.predict_proba(X)",
        expected_flavor="sklearn",
    )
    assert result.metadata["framework"]["distribution"] == "scikit-learn"
    assert result.loaded_type == "Pipeline"


def test_user_subclass_from_a_script_loads_in_a_fresh_process():
    result = assert_roundtrip_in_fresh_process(
        """
        import numpy as np
        from sklearn.linear_model import Ridge

        class ShiftedRidge(Ridge):  # lives in the script's __main__ only
            def predict(self, X):
                return super().predict(X) + 1.0

        X = np.random.RandomState(0).rand(40, 3)
        model = ShiftedRidge(alpha=0.5).fit(X, X[:, 0])
        """,
        predict="model.predict(X)",
        expected_flavor="sklearn",
    )
    assert result.loaded_type == "ShiftedRidge"


def test_skops_round_trip_in_a_fresh_process():
    result = assert_roundtrip_in_fresh_process(
        """
        import numpy as np
        from sklearn.ensemble import RandomForestRegressor
        X = np.random.RandomState(0).rand(40, 3)
        model = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, X[:, 0])
        """,
        predict="model.predict(X)",
        expected_flavor="sklearn",
        log_args='serialization_format="skops"',
    )
    assert result.metadata["flavor_metadata"]["serialization"] == "skops"


def test_xgboost_estimators_belong_to_the_xgboost_integration_when_it_is_on(split):
    xgb = pytest.importorskip("xgboost")
    X, y, _, _ = split
    autolog.autolog("sklearn", "xgboost")
    xgb.XGBClassifier(n_estimators=3, max_depth=2, nthread=1).fit(X, y)
    assert only_run().data.tags["mlflow.autologging"] == "xgboost"


def test_xgboost_estimators_are_sklearn_estimators_when_it_is_off(split):
    xgb = pytest.importorskip("xgboost")
    X, y, _, _ = split
    autolog.autolog("sklearn")
    xgb.XGBClassifier(n_estimators=3, max_depth=2, nthread=1).fit(X, y)
    run = only_run()
    assert run.data.tags["mlflow.autologging"] == "sklearn"
    assert run.data.tags["estimator_name"] == "XGBClassifier"
    assert "training_accuracy_score" in run.data.metrics
    autolog.autolog("xgboost")  # turned on later: it takes the estimator over
    xgb.XGBRegressor(n_estimators=2, nthread=1).fit(X, y)
    newest = max(autolog.Client().search_runs(["0"]), key=lambda r: r.info.start_time)
    assert newest.data.tags["mlflow.autologging"] == "xgboost"


NOTEBOOK = """
from sklearn import metrics
from sklearn.linear_model import LogisticRegression

model = LogisticRegression().fit(X_train, y_train)


def evaluate():  # reads the notebook's globals: nothing is a local here
    return metrics.accuracy_score(y_test, model.predict(X_test)), model.score(X_test, y_test)


accuracy, score = evaluate()
"""


def test_a_metric_in_a_function_reading_module_data_is_named_after_the_global(split):
    autolog.autolog("sklearn")
    X_train, y_train, X_test, y_test = split
    notebook = {"__name__": "__main__", "X_train": X_train, "y_train": y_train}
    notebook.update(X_test=X_test, y_test=y_test)
    exec(NOTEBOOK, notebook)
    got = framework_metrics(only_run())
    assert got["accuracy_score_X_test"] == pytest.approx(notebook["accuracy"])
    assert got["LogisticRegression_score_X_test"] == pytest.approx(notebook["score"])
    assert not [k for k in got if "unknown_dataset" in k]


def test_sklearns_state_lives_on_the_integration_and_disabling_forgets_it(split):
    autolog.autolog("sklearn")
    X_train, y_train, X_test, _ = split
    model = LogisticRegression().fit(X_train, y_train)
    y_pred = model.predict(X_test)  # kept: predictions are remembered weakly
    integration = autolog.integration._registry.states["sklearn"].integration
    memory = integration.post_training
    assert memory.run_of(model) is not None and memory.source(y_pred) is not None
    autolog.autolog("sklearn", disable=True)
    autolog.autolog("sklearn")
    assert integration.post_training is not memory
    assert integration.post_training.run_of(model) is None  # forgotten with the disable
