"""Several trainings inside one user run (issue 20, item 5): the first logs
into the user's run, each later one into a nested child run of it, with one
warning per run; nothing of one training is mixed into another's run."""

from __future__ import annotations

import warnings

import pytest
from sklearn.datasets import make_regression
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge

import autolog
from autolog.errors import AutologWarning


@pytest.fixture
def regression():
    return make_regression(n_samples=60, n_features=4, random_state=0)


def children_of(run_id):
    return autolog.Client().search_runs(
        ["0"],
        filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'",
        order_by=["attributes.start_time"],
    )


def test_later_fits_in_a_users_run_are_its_child_runs_with_one_warning(regression):
    autolog.autolog("sklearn")
    X, y = regression
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autolog.start_run() as run:
            Ridge(alpha=1).fit(X, y)
            Ridge(alpha=50).fit(X, y)
            RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y)
            assert autolog.active_run().info.run_id == run.info.run_id  # the user's, still open
    ours = [str(w.message) for w in caught if issubclass(w.category, AutologWarning)]
    assert len(ours) == 1, ours
    assert run.info.run_id in ours[0] and "nested child run" in ours[0]

    user = autolog.get_run(run.info.run_id)
    assert user.data.params["alpha"] == "1"
    assert user.data.tags["estimator_name"] == "Ridge"
    assert "n_estimators" not in user.data.params  # the forest is not mixed in
    ridge50, forest = children_of(run.info.run_id)
    assert ridge50.data.params["alpha"] == "50"
    assert forest.data.tags["estimator_name"] == "RandomForestRegressor"
    assert forest.data.params["n_estimators"] == "5"
    for child in (ridge50, forest):
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.autologging"] == "sklearn"
        assert "training_r2_score" in child.data.metrics
        artifacts = [f.path for f in autolog.Client().list_artifacts(child.info.run_id)]
        assert "model" in artifacts
    # each training's own score, not the last one's
    assert user.data.metrics["training_r2_score"] != forest.data.metrics["training_r2_score"]


def test_post_training_metrics_go_to_the_child_run_of_their_model(regression):
    autolog.autolog("sklearn")
    from sklearn.metrics import r2_score  # bound after autolog(): the patched function

    X, y = regression
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutologWarning)
        with autolog.start_run() as run:
            Ridge(alpha=1).fit(X, y)
            second = Ridge(alpha=50).fit(X, y)
            X_holdout = X[:20]
            r2_score(y[:20], second.predict(X_holdout))
    [child] = children_of(run.info.run_id)
    assert "r2_score_X_holdout" in child.data.metrics
    assert "r2_score_X_holdout" not in autolog.get_run(run.info.run_id).data.metrics


def test_a_run_per_fit_warns_nothing(regression):
    autolog.autolog("sklearn")
    X, y = regression
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for alpha in (1, 50):
            with autolog.start_run():
                Ridge(alpha=alpha).fit(X, y)
    assert not [w for w in caught if issubclass(w.category, AutologWarning)]
    runs = autolog.Client().search_runs(["0"])
    assert sorted(r.data.params["alpha"] for r in runs) == ["1", "50"]
    assert all("mlflow.parentRunId" not in r.data.tags for r in runs)


def test_exclusive_and_extra_tags_hold_for_child_runs(regression):
    autolog.autolog("sklearn", extra_tags={"team": "a"})
    X, y = regression
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutologWarning)
        with autolog.start_run() as run:
            Ridge(alpha=1).fit(X, y)
            Ridge(alpha=50).fit(X, y)
    [child] = children_of(run.info.run_id)
    assert child.data.tags["team"] == "a"
    autolog.autolog("sklearn", exclusive=True)
    with autolog.start_run() as other:
        Ridge(alpha=1).fit(X, y)
        Ridge(alpha=50).fit(X, y)
    assert children_of(other.info.run_id) == []
    assert autolog.get_run(other.info.run_id).data.params == {}


def test_search_candidates_are_opened_by_the_one_run_policy(regression):
    from sklearn.model_selection import GridSearchCV

    autolog.autolog("sklearn", extra_tags={"team": "a"}, max_tuning_runs=2)
    X, y = regression
    search = GridSearchCV(Ridge(), {"alpha": [1, 10, 100]}, cv=2).fit(X, y)
    [parent] = [
        r for r in autolog.Client().search_runs(["0"]) if "mlflow.parentRunId" not in r.data.tags
    ]
    children = children_of(parent.info.run_id)
    assert len(children) == 2
    for child in children:  # the same tags as every run autolog opens
        assert child.data.tags["mlflow.autologging"] == "sklearn"
        assert child.data.tags["team"] == "a"
    assert parent.data.params["best_alpha"] == str(search.best_params_["alpha"])
