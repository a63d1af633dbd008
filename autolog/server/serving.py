"""Serving the app with uvicorn: one process, or ``workers`` under uvicorn's supervisor."""

from __future__ import annotations

import os
import sys

from autolog.errors import AutologError
from autolog.server.settings import SETTINGS_ENV, ServerSettings
from autolog.tracking.stores import mask_uri

__all__ = ["describe", "serve"]


def describe(settings: ServerSettings) -> str:
    """What the server serves and where, secrets masked (printed at start)."""
    scheme = "http"
    lines = [
        f"autolog server listening on {scheme}://{_url_host(settings.host)}:{settings.port}"
        + (f" ({settings.workers} workers)" if settings.workers > 1 else ""),
        f"  backend store:    {mask_uri(settings.backend_store_uri)}",
    ]
    if settings.default_artifact_root:
        lines.append(
            f"  artifact root:    {mask_uri(settings.default_artifact_root)} (clients direct)"
        )
    if settings.serve_artifacts:
        lines.append(f"  artifacts:        proxied to {mask_uri(settings.destination)}")
    lines.append(
        f"  auth:             {'from ' + settings.auth_file if settings.auth_file else 'off'}"
    )
    if settings.host in ("0.0.0.0", "::"):
        lines.append("  reachable from other machines: put it behind TLS and turn auth on")
    return "\n".join(lines)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve(settings: ServerSettings) -> None:
    """Open the store (creating or migrating its schema once), print where the
    server listens, and serve until Ctrl-C."""
    try:
        import starlette  # noqa: F401 - only to say what is missing
        import uvicorn
    except ImportError as exc:
        raise AutologError(
            f"autolog server needs the 'server' extra ({exc.name} is missing): "
            "pip install 'autolog[server]'"
        ) from None

    from autolog.server.app import create_app
    from autolog.server.stores import open_store

    store = open_store(settings)
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    print(describe(settings), flush=True)
    if settings.workers <= 1:
        uvicorn.run(create_app(settings, store), **options)
        store.close()
    else:
        store.close()
        os.environ[SETTINGS_ENV] = settings.to_env()
        uvicorn.run(
            "autolog.server.app:app_from_env", factory=True, workers=settings.workers, **options
        )
    print("autolog server stopped", file=sys.stderr, flush=True)
