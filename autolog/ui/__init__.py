"""The web UI: experiments, the runs table, run pages, compare, artifact previews.

``routes(store)`` returns the Starlette routes of the UI (the page at ``/``,
its static files, its ``/ui-api/`` reads); the tracking server mounts them
beside the REST API, and ``autolog ui`` serves that same application. The
front end is plain ES modules under ``static/`` with uPlot vendored from npm:
nothing is fetched from the network at run time and nothing is built at
install time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["routes"]


def routes(store: Any) -> list[Any]:
    """The UI's Starlette routes over ``store`` (see :mod:`autolog.ui.app`)."""
    from autolog.ui.app import routes as _routes

    return _routes(store)
