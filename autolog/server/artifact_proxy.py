"""Proxied artifacts: ``/api/2.0/mlflow-artifacts/artifacts/<path>`` and the
run-relative listing ``/api/2.0/mlflow/artifacts/list``.

Runs served by a proxying server have ``mlflow-artifacts:/<exp>/<run>/artifacts``
URIs; the client PUTs and GETs the files here and this server reads and
writes them under ``--artifacts-destination`` (a folder or any fsspec URL).

Files stream both ways in chunks of :data:`CHUNK_BYTES`: a 2 GB upload never
sits in memory (uvicorn stops reading the socket while a chunk is written).
A path is refused (400) when any decoding of it (``%2e%2e``, ``%252e``) would
climb out of the destination, when it is absolute or has a backslash or a NUL,
and, for a local destination, when a symlink on the way leads out of it.
Downloads are ``attachment`` with ``Content-Security-Policy: sandbox``: an
uploaded HTML file never runs as a page of this origin.
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
from typing import Any
from urllib.parse import quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from autolog.server.errors import ApiError
from autolog.server.messages import optional_text, read_message, run_id_of
from autolog.server.routing import api_routes, json_response, store_call, store_of
from autolog.tracking.artifacts import ArtifactRepository, clean_artifact_path, repository_for

__all__ = ["CHUNK_BYTES", "proxied_path", "routes", "run_repository"]

CHUNK_BYTES = 1024 * 1024
_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
PROXY_SCHEME = "mlflow-artifacts:"


def proxied_path(path: str | None) -> str:
    """``path`` (already percent-decoded once) as a clean relative path, or 400.

    Decoded again and again until stable, every form must stay inside the root."""
    if not path:
        return ""
    text = path
    for _ in range(4):
        if "\\" in text or "\x00" in text:
            raise ApiError("INVALID_PARAMETER_VALUE", f"Invalid artifact path {path!r}")
        if text.startswith("/") or ".." in text.split("/") or (len(text) > 1 and text[1] == ":"):
            raise ApiError("INVALID_PARAMETER_VALUE", f"Invalid artifact path {path!r}")
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return clean_artifact_path(path)


def _repository(request: Request) -> ArtifactRepository:
    repository = request.app.state.artifacts
    if repository is None:
        raise ApiError(
            "ENDPOINT_NOT_FOUND", "This server does not serve artifacts (--no-serve-artifacts)", 404
        )
    return repository


async def upload(request: Request) -> Response:
    repository = _repository(request)
    path = proxied_path(request.path_params["path"])
    limit = request.app.state.settings.max_artifact_bytes
    declared = request.headers.get("content-length", "")
    if limit and declared.isdigit() and int(declared) > limit:
        raise ApiError("REQUEST_TOO_LARGE", f"Artifact over the limit of {limit} bytes", 413)

    def start() -> tuple[Any, Any]:
        writing = repository.open_write(path)
        return writing, writing.__enter__()

    writing, stream = await run_in_threadpool(start)
    try:
        buffer = bytearray()
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if limit and size > limit:
                raise ApiError(
                    "REQUEST_TOO_LARGE", f"Artifact over the limit of {limit} bytes", 413
                )
            buffer += chunk
            if len(buffer) >= CHUNK_BYTES:
                await run_in_threadpool(stream.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(stream.write, bytes(buffer))
    except BaseException as exc:
        await run_in_threadpool(writing.__exit__, type(exc), exc, exc.__traceback__)
        raise
    await run_in_threadpool(writing.__exit__, None, None, None)
    return json_response({})


def _size(stream: Any) -> int | None:
    size = getattr(stream, "size", None)
    if isinstance(size, int):
        return size
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


async def download(request: Request) -> Response:
    repository = _repository(request)
    path = proxied_path(request.path_params["path"])
    if not path:
        raise ApiError("INVALID_PARAMETER_VALUE", "The artifact path names a folder")
    stream = await run_in_threadpool(repository.open_read, path)

    async def chunks():
        try:
            while True:
                chunk = await run_in_threadpool(stream.read, CHUNK_BYTES)
                if not chunk:
                    break
                yield chunk
        finally:
            await run_in_threadpool(stream.close)

    name = posixpath.basename(path)
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "Content-Security-Policy": "sandbox",
        "X-Content-Type-Options": "nosniff",
    }
    size = _size(stream)
    if size is not None:
        headers["Content-Length"] = str(size)
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)


async def delete(request: Request) -> Response:
    repository = _repository(request)
    path = proxied_path(request.path_params["path"])
    if not path:
        raise ApiError("INVALID_PARAMETER_VALUE", "Refusing to delete the artifact root")
    await store_call(repository.delete_artifacts, path)
    return json_response({})


async def list_proxied(request: Request) -> Response:
    """``?path=<folder>``: its children by basename; ``{}`` for a file or nothing."""
    repository = _repository(request)
    path = proxied_path(request.query_params.get("path") or "")

    def work() -> list:
        info = repository.file_info(path) if path else None
        if path and (info is None or not info.is_dir):
            return []
        return repository.list_artifacts(path)

    files = await store_call(work)
    if not files:
        return json_response({})
    listed = []
    for info in files:
        entry: dict[str, Any] = {"path": posixpath.basename(info.path), "is_dir": info.is_dir}
        if not info.is_dir and info.file_size is not None:
            entry["file_size"] = info.file_size
        listed.append(entry)
    return json_response({"files": listed})


def run_repository(request: Request, artifact_uri: str) -> ArtifactRepository:
    """The repository of a run's artifacts as this server reaches them: under the
    destination for ``mlflow-artifacts:`` URIs, the URI itself otherwise."""
    if artifact_uri.startswith(PROXY_SCHEME):
        relative = proxied_path(artifact_uri[len(PROXY_SCHEME) :].lstrip("/"))
        destination = request.app.state.settings.destination
        return repository_for(f"{destination.rstrip('/')}/{relative}")
    return repository_for(artifact_uri)


async def list_run_artifacts(request: Request) -> Response:
    """``/mlflow/artifacts/list``: a run's files, paths relative to the run."""
    message = await read_message(request)
    run_id = run_id_of(message)
    path = proxied_path(optional_text(message, "path") or "")
    run = await store_call(store_of(request).get_run, run_id)
    repository = run_repository(request, run.info.artifact_uri)
    files = await store_call(repository.list_artifacts, path)
    answer: dict[str, Any] = {"root_uri": run.info.artifact_uri}
    if files:
        answer["files"] = [
            {"path": f.path, "is_dir": f.is_dir}
            | ({} if f.is_dir or f.file_size is None else {"file_size": f.file_size})
            for f in files
        ]
    return json_response(answer)


def routes() -> list[Route]:
    return [
        *api_routes(
            [
                ("/artifacts", ("GET",), list_proxied),
                ("/artifacts/{path:path}", ("PUT",), upload),
                ("/artifacts/{path:path}", ("GET",), download),
                ("/artifacts/{path:path}", ("DELETE",), delete),
            ],
            _PREFIXES,
        ),
        *api_routes([("/artifacts/list", ("GET",), list_run_artifacts)]),
    ]
