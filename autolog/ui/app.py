"""The UI's Starlette routes: the page, its static files and its read endpoints.

``routes(store)`` gives what a Starlette application mounts beside the REST
API (``autolog server`` and ``autolog ui`` serve one application):

- ``GET /`` the single page, under a restrictive Content-Security-Policy;
- ``GET /ui-static/...`` its scripts, styles and the vendored uPlot;
- ``GET /ui-api/...`` the reads a UI needs beyond the REST API: experiments
  with run counts, a window of the runs table, metric history bucketed to a
  chart's width, compare data, artifact listing and files, and a parse check
  of a filter that says where it fails.

Every store call runs in the thread pool; an ``AutologError`` answers 400
(404 for a missing resource) with ``{"error_code", "message"}`` and never a
stack trace.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import shutil
import threading
from email.utils import formatdate
from pathlib import Path
from typing import Any

from autolog.errors import (
    AutologError,
    InvalidFilterError,
    InvalidParameterError,
    ResourceNotFoundError,
)
from autolog.tracking.stores.base import AbstractStore
from autolog.ui.projection import json_number

__all__ = ["PAGE_CSP", "STATIC_DIR", "routes"]

STATIC_DIR = Path(__file__).parent / "static"
#: the page's policy: our own scripts only, no inline script, no network but our origin
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; font-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_MAX_COMPARE = 1000
_GZIP_FROM = 16 * 1024  # smaller answers are sent as they are
_RUN_ID = re.compile(r"[0-9a-f]{32}")


_TEXT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def _assets() -> dict[str, tuple[bytes, dict[str, str]]]:
    """Every static file, read once: path -> (bytes, headers). Served from
    memory on the event loop: a file response costs several hops through the
    thread pool (stat, open, read, close), where the first page load's dozen
    files queued behind each other and the store's first reads (~5-10 ms
    each, 0.1-0.3 s in all on a loaded machine). Validators as StaticFiles
    gives them (ETag, Last-Modified), so a browser caches them as before."""
    found = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        content = path.read_bytes()
        media = _TEXT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
        if media.startswith("text/"):
            media += "; charset=utf-8"
        found[path.relative_to(STATIC_DIR).as_posix()] = (
            content,
            {
                "Content-Type": media,
                "ETag": f'"{hashlib.sha256(content).hexdigest()[:32]}"',
                "Last-Modified": formatdate(path.stat().st_mtime, usegmt=True),
                "X-Content-Type-Options": "nosniff",
            },
        )
    return found


def _ids(text: str | None, what: str) -> list[str]:
    ids = [part for part in (text or "").split(",") if part]
    if not ids:
        raise InvalidParameterError(f"Invalid {what} {text!r}: expected a comma-separated list")
    return ids


def _int(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameterError(f"Invalid {name} {raw!r}: expected an integer") from None


def _float(params: Any, name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidParameterError(f"Invalid {name} {raw!r}: expected a number") from None


def _run_page(store: AbstractStore, run_id: str) -> dict[str, Any]:
    from autolog.tracking.context import PARENT_RUN_ID
    from autolog.tracking.entities import ViewType

    run = store.get_run(run_id)
    info = run.info
    children = store.search_runs(
        [info.experiment_id],
        f"tags.`{PARENT_RUN_ID}` = '{run_id}'",
        ViewType.ACTIVE_ONLY,
        1000,
    )
    experiment = store.get_experiment(info.experiment_id)
    return {
        "info": {**vars(info)},
        "experiment": {"id": experiment.experiment_id, "name": experiment.name},
        "params": run.data.params,
        "metrics": {k: json_number(v) for k, v in run.data.metrics.items()},
        "tags": run.data.tags,
        "children": [{"id": c.info.run_id, "name": c.info.run_name} for c in children],
    }


def _compare(store: AbstractStore, run_ids: list[str]) -> list[dict[str, Any]]:
    """The runs' names, params and latest metrics, in the order asked: one search."""
    from autolog.tracking.entities import ViewType

    for run_id in run_ids:
        if not _RUN_ID.fullmatch(run_id):
            raise InvalidParameterError(f"Invalid run id {run_id!r}: expected 32 hex characters")
    experiments = [e.experiment_id for e in store.search_experiments(ViewType.ALL, 50_000)]
    wanted = ", ".join(f"'{r}'" for r in run_ids)
    found = {
        run.info.run_id: run
        for run in store.search_runs(
            experiments, f"attributes.run_id IN ({wanted})", ViewType.ALL, _MAX_COMPARE
        )
    }
    missing = [r for r in run_ids if r not in found]
    if missing:
        raise ResourceNotFoundError(f"No run with id {missing[0]!r}")
    return [
        {
            "id": run_id,
            "name": found[run_id].info.run_name,
            "status": found[run_id].info.status,
            "params": found[run_id].data.params,
            "metrics": {k: json_number(v) for k, v in found[run_id].data.metrics.items()},
        }
        for run_id in run_ids
    ]


def warm_up(store: AbstractStore) -> None:
    """Pay a first page's one-off costs now: the modules its reads import,
    the SQL statements SQLAlchemy compiles once (the runs window's, with a
    param and a metric column), the database's first pages. A server just
    started answered its first runs table in ~240 ms against ~85 ms after.
    Any failure is left to the real request to meet and report."""
    try:
        from autolog.ui import artifact_files, buckets_sql, projection  # noqa: F401

        rows = projection.experiment_rows(store)
        if not rows:
            return
        query = projection.RunsQuery(experiment_ids=(rows[0]["id"],))
        keys = projection.runs_window(store, query, 0, 50, None)["keys"]
        columns = tuple(f"{kind}.{found[0]}" for kind, found in keys.items() if found)
        projection.runs_window(
            store, projection.RunsQuery(query.experiment_ids, columns=columns), 0, 50, None
        )
    except Exception:  # a warm-up: the request that needs it meets the error and reports it
        pass


def routes(store: AbstractStore) -> list[Any]:
    """The UI's Starlette routes over ``store``: mount them in the application
    that serves the REST API (its middleware, auth included, then applies)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    from autolog.tracking.artifacts import repository_for
    from autolog.ui import artifact_files, buckets, projection

    def resolver(request: Request):
        """A run's artifact repository as this application reaches it: inside the
        tracking server, proxied (``mlflow-artifacts:``) URIs map to its destination."""
        if getattr(request.app.state, "settings", None) is None:
            return repository_for
        from autolog.server.artifact_proxy import run_repository

        return lambda uri: run_repository(request, uri)

    def endpoint(work, with_request=False):
        async def handle(request: Request) -> Response:
            args = (
                (request.query_params, resolver(request))
                if with_request
                else (request.query_params,)
            )
            try:
                result = await run_in_threadpool(work, *args)
            except InvalidFilterError as exc:
                body = {
                    "error_code": "INVALID_PARAMETER_VALUE",
                    "message": str(exc),
                    "position": exc.position,
                    "expected": exc.expected,
                }
                return JSONResponse(body, status_code=400)
            except ResourceNotFoundError as exc:
                body = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": str(exc)}
                return JSONResponse(body, status_code=404)
            except AutologError as exc:
                body = {"error_code": "INVALID_PARAMETER_VALUE", "message": str(exc)}
                return JSONResponse(body, status_code=400)
            if isinstance(result, Response):
                return result
            if isinstance(result, buckets.JsonBody):  # big answers go gzipped where accepted
                headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
                content = result.raw
                accepted = "gzip" in request.headers.get("accept-encoding", "")
                if result.compressible and len(content) >= _GZIP_FROM and accepted:
                    content = await run_in_threadpool(result.gzipped)
                    headers["Content-Encoding"] = "gzip"
                return Response(content, media_type="application/json", headers=headers)
            return JSONResponse(result, headers={"Cache-Control": "no-store"})

        return handle

    def experiments(q: Any) -> Any:
        return {"experiments": projection.experiment_rows(store, q.get("q", ""))}

    def runs(q: Any) -> Any:
        query = projection.RunsQuery(
            experiment_ids=tuple(_ids(q.get("e"), "experiment ids")),
            filter=q.get("filter", ""),
            sort=q.get("sort") or "start",
            descending=q.get("desc", "1") != "0",
            columns=tuple(c for c in q.get("cols", "").split(",") if c),
            nested=q.get("nest", "1") != "0",
        )
        return projection.runs_window(
            store, query, _int(q, "offset", 0), _int(q, "limit", 100), q.get("parent") or None
        )

    def parse(q: Any) -> Any:
        from autolog.tracking.search import parse_filter

        try:
            parse_filter(q.get("filter", ""))
        except InvalidFilterError as exc:  # an answer, not a failure: the box shows it
            return {
                "ok": False,
                "message": str(exc),
                "position": exc.position,
                "expected": exc.expected,
            }
        return {"ok": True}

    def metrics(q: Any) -> Any:
        body = buckets.metric_series_json(
            store,
            _ids(q.get("runs"), "run ids")[:_MAX_COMPARE],
            _ids(q.get("keys"), "metric keys"),
            _int(q, "width", 800),
            q.get("x", "step"),
            _float(q, "lo"),
            _float(q, "hi"),
            # overlays (band=0) draw lines only: no band is read or sent
            q.get("band", "1") != "0",
            q.get("enc") == "f64",  # the compact encoding (see bucketing.wire_items)
        )
        return body

    def run(q: Any) -> Any:
        return _run_page(store, q.get("id", ""))

    def compare(q: Any) -> Any:
        return {"runs": _compare(store, _ids(q.get("runs"), "run ids")[:_MAX_COMPARE])}

    def artifacts(q: Any, resolve: Any) -> Any:
        run_id, path = q.get("run", ""), q.get("path", "")
        return {"files": artifact_files.list_files(store, run_id, path, resolve)}

    def artifact(q: Any, resolve: Any) -> Any:
        from starlette.background import BackgroundTask

        path = q.get("path", "")
        local, tmp = artifact_files.local_file(store, q.get("run", ""), path, resolve)
        media, headers = artifact_files.artifact_headers(path, q.get("inline") == "1")
        cleanup = BackgroundTask(shutil.rmtree, tmp, ignore_errors=True) if tmp else None
        return FileResponse(local, media_type=media, headers=headers, background=cleanup)

    assets = _assets()
    # SQLite in memory: one connection shared by every thread, nothing on disk to warm
    if not (getattr(store, "dialect", None) == "sqlite" and store.change_stamp() is None):
        threading.Thread(
            target=warm_up, args=(store,), name="autolog-ui-warm-up", daemon=True
        ).start()
    index = assets["index.html"][0]

    async def page(request: Request) -> Response:
        return Response(index, media_type="text/html", headers=_PAGE_HEADERS)

    async def asset(request: Request) -> Response:
        found = assets.get(request.path_params["path"])
        if found is None:
            raise HTTPException(404)
        content, headers = found
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers={"ETag": headers["ETag"]})
        return Response(content, headers=headers)

    api = {
        "experiments": experiments,
        "runs": runs,
        "parse": parse,
        "metrics": metrics,
        "run": run,
        "compare": compare,
        "artifacts": artifacts,
        "artifact": artifact,
    }
    return [
        Route("/", page, methods=["GET"]),
        *(
            Route(f"/ui-api/{name}", endpoint(work, name.startswith("artifact")), methods=["GET"])
            for name, work in api.items()
        ),
        Route("/ui-static/{path:path}", asset, methods=["GET"]),
    ]
