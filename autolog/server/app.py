"""The server's ASGI application: :func:`create_app`.

One Starlette app: the REST API (experiments, runs, metrics, artifacts, the
meta endpoints), then the web UI's routes when ``autolog.ui`` is installed,
all behind one :class:`~autolog.server.guard.Guard` (Host header, credentials)
and, when origins are given, CORS. The app keeps no state another replica
needs: page tokens carry their offset, ids come from the store, nothing about
runs is cached.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from autolog.errors import AutologError
from autolog.server import artifact_proxy, experiments, meta, metrics, runs
from autolog.server.auth import Authenticator
from autolog.server.errors import ApiError, error_response, handle_exception
from autolog.server.guard import Guard, HostPolicy
from autolog.server.settings import ServerSettings
from autolog.server.stores import open_artifacts, open_store
from autolog.tracking.stores.base import AbstractStore

__all__ = ["create_app", "app_from_env"]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "ENDPOINT_NOT_FOUND" if exc.status_code == 404 else "BAD_REQUEST"
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return error_response(code, message, exc.status_code)


def create_app(
    settings: ServerSettings | None = None, store: AbstractStore | None = None
) -> Starlette:
    """The tracking server's application over ``store`` (opened from
    ``settings.backend_store_uri`` when None).

    >>> app = create_app(ServerSettings(backend_store_uri="sqlite:///mlflow.db"))
    >>> # uvicorn.run(app, host="127.0.0.1", port=5000)
    """
    settings = settings or ServerSettings()
    owned = store is None
    store = store if store is not None else open_store(settings)
    routes = [
        *experiments.routes(),
        *runs.routes(),
        *metrics.routes(),
        *artifact_proxy.routes(),
        *meta.routes(),
    ]
    if importlib.util.find_spec("autolog.ui") is not None:
        from autolog.ui import routes as ui_routes

        routes.extend(ui_routes(store))

    auth = Authenticator.from_file(settings.auth_file) if settings.auth_file else None
    middleware = [
        Middleware(Guard, hosts=HostPolicy(settings.allowed_hosts, settings.host), auth=auth)
    ]
    if settings.cors_allowed_origins:
        from starlette.middleware.cors import CORSMiddleware

        # inside the guard's Host check, in front of auth: preflights carry no credentials
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_allowed_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        import anyio.to_thread

        # store calls run on threads: as many as the store has connections, so
        # a thread never waits for one (the pool has no overflow)
        anyio.to_thread.current_default_thread_limiter().total_tokens = max(
            settings.db_connections, 1
        )
        yield
        if owned:
            store.close()

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            HTTPException: _http_error,
            ApiError: handle_exception,
            AutologError: handle_exception,
            Exception: handle_exception,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.artifacts = open_artifacts(settings)
    return app


def app_from_env() -> Starlette:
    """The app of a uvicorn worker process (``--workers N``): settings from the
    environment the serving process left them in."""
    return create_app(ServerSettings.from_env())
