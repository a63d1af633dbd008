"""``autolog.Client``: the explicit-id tracking API (no active run involved).

What the user gets::

    client = autolog.Client()                       # the current tracking URI
    experiments = client.search_experiments()
    runs = client.search_runs(["1"], filter_string="tags.model_type = 'Random Forest'")
    history = client.get_metric_history(run_id, "accuracy")
    local = client.download_artifacts(run_id, "model", dst_path="./")

Writes go straight to the store, validated like the fluent API's. Every call
first flushes this process's background writer, so the client sees what the
fluent API logged and writes in the order the process made them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from autolog.errors import InvalidParameterError
from autolog.tracking import fluent
from autolog.tracking import writer as _writers
from autolog.tracking.context import RUN_NAME, USER, generate_run_name, system_tags
from autolog.tracking.entities import (
    Experiment,
    FileInfo,
    Metric,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from autolog.tracking.fluent_experiments import _require_name
from autolog.tracking.stores import normalize_tracking_uri, store_for_uri
from autolog.tracking.stores.base import AbstractStore
from autolog.tracking.validation import (
    check_param_unchanged,
    validate_key,
    validate_metric_value,
    validate_param_value,
    validate_step,
    validate_tag_value,
    validate_timestamp,
)

__all__ = ["Client"]


def _flush() -> None:
    writer = _writers._writer
    if writer is not None:
        writer.flush()


class Client:
    """Experiments, runs and artifacts of one tracking URI, addressed by id.

    ``tracking_uri``: default :func:`autolog.get_tracking_uri` at construction.
    """

    def __init__(self, tracking_uri: str | os.PathLike | None = None):
        uri = fluent.get_tracking_uri() if tracking_uri is None else os.fspath(tracking_uri)
        self.tracking_uri = normalize_tracking_uri(uri)
        self._store: AbstractStore = store_for_uri(self.tracking_uri)

    @property
    def store(self) -> AbstractStore:
        """The backend store behind this client."""
        return self._store

    # -- experiments -----------------------------------------------------------
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Create an experiment and return its id."""
        clean = {
            validate_key(k, "tag key"): validate_tag_value(k, v) for k, v in (tags or {}).items()
        }
        return self._store.create_experiment(_require_name(name), artifact_location, clean)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._store.get_experiment(str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self._store.get_experiment_by_name(name)

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
    ) -> list[Experiment]:
        """Experiments matching ``filter_string`` (``name``, ``tags.<key>``)."""
        return self._store.search_experiments(view_type, max_results, filter_string, order_by)

    def delete_experiment(self, experiment_id: str) -> None:
        self._store.delete_experiment(str(experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        self._store.restore_experiment(str(experiment_id))

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._store.rename_experiment(str(experiment_id), _require_name(new_name))

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        validate_key(key, "tag key")
        self._store.set_experiment_tag(str(experiment_id), key, validate_tag_value(key, value))

    # -- runs --------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: Mapping[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        """Create a RUNNING run (with the system tags) and return it; end it with
        :meth:`set_terminated`."""
        clean = {
            validate_key(k, "tag key"): validate_tag_value(k, v) for k, v in (tags or {}).items()
        }
        name = run_name or clean.get(RUN_NAME) or generate_run_name()
        all_tags = {**system_tags(), **clean, RUN_NAME: name}
        return self._store.create_run(
            str(experiment_id),
            all_tags[USER],
            fluent._now_ms() if start_time is None else start_time,
            tags=[RunTag(k, v) for k, v in all_tags.items()],
            run_name=name,
        )

    def get_run(self, run_id: str) -> Run:
        """Info, params, latest metrics and tags of a run."""
        _flush()
        return self._store.get_run(run_id)

    def set_terminated(
        self, run_id: str, status: str = RunStatus.FINISHED, end_time: int | None = None
    ) -> RunInfo:
        """End a run with ``status`` (FINISHED, FAILED or KILLED)."""
        _flush()
        if status not in RunStatus.ALL:
            raise InvalidParameterError(f"run status {status!r} is not one of {RunStatus.ALL}")
        end = fluent._now_ms() if end_time is None else end_time
        return self._store.update_run_info(run_id, status=status, end_time=end)

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        _flush()
        self._store.update_run_info(run_id, status=status, run_name=name)

    def delete_run(self, run_id: str) -> None:
        _flush()
        self._store.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self._store.restore_run(run_id)

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
        _flush()
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        return self._store.search_runs(
            [str(i) for i in ids], filter_string, run_view_type, max_results, order_by, page_token
        )

    # -- params, metrics, tags -----------------------------------------------------
    def log_param(self, run_id: str, key: str, value: Any) -> Any:
        """Log a param (immutable: a different value raises ParamOverwriteError)."""
        self.log_batch(run_id, params=[Param(key, value)])
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        timestamp = fluent._now_ms() if timestamp is None else timestamp
        self.log_batch(run_id, metrics=[Metric(key, value, timestamp, step or 0)])

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags=[RunTag(key, value)])

    def delete_tag(self, run_id: str, key: str) -> None:
        _flush()
        self._store.delete_tag(run_id, validate_key(key, "tag key"))

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Write metrics, params and tags of one run now, in the order given.
        Everything is validated before anything is written."""
        clean_metrics = [
            Metric(
                validate_key(m.key, "metric key"),
                validate_metric_value(m.key, m.value),
                validate_timestamp(m.key, m.timestamp),
                validate_step(m.key, m.step),
            )
            for m in metrics
        ]
        clean_params = [
            Param(validate_key(p.key, "param key"), validate_param_value(p.key, p.value))
            for p in params
        ]
        seen: dict[str, str] = {}
        for param in clean_params:  # the same key twice in one batch must agree
            if param.key in seen:
                check_param_unchanged(param.key, seen[param.key], param.value)
            seen[param.key] = param.value
        clean_tags = [
            RunTag(validate_key(t.key, "tag key"), validate_tag_value(t.key, t.value)) for t in tags
        ]
        _flush()
        self._store.log_batch(run_id, clean_metrics, clean_params, clean_tags)
        state = fluent._runs.get(run_id)
        if state is not None:  # keep the fluent API's immutability check in step
            state.params.update(seen)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of ``key``, ordered by step, then time."""
        _flush()
        return self._store.get_metric_history(run_id, key)

    # -- artifacts -------------------------------------------------------------------
    def _repository(self, run_id: str) -> Any:
        from autolog.tracking.artifacts import repository_for

        return repository_for(self.get_run(run_id).info.artifact_uri)

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike, artifact_path: str | None = None
    ) -> None:
        self._repository(run_id).log_artifact(os.fspath(local_path), artifact_path)

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike, artifact_path: str | None = None
    ) -> None:
        self._repository(run_id).log_artifacts(os.fspath(local_dir), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._repository(run_id).log_bytes(str(text).encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        from autolog.tracking.render import dict_bytes

        data = dict_bytes(dictionary, artifact_file)
        self._repository(run_id).log_bytes(data, artifact_file)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """The files and folders directly under ``path`` of the run's artifacts."""
        return self._repository(run_id).list_artifacts(path)

    def download_artifacts(
        self, run_id: str, path: str, dst_path: str | os.PathLike | None = None
    ) -> str:
        """Copy an artifact file or folder to ``dst_path`` (default: a new temporary
        folder) and return its local path."""
        return self._repository(run_id).download_artifacts(path, dst_path)
