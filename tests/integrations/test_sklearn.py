"""scikit-learn autologging over a real range of estimators, read back from the store.

Each test enables the integration, fits something tiny and asserts what the
store holds: exactly one run per outer call (plus a search's children), its
params, metrics (checked against ``sklearn.metrics``), tags and a model that
loads and predicts the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

import autolog
from autolog.provenance.datasets import dataset_records
from tests.integrations.runs import artifact_names, framework_metrics, only_run

CLASSIFIER_METRICS = {
    "training_accuracy_score",
    "training_precision_score",
    "training_recall_score",
    "training_f1_score",
    "training_score",
}
PROBA_METRICS = {"training_log_loss", "training_roc_auc"}
REGRESSOR_METRICS = {
    "training_mean_squared_error",
    "training_root_mean_squared_error",
    "training_mean_absolute_error",
    "training_r2_score",
    "training_score",
}


@pytest.fixture
def classification():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 4)
    y = (X[:, 0] + 0.5 * rng.rand(120) > 0.7).astype(int)
    return X, y


@pytest.fixture
def multiclass():
    rng = np.random.RandomState(1)
    X = rng.rand(150, 4)
    y = np.digitize(X[:, 0] + 0.3 * rng.rand(150), [0.45, 0.85])
    return X, y


@pytest.fixture
def regression():
    rng = np.random.RandomState(2)
    X = rng.rand(100, 3)
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.rand(100)
    return X, y


def runs() -> list:
    return list(autolog.Client().search_runs(["0"]))


def loaded(run):
    return autolog.load_model(f"runs:/{run.info.run_id}/model")


def assert_tags(run, estimator) -> None:
    tags = run.data.tags
    assert tags["mlflow.autologging"] == "sklearn"
    assert tags["estimator_name"] == type(estimator).__name__
    assert tags["estimator_class"] == f"{type(estimator).__module__}.{type(estimator).__qualname__}"


def test_logistic_regression_logs_params_metrics_tags_dataset_and_model(classification):
    autolog.autolog("sklearn")
    X, y = classification
    model = LogisticRegression(C=0.5, max_iter=200).fit(X, y)
    run = only_run()
    assert run.info.status == "FINISHED"
    assert_tags(run, model)
    assert run.data.params["C"] == "0.5"
    assert run.data.params["max_iter"] == "200"
    assert run.data.params["class_weight"] == "None"
    got = framework_metrics(run)
    assert set(got) == CLASSIFIER_METRICS | PROBA_METRICS
    predicted, proba = model.predict(X), model.predict_proba(X)
    assert got["training_accuracy_score"] == pytest.approx(metrics.accuracy_score(y, predicted))
    assert got["training_f1_score"] == pytest.approx(
        metrics.f1_score(y, predicted, average="weighted")
    )
    assert got["training_precision_score"] == pytest.approx(
        metrics.precision_score(y, predicted, average="weighted")
    )
    assert got["training_recall_score"] == pytest.approx(
        metrics.recall_score(y, predicted, average="weighted")
    )
    assert got["training_log_loss"] == pytest.approx(metrics.log_loss(y, proba))
    assert got["training_roc_auc"] == pytest.approx(metrics.roc_auc_score(y, proba[:, 1]))
    assert got["training_score"] == pytest.approx(model.score(X, y))
    tags = run.data.tags
    assert tags["dataset_shape"] == "120x4"
    assert tags["dataset_dtype"] == "float64"
    [record] = [r for r in dataset_records(tags) if r["name"] == "X"]  # digested once, there
    assert "dataset_digest" not in tags
    found = autolog.search_runs(filter_string=f"datasets.digest = '{record['digest']}'")
    assert [r.info.run_id for r in found] == [run.info.run_id]
    assert {"model/model.json", "model/model.pkl"} <= {
        f.path for f in autolog.Client().list_artifacts(run.info.run_id, "model")
    }
    np.testing.assert_array_equal(loaded(run).predict_proba(X), proba)
    info = autolog.models.read_model_metadata(f"runs:/{run.info.run_id}/model")
    assert info["signature"]["inputs"][0]["shape"] == [-1, 4]


class _CountingForest(RandomForestClassifier):
    """A forest that counts its predict_proba calls (RandomForestClassifier.predict
    makes one itself)."""

    def predict_proba(self, X):
        type(self).proba_calls += 1
        return super().predict_proba(X)


def test_a_forests_training_metrics_take_predict_probas_own_call_once(multiclass):
    """predict derives its classes from self.predict_proba(X): the training
    metrics keep that result instead of predicting a second time, with the
    same values, and leave nothing on the model."""
    autolog.autolog("sklearn")
    X, y = multiclass
    _CountingForest.proba_calls = 0
    model = _CountingForest(n_estimators=5, random_state=0).fit(X, y)
    assert _CountingForest.proba_calls == 1  # without the reuse: 2 (predict's, then ours)
    assert "predict_proba" not in vars(model)
    got = framework_metrics(only_run())
    assert set(got) == CLASSIFIER_METRICS | PROBA_METRICS
    predicted, proba = model.predict(X), model.predict_proba(X)
    assert got["training_accuracy_score"] == pytest.approx(metrics.accuracy_score(y, predicted))
    assert got["training_log_loss"] == pytest.approx(metrics.log_loss(y, proba))
    assert got["training_roc_auc"] == pytest.approx(
        metrics.roc_auc_score(y, proba, multi_class="ovr", average="weighted")
    )


def test_predict_with_proba_leaves_a_users_instance_attribute_and_other_calls_alone(
    multiclass,
):
    from autolog.integrations.sklearn_fit import _predict_with_proba

    X, y = multiclass
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    expected = forest.predict_proba(X)
    calls = []

    def users(data):  # the user's own instance attribute: called, never replaced
        calls.append(data)
        return RandomForestClassifier.predict_proba(forest, data)

    forest.predict_proba = users
    prediction, proba = _predict_with_proba(forest, X)
    assert forest.predict_proba is users
    assert len(calls) == 2  # predict's call and the second one: nothing kept
    np.testing.assert_array_equal(proba, expected)
    np.testing.assert_array_equal(prediction, forest.predict(X))
    del forest.predict_proba

    class Other(RandomForestClassifier):  # predict_proba on other data inside predict
        def predict(self, X):
            self.predict_proba(X[:2])
            return super().predict(X)

    other = Other(n_estimators=3, random_state=0).fit(X, y)
    prediction, proba = _predict_with_proba(other, X)
    assert proba.shape == (len(X), 3)  # the call on X, not the one on X[:2]
    np.testing.assert_array_equal(proba, expected)
    assert "predict_proba" not in vars(other)

    class Rounding(RandomForestClassifier):  # changes the probabilities in place
        def predict(self, X):
            proba = self.predict_proba(X)
            proba[:] = proba.round()
            return self.classes_.take(proba.argmax(axis=1))

    rounding = Rounding(n_estimators=3, random_state=0).fit(X, y)
    _, proba = _predict_with_proba(rounding, X)
    np.testing.assert_array_equal(proba, expected)  # what predict_proba returned


def test_dataset_shape_and_dtype_tags_of_arrays_and_frames(classification):
    from autolog.integrations.sklearn_fit import dataset_tags

    X, _ = classification
    assert dataset_tags(X) == {"dataset_shape": "120x4", "dataset_dtype": "float64"}
    assert dataset_tags([[1, 2], [3, 4], [5, 6]]) == {"dataset_shape": "3", "dataset_dtype": "list"}
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    # pandas 3 names string columns "str", pandas 2 "object"
    assert dataset_tags(frame)["dataset_dtype"] == f"int64,{frame.dtypes['b']}"
    assert dataset_tags(frame)["dataset_shape"] == "3x2"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: DecisionTreeClassifier(max_depth=3, random_state=0), PROBA_METRICS),
        (lambda: RandomForestClassifier(n_estimators=5, random_state=0), PROBA_METRICS),
        (lambda: KNeighborsClassifier(n_neighbors=3), PROBA_METRICS),
        (lambda: SVC(), set()),  # no predict_proba without probability=True
    ],
    ids=["tree", "ensemble", "neighbours", "svm"],
)
def test_classifiers_multiclass(multiclass, make, expected):
    autolog.autolog("sklearn")
    X, y = multiclass
    model = make().fit(X, y)
    run = only_run()
    assert_tags(run, model)
    assert set(framework_metrics(run)) == CLASSIFIER_METRICS | expected
    predicted = model.predict(X)
    assert run.data.metrics["training_f1_score"] == pytest.approx(
        metrics.f1_score(y, predicted, average="weighted")
    )
    if expected:
        ovr = metrics.roc_auc_score(
            y, model.predict_proba(X), multi_class="ovr", average="weighted"
        )
        assert run.data.metrics["training_roc_auc"] == pytest.approx(ovr)
    np.testing.assert_array_equal(loaded(run).predict(X), predicted)


@pytest.mark.parametrize(
    "make",
    [lambda: LinearRegression(), lambda: RandomForestRegressor(n_estimators=5, random_state=0)],
    ids=["linear", "ensemble"],
)
def test_regressors_with_sample_weight(regression, make):
    autolog.autolog("sklearn")
    X, y = regression
    weight = np.linspace(0.5, 2.0, len(y))
    model = make().fit(X, y, sample_weight=weight)
    run = only_run()
    assert_tags(run, model)
    got = framework_metrics(run)
    assert set(got) == REGRESSOR_METRICS
    p = model.predict(X)
    w = {"sample_weight": weight}
    assert got["training_mean_squared_error"] == pytest.approx(
        metrics.mean_squared_error(y, p, **w)
    )
    assert got["training_root_mean_squared_error"] == pytest.approx(
        metrics.root_mean_squared_error(y, p, **w)
    )
    assert got["training_mean_absolute_error"] == pytest.approx(
        metrics.mean_absolute_error(y, p, **w)
    )
    assert got["training_r2_score"] == pytest.approx(metrics.r2_score(y, p, **w))
    assert got["training_score"] == pytest.approx(model.score(X, y, **w))
    np.testing.assert_allclose(loaded(run).predict(X), p)


def test_classifier_sample_weight_and_pos_label(classification):
    autolog.autolog("sklearn", pos_label=1)
    X, y = classification
    weight = np.where(y == 1, 3.0, 1.0)
    model = LogisticRegression().fit(X, y, sample_weight=weight)
    got = framework_metrics(only_run())
    p = model.predict(X)
    w = {"sample_weight": weight}
    assert got["training_f1_score"] == pytest.approx(metrics.f1_score(y, p, pos_label=1, **w))
    assert got["training_recall_score"] == pytest.approx(metrics.recall_score(y, p, **w))
    assert got["training_accuracy_score"] == pytest.approx(metrics.accuracy_score(y, p, **w))
    assert got["training_log_loss"] == pytest.approx(
        metrics.log_loss(y, model.predict_proba(X), **w)
    )


def test_clusterer_and_transformer_log_params_and_model_only(classification):
    autolog.autolog("sklearn")
    X, _ = classification
    KMeans(n_clusters=3, n_init=2, random_state=0).fit_predict(X)
    StandardScaler(with_mean=False).fit_transform(X)
    kmeans, scaler = sorted(runs(), key=lambda r: r.info.start_time)
    assert kmeans.data.tags["estimator_name"] == "KMeans"
    assert kmeans.data.params["n_clusters"] == "3"
    assert framework_metrics(kmeans) == {}
    assert loaded(kmeans).n_clusters == 3
    assert scaler.data.tags["estimator_name"] == "StandardScaler"
    assert scaler.data.params["with_mean"] == "False"
    assert framework_metrics(scaler) == {}
    np.testing.assert_allclose(loaded(scaler).transform(X), X / X.std(axis=0))


def test_pipeline_with_column_transformer_on_a_data_frame_gives_one_run():
    autolog.autolog("sklearn")
    rng = np.random.RandomState(3)
    frame = pd.DataFrame(
        {"age": rng.rand(80) * 50, "income": rng.rand(80), "city": rng.choice(["a", "b"], 80)}
    )
    y = (frame["age"] > 25).astype(int)
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["age", "income"]),
                        ("cat", OneHotEncoder(), ["city"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(C=2.0)),
        ]
    ).fit(frame, y)
    run = only_run()  # the steps' nested fits log nothing of their own
    assert_tags(run, pipeline)
    params = run.data.params
    assert params["clf__C"] == "2.0"
    assert params["prep__num__with_mean"] == "True"
    assert params["clf"] == "LogisticRegression"
    assert params["steps"] == "[('prep', ColumnTransformer), ('clf', LogisticRegression)]"
    assert set(framework_metrics(run)) == CLASSIFIER_METRICS | PROBA_METRICS
    assert run.data.metrics["training_score"] == pytest.approx(pipeline.score(frame, y))
    assert run.data.tags["dataset_shape"] == "80x3"
    np.testing.assert_array_equal(loaded(run).predict(frame), pipeline.predict(frame))
    info = autolog.models.read_model_metadata(f"runs:/{run.info.run_id}/model")
    assert [spec["name"] for spec in info["signature"]["inputs"]] == ["age", "income", "city"]


class InheritsFit(LogisticRegression):
    """A user's subclass that only adds a method."""

    def describe(self) -> str:
        return "mine"


class OverridesFit(Ridge):
    """A user's subclass whose fit calls super().fit."""

    def fit(self, X, y, sample_weight=None):
        self.fitted_by_me_ = True
        return super().fit(X, y, sample_weight=sample_weight)


def test_user_subclasses_give_one_run_each(classification, regression):
    autolog.autolog("sklearn")
    X, y = classification
    InheritsFit(C=3.0).fit(X, y)
    Xr, yr = regression

    class DefinedAfterAutolog(OverridesFit):  # created after the patch: covered too
        pass

    OverridesFit(alpha=0.1).fit(Xr, yr)
    DefinedAfterAutolog(alpha=0.2).fit(Xr, yr)
    by_name = {r.data.tags["estimator_name"]: r for r in runs()}
    assert set(by_name) == {"InheritsFit", "OverridesFit", "DefinedAfterAutolog"}
    assert by_name["InheritsFit"].data.params["C"] == "3.0"
    assert set(framework_metrics(by_name["InheritsFit"])) == CLASSIFIER_METRICS | PROBA_METRICS
    assert by_name["OverridesFit"].data.params["alpha"] == "0.1"
    assert set(framework_metrics(by_name["DefinedAfterAutolog"])) == REGRESSOR_METRICS


def test_fit_inside_a_user_run_logs_into_it(classification):
    autolog.autolog("sklearn")
    X, y = classification
    with autolog.start_run() as run:
        LogisticRegression().fit(X, y)
    (only,) = runs()
    assert only.info.run_id == run.info.run_id
    assert "training_accuracy_score" in only.data.metrics


def test_long_param_is_cut_and_listed(classification):
    from sklearn.preprocessing import FunctionTransformer

    autolog.autolog("sklearn")
    X, _ = classification
    FunctionTransformer(kw_args={"note": "x" * 7000}).fit(X)
    run = only_run()
    assert run.data.params["kw_args"].endswith("...[truncated]")
    assert len(run.data.params["kw_args"]) == 6000
    assert run.data.tags["autolog.truncated_params"] == "kw_args"


def test_models_and_datasets_can_be_turned_off(classification):
    autolog.autolog("sklearn", log_models=False, log_datasets=False)
    X, y = classification
    LogisticRegression().fit(X, y)
    run = only_run()
    assert "model" not in artifact_names(run)
    assert "dataset_shape" not in run.data.tags and "autolog.datasets" not in run.data.tags
    assert "training_score" in run.data.metrics


def test_skops_serialization(classification):
    autolog.autolog("sklearn", serialization_format="skops")
    X, y = classification
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)
    run = only_run()
    files = {f.path for f in autolog.Client().list_artifacts(run.info.run_id, "model")}
    assert "model/model.skops" in files
    np.testing.assert_array_equal(loaded(run).predict(X), model.predict(X))


@pytest.mark.parametrize("search_class", [GridSearchCV, RandomizedSearchCV])
def test_search_gives_a_parent_and_top_candidate_children(classification, search_class):
    autolog.autolog("sklearn", max_tuning_runs=2)
    X, y = classification
    grid = {"C": [0.01, 1.0, 100.0]}
    extra = {"n_iter": 3, "random_state": 0} if search_class is RandomizedSearchCV else {}
    search = search_class(LogisticRegression(), grid, cv=3, n_jobs=2, **extra).fit(X, y)
    all_runs = runs()
    (parent,) = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    assert len(all_runs) == 3  # the parent and 2 children: the 9 inner fits log nothing
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.data.tags["estimator_name"] == search_class.__name__
    assert parent.data.params["best_C"] == str(search.best_params_["C"])
    assert parent.data.params["estimator__C"] == "1.0"
    assert parent.data.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert "training_accuracy_score" in parent.data.metrics
    assert "cv_results.csv" in artifact_names(parent)
    np.testing.assert_array_equal(loaded(parent).predict(X), search.best_estimator_.predict(X))
    ranks = search.cv_results_["rank_test_score"]
    best_two = {str(search.cv_results_["params"][i]["C"]) for i in np.argsort(ranks)[:2]}
    assert {c.data.params["C"] for c in children} == best_two
    for child in children:
        index = [str(p["C"]) for p in search.cv_results_["params"]].index(child.data.params["C"])
        got = framework_metrics(child)
        assert got["mean_test_score"] == pytest.approx(search.cv_results_["mean_test_score"][index])
        assert {"std_test_score", "mean_fit_time", "std_fit_time", "mean_score_time"} <= set(got)
        assert child.data.tags["mlflow.autologging"] == "sklearn"
        assert child.info.status == "FINISHED"


class _CountingLogistic(LogisticRegression):
    """Counts its predictions of all the training rows (the folds' are smaller)."""

    rows = 0

    def predict(self, X):
        if len(X) == type(self).rows:
            type(self).full_predictions += 1
        return super().predict(X)


@pytest.mark.parametrize("scoring", [None, "accuracy"])
def test_a_refit_searchs_training_score_is_its_best_estimators_accuracy(classification, scoring):
    """Without scoring, search.score(X, y) is best_estimator_.score(X, y): the
    accuracy the training metrics computed from search.predict(X) already, logged
    as training_score without predicting every row again; with scoring, the
    search's own score is asked, as before."""
    autolog.autolog("sklearn", max_tuning_runs=0)
    X, y = classification
    _CountingLogistic.rows, _CountingLogistic.full_predictions = len(X), 0
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", _CountingLogistic())])
    search = GridSearchCV(pipeline, {"clf__C": [0.1, 1.0]}, cv=3, scoring=scoring).fit(X, y)
    (parent,) = runs()
    got = framework_metrics(parent)
    assert got["training_score"] == pytest.approx(search.score(X, y))
    assert got["training_score"] == got["training_accuracy_score"]
    # predict's own, plus the search's score when it has a scorer of its own
    assert _CountingLogistic.full_predictions == (1 if scoring is None else 2) + 1


def test_cv_results_csv_reads_back(classification):
    import csv

    autolog.autolog("sklearn")
    X, y = classification
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=2)
    search.fit(X, y)
    (parent,) = [r for r in runs() if "mlflow.parentRunId" not in r.data.tags]
    path = autolog.Client().download_artifacts(parent.info.run_id, "cv_results.csv")
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["param_max_depth"] for row in rows] == ["1", "2"]
    assert float(rows[1]["mean_test_score"]) == pytest.approx(
        search.cv_results_["mean_test_score"][1]
    )
    assert len(runs()) == 3  # max_tuning_runs=5 > 2 candidates: every candidate


def test_halving_search_gives_parent_and_children(classification):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    autolog.autolog("sklearn")
    X, y = classification
    search = HalvingGridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4]}, cv=2, factor=2
    ).fit(X, y)
    all_runs = runs()
    (parent,) = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["estimator_name"] == "HalvingGridSearchCV"
    assert parent.data.params["best_max_depth"] == str(search.best_params_["max_depth"])
    # every (iteration, candidate) row of cv_results_ ranks; the best 5 get children
    assert len(all_runs) == 1 + min(5, len(search.cv_results_["params"]))


def test_set_output_of_transformers_survives_autolog_and_disable(classification):
    from sklearn.preprocessing import PowerTransformer

    X, _ = classification
    autolog.autolog("sklearn")

    class MyScaler(StandardScaler):  # created while patched: sklearn's own hook wraps it too
        pass

    for make in (StandardScaler, PowerTransformer, MyScaler):
        out = make().set_output(transform="pandas").fit_transform(X)
        assert isinstance(out, pd.DataFrame), make
    assert len(runs()) == 3
    autolog.autolog("sklearn", disable=True)
    for make in (StandardScaler, PowerTransformer, MyScaler):
        assert isinstance(make().set_output(transform="pandas").fit_transform(X), pd.DataFrame)


def test_a_failing_fit_raises_the_users_error_and_ends_its_run_failed(classification):
    autolog.autolog("sklearn")
    X, _ = classification
    with pytest.raises(ValueError, match="class"):  # one class only: sklearn's own error
        LogisticRegression().fit(X, np.zeros(len(X)))
    run = only_run()
    assert run.info.status == "FAILED"
    assert run.data.params["C"] == "1.0"  # logged before the fit


def test_input_example_when_asked(classification):
    autolog.autolog("sklearn", log_input_examples=True)
    X, y = classification
    LogisticRegression().fit(X, y)
    uri = f"runs:/{only_run().info.run_id}/model"
    np.testing.assert_allclose(autolog.models.load_input_example(uri), X[:5])


def test_every_candidate_with_max_tuning_runs_none_and_multi_metric_ranks(classification):
    autolog.autolog("sklearn", max_tuning_runs=None)
    X, y = classification
    search = GridSearchCV(
        LogisticRegression(),
        {"C": [0.01, 0.1, 1.0], "fit_intercept": [True, False]},
        cv=2,
        scoring=["accuracy", "f1"],
        refit="f1",
    ).fit(X, y)
    all_runs = runs()
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 6
    (parent,) = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    best = min(children, key=lambda r: r.data.metrics["rank_test_f1"])
    assert best.data.params["C"] == str(search.best_params_["C"])
    assert {"mean_test_accuracy", "mean_test_f1", "std_test_f1"} <= set(best.data.metrics)
