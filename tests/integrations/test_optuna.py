"""Optuna autologging: a parent run per study, a child run per trial, read back from the store."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import optuna
import pytest
from sklearn.linear_model import Ridge

import autolog
from tests.integrations.runs import history

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(60, 3)
    return X, X @ [1.0, -2.0, 0.5] + 0.1 * rng.rand(60)


def _runs():
    runs = autolog.Client().search_runs(["0"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted(
        (r for r in runs if "mlflow.parentRunId" in r.data.tags),
        key=lambda r: int(r.info.run_name.removeprefix("trial_")),
    )
    return parents, children


def _sampler():
    return optuna.samplers.RandomSampler(seed=0)


def test_study_run_and_one_child_run_per_trial(data):
    autolog.autolog()
    X, y = data

    def objective(trial):
        alpha = trial.suggest_float("alpha", 1e-3, 10.0, log=True)
        for step in range(3):
            trial.report(alpha * step, step)
        model = Ridge(alpha=alpha).fit(X, y)  # logs into this trial's run
        return model.score(X, y)

    study = optuna.create_study(study_name="ridge", direction="maximize", sampler=_sampler())
    study.optimize(objective, n_trials=3)

    parents, children = _runs()
    assert len(parents) == 1 and len(children) == 3  # no run of the fits' own
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "ridge"
    assert parent.data.tags["mlflow.autologging"] == "optuna"
    assert parent.data.params == {
        "study_name": "ridge",
        "direction": "maximize",
        "sampler": "RandomSampler",
        "pruner": "MedianPruner",
    }
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.metrics["best_trial"] == study.best_trial.number
    assert float(parent.data.tags["best_params.alpha"]) == pytest.approx(study.best_params["alpha"])
    assert history(parent, "trial_value") == [(t.number, t.value) for t in study.trials]
    for child, trial in zip(children, study.trials):
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.run_name == f"trial_{trial.number}"
        assert child.info.status == "FINISHED"
        assert child.data.tags["optuna.trial_state"] == "COMPLETE"
        assert child.data.metrics["value"] == pytest.approx(trial.value)
        assert float(child.data.params["alpha"]) == pytest.approx(trial.params["alpha"])
        # the Ridge fit of this trial, with this trial's alpha, in this trial's run
        assert child.data.tags["estimator_class"] == "sklearn.linear_model._ridge.Ridge"
        assert "training_r2_score" in child.data.metrics
        assert history(child, "intermediate_value") == sorted(trial.intermediate_values.items())


def test_pruned_and_failed_trials_keep_their_state():
    autolog.autolog("optuna")

    def objective(trial):
        x = trial.suggest_int("x", 0, 10)
        trial.report(float(x), 0)
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise ValueError("diverged")
        return float(x)

    study = optuna.create_study(sampler=_sampler())
    study.optimize(objective, n_trials=3, catch=(ValueError,))
    parents, children = _runs()
    states = [(c.data.tags["optuna.trial_state"], c.info.status) for c in children]
    assert states == [("COMPLETE", "FINISHED"), ("PRUNED", "FINISHED"), ("FAIL", "FAILED")]
    assert [c.data.params["x"] for c in children] == [str(t.params["x"]) for t in study.trials]
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.metrics["best_trial"] == 0  # the only complete trial


def test_a_trials_run_ends_when_its_objective_returns_not_after_the_next_sampling():
    # Without callbacks of the user's, a trial's run is closed when the next
    # trial starts (Optuna has told its state by then), with the time its
    # objective returned: the sampler's work for the next trial is not in it.
    autolog.autolog("optuna")

    class SlowSampler(optuna.samplers.RandomSampler):
        def before_trial(self, study, trial):  # in study.ask(), before the objective
            if trial.number > 0:
                time.sleep(0.3)

    study = optuna.create_study(sampler=SlowSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    _, children = _runs()
    first, second = children
    assert first.info.status == second.info.status == "FINISHED"
    assert first.info.end_time is not None
    # trial 1's objective started after the 0.3 s of its ask(); trial 0's run ended before
    assert second.info.start_time - first.info.end_time >= 250
    assert first.info.start_time <= first.info.end_time
    assert first.data.metrics["value"] == pytest.approx(study.trials[0].value)


def test_the_users_callbacks_see_the_trials_run_complete():
    autolog.autolog("optuna")
    seen = []

    def callback(study, frozen):
        [run] = autolog.Client().search_runs(
            ["0"], f"tags.`optuna.trial_number` = '{frozen.number}'"
        )
        seen.append((run.info.status, run.data.tags["optuna.trial_state"], run.data.metrics))

    study = optuna.create_study(sampler=_sampler())
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2, callbacks=[callback])
    assert [(status, state) for status, state, _ in seen] == [("FINISHED", "COMPLETE")] * 2
    assert [metrics["value"] for _, _, metrics in seen] == pytest.approx(
        [t.value for t in study.trials]
    )


def test_an_uncaught_objective_error_reaches_the_user_and_fails_both_runs():
    autolog.autolog("optuna")
    error = RuntimeError("user bug")

    def objective(trial):
        trial.suggest_float("x", 0, 1)
        raise error

    study = optuna.create_study()
    with pytest.raises(RuntimeError) as raised:
        study.optimize(objective, n_trials=3)
    assert raised.value is error
    parents, children = _runs()
    assert parents[0].info.status == "FAILED"
    assert [(c.info.status, c.data.tags["optuna.trial_state"]) for c in children] == [
        ("FAILED", "FAIL")
    ]


def test_threads_each_log_into_their_own_trial_run(data):
    autolog.autolog()
    X, y = data
    threads = set()
    first_two = threading.Barrier(2, timeout=60)

    def objective(trial):
        threads.add(threading.get_ident())
        if trial.number < 2:
            first_two.wait()  # two trials at once, so really in two threads
        alpha = trial.suggest_float("alpha", 1e-3, 10.0, log=True)
        return Ridge(alpha=alpha).fit(X, y).score(X, y)

    study = optuna.create_study(direction="maximize", sampler=_sampler())
    study.optimize(objective, n_trials=6, n_jobs=2)
    parents, children = _runs()
    assert len(parents) == 1 and len(children) == 6
    assert len(threads) == 2
    for child in children:
        trial = study.trials[int(child.data.tags["optuna.trial_number"])]
        # the fit logged in this run is the one of this trial (its own alpha)
        assert float(child.data.params["alpha"]) == pytest.approx(trial.params["alpha"])
        assert child.data.tags["estimator_name"] == "Ridge"
        assert child.data.metrics["value"] == pytest.approx(trial.value)
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id


def test_an_in_memory_study_keeps_its_run_over_several_optimize_calls():
    autolog.autolog("optuna")
    study = optuna.create_study(sampler=_sampler())
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=2)
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=2)
    other = optuna.create_study(sampler=_sampler())
    other.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=1)
    parents, children = _runs()
    assert len(parents) == 2
    by_parent = {}
    for child in children:
        by_parent.setdefault(child.data.tags["mlflow.parentRunId"], []).append(child)
    assert sorted(len(v) for v in by_parent.values()) == [1, 4]
    first = next(p for p in parents if p.data.params["study_name"] == study.study_name)
    trial_numbers = [int(c.data.tags["optuna.trial_number"]) for c in by_parent[first.info.run_id]]
    assert sorted(trial_numbers) == [0, 1, 2, 3]


def test_inside_the_users_run_the_trials_are_its_children():
    autolog.autolog("optuna")
    with autolog.start_run() as run:
        optuna.create_study().optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    parents, children = _runs()
    assert [p.info.run_id for p in parents] == [run.info.run_id]
    assert parents[0].data.params["direction"] == "minimize"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {run.info.run_id}
    assert autolog.get_run(run.info.run_id).info.status == "FINISHED"  # ended by the user


def test_several_objectives():
    autolog.autolog("optuna")
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=_sampler())
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["loss", "accuracy"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=3)
    parents, children = _runs()
    assert parents[0].data.params["directions"] == "['minimize', 'maximize']"
    assert parents[0].data.metrics["best_trials"] == len(study.best_trials)
    for child, trial in zip(children, study.trials):
        assert child.data.metrics["loss"] == pytest.approx(trial.values[0])
        assert child.data.metrics["accuracy"] == pytest.approx(trial.values[1])


def test_reports_made_inside_a_patched_fit_are_logged():
    # Optuna's pruning callbacks report from inside the framework's training
    # (here XGBoost's): logged into the trial's run, next to XGBoost's own metrics.
    xgb = pytest.importorskip("xgboost")
    autolog.autolog()
    rng = np.random.RandomState(0)
    dtrain = xgb.DMatrix(rng.rand(50, 3), rng.rand(50))

    class Reporter(xgb.callback.TrainingCallback):
        def __init__(self, trial):
            super().__init__()
            self.trial = trial

        def after_iteration(self, model, epoch, evals_log):
            self.trial.report(evals_log["train"]["rmse"][-1], epoch)
            return False

    def objective(trial):
        depth = trial.suggest_int("max_depth", 1, 3)
        params = {"max_depth": depth, "nthread": 1}
        xgb.train(params, dtrain, 4, evals=[(dtrain, "train")], callbacks=[Reporter(trial)])
        return 0.0

    study = optuna.create_study(sampler=_sampler())
    study.optimize(objective, n_trials=1)
    _, [child] = _runs()
    assert [s for s, _ in history(child, "intermediate_value")] == [0, 1, 2, 3]
    assert [s for s, _ in history(child, "train-rmse")] == [0, 1, 2, 3]  # XGBoost's own logging
    assert child.data.params["num_boost_round"] == "4"


def test_ask_and_tell_trials_are_not_logged():
    autolog.autolog("optuna")
    study = optuna.create_study()
    trial = study.ask()
    trial.report(1.0, 0)
    study.tell(trial, 1.0)
    assert autolog.Client().search_runs(["0"]) == []  # only optimize is a training of ours


WORKER = """
import sys
import optuna
import autolog

optuna.logging.set_verbosity(optuna.logging.WARNING)
autolog.autolog("optuna")
study = optuna.create_study(study_name="shared", storage=sys.argv[1], load_if_exists=True)
study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.2) ** 2, n_trials=3)
"""


@pytest.mark.slow
def test_processes_sharing_an_rdb_storage_log_under_one_study_run(tmp_path, tracking_uri):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="shared", storage=storage)  # as a launcher would
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    workers = [
        subprocess.Popen([sys.executable, str(script), storage], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    parents, children = _runs()
    assert len(parents) == 1, [p.info.run_id for p in parents]
    assert len(children) == 6
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    numbers = sorted(int(c.data.tags["optuna.trial_number"]) for c in children)
    assert numbers == list(range(6))  # every trial of both processes, once
    assert parents[0].info.status == "FINISHED"
    study = optuna.load_study(study_name="shared", storage=storage)
    assert parents[0].data.metrics["best_value"] == pytest.approx(study.best_value)


@pytest.mark.parametrize(
    "broken_parts",
    [
        ("autolog.integrations.optuna._best_trial",),  # the study's best, at the end
        ("autolog.plugin.log_metric",),  # the study's history, at each trial's end
        # a trial's params, value and state, queued with its end, and one at a
        # time when that fails
        ("autolog.tracking.fluent._last_items", "autolog.plugin.set_tags"),
    ],
)
def test_our_failures_never_reach_the_study(monkeypatch, broken_parts):
    monkeypatch.setenv("AUTOLOG_TESTING", "0")  # our errors are warnings, as for users
    autolog.autolog("optuna")

    def broken(*args, **kwargs):
        raise RuntimeError("bug in autolog")

    for part in broken_parts:
        monkeypatch.setattr(part, broken)
    study = optuna.create_study(sampler=_sampler())
    with pytest.warns(autolog.AutologWarning, match="bug in autolog"):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len(study.trials) == 3
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    parents, children = _runs()
    assert len(parents) == 1 and len(children) == 3  # each trial's run under the study's
    assert [c.info.status for c in children] == ["FINISHED"] * 3  # closed all the same


def test_a_shared_study_is_known_by_its_name_and_storage_not_the_password():
    from autolog.integrations.optuna import _study_key

    class Backend:
        def __init__(self, url):
            self.url = url

    class Study:
        def __init__(self, name):
            self.study_name = name

    def key(name, url):
        return _study_key(Study(name), Backend(url))

    db = "postgresql://bob:{}@db.example/optuna"
    assert key("s", db.format("secret")) == key("s", db.format("other"))  # same study
    assert key("s", db.format("secret")) != key("t", db.format("secret"))  # another study
    assert key("s", "sqlite:///a.db") != key("s", "sqlite:///b.db")  # another storage
