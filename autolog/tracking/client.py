"""``autolog.Client``: the explicit-id tracking API (no active run involved).

What the user gets::

    client = autolog.Client()                       # the current tracking URI
    experiments = client.search_experiments()
    runs = client.search_runs(["1"], filter_string="tags.model_type = 'Random Forest'")
    history = client.get_metric_history(run_id, "accuracy")
    local = client.download_artifacts(run_id, "model", dst_path="./")

Writes go through the process's background writer, like the fluent API's
(ARCHITECTURE.md rule 2): ``create_run``, ``log_*``, ``set_tag``,
``set_terminated`` and ``update_run`` validate now (params immutability
included, so an overwrite raises at the call), queue the write and return;
``synchronous=True`` waits for it. A drain of many runs is then written in one
store transaction instead of one per call. Reads flush the writer first, so
the client sees what this process logged, through it or the fluent API; so do
the calls whose answer or error is needed at once (experiments, ``delete_run``,
``restore_run``, ``delete_tag``, artifacts). A background write error is raised
by the next flush, as :class:`~autolog.errors.TrackingWriteError`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

from autolog.errors import InvalidParameterError, RunStateError
from autolog.tracking.context import RUN_NAME
from autolog.tracking.entities import (
    Experiment,
    FileInfo,
    LifecycleStage,
    Metric,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from autolog.tracking.fluent_experiments import forget_artifact_location
from autolog.tracking.run_state import (
    check_status,
    enqueue,
    flush_started,
    keep_detached,
    mark_deleted,
    new_params,
    new_run,
    now_ms,
    queue_run_info,
    state_in,
)
from autolog.tracking.stores import normalize_tracking_uri, store_for_uri
from autolog.tracking.stores.base import AbstractStore
from autolog.tracking.tracking_uri import get_tracking_uri
from autolog.tracking.validation import (
    require_run_id,
    validate_experiment_name,
    validate_key,
    validate_metric_value,
    validate_step,
    validate_tag_value,
    validate_timestamp,
    validated_tags,
)
from autolog.tracking.writer import METRIC, PARAM, TAG, get_writer

__all__ = ["Client"]


def _time_ms(what: str, value: Any) -> int:
    """``value`` (ms since the epoch) checked now, not when the writer writes it; None: now."""
    if value is None:
        return now_ms()
    try:
        return validate_timestamp(what, value)
    except InvalidParameterError:
        raise InvalidParameterError(
            f"{what} {value!r} must be non-negative milliseconds since the epoch"
        ) from None


def _clean_tags(tags: Sequence[RunTag]) -> list[RunTag]:
    return [
        RunTag(validate_key(t.key, "tag key"), validate_tag_value(t.key, t.value)) for t in tags
    ]


class Client:
    """Experiments, runs and artifacts of one tracking URI, addressed by id.

    ``tracking_uri``: default :func:`autolog.get_tracking_uri` at construction.
    Writes are queued on the process's background writer and go to this
    client's store, whatever the fluent API's URI is.
    """

    def __init__(self, tracking_uri: str | os.PathLike | None = None):
        uri = get_tracking_uri() if tracking_uri is None else os.fspath(tracking_uri)
        self.tracking_uri = normalize_tracking_uri(uri)
        self._store: AbstractStore = store_for_uri(self.tracking_uri)

    @property
    def store(self) -> AbstractStore:
        """The backend store behind this client."""
        return self._store

    # -- experiments (synchronous: flush, then ask the store) ------------------
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Create an experiment and return its id."""
        clean = validated_tags(tags or {})
        name = validate_experiment_name(name)
        flush_started()
        return self._store.create_experiment(name, artifact_location, clean)

    def get_experiment(self, experiment_id: str) -> Experiment:
        flush_started()
        return self._store.get_experiment(str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        flush_started()
        return self._store.get_experiment_by_name(name)

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
    ) -> list[Experiment]:
        """Experiments matching ``filter_string`` (``name``, ``tags.<key>``)."""
        flush_started()
        return self._store.search_experiments(view_type, max_results, filter_string, order_by)

    def delete_experiment(self, experiment_id: str) -> None:
        flush_started()
        self._store.delete_experiment(str(experiment_id))
        # create_run checks an experiment is active once and caches the answer
        forget_artifact_location(self._store, str(experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        flush_started()
        self._store.restore_experiment(str(experiment_id))

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        flush_started()
        self._store.rename_experiment(str(experiment_id), validate_experiment_name(new_name))

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        validate_key(key, "tag key")
        clean = validate_tag_value(key, value)
        flush_started()
        self._store.set_experiment_tag(str(experiment_id), key, clean)

    # -- runs --------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        synchronous: bool = False,
    ) -> Run:
        """Create a RUNNING run (with the system tags) and return it; end it with
        :meth:`set_terminated`.

        The run id is made here and the creation is queued (``synchronous=True``
        waits for it); only the first run of an experiment asks the store
        whether the experiment exists and is active.
        """
        clean = validated_tags(tags or {})
        start = _time_ms("start_time", start_time)
        state, all_tags = new_run(self._store, str(experiment_id), run_name, clean, start)
        keep_detached(state)  # later log_* calls find its params without a read
        if synchronous:
            get_writer().flush(state.run_id)
        return Run(copy.copy(state.info), RunData(tags=dict(all_tags())))

    def get_run(self, run_id: str) -> Run:
        """Info, params, latest metrics and tags of a run."""
        flush_started()
        return self._store.get_run(require_run_id(run_id))

    def set_terminated(
        self,
        run_id: str,
        status: str = RunStatus.FINISHED,
        end_time: int | None = None,
        synchronous: bool = False,
    ) -> RunInfo:
        """End a run with ``status`` (FINISHED, FAILED or KILLED); returns its info
        as it will be once written."""
        check_status(status)
        end = _time_ms("end_time", end_time)
        state = state_in(self._store, run_id)
        queue_run_info(state, status=status, end_time=end)
        state.info.status, state.info.end_time = status, end
        if synchronous:
            get_writer().flush(run_id)
        return copy.copy(state.info)

    def update_run(
        self,
        run_id: str,
        status: str | None = None,
        name: str | None = None,
        synchronous: bool = False,
    ) -> None:
        """Change a run's status and / or name (and so its ``mlflow.runName`` tag)."""
        if status is not None:
            check_status(status)
        if name is not None:
            name = validate_tag_value(RUN_NAME, name)
        state = state_in(self._store, run_id)
        queue_run_info(state, status=status, run_name=name)
        if status is not None:
            state.info.status = status
        if name:
            state.info.run_name = name
        if synchronous:
            get_writer().flush(run_id)

    def delete_run(self, run_id: str) -> None:
        """Mark a run deleted (``restore_run`` undoes it); writing to it is then a
        :class:`~autolog.errors.RunStateError`, here and in the stores."""
        flush_started()
        self._store.delete_run(run_id)
        mark_deleted(run_id, True)

    def restore_run(self, run_id: str) -> None:
        flush_started()
        self._store.restore_run(run_id)
        mark_deleted(run_id, False)

    def search_runs(
        self,
        experiment_ids: Sequence[str] | str,
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        """Runs matching the filter, e.g. ``"tags.model_type = 'Random Forest'"``;
        ``.token`` of the result fetches the next page."""
        flush_started()
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        return self._store.search_runs(
            [str(i) for i in ids], filter_string, run_view_type, max_results, order_by, page_token
        )

    # -- params, metrics, tags (queued) ----------------------------------------------
    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool = False) -> Any:
        """Log a param (immutable: a different value raises ParamOverwriteError now)."""
        self.log_batch(run_id, params=[Param(key, value)], synchronous=synchronous)
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: bool = False,
    ) -> None:
        timestamp = now_ms() if timestamp is None else timestamp
        metric = Metric(key, value, timestamp, step or 0)
        self.log_batch(run_id, metrics=[metric], synchronous=synchronous)

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool = False) -> None:
        self.log_batch(run_id, tags=[RunTag(key, value)], synchronous=synchronous)

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag now (``ResourceNotFoundError`` if the run has none of that key)."""
        flush_started()
        self._store.delete_tag(run_id, validate_key(key, "tag key"))

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: bool = False,
    ) -> None:
        """Log metrics, params and tags of one run, in the order given.

        Everything is validated, and params checked against what the run has,
        before anything is queued: an invalid value or a changed param raises
        here and nothing of the batch is written. ``synchronous=True`` waits
        for the write.
        """
        clean_metrics = [
            Metric(
                validate_key(m.key, "metric key"),
                validate_metric_value(m.key, m.value),
                validate_timestamp(m.key, m.timestamp),
                validate_step(m.key, m.step),
            )
            for m in metrics
        ]
        clean_tags = _clean_tags(tags)
        state = state_in(self._store, run_id)
        added = new_params(state, ((p.key, p.value) for p in params))
        state.params.update(added)
        enqueue(state, METRIC, clean_metrics, False)
        enqueue(state, PARAM, [Param(k, v) for k, v in added.items()], False)
        enqueue(state, TAG, clean_tags, synchronous)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of ``key``, ordered by step, then time."""
        flush_started()
        return self._store.get_metric_history(run_id, key)

    # -- artifacts -------------------------------------------------------------------
    def _repository(self, run_id: str, write: bool = False) -> Any:
        from autolog.tracking.artifacts import repository_for

        info = self.get_run(run_id).info
        if write and info.lifecycle_stage == LifecycleStage.DELETED:
            raise RunStateError(f"run {run_id} is deleted; restore it before writing to it")
        return repository_for(info.artifact_uri, self.tracking_uri)

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike, artifact_path: str | None = None
    ) -> None:
        self._repository(run_id, write=True).log_artifact(os.fspath(local_path), artifact_path)

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike, artifact_path: str | None = None
    ) -> None:
        self._repository(run_id, write=True).log_artifacts(os.fspath(local_dir), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._repository(run_id, write=True).log_bytes(str(text).encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        from autolog.tracking.render import dict_bytes

        data = dict_bytes(dictionary, artifact_file)
        self._repository(run_id, write=True).log_bytes(data, artifact_file)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """The files and folders directly under ``path`` of the run's artifacts."""
        return self._repository(run_id).list_artifacts(path)

    def download_artifacts(
        self, run_id: str, path: str, dst_path: str | os.PathLike | None = None
    ) -> str:
        """Copy an artifact file or folder to ``dst_path`` (default: a new temporary
        folder) and return its local path."""
        return self._repository(run_id).download_artifacts(path, dst_path)
