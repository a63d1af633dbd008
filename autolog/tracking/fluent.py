"""The fluent tracking API: ``autolog.start_run()``, ``autolog.log_metric(...)``, ...

What the user gets::

    import autolog
    autolog.set_experiment("Customer_Churn_Prediction")
    with autolog.start_run(run_name="random_forest_v1") as run:
        autolog.log_params({"n_estimators": 100, "max_depth": 10})
        for epoch in range(10):
            autolog.log_metric("train_loss", 1 / (epoch + 1), step=epoch)
        autolog.set_tag("model_type", "Random Forest")
    print(autolog.get_run(run.info.run_id).data.metrics)

How it stays fast (ARCHITECTURE.md rule 2): ``start_run`` makes the run id
locally and queues the run's creation; ``log_*`` validate, then queue. The
background writer (:mod:`autolog.tracking.writer`) writes; :func:`flush`,
:func:`end_run` and interpreter exit drain the queue; reads flush first, so a
process always reads its own writes. Params are checked for immutability here,
synchronously, so an overwrite raises at the call that made it, against the
params the process keeps per run.

A thin facade over modules cut by concept, shared with ``Client``: the active
runs and their states (:mod:`autolog.tracking.run_state`), store resolution
(:mod:`autolog.tracking.tracking_uri`), the validation cache
(:mod:`autolog.tracking.validation`), the experiments
(:mod:`autolog.tracking.fluent_experiments`) and the artifact functions
(:mod:`autolog.tracking.fluent_artifacts`), whose public names it re-exports.

The active-run stack is per thread. Internal keyword arguments for other parts
of autolog (not part of the user's API): ``run_id=`` on the ``log_*`` and
``set_tag(s)`` functions logs to a run that is not this thread's active run
(injected training callbacks run on other threads), ``end_run(flush=False)``
returns without draining (the patch manager closes a run per ``fit``),
``end_run(run_id=...)`` ends a given active run, and
:func:`log_bytes` writes an artifact file through the writer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any

from autolog.errors import InvalidParameterError
from autolog.tracking import fluent_experiments, run_state, tracking_uri
from autolog.tracking.entities import (
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
from autolog.tracking.fluent_experiments import (
    active_experiment_id,
    create_experiment,
    get_experiment,
    get_experiment_by_name,
    search_experiments,
    set_experiment,
    set_experiment_tag,
    set_experiment_tags,
)
from autolog.tracking.run_state import (
    RunState,
    active_run_id,
    active_runs,
    check_status,
    check_writable,
    enqueue,
    finish,
    flush_started,
    new_params,
    now_ms,
    on_run_end,
    run_stack,
    target,
)
from autolog.tracking.stores import forget_stores
from autolog.tracking.tracking_uri import current_store, get_tracking_uri, set_tracking_uri
from autolog.tracking.validation import (
    INT64_MAX,
    INT64_MIN,
    check_key,
    checked_keys,
    require_run_id,
    validate_metric_value,
    validate_step,
    validate_timestamp,
    validated_tags,
)
from autolog.tracking.writer import METRIC, PARAM, TAG, get_writer

__all__ = [
    "ActiveRun",
    "active_run",
    "active_run_id",
    "create_experiment",
    "delete_tag",
    "end_run",
    "flush",
    "get_experiment",
    "get_experiment_by_name",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_bytes",
    "log_dict",
    "log_figure",
    "log_image",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "on_run_end",
    "log_text",
    "search_experiments",
    "search_runs",
    "set_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]


class ActiveRun(Run):
    """The run returned by :func:`start_run`; also a context manager.

    ``info`` is known locally (no I/O); ``data`` flushes the writer and reads
    the params, latest metrics and tags from the store. Leaving the ``with``
    block ends the run: FINISHED, FAILED on an exception, KILLED on
    KeyboardInterrupt; the exception propagates.
    """

    def __init__(self, state: RunState):
        self._state = state

    @property  # type: ignore[override]
    def info(self) -> RunInfo:
        return self._state.info

    @property  # type: ignore[override]
    def data(self) -> RunData:
        return get_run(self._state.run_id).data

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._state.run_id in active_runs:
            finish(self._state, RunStatus.ended_by(exc), flush=True)

    def __repr__(self) -> str:
        return f"<ActiveRun run_id={self._state.run_id!r} name={self._state.info.run_name!r}>"


# -- runs ----------------------------------------------------------------------


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    parent_run_id: str | None = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it this thread's active run.

    Use it as a context manager; ``nested=True`` puts the run under the active
    one (tag ``mlflow.parentRunId``). Without ``run_name`` a readable name such
    as ``brave-owl-417`` is generated. Experiment: ``experiment_id``, else the
    one of :func:`set_experiment`, else ``AUTOLOG_EXPERIMENT_ID`` /
    ``AUTOLOG_EXPERIMENT_NAME``, else the default experiment.
    """
    state = run_state.start(
        run_id, experiment_id, run_name, nested, tags, description, parent_run_id
    )
    return ActiveRun(state)


def end_run(
    status: str = RunStatus.FINISHED,
    *,
    flush: bool = True,
    run_id: str | None = None,
    end_time: int | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> None:
    """End this thread's active run (no-op without one) and drain the writer.

    Raises :class:`~autolog.errors.TrackingWriteError` for this run's writes
    that failed (another run's failures are left to :func:`flush`).
    ``flush=False`` (for the patch manager) returns without waiting for the
    writer, still raising this run's earlier background write errors. ``run_id=``
    (internal, for integrations whose run outlives a call) ends that active
    run of the process instead, wherever it is on the stack (no-op if it is not
    active). ``end_time=`` (internal, ms): when the run ended, if not now.
    ``params``, ``metrics`` (step 0, now) and ``tags`` (internal): the run's
    last values, checked as :func:`log_params`, :func:`log_metrics` and
    :func:`set_tags` check them and queued with the run's end in one go; if
    one is invalid (or a param would change) it raises and neither they nor
    the end are queued (the run stays active). Given for a run that is not
    active, they are logged to it by id and nothing ends.
    """
    if run_id is not None:
        state = active_runs.get(run_id)
        if state is None:
            if params or metrics or tags:
                _log_last(run_id, params, metrics, tags)
            return
    else:
        stack = run_stack()
        if not stack:
            return
        state = stack[-1]
    if params or metrics or tags:
        if status not in RunStatus.ALL:  # before the run's params record the new ones
            check_status(status)
        finish(state, status, flush, end_time, _last_items(state, params, metrics, tags))
    else:
        finish(state, status, flush, end_time)


def _last_items(
    state: RunState,
    params: Mapping[str, Any] | None,
    metrics: Mapping[str, float] | None,
    tags: Mapping[str, Any] | None,
) -> list:
    """The writer items of a run's last params, metrics and tags, all validated
    (params against the run's) before the run's params record the new ones."""
    if state.deleted:
        check_writable(state)
    store, run_id = state.store, state.run_id
    new = new_params(state, params.items()) if params else None
    points = _metric_points(metrics, now_ms(), 0) if metrics else ()
    clean = validated_tags(tags) if tags else None
    # all valid: in log_params, log_metrics, set_tags order (loops: no comprehension's call)
    items: list = []
    if new:
        state.params.update(new)
        for key, text in new.items():
            items.append((PARAM, store, run_id, Param(key, text)))
    for point in points:
        items.append((METRIC, store, run_id, point))
    if clean:
        for key, text in clean.items():
            items.append((TAG, store, run_id, RunTag(key, text)))
    return items


def _log_last(
    run_id: str,
    params: Mapping[str, Any] | None,
    metrics: Mapping[str, float] | None,
    tags: Mapping[str, Any] | None,
) -> None:
    state = target(run_id)
    items = _last_items(state, params, metrics, tags)
    if items:
        get_writer().extend(items)


def active_run() -> ActiveRun | None:
    """This thread's innermost active run, or None."""
    stack = run_stack()
    return ActiveRun(stack[-1]) if stack else None


def last_active_run() -> Run | None:
    """The active run, else the run that ended last in this process (read from the store)."""
    run_id = active_run_id() or run_state.last_run_id()
    return get_run(run_id) if run_id is not None else None


def get_run(run_id: str) -> Run:
    """Info, params, latest metrics and tags of a run (this process's writes included)."""
    require_run_id(run_id)
    flush_started()
    state = active_runs.get(run_id)
    return (state.store if state is not None else current_store()).get_run(run_id)


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 1000,
    order_by: Sequence[str] | None = None,
    output_format: str = "list",
) -> Any:
    """Runs of ``experiment_ids`` (default: the active experiment) matching the
    filter, as a list of :class:`Run` or, with ``output_format="pandas"``, a
    DataFrame with ``metrics.*``, ``params.*`` and ``tags.*`` columns."""
    flush_started()
    store = current_store()
    if experiment_ids is None:
        experiment_ids = [active_experiment_id(store)]
    runs: PagedList[Run] = store.search_runs(
        [str(e) for e in experiment_ids], filter_string, run_view_type, max_results, order_by
    )
    if output_format == "list":
        return runs
    if output_format == "pandas":
        return _runs_frame(runs)
    raise InvalidParameterError(f"output_format {output_format!r} must be 'list' or 'pandas'")


def _runs_frame(runs: Sequence[Run]) -> Any:
    import pandas as pd

    rows = []
    for run in runs:
        row: dict[str, Any] = {
            key: getattr(run.info, key)
            for key in ("run_id", "experiment_id", "run_name", "status", "artifact_uri")
        }
        row["start_time"] = pd.to_datetime(run.info.start_time, unit="ms", utc=True)
        end = run.info.end_time
        row["end_time"] = pd.to_datetime(end, unit="ms", utc=True) if end is not None else None
        for prefix, values in (("metrics", run.data.metrics), ("params", run.data.params)):
            row.update({f"{prefix}.{k}": v for k, v in values.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)


# -- params, metrics, tags (the hot path) --------------------------------------


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool = False,
    *,
    run_id: str | None = None,
) -> None:
    """Log one point of metric ``key`` (float; NaN and inf kept) at ``step`` (default 0).

    Returns at once; the point is written in the background (``synchronous=True``
    waits for the write). ``timestamp`` is in ms, default now.
    """
    state = target(run_id)
    if state.deleted:
        check_writable(state)
    if type(key) is not str or key not in checked_keys:
        check_key(key, "metric key")
    if type(value) is not float:
        value = validate_metric_value(key, value)
    if type(step) is not int or not INT64_MIN <= step <= INT64_MAX:
        step = validate_step(key, step)
    timestamp = time_ns() // 1_000_000 if timestamp is None else validate_timestamp(key, timestamp)
    writer = get_writer()
    writer.append((METRIC, state.store, state.run_id, Metric(key, value, timestamp, step)))
    if synchronous:
        writer.flush(state.run_id)


def log_metrics(
    metrics: Mapping[str, float],
    step: int | None = None,
    synchronous: bool = False,
    *,
    timestamp: int | None = None,
    run_id: str | None = None,
) -> None:
    """Log several metrics at one step; all are validated before any is queued."""
    state = target(run_id)
    if not metrics:
        return
    # step and timestamp are the same for every key: checked (and named after the
    # first key in an error) once per call; per-epoch callbacks call this
    first = next(iter(metrics))
    if type(step) is not int or not INT64_MIN <= step <= INT64_MAX:
        step = validate_step(first, step)
    when = now_ms() if timestamp is None else validate_timestamp(first, timestamp)
    enqueue(state, METRIC, _metric_points(metrics, when, step), synchronous)


def _metric_points(metrics: Mapping[str, float], when: int, step: int) -> list[Metric]:
    """``metrics`` as points at ``when`` and ``step``, every key and value checked."""
    points = []
    for key, value in metrics.items():
        if type(key) is not str or key not in checked_keys:
            check_key(key, "metric key")
        if type(value) is not float:
            value = validate_metric_value(key, value)
        points.append(Metric(key, value, when, step))
    return points


def log_param(key: str, value: Any, synchronous: bool = False, *, run_id: str | None = None) -> Any:
    """Log a param (stored as ``str(value)``) and return ``value``.

    Params are immutable: the same value again is a no-op, a different value
    raises :class:`~autolog.errors.ParamOverwriteError`.
    """
    log_params({key: value}, synchronous, run_id=run_id)
    return value


def log_params(
    params: Mapping[str, Any], synchronous: bool = False, *, run_id: str | None = None
) -> None:
    """Log several params; if any is invalid or would change, none is logged."""
    state = target(run_id)
    new = new_params(state, params.items())
    state.params.update(new)
    enqueue(state, PARAM, [Param(k, v) for k, v in new.items()], synchronous)


def set_tag(key: str, value: Any, synchronous: bool = False, *, run_id: str | None = None) -> None:
    """Set a tag (a mutable string) on the active run."""
    set_tags({key: value}, synchronous, run_id=run_id)


def set_tags(
    tags: Mapping[str, Any], synchronous: bool = False, *, run_id: str | None = None
) -> None:
    """Set several tags; all are validated before any is queued."""
    state = target(run_id)
    clean = validated_tags(tags)
    enqueue(state, TAG, [RunTag(k, v) for k, v in clean.items()], synchronous)


def delete_tag(key: str, *, run_id: str | None = None) -> None:
    """Remove a tag from the active run (``ResourceNotFoundError`` if it has none)."""
    state = target(run_id)
    check_writable(state)
    flush_started()
    state.store.delete_tag(state.run_id, check_key(key, "tag key"))


def flush() -> None:
    """Write everything logged so far.

    Raises :class:`~autolog.errors.TrackingWriteError` naming what could not be
    written: writes the store refused (invalid for it: dropped, raised once) and
    writes that keep failing (a full disk, a lost connection: kept for retry,
    raised again until they are written)."""
    get_writer().flush()


def _reset_for_tests() -> None:
    """End and forget every run, the URI and experiment set here, and the writer."""
    run_state.reset()
    fluent_experiments.reset()
    tracking_uri.reset()
    forget_stores()


# The artifact functions live in their own module; they are part of this API.
from autolog.tracking.fluent_artifacts import (  # noqa: E402
    log_artifact,
    log_artifacts,
    log_bytes,
    log_dict,
    log_figure,
    log_image,
    log_text,
)
