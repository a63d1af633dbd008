"""The helpers every integration shares (autolog/training.py)."""

from __future__ import annotations

import time
import warnings

import numpy as np

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


def test_metrics_later_are_computed_after_the_call_returns_and_stamped_when_it_was_made():
    import threading

    returned = threading.Event()
    seen = {}

    def compute():
        seen["after_return"] = returned.wait(10)  # a call made inside log_metrics_later waits
        return {"ssr": np.float64(2.5), "name": "not a number", "z" * 300: 1.0, "flag": True}

    with autolog.start_run() as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = time.time_ns() // 1_000_000
        training.log_metrics_later(compute, 3, run.info.run_id, "toyml")
        after = time.time_ns() // 1_000_000
        returned.set()
        autolog.flush()
    assert seen["after_return"] is True
    assert logged(run.info.run_id).metrics == {"ssr": 2.5, "flag": 1.0}
    (point,) = autolog.Client().get_metric_history(run.info.run_id, "ssr")
    assert point.step == 3 and before <= point.timestamp <= after
    assert [w for w in caught if "z" * 300 in str(w.message)]  # the refused key, named


def test_metrics_later_that_fail_are_reported_once_and_never_fail_a_flush(monkeypatch):
    from autolog import _report

    monkeypatch.delenv("AUTOLOG_TESTING")
    monkeypatch.setattr(_report, "_warned", set())

    def compute():
        raise ValueError("singular design")

    with autolog.start_run() as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            training.log_metrics_later(compute, 0, run.info.run_id, "toyml")
        autolog.flush()  # raises nothing
    assert autolog.get_run(run.info.run_id).info.status == "FINISHED"
    assert logged(run.info.run_id).metrics == {}
    reports = [w for w in caught if "singular design" in str(w.message)]
    assert len(reports) == 1 and "'toyml'" in str(reports[0].message)


def test_metrics_later_under_the_test_mode_raise_at_the_flush():
    import pytest

    from autolog.errors import TrackingWriteError

    def compute():
        raise ValueError("singular design")

    with autolog.start_run() as run, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the writer's report of the rejected write
        training.log_metrics_later(compute, 0, run.info.run_id, "toyml")
        with pytest.raises(TrackingWriteError, match="singular design"):
            autolog.flush()


def test_later_params_tags_and_metrics_are_one_write_made_as_on_the_training_thread(monkeypatch):
    from autolog.tracking.stores.file import FileStore

    batches = []
    real = FileStore.log_batch

    def counted(self, run_id, metrics=(), params=(), tags=()):
        batches.append((len(metrics), len(params), len(tags)))
        return real(self, run_id, metrics=metrics, params=params, tags=tags)

    monkeypatch.setattr(FileStore, "log_batch", counted)

    def compute():
        params = {"short": 1, "long": "x" * 7000, "kept": 3, "k" * 300: 1}
        return {"params": params, "tags": {"kind": "ols"}, "metrics": {"aic": np.float64(1.5)}}

    with autolog.start_run() as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        training.log_training_params({"kept": 2}, run.info.run_id)  # the run holds it already
        autolog.flush()
        batches.clear()
        training.log_later(compute, run.info.run_id, "toyml", step=2)
        autolog.flush()
    assert batches == [(1, 2, 3)]  # one write: aic; short, long; kind and both key lists
    data = logged(run.info.run_id)
    assert data.params["short"] == "1" and data.params["kept"] == "2"
    assert data.params["long"].endswith("...[truncated]")
    assert "k" * 300 not in data.params
    assert data.tags["kind"] == "ols"
    assert data.tags[training.TRUNCATED_PARAMS_TAG] == "long"
    assert data.tags[training.SKIPPED_PARAMS_TAG] == "kept"
    (point,) = autolog.Client().get_metric_history(run.info.run_id, "aic")
    assert point.step == 2 and point.value == 1.5
    refused = [w for w in caught if "k" * 300 in str(w.message)]
    assert len(refused) == 1 and "param" in str(refused[0].message)


def test_later_params_are_checked_against_the_run_when_written():
    import pytest

    from autolog.errors import ParamOverwriteError

    with autolog.start_run() as run:
        training.log_later(lambda: {"params": {"alpha": 1}}, run.info.run_id, "toyml")
        autolog.flush()
        with pytest.raises(ParamOverwriteError):  # the writer recorded what it logged
            autolog.log_param("alpha", 2)
    assert logged(run.info.run_id).params == {"alpha": "1"}
