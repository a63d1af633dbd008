"""Run routes: create, get, update, delete, restore, search, and every write.

Writes to a deleted run are refused (400, the store's RunStateError), as
MLflow's server does. ``runs/create``
takes one field the official API lacks: ``run_id`` (32 lowercase hex), the id
the client chose (autolog's client picks its run ids, so that ``start_run``
needs no round trip; its offline spool replays runs under them). The same id
again with the same experiment and start time is an idempotent retry and
answers that run; otherwise it is ``RESOURCE_ALREADY_EXISTS``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autolog.errors import ResourceAlreadyExistsError
from autolog.server.errors import ApiError
from autolog.server.experiments import view_type_of
from autolog.server.messages import (
    integer,
    optional_text,
    read_message,
    required_text,
    run_id_of,
    text_list,
)
from autolog.server.routing import api_routes, json_response, store_call, store_of
from autolog.tracking.context import RUN_NAME, generate_run_name
from autolog.tracking.entities import LifecycleStage, Metric, Param, Run, RunTag
from autolog.tracking.stores.base import DEFAULT_EXPERIMENT_ID, AbstractStore
from autolog.tracking.validation import (
    validate_key,
    validate_param_value,
    validate_run_id,
    validate_tag_value,
)
from autolog.tracking.wire import (
    MetricRows,
    dumps,
    key_values_from_wire,
    metric_from_wire,
    metric_rows_from_wire,
    run_info_to_wire,
    run_to_wire,
    status_from_wire,
)

__all__ = ["MAX_BATCH_METRICS", "MAX_BATCH_PARAMS", "MAX_BATCH_TAGS", "routes"]

# MLflow's log-batch limits: clients split their batches to fit exactly these
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ITEMS = 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _active_run(store: AbstractStore, run_id: str) -> Run:
    """The run, if it may be written to (it exists and is not deleted)."""
    run = store.get_run(run_id)
    if run.info.lifecycle_stage != LifecycleStage.ACTIVE:
        raise ApiError(
            "INVALID_PARAMETER_VALUE",
            f"The run {run_id} must be in the 'active' state. "
            f"Current state is {run.info.lifecycle_stage}.",
        )
    return run


def _tags(items: dict[str, str]) -> list[RunTag]:
    return [RunTag(validate_key(k, "tag key"), validate_tag_value(k, v)) for k, v in items.items()]


def _params(items: dict[str, str]) -> list[Param]:
    return [
        Param(validate_key(k, "param key"), validate_param_value(k, v)) for k, v in items.items()
    ]


def _metric(item: object) -> Metric:
    metric = metric_from_wire(item)
    validate_key(metric.key, "metric key")
    return metric


def _metrics(run_id: str, items: list) -> MetricRows:
    """The batch's metrics as rows (no Metric per point: the SQL stores write
    them as they are); each distinct key is validated once (keys repeat)."""
    metrics = metric_rows_from_wire(run_id, items)
    for key in metrics.distinct_keys():
        validate_key(key, "metric key")
    return metrics


def _write(store: AbstractStore, run_id: str, **batch: list) -> None:
    # the store refuses a deleted run (RunStateError: 400) in the write's own transaction
    store.log_batch(run_id, **batch)


async def create(request: Request) -> Response:
    message = await read_message(request)
    store = store_of(request)
    experiment_id = optional_text(message, "experiment_id") or DEFAULT_EXPERIMENT_ID
    tags = key_values_from_wire(message.get("tags"), "tags")
    # a name is made up when none is sent (as mlflow server does); autolog's REST
    # store sends "run_name": "" for a run without one (the store contract)
    unnamed = "" if message.get("run_name") == "" else generate_run_name()
    run_name = optional_text(message, "run_name") or tags.get(RUN_NAME) or unnamed
    if run_name:
        tags[RUN_NAME] = run_name
    tag_list = _tags(tags)
    start_time = integer(message, "start_time")
    if start_time is None:
        start_time = _now_ms()
    user_id = optional_text(message, "user_id", "") or ""
    run_id = optional_text(message, "run_id")
    if run_id is not None:
        validate_run_id(run_id)

    def work() -> Run:
        experiment = store.get_experiment(experiment_id)
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise ApiError(
                "INVALID_PARAMETER_VALUE",
                f"The experiment {experiment_id} must be in the 'active' state.",
            )
        try:
            return store.create_run(experiment_id, user_id, start_time, tag_list, run_name, run_id)
        except ResourceAlreadyExistsError:
            existing = store.get_run(run_id) if run_id else None
            if (
                existing is not None
                and existing.info.experiment_id == str(experiment.experiment_id)
                and existing.info.start_time == start_time
            ):
                return existing  # the same create again: a retry
            raise

    run = await store_call(work)
    return json_response({"run": run_to_wire(run)})


async def get(request: Request) -> Response:
    run_id = run_id_of(await read_message(request))
    run = await store_call(store_of(request).get_run, run_id)
    return json_response({"run": run_to_wire(run)})


async def update(request: Request) -> Response:
    message = await read_message(request)
    run_id = run_id_of(message)
    store = store_of(request)
    status = status_from_wire(message.get("status")) if message.get("status") else None
    end_time = integer(message, "end_time")
    run_name = optional_text(message, "run_name") or None

    info = await store_call(store.update_run_info, run_id, status, end_time, run_name)
    return json_response({"run_info": run_info_to_wire(info)})


async def delete(request: Request) -> Response:
    run_id = run_id_of(await read_message(request))
    await store_call(store_of(request).delete_run, run_id)
    return json_response({})


async def restore(request: Request) -> Response:
    run_id = run_id_of(await read_message(request))
    await store_call(store_of(request).restore_run, run_id)
    return json_response({})


async def log_metric(request: Request) -> Response:
    message = await read_message(request)
    run_id = run_id_of(message)
    metric = _metric(message)
    await store_call(_write, store_of(request), run_id, metrics=[metric])
    return json_response({})


def _key_value(message: dict) -> dict[str, str]:
    """The one ``key`` / ``value`` of log-parameter and set-tag."""
    return {required_text(message, "key"): optional_text(message, "value", "") or ""}


async def log_parameter(request: Request) -> Response:
    message = await read_message(request)
    params = _params(_key_value(message))
    await store_call(_write, store_of(request), run_id_of(message), params=params)
    return json_response({})


async def set_tag(request: Request) -> Response:
    message = await read_message(request)
    tags = _tags(_key_value(message))
    await store_call(_write, store_of(request), run_id_of(message), tags=tags)
    return json_response({})


async def delete_tag(request: Request) -> Response:
    message = await read_message(request)
    run_id = run_id_of(message)
    key = required_text(message, "key")
    await store_call(store_of(request).delete_tag, run_id, key)
    return json_response({})


def _limit(items: object, field: str, most: int) -> list:
    if items is None:
        return []
    if not isinstance(items, list):
        raise ApiError("INVALID_PARAMETER_VALUE", f"Invalid {field!r}: expected a list")
    if len(items) > most:
        raise ApiError(
            "INVALID_PARAMETER_VALUE",
            f"A batch logging request can contain at most {most} {field}. Got {len(items)} "
            f"{field}. Please split up {field} across multiple requests and try again.",
        )
    return items


async def log_batch(request: Request) -> Response:
    message = await read_message(request)
    run_id = run_id_of(message)
    raw_metrics = _limit(message.get("metrics"), "metrics", MAX_BATCH_METRICS)
    raw_params = _limit(message.get("params"), "params", MAX_BATCH_PARAMS)
    raw_tags = _limit(message.get("tags"), "tags", MAX_BATCH_TAGS)
    total = len(raw_metrics) + len(raw_params) + len(raw_tags)
    if total > MAX_BATCH_ITEMS:
        raise ApiError(
            "INVALID_PARAMETER_VALUE",
            f"A batch logging request can contain at most {MAX_BATCH_ITEMS} metrics, params "
            f"and tags in total. Got {total}.",
        )
    metrics = _metrics(run_id, raw_metrics)
    params = _params_list(raw_params)
    tags = _tags(key_values_from_wire(raw_tags, "tags"))
    if metrics or params or tags:
        await store_call(
            _write, store_of(request), run_id, metrics=metrics, params=params, tags=tags
        )
    return json_response({})


def _params_list(raw: list) -> list[Param]:
    """Params in order, duplicates kept (the store refuses one key with two values)."""
    params = []
    for item in raw:
        one = key_values_from_wire([item], "params")
        params.extend(_params(one))
    return params


class SearchAnswers:
    """Encoded search-runs answers of one store, served again while the store's
    change stamp (``SqlStore.change_stamp``: SQLite) says nothing was committed
    since, by any process: a dashboard's repeated search costs one tiny query.
    A store without a stamp (None) is searched every time. Bounded (least
    recently used dropped); nothing in it is needed by another server process."""

    def __init__(self, size: int = 256):
        self._size = size
        self._answers: OrderedDict[tuple, tuple[int, bytes]] = OrderedDict()
        self._guard = threading.Lock()

    def get(self, key: tuple, stamp: int) -> bytes | None:
        with self._guard:
            found = self._answers.get(key)
            if found is None or found[0] != stamp:
                return None
            self._answers.move_to_end(key)
            return found[1]

    def put(self, key: tuple, stamp: int, body: bytes) -> None:
        with self._guard:
            self._answers[key] = (stamp, body)
            self._answers.move_to_end(key)
            while len(self._answers) > self._size:
                self._answers.popitem(last=False)


def _search_answers(request: Request) -> SearchAnswers:
    state = request.app.state
    answers = getattr(state, "search_answers", None)
    if answers is None:
        answers = state.search_answers = SearchAnswers()
    return answers


def _search_body(store: AbstractStore, answers: SearchAnswers, args: tuple) -> bytes:
    """The encoded answer of ``store.search_runs(*args)``: the stamp is read
    before the search, so an answer is never older than the stamp it is kept under."""
    stamp_of = getattr(store, "change_stamp", None)
    stamp = stamp_of() if stamp_of is not None else None
    if stamp is not None:
        body = answers.get(args, stamp)
        if body is not None:
            return body
    page = store.search_runs(*args)
    answer: dict = {}
    if page:
        answer["runs"] = [run_to_wire(run) for run in page]
    if page.token:
        answer["next_page_token"] = page.token
    body = dumps(answer)
    if stamp is not None:
        answers.put(args, stamp, body)
    return body


async def search(request: Request) -> Response:
    message = await read_message(request)
    experiment_ids = text_list(message, "experiment_ids")
    if not experiment_ids:
        return json_response({})
    order_by = message.get("order_by") or []
    if isinstance(order_by, str):
        order_by = [order_by]
    if not all(isinstance(o, str) for o in order_by):
        raise ApiError("INVALID_PARAMETER_VALUE", f"Invalid value {order_by!r} for 'order_by'")
    args = (
        tuple(experiment_ids),
        optional_text(message, "filter") or "",
        view_type_of(message, "run_view_type"),
        integer(message, "max_results", 1000),
        tuple(order_by),
        optional_text(message, "page_token") or None,
    )
    body = await store_call(_search_body, store_of(request), _search_answers(request), args)
    return Response(body, media_type="application/json")


async def log_inputs(request: Request) -> Response:
    """Datasets are checked and acknowledged, not stored: autolog's stores keep
    no dataset entities yet."""
    message = await read_message(request)
    run_id = run_id_of(message)
    datasets = message.get("datasets") or []
    if not isinstance(datasets, list):
        raise ApiError("INVALID_PARAMETER_VALUE", "Invalid 'datasets': expected a list")
    await store_call(_active_run, store_of(request), run_id)
    return json_response({})


def routes() -> list[Route]:
    return api_routes(
        [
            ("/runs/create", ("POST",), create),
            ("/runs/get", ("GET",), get),
            ("/runs/update", ("POST",), update),
            ("/runs/delete", ("POST",), delete),
            ("/runs/restore", ("POST",), restore),
            ("/runs/log-metric", ("POST",), log_metric),
            ("/runs/log-parameter", ("POST",), log_parameter),
            ("/runs/set-tag", ("POST",), set_tag),
            ("/runs/delete-tag", ("POST",), delete_tag),
            ("/runs/log-batch", ("POST",), log_batch),
            ("/runs/search", ("GET", "POST"), search),
            ("/runs/log-inputs", ("POST",), log_inputs),
        ]
    )
