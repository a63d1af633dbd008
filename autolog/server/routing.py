"""What every route module shares: the two prefixes of the API, JSON answers,
and store calls off the event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autolog.tracking.stores.base import AbstractStore
from autolog.tracking.wire import dumps

__all__ = ["API_PREFIXES", "api_routes", "json_response", "store_call", "store_of"]

#: the REST API is served under both: the Python client uses /api, web UIs /ajax-api
API_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
T = TypeVar("T")
Endpoint = Callable[[Request], Awaitable[Response]]


def api_routes(
    table: list[tuple[str, tuple[str, ...], Endpoint]], prefixes: tuple[str, ...] = API_PREFIXES
) -> list[Route]:
    """One Route per (path, methods, endpoint) of ``table`` under each prefix."""
    return [
        Route(prefix + path, endpoint, methods=list(methods))
        for prefix in prefixes
        for path, methods, endpoint in table
    ]


def json_response(message: Any, status: int = 200) -> Response:
    return Response(dumps(message), status_code=status, media_type="application/json")


def store_of(request: Request) -> AbstractStore:
    return request.app.state.store


async def store_call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` on the worker threads (store calls block)."""
    return await run_in_threadpool(function, *args, **kwargs)
