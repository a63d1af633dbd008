"""The tracking server (``autolog server``): MLflow's tracking REST API over any autolog store.

The official ``mlflow`` client and autolog's own client log to it unchanged::

    autolog server --backend-store-uri sqlite:///mlflow.db --port 5000

or from Python::

    from autolog.server import ServerSettings, create_app, serve
    app = create_app(ServerSettings(backend_store_uri="sqlite:///mlflow.db"))  # an ASGI app
    serve(ServerSettings(backend_store_uri="sqlite:///mlflow.db"))  # blocks; Ctrl-C stops

Install it with ``pip install 'autolog[server]'`` (Starlette on uvicorn).
The modules: ``app`` (the application), ``experiments`` / ``runs`` /
``metrics`` / ``artifact_proxy`` / ``meta`` (routes per concept),
``messages`` (request fields), ``errors`` (JSON errors), ``guard`` and
``auth`` (Host header, credentials), ``settings``, ``stores``, ``serving``
(uvicorn), ``command`` (the CLI's flags). Nothing heavy is imported until used.
"""

from __future__ import annotations

from typing import Any

from autolog.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from autolog.server.app import create_app

        return create_app
    if name == "serve":
        from autolog.server.serving import serve

        return serve
    raise AttributeError(f"module 'autolog.server' has no attribute {name!r}")
