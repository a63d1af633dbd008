"""The helpers every integration shares (autolog/training.py)."""

from __future__ import annotations

import warnings

import autolog
from autolog import training
from autolog.errors import AutologWarning


def logged(run_id):
    return autolog.get_run(run_id).data


def test_long_param_values_are_cut_with_a_marker_and_listed():
    with autolog.start_run() as run:
        training.log_training_params(
            {"short": 1, "long": "x" * 7000, "none": None}, run.info.run_id
        )
    data = logged(run.info.run_id)
    assert data.params["short"] == "1" and data.params["none"] == "None"
    assert len(data.params["long"]) == training.MAX_PARAM_LENGTH
    assert data.params["long"].endswith("...[truncated]")
    assert data.tags[training.TRUNCATED_PARAMS_TAG] == "long"


def test_flatten_nested_mappings():
    nested = {"opt": {"lr": 0.1, "betas": {"b1": 0.9}}, "epochs": 3, "empty": {}}
    assert training.flatten(nested) == {
        "opt.lr": 0.1,
        "opt.betas.b1": 0.9,
        "epochs": 3,
        "empty": {},
    }


def test_epoch_metrics_skip_non_numeric_and_refused_keys_with_one_warning():
    import numpy as np

    bad = "k" * 300
    with autolog.start_run() as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(2):
            logs = {"loss": np.float32(0.5), "acc": "n/a", bad: 1.0, "flag": True}
            training.log_epoch_metrics(logs, epoch, run.info.run_id, prefix="train_")
    assert logged(run.info.run_id).metrics == {"train_loss": 0.5, "train_flag": 1.0}
    history = autolog.Client().get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [0, 1]
    assert len([w for w in caught if issubclass(w.category, AutologWarning)]) == 1


def test_early_stopping_summary_names():
    with autolog.start_run() as run:
        training.log_early_stopping(
            run.info.run_id,
            stopped_epoch=7,
            restored_epoch=4,
            best_score=0.25,
            monitor="val_loss",
            patience=3,
        )
    data = logged(run.info.run_id)
    assert data.metrics == {"stopped_epoch": 7.0, "restored_epoch": 4.0, "best_score": 0.25}
    assert data.params == {"early_stopping_monitor": "val_loss", "early_stopping_patience": "3"}


def test_copy_callbacks_leaves_the_users_list_alone():
    users = [1, 2]
    assert training.copy_callbacks(users, 3) == [1, 2, 3]
    assert users == [1, 2]
    assert training.copy_callbacks(None, 3) == [3]


def test_a_changed_param_keeps_its_first_value_instead_of_failing():
    with autolog.start_run() as run:
        assert training.log_training_params({"a": 1, "b": 2}, run.info.run_id) == []
        skipped = training.log_training_params({"a": 1, "b": 3, "c": 4}, run.info.run_id)
    assert skipped == ["b"]
    data = logged(run.info.run_id)
    assert data.params == {"a": "1", "b": "2", "c": "4"}
    assert data.tags[training.SKIPPED_PARAMS_TAG] == "b"
