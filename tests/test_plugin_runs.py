"""The runs an integration opens and closes itself (``plugin.start_training_run`` /
``plugin.end_training_run``), as a hyperparameter search does once per trial."""

from __future__ import annotations

import pytest

import autolog
from autolog import plugin


class Search(plugin.Integration):
    name = "search"
    modules = ()

    def patch(self, patcher, module):  # never patched: only its runs are used
        pass


def _integration(**common):
    integration = Search()
    integration.config = plugin.IntegrationConfig(**common)
    return integration


def test_a_run_gets_its_tags_at_creation_with_autologs_own():
    search = _integration(extra_tags={"team": "a"})
    with autolog.start_run() as parent:
        run_id = plugin.start_training_run(
            search, parent.info.run_id, "trial_3", {"trial": 3, "team": "b"}
        )
        assert autolog.active_run().info.run_id == run_id
        plugin.end_training_run(run_id=run_id)
    run = autolog.get_run(run_id)
    assert run.info.run_name == "trial_3"
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["trial"] == "3"
    assert tags["team"] == "b"  # the run's own tags win over extra_tags
    assert tags["mlflow.autologging"] == "search"
    assert tags["mlflow.parentRunId"] == parent.info.run_id
    assert tags["mlflow.runName"] == "trial_3"


def test_a_child_run_goes_to_its_parents_experiment():
    search = _integration()
    autolog.set_experiment("first")
    with autolog.start_run() as parent:
        autolog.set_experiment("second")  # after the parent started
        run_id = plugin.start_training_run(search, parent.info.run_id)
        plugin.end_training_run(run_id=run_id)
    assert autolog.get_run(run_id).info.experiment_id == parent.info.experiment_id
    # without an active parent, the active experiment as always
    run_id = plugin.start_training_run(search)
    plugin.end_training_run(run_id=run_id)
    second = autolog.get_experiment_by_name("second").experiment_id
    assert autolog.get_run(run_id).info.experiment_id == second


def test_a_runs_last_values_are_logged_with_its_end():
    search = _integration()
    run_id = plugin.start_training_run(search)
    plugin.end_training_run(
        "FAILED",
        run_id=run_id,
        end_time=1_700_000_000_000,
        params={"x": 0.5, "depth": 3},
        metrics={"value": 1, "other": 2.5},
        tags={"state": "FAIL"},
    )
    assert autolog.active_run() is None
    run = autolog.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.info.end_time == 1_700_000_000_000
    assert run.data.params == {"x": "0.5", "depth": "3"}
    assert run.data.metrics == {"value": 1.0, "other": 2.5}
    assert run.data.tags["state"] == "FAIL"


def test_a_long_param_is_cut_as_log_params_cuts_it():
    search = _integration()
    run_id = plugin.start_training_run(search)
    plugin.end_training_run(run_id=run_id, params={"long": "x" * 10_000, "short": "y"})
    run = autolog.get_run(run_id)
    assert len(run.data.params["long"]) == plugin.MAX_PARAM_LENGTH
    assert run.data.params["long"].endswith("...[truncated]")
    assert run.data.params["short"] == "y"
    assert run.data.tags["autolog.truncated_params"] == "long"


def test_a_param_the_run_holds_with_another_value_is_kept_and_the_rest_logged():
    search = _integration()
    run_id = plugin.start_training_run(search)
    autolog.log_param("C", "1.0")  # the objective's fit logged it first
    plugin.end_training_run(
        run_id=run_id, params={"C": 2.0, "x": 1}, metrics={"value": 0.5}, tags={"t": "v"}
    )
    run = autolog.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"C": "1.0", "x": "1"}
    assert run.data.tags["autolog.skipped_params"] == "C"
    assert run.data.metrics == {"value": 0.5}
    assert run.data.tags["t"] == "v"


def test_an_invalid_value_raises_and_the_run_ends_all_the_same():
    search = _integration()
    run_id = plugin.start_training_run(search)
    with pytest.raises(autolog.InvalidParameterError, match="value"):
        plugin.end_training_run(run_id=run_id, params={"x": 1}, metrics={"value": "high"})
    assert autolog.active_run() is None
    run = autolog.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"x": "1"}  # logged one call at a time, as before the error


def test_the_innermost_run_is_ended_without_a_run_id():
    search = _integration()
    run_id = plugin.start_training_run(search)
    plugin.end_training_run(metrics={"value": 2.0})
    assert autolog.active_run() is None
    assert autolog.get_run(run_id).data.metrics == {"value": 2.0}
