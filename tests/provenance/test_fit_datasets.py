"""Every autologged fit records its training data: one dataset record per data
argument, named as the caller's variable, on the fit's run, shown by
``autolog runs show`` and found by ``datasets.*`` filters."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import autolog
from autolog import provenance
from autolog.cli import main
from autolog.provenance.datasets import dataset_record


def _records(run_id: str) -> list[dict]:
    return json.loads(autolog.get_run(run_id).data.tags.get("autolog.datasets", "[]"))


def _fit_logistic(X, y):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=50).fit(X, y)


@pytest.fixture
def sklearn_autolog():
    autolog.autolog("sklearn", log_models=False)
    yield
    autolog.autolog(disable=True)


def test_a_sklearn_fit_records_x_and_y_named_as_the_callers_variables(sklearn_autolog, capsys):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X_train = rng.normal(size=(120, 3))
    y_train = (X_train[:, 0] > 0).astype(np.int64)
    LogisticRegression(max_iter=50).fit(X_train, y_train)
    run = autolog.last_active_run()
    records = _records(run.info.run_id)
    assert [(r["name"], r["context"], r["shape"]) for r in records] == [
        ("X_train", "train", [120, 3]),
        ("y_train", "train", [120]),
    ]
    assert records[0]["digest"] == dataset_record(X_train, "X_train")["digest"]
    assert records[1]["dtypes"] == "int64" and records[0]["digest_method"] == "sha256/full"

    found = autolog.search_runs(filter_string=f"datasets.digest = '{records[0]['digest']}'")
    assert [r.info.run_id for r in found] == [run.info.run_id]
    assert main(["runs", "show", run.info.run_id]) == 0
    out = capsys.readouterr().out
    assert "Datasets: 2" in out and "X_train" in out and records[0]["digest"] in out


def test_an_expression_is_named_as_the_argument_and_other_data_gets_another_digest(
    sklearn_autolog,
):
    X = np.arange(200.0).reshape(100, 2)
    y = np.arange(100) % 2
    _fit_logistic(X[:60], y[:60])  # no variable holds the slices
    first = autolog.last_active_run().info.run_id
    _fit_logistic(X, y)
    second = autolog.last_active_run().info.run_id
    assert [r["name"] for r in _records(first)] == ["X", "y"]
    digests = [r["digest"] for r in _records(first)], [r["digest"] for r in _records(second)]
    assert digests[0][0] != digests[1][0]
    assert {r.info.run_id for r in autolog.search_runs(filter_string="datasets.name = 'X'")} == {
        first,
        second,
    }


def test_a_fit_into_the_users_run_and_a_failing_fit_record_their_data_too(sklearn_autolog):
    from sklearn.linear_model import LogisticRegression

    features = np.ones((10, 2))
    with autolog.start_run() as run, pytest.raises(ValueError):
        LogisticRegression().fit(features, np.zeros(10))  # one class only
    assert [r["name"] for r in _records(run.info.run_id)] == ["features", "y"]


def test_switches_log_datasets_and_the_datasets_capture_turn_it_off():
    from sklearn.linear_model import LinearRegression

    X, y = np.ones((8, 2)), np.arange(8.0)
    autolog.autolog("sklearn", log_models=False, log_datasets=False)
    try:
        LinearRegression().fit(X, y)
        assert _records(autolog.last_active_run().info.run_id) == []
        autolog.autolog("sklearn", log_models=False)
        provenance.configure(datasets=False)
        LinearRegression().fit(X, y)
        assert _records(autolog.last_active_run().info.run_id) == []
        provenance.configure(datasets=True)
        LinearRegression().fit(X, y)
        assert len(_records(autolog.last_active_run().info.run_id)) == 2
    finally:
        autolog.autolog(disable=True)


def test_cross_validation_and_boosting_record_their_data():
    import lightgbm
    import xgboost
    from sklearn import model_selection
    from sklearn.linear_model import Ridge

    autolog.autolog(log_models=False)
    try:
        X_cv = np.arange(60.0).reshape(30, 2)
        y_cv = np.arange(30.0)
        model_selection.cross_validate(Ridge(), X_cv, y_cv, cv=2)
        assert [r["name"] for r in _records(autolog.last_active_run().info.run_id)] == [
            "X_cv",
            "y_cv",
        ]
        dtrain = xgboost.DMatrix(X_cv, label=y_cv)
        xgboost.train({"max_depth": 2}, dtrain, num_boost_round=2)
        (record,) = _records(autolog.last_active_run().info.run_id)
        assert (record["name"], record["shape"], record["source"]) == (
            "dtrain",
            [30, 2],
            "xgboost.DMatrix",
        )
        assert record["digest_method"] == "sha256/shape-only"
        train_set = lightgbm.Dataset(X_cv, label=y_cv, params={"verbose": -1})
        lightgbm.train({"verbose": -1, "num_leaves": 3}, train_set, num_boost_round=2)
        (record,) = _records(autolog.last_active_run().info.run_id)
        assert record["name"] == "train_set" and record["source"] == "lightgbm.Dataset"
        assert record["digest"] == dataset_record(X_cv, "X_cv")["digest"]  # its raw data
    finally:
        autolog.autolog(disable=True)


def test_a_torch_data_loader_is_digested_on_its_tensors():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    features = torch.arange(40.0).reshape(20, 2)
    loader = DataLoader(TensorDataset(features, torch.zeros(20)), batch_size=4)
    record = dataset_record(loader, "loader")
    assert record["source"] == "torch.DataLoader" and record["shape"] == [20, 2]
    assert record["digest"] == dataset_record(features.numpy(), "f")["digest"]
    subset = DataLoader(torch.utils.data.Subset(TensorDataset(features), range(5)), batch_size=2)
    record = dataset_record(subset, "subset")  # no tensor to read: its length only
    assert (record["shape"], record["digest_method"]) == ([5], "sha256/shape-only")


def test_a_failure_of_ours_while_recording_never_reaches_the_fit(sklearn_autolog, monkeypatch):
    from autolog import _report
    from autolog.provenance import datasets

    def broken(*args, **kwargs):
        raise RuntimeError("digest failed")

    monkeypatch.setattr(datasets, "dataset_record", broken)
    monkeypatch.delenv("AUTOLOG_TESTING", raising=False)
    monkeypatch.setattr(_report, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _fit_logistic(np.eye(4), np.array([0, 1, 0, 1]))
    assert model.predict(np.eye(4)).shape == (4,)
    assert any("while recording its datasets" in str(w.message) for w in caught)
    run = autolog.last_active_run()
    assert run.info.status == "FINISHED" and _records(run.info.run_id) == []
