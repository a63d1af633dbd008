"""What a client asks about the server: /health, /version, server-info, and the
logged-model lookup the official client makes while listing artifacts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from autolog.server.routing import api_routes, json_response

__all__ = ["routes"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("autolog")
    except PackageNotFoundError:  # a checkout run without install
        return "0+unknown"


async def health(request: Request) -> Response:
    return PlainTextResponse("OK")


async def version(request: Request) -> Response:
    return PlainTextResponse(_version())


async def server_info(request: Request) -> Response:
    """MLflow's feature flags (multipart off: uploads stream through one PUT),
    and ``autolog``: what autolog's own client may rely on."""
    store = request.app.state.store
    return json_response(
        {
            "store_type": type(store).__name__,
            "workspaces_enabled": False,
            "trace_archival_enabled": False,
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
            "presigned_upload_run_id_supported": False,
            "presigned_upload_model_id_supported": False,
            "features_enabled": {},
            "autolog": {"version": _version(), "client_run_ids": True},
        }
    )


async def logged_models_search(request: Request) -> Response:
    """autolog keeps no logged-model entities: the search finds none (``{}``), which
    is what the official client needs to go on listing a run's artifacts."""
    return json_response({})


def routes() -> list[Route]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        *api_routes(
            [("/server-info", ("GET",), server_info)],
            ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow"),
        ),
        *api_routes(
            [("/logged-models/search", ("POST",), logged_models_search)],
            ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"),
        ),
    ]
