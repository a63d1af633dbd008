"""The REST store: a tracking server reached over MLflow's REST API 2.0.

``set_tracking_uri("http://host:5000")`` (or ``https://``, with an optional
path prefix) opens one. It speaks to ``autolog server`` and to a real
``mlflow server`` alike; the wire encoding is :mod:`autolog.tracking.wire`,
shared with our server; the transport (keep-alive pool, retries, credentials,
TLS: :mod:`autolog.tracking.stores.rest_config`) is
:mod:`autolog.tracking.stores.rest_http`.

Writes come from the background writer as elsewhere; when the server cannot
be reached they raise :class:`~autolog.errors.TransientStoreError` after the
transport's retries, and the writer keeps them queued. Why a retried request
never duplicates anything:

- **runs**: ``autolog server`` takes the run id the client chose
  (``server-info`` says so: :attr:`RestStore.assigns_run_ids` is False), and
  creating a run again with the same id, experiment and start time returns the
  run already made. A real ``mlflow server`` assigns ids itself; there a run
  creation whose answer was lost is looked up (same experiment, run name,
  start time and user) before it is sent again.
- **metrics**: a point is its key, value, timestamp and step, all chosen by the
  client and sent again unchanged; both servers (SQL backends) store an
  identical point once, so a resent ``log-batch`` adds no row. Params logged
  again with the same value are a no-op; tags overwrite. (An ``mlflow server``
  over its *file* backend appends a resent point again: MLflow's own client
  has the same limit.)

A real ``mlflow server`` on SQL stores ±infinity as ±1.7976931348623157e308
and gives that back; ``autolog server`` keeps ±inf.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from autolog.errors import (
    InvalidParameterError,
    ResourceNotFoundError,
    StoreError,
    TransientStoreError,
)
from autolog.tracking import wire
from autolog.tracking.entities import (
    Experiment,
    Metric,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunTag,
    ViewType,
)
from autolog.tracking.search_mlflow import for_mlflow_server
from autolog.tracking.stores.base import AbstractStore
from autolog.tracking.stores.rest_batch import split_batch
from autolog.tracking.stores.rest_http import HttpClient, http_client_for

__all__ = ["RestStore"]

API = "/api/2.0/mlflow"
SERVER_INFO = "/api/3.0/mlflow/server-info"
_VIEW_NAMES = {ViewType.ACTIVE_ONLY: "ACTIVE_ONLY", ViewType.DELETED_ONLY: "DELETED_ONLY"}
#: page sizes: what the official client asks for (servers cap runs at 50 000)
_EXPERIMENT_PAGE = 1000
_RUN_PAGE = 50_000
_HISTORY_PAGE = 25_000


def _view(view_type: int) -> str:
    return _VIEW_NAMES.get(view_type, "ALL")


def _quote(text: str) -> str:
    """A string literal of the search language."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RestStore(AbstractStore):
    """The store behind a tracking server at ``uri`` (``http(s)://host[:port][/prefix]``).

    >>> store = RestStore("http://127.0.0.1:5000")
    >>> store.get_experiment("0").name
    'Default'
    """

    def __init__(self, uri: str, client: HttpClient | None = None):
        self.uri = uri
        self.http = client if client is not None else http_client_for(uri)
        self._assigns_run_ids: bool | None = None

    def __repr__(self) -> str:
        return f"RestStore({self.http.display_url!r})"

    def _get(self, endpoint: str, **query: Any) -> dict[str, Any]:
        return self.http.call("GET", API + endpoint, query=query)

    def _post(self, endpoint: str, body: dict[str, Any], **options: Any) -> dict[str, Any]:
        return self.http.call("POST", API + endpoint, body=body, **options)

    # -- what the server does -------------------------------------------------------
    @property
    def assigns_run_ids(self) -> bool:
        """True when the server chooses run ids itself (a real ``mlflow server``):
        then a run must be created before its id is known. Asked once
        (``GET /api/3.0/mlflow/server-info``, which ``autolog server`` extends)."""
        if self._assigns_run_ids is None:
            try:
                info = self.http.call("GET", SERVER_INFO)
            except (ResourceNotFoundError, StoreError) as error:
                if getattr(error, "http_status", None) != 404:
                    raise  # unreachable, refused credentials: ask again next time
                info = {}  # a server older than the endpoint
            ours = info.get("autolog")
            self._assigns_run_ids = not (isinstance(ours, dict) and ours.get("client_run_ids"))
        return self._assigns_run_ids

    # -- experiments --------------------------------------------------------------------
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        body: dict[str, Any] = {"name": name}
        if artifact_location:
            body["artifact_location"] = artifact_location
        if tags:
            body["tags"] = wire.key_values_to_wire(tags)
        return str(self._post("/experiments/create", body)["experiment_id"])

    def get_experiment(self, experiment_id: str) -> Experiment:
        answer = self._get("/experiments/get", experiment_id=str(experiment_id))
        return wire.experiment_from_wire(answer["experiment"])

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            answer = self._get("/experiments/get-by-name", experiment_name=name)
        except ResourceNotFoundError:
            return None
        return wire.experiment_from_wire(answer["experiment"]) if answer.get("experiment") else None

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
    ) -> list[Experiment]:
        found: list[Experiment] = []
        token = None
        while len(found) < max_results:
            body: dict[str, Any] = {
                "max_results": min(_EXPERIMENT_PAGE, max_results - len(found)),
                "view_type": _view(view_type),
            }
            if filter_string:
                body["filter"] = filter_string
            if order_by:
                body["order_by"] = list(order_by)
            if token:
                body["page_token"] = token
            answer = self._post("/experiments/search", body)
            found.extend(wire.experiment_from_wire(e) for e in answer.get("experiments", ()))
            token = answer.get("next_page_token")
            if not token:
                break
        return found

    def delete_experiment(self, experiment_id: str) -> None:
        self._post("/experiments/delete", {"experiment_id": str(experiment_id)})

    def restore_experiment(self, experiment_id: str) -> None:
        self._post("/experiments/restore", {"experiment_id": str(experiment_id)})

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        body = {"experiment_id": str(experiment_id), "new_name": new_name}
        self._post("/experiments/update", body)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        body = {"experiment_id": str(experiment_id), "key": key, "value": value}
        self._post("/experiments/set-experiment-tag", body)

    # -- runs ------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: Sequence[RunTag] = (),
        run_name: str = "",
        run_id: str | None = None,
    ) -> Run:
        body: dict[str, Any] = {
            "experiment_id": str(experiment_id),
            "user_id": user_id,
            "start_time": start_time,
            "tags": [{"key": t.key, "value": t.value} for t in tags],
        }
        # "": no name (autolog server then makes up none; mlflow server does)
        body["run_name"] = run_name
        if self.assigns_run_ids:
            if run_id is not None:
                raise InvalidParameterError(
                    f"run id {run_id!r}: the server at {self.http.display_url} assigns run "
                    "ids itself; create the run without one"
                )
            return self._create_run_once(body)
        # chosen here when not given, so that a retry with the same id returns the same run
        body["run_id"] = run_id or uuid.uuid4().hex
        return wire.run_from_wire(self._post("/runs/create", body)["run"])

    def _create_run_once(self, body: dict[str, Any]) -> Run:
        """Create a run on a server that assigns its id: when an attempt's answer
        is lost, look for the run it may have made before sending it again."""
        attempts = self.http.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                answer = self._post("/runs/create", body, max_retries=0)
                return wire.run_from_wire(answer["run"])
            except TransientStoreError:
                if attempt == attempts - 1:
                    raise
                made = self._find_created(body)
                if made is not None:
                    return made
                time.sleep(self.http.backoff(attempt + 1, None))
        raise AssertionError("unreachable")

    def _find_created(self, body: dict[str, Any]) -> Run | None:
        terms = [f"attributes.start_time = {int(body['start_time'])}"]
        if body.get("run_name"):
            terms.append(f"attributes.run_name = {_quote(body['run_name'])}")
        try:
            runs = self.search_runs([body["experiment_id"]], " and ".join(terms), ViewType.ALL, 10)
        except TransientStoreError:
            return None
        for run in runs:
            if run.info.user_id == body["user_id"]:
                return run
        return None

    def get_run(self, run_id: str) -> Run:
        return wire.run_from_wire(self._get("/runs/get", run_id=run_id, run_uuid=run_id)["run"])

    def update_run_info(
        self,
        run_id: str,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        body: dict[str, Any] = {"run_id": run_id, "run_uuid": run_id}
        if status is not None:
            body["status"] = status
        if end_time is not None:
            body["end_time"] = end_time
        if run_name is not None:
            body["run_name"] = run_name
        answer = self._post("/runs/update", body)
        info = answer.get("run_info")
        return wire.run_info_from_wire(info) if info else self.get_run(run_id).info

    def delete_run(self, run_id: str) -> None:
        self._post("/runs/delete", {"run_id": run_id})

    def restore_run(self, run_id: str) -> None:
        self._post("/runs/restore", {"run_id": run_id})

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Send the batch in requests within the server's limits (``rest_batch``)."""
        for metric_group, param_group, tag_group in split_batch(metrics, params, tags):
            body: dict[str, Any] = {"run_id": run_id}
            if metric_group:
                body["metrics"] = [wire.metric_to_wire(m) for m in metric_group]
            if param_group:
                body["params"] = [{"key": p.key, "value": p.value} for p in param_group]
            if tag_group:
                body["tags"] = [{"key": t.key, "value": t.value} for t in tag_group]
            self._post("/runs/log-batch", body)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._post("/runs/delete-tag", {"run_id": run_id, "key": key})

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        points: list[Metric] = []
        token = None
        while True:
            answer = self._get(
                "/metrics/get-history",
                run_id=run_id,
                run_uuid=run_id,
                metric_key=key,
                max_results=_HISTORY_PAGE,
                page_token=token,
            )
            points.extend(wire.metric_from_wire(m) for m in answer.get("metrics", ()))
            token = answer.get("next_page_token")
            if not token:
                break
        # the contract's order; a stable sort keeps the server's order of ties
        # (logging order on autolog server)
        points.sort(key=lambda m: (m.step, m.timestamp))
        return points

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        if max_results > _RUN_PAGE:
            raise InvalidParameterError(
                f"max_results {max_results} is over the servers' limit of {_RUN_PAGE} per page"
            )
        if filter_string and self.assigns_run_ids:  # a real mlflow server: our datasets are tags
            filter_string = for_mlflow_server(filter_string)
        body: dict[str, Any] = {
            "experiment_ids": [str(e) for e in experiment_ids],
            "filter": filter_string or "",
            "run_view_type": _view(run_view_type),
            "max_results": max_results,
        }
        if order_by:
            body["order_by"] = list(order_by)
        if page_token:
            body["page_token"] = page_token
        answer = self._post("/runs/search", body)
        runs = [wire.run_from_wire(r) for r in answer.get("runs", ())]
        return PagedList(runs, answer.get("next_page_token") or None)
