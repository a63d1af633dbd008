"""Optuna autologging: a study's ``optimize`` gives a parent run and a child run per trial.

::

    import autolog, optuna
    autolog.autolog()

    def objective(trial):
        C = trial.suggest_float("C", 1e-3, 10, log=True)
        model = LogisticRegression(C=C).fit(X_train, y_train)  # logs into the trial's run
        return model.score(X_valid, y_valid)

    study = optuna.create_study(study_name="churn", direction="maximize")
    study.optimize(objective, n_trials=20)

**The study's run** (the parent; your active run if you started one) holds
params ``study_name``, ``direction`` (``directions`` with several
objectives), ``sampler`` and ``pruner`` (class names); after each
``optimize``, metrics ``best_value`` and ``best_trial`` (its number) and
tags ``best_params.<name>`` (tags: a later ``optimize`` or another process
may find a better trial), or, with several objectives, the metric
``best_trials`` (the size of the Pareto front); and ``trial_value`` at step =
trial number, the optimisation history. A study in a shared storage (an RDB
URL such as ``sqlite:///study.db``, a journal) has one parent run per study
however many processes or ``optimize`` calls work on it: each finds it by
the study's name and storage (tag ``autolog.optuna.study``) in the active
experiment, resumes it and nests its own trials under it. An in-memory study
keeps its parent for each ``optimize`` of this process.

**Each trial's run** (a child run, ``trial_<number>``) holds the trial's
params, metric ``value`` (``value_<i>``, or the study's ``metric_names``,
with several objectives), ``intermediate_value`` at each ``trial.report``
step (logged when the trial ends: reporting costs nothing more), tags
``optuna.trial_number`` and ``optuna.trial_state`` (``COMPLETE``, ``PRUNED``
or ``FAIL``); it ends FINISHED, or FAILED for a failed trial.
Whatever the objective trains under autolog (a scikit-learn ``fit``, an
XGBoost ``train``, ...) logs into the trial's run, not a run of its own;
trials that run in threads (``n_jobs > 1``) each log into their own run.

Looking up a shared study's run reads the tracking store once per
``optimize``; per trial, everything is enqueued. A trial's run gets its
params, value and state when Optuna has told the trial: in a callback of
ours ahead of yours when you pass ``callbacks`` (they see the trial's run
complete), else when its thread starts the next trial or ``optimize``
returns, with the time its objective returned as the run's end (a callback
would cost each trial Optuna's deep copy of it).
"""

from __future__ import annotations

import threading
import time
import weakref

import autolog
from autolog import plugin

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    import types
    from collections.abc import Callable, Generator
    from typing import Any

    from autolog.plugin import Call

__all__ = ["OptunaIntegration"]

STUDY_TAG = "autolog.optuna.study"
STUDY_NAME_TAG = "optuna.study_name"
TRIAL_NUMBER_TAG = "optuna.trial_number"
TRIAL_STATE_TAG = "optuna.trial_state"
INTERMEDIATE_METRIC = "intermediate_value"
_PASSWORD = r"(://[^/:@]*):[^/@]*@"  # the password of a URL (re: imported when used)


class OptunaIntegration(plugin.Integration):
    """Autologging for Optuna (see the module documentation).

    State: the parent run of each in-memory study, on the instance;
    :meth:`unpatch` forgets them."""

    name = "optuna"
    modules = ("optuna",)
    distribution = "optuna"
    supported_versions = ">=3.4,<6"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        #: in-memory storage -> {study id: parent run id}
        self._memory_parents: weakref.WeakKeyDictionary[Any, dict[int, str]] = (
            weakref.WeakKeyDictionary()
        )

    def unpatch(self) -> None:
        with self._lock:
            self._memory_parents = weakref.WeakKeyDictionary()

    def patch(self, patcher: plugin.Patcher, module: types.ModuleType) -> None:
        # opens_run=False: the study's run is found or opened by on_optimize
        # itself (a shared study's run is found again by its name)
        patcher.wrap(module.study.Study, "optimize", self.on_optimize, opens_run=False)

    # -- the study's run --------------------------------------------------------------

    def on_optimize(self, call: Call) -> Generator[None, Any, None]:
        study = call.instance
        parent, ours = self._study_run(study)
        if parent is None:
            yield  # a distributed worker (not rank 0): nothing logged
            return
        try:
            callbacks = call.argument("callbacks")
            # Without callbacks of the user's, a trial's run is closed when its
            # thread starts the next trial (or when optimize ends), from the state
            # Optuna stored: a callback of ours would cost each trial Optuna's deep
            # copy of it (25 us, a third of what we add to a trial). With theirs,
            # ours runs first, so their callbacks see the trial's run complete.
            deferred = not callbacks
            optimization = _Optimization(self, study, parent, call.argument("catch"), deferred)
            plugin.log_params(_study_params(study), parent)
            call.set_argument("func", optimization.wrap(call.argument("func")))
            if not deferred:
                call.set_argument("callbacks", [optimization.trial_finished, *callbacks])
        except BaseException:  # reported by the patch manager; leave no run of ours open
            if ours:
                plugin.end_training_run("FAILED", run_id=parent)
            raise
        status = "FAILED"
        try:
            yield
            status = "FINISHED"
        finally:  # also when optimize raised (the generator is closed)
            optimization.end_unfinished()
            metrics: dict[str, Any] = {}
            tags: dict[str, Any] = {}
            with plugin.guard(self.name, "while logging the study's best trial"):
                metrics, tags = _best(study)
                if not ours:  # the user's run: they end it
                    if metrics:
                        plugin.log_metrics(metrics, run_id=parent)
                    if tags:
                        plugin.set_tags(tags, run_id=parent)
            if ours:  # the best trial is queued with the run's end, which it always ends
                with plugin.guard(self.name, "while closing the study's run"):
                    plugin.end_training_run(status, run_id=parent, metrics=metrics, tags=tags)

    def _study_run(self, study: Any) -> tuple[str | None, bool]:
        """The study's run and whether we end it: the user's active run (by the
        usual policy), else this study's run found again, else a new one."""
        if plugin.active_run_id() is not None or not plugin.is_main_process():
            return plugin.training_run(self, study)  # the user's run, or none on rank > 0
        storage = study._storage
        backend = getattr(storage, "_backend", storage)  # an RDB storage is cached
        if type(backend).__name__ == "InMemoryStorage":
            with self._lock:
                runs = self._memory_parents.setdefault(backend, {})
                known = runs.get(study._study_id)
            run_id = self._resume(known) if known else None
            if run_id is None:
                run_id = self._open_study_run(study, None)
                with self._lock:
                    runs[study._study_id] = run_id
            return run_id, True
        key = _study_key(study, backend)
        found = _study_runs(key)
        if found:
            run_id = self._resume(found[0])
            if run_id is not None:
                return run_id, True
        run_id = self._open_study_run(study, key)
        # Another process may have opened one at the same moment: the oldest wins.
        found = _study_runs(key)
        if found and found[0] != run_id:
            plugin.end_training_run("FINISHED", run_id=run_id)
            autolog.Client().delete_run(run_id)
            resumed = self._resume(found[0])
            if resumed is not None:
                return resumed, True
        return run_id, True

    def _open_study_run(self, study: Any, key: str | None) -> str:
        """A new run for the study (no run is active on this thread)."""
        tags = {STUDY_NAME_TAG: study.study_name}
        if key is not None:
            tags[STUDY_TAG] = key
        return plugin.start_training_run(self, None, study.study_name, tags)

    def _resume(self, run_id: str) -> str | None:
        try:
            return autolog.start_run(run_id=run_id).info.run_id
        except autolog.AutologError:  # deleted meanwhile: a new one is opened
            return None


class _Optimization:
    """One ``optimize`` call: its objective wrapper, and the closing of each
    trial's run (by Optuna's callback, or ``deferred`` to the thread's next trial).

    Per trial this runs on the training thread between Optuna's code and the
    objective's, with cold caches: no guard objects (``try``/``except`` and
    :func:`plugin.report_error`, the same policy), no lock (a dict's item
    assignment and ``pop`` are atomic: each trial has its own key), the
    trial's number and study name set at the run's creation."""

    def __init__(
        self, integration: OptunaIntegration, study: Any, parent: str, catch: Any, deferred: bool
    ):
        self.integration = integration
        self.study = study
        self.study_name = study.study_name
        self.parent = parent
        self.deferred = deferred
        from optuna.exceptions import TrialPruned
        from optuna.trial import TrialState

        # Optuna tells these and calls the callbacks; any other exception it re-raises
        self.caught = (TrialPruned, *_exception_types(catch))
        #: a final state -> its name (the enum's name and hash are Python calls)
        final = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        self.final = tuple((state, state.name) for state in final)
        #: trial number -> its run id, from the objective's start to the trial's end
        self.trials: dict[int, str] = {}
        #: deferred: thread id -> [(trial id, the time its objective returned)], the
        #: trials of that thread that Optuna tells after the objective returns
        self.told: dict[int, list[tuple[int, int]]] = {}

    def wrap(self, func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        deferred = self.deferred
        told = self.told  # end_unfinished empties it in place
        get_ident = threading.get_ident
        report_error = plugin.report_error
        start_training_run = plugin.start_training_run
        integration, parent, study_name = self.integration, self.parent, self.study_name
        trials = self.trials  # end_unfinished empties it in place

        def objective(trial: Any) -> Any:
            if deferred:  # this thread's previous trial, told by now
                mine = told.pop(get_ident(), None)
                if mine:
                    try:
                        self.close_told(mine)
                    except Exception as exc:
                        report_error("optuna", exc, "while closing a trial's run")
            try:  # the trial's run: its number and study name tagged at its creation
                number = trial.number
                trials[number] = start_training_run(
                    integration,
                    parent,
                    f"trial_{number}",
                    {TRIAL_NUMBER_TAG: number, STUDY_NAME_TAG: study_name},
                )
            except Exception as exc:
                report_error("optuna", exc, "while opening the trial's run")
                return func(trial)
            failed = False  # an error Optuna re-raises: no state to be told
            try:
                with plugin.outside_session():  # its trainings log into the trial's run
                    return func(trial)
            except BaseException as exc:
                if not isinstance(exc, self.caught):
                    failed = True
                    try:
                        self.end_failed(trial, exc)
                    except Exception as error:
                        report_error("optuna", error, "while closing a failed trial's run")
                raise
            finally:
                if deferred and not failed:  # Optuna tells the trial next; its run ends now
                    told.setdefault(get_ident(), []).append(
                        (trial._trial_id, time.time_ns() // 1_000_000)
                    )

        objective.__wrapped__ = func  # type: ignore[attr-defined]
        return objective

    def close_told(self, told: Any) -> None:
        """Close the runs of trials Optuna has told since their objectives returned
        (their end time: when the objective returned). One it has not told
        (its telling failed) is left to :meth:`end_unfinished`."""
        storage = self.study._storage
        for trial_id, end_time in told:
            frozen = storage.get_trial(trial_id)  # Optuna's own, not a copy: only read
            state = frozen.state
            for final, name in self.final:
                if state is final:
                    self.trial_finished(self.study, frozen, end_time, name)
                    break

    def tags(self, number: int, state: str) -> dict[str, Any]:
        return {
            TRIAL_NUMBER_TAG: number,
            TRIAL_STATE_TAG: state,
            STUDY_NAME_TAG: self.study_name,
        }

    def trial_finished(
        self, study: Any, frozen: Any, end_time: int | None = None, state: str | None = None
    ) -> None:
        """A trial with its final state (``state``, its name, if known): Optuna's
        callback, or :meth:`close_told`. Its number and study name were tagged at
        the run's creation; its params, value and state are queued with the
        run's end, in one go."""
        number = frozen.number
        run_id = self.trials.pop(number, None)
        if run_id is None:
            return
        if state is None:
            state = frozen.state.name
        status = "FAILED" if state == "FAIL" else "FINISHED"
        ended = False
        try:
            values = frozen.values
            intermediate = frozen.intermediate_values
            for step in sorted(intermediate):
                plugin.log_metric(INTERMEDIATE_METRIC, intermediate[step], step, run_id=run_id)
            plugin.end_training_run(
                status,
                run_id=run_id,
                end_time=end_time,
                params=frozen.params,
                metrics=_values(study, values),
                tags={TRIAL_STATE_TAG: state},
            )  # it ends the run whatever it raises
            ended = True
            if state == "COMPLETE" and values and len(values) == 1:
                plugin.log_metric("trial_value", values[0], number, run_id=self.parent)
        except Exception as exc:
            plugin.report_error("optuna", exc, "while logging a trial")
        finally:  # whatever failed above, the trial's run ends here
            if not ended:
                try:
                    plugin.end_training_run(status, run_id=run_id, end_time=end_time)
                except Exception as exc:
                    plugin.report_error("optuna", exc, "while closing a trial's run")

    def end_failed(self, trial: Any, exc: BaseException) -> None:
        """A trial whose exception ends ``optimize``: Optuna calls no callback."""
        run_id = self.trials.pop(trial.number, None)
        if run_id is None:
            return
        try:
            plugin.log_params(trial.params, run_id)
            plugin.set_tags(self.tags(trial.number, "FAIL"), run_id=run_id)
        finally:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            plugin.end_training_run(status, run_id=run_id)

    def end_unfinished(self) -> None:
        """At the end of ``optimize``: the told trials not closed yet (deferred),
        then the runs of trials that never got a final state (Optuna failed telling)."""
        told = list(self.told.values())
        self.told.clear()
        for entries in told:
            with plugin.guard("optuna", "while closing a trial's run"):
                self.close_told(entries)
        left = list(self.trials.values())
        self.trials.clear()
        for run_id in left:
            with plugin.guard("optuna", "while closing a trial's run"):
                plugin.end_training_run("FAILED", run_id=run_id)


def _exception_types(catch: Any) -> tuple[type[BaseException], ...]:
    if isinstance(catch, type):
        return (catch,)
    return tuple(catch or ())


def _study_params(study: Any) -> dict[str, Any]:
    directions = [d.name.lower() for d in study.directions]
    params: dict[str, Any] = {"study_name": study.study_name}
    if len(directions) == 1:
        params["direction"] = directions[0]
    else:
        params["directions"] = directions
    params["sampler"] = type(study.sampler).__name__
    params["pruner"] = type(study.pruner).__name__
    return params


def _values(study: Any, values: Any) -> dict[str, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {"value": values[0]}
    names = getattr(study, "metric_names", None) or [f"value_{i}" for i in range(len(values))]
    return dict(zip(names, values))


def _best(study: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The study's best trial as the metrics and tags of its run (none when no
    trial completed)."""
    if len(study.directions) > 1:
        return {"best_trials": len(study.best_trials)}, {}
    try:
        best = _best_trial(study)
    except ValueError:  # no trial completed
        return {}, {}
    metrics = {"best_value": best.value, "best_trial": best.number}
    return metrics, {f"best_params.{k}": v for k, v in best.params.items()}


def _best_trial(study: Any) -> Any:
    """``study.best_trial`` without its deep copy where Optuna has the call
    (we only read it); ValueError when no trial completed."""
    get = getattr(study, "_get_best_trial", None)
    if get is not None:
        try:
            return get(deepcopy=False)
        except TypeError:  # another signature: the public property
            pass
    return study.best_trial


def _study_key(study: Any, backend: Any) -> str:
    """What identifies a study across processes: its name and its storage (the
    URL without a password), hashed into a tag value any filter can quote."""
    import hashlib
    import re

    where = getattr(backend, "url", None) or type(backend).__name__
    text = study.study_name + "\n" + re.sub(_PASSWORD, r"\1@", str(where))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _study_runs(key: str) -> list[str]:
    """The study's runs in the active experiment, oldest first."""
    runs = autolog.search_runs(
        filter_string=f"tags.`{STUDY_TAG}` = '{key}'",
        order_by=["attributes.start_time ASC"],
    )
    return [run_id for _, run_id in sorted((r.info.start_time or 0, r.info.run_id) for r in runs)]
