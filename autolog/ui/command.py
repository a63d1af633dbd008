"""``autolog ui``: the web UI over a store, served by the tracking server's application."""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``ui`` to the CLI's subcommands (argparse only: ``autolog --help`` stays fast)."""
    parser = commands.add_parser(
        "ui",
        help="browse experiments, runs, charts and artifacts in a web browser",
        description="Serve the web UI (and the REST API) over a store; "
        "open the printed address in a browser.",
    )
    parser.add_argument(
        "--backend-store-uri",
        metavar="URI",
        help="store to show: a path, file:, sqlite:, postgresql: "
        "(default $AUTOLOG_TRACKING_URI or ./mlruns)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.set_defaults(handler=_run)
    return parser


def _run(args: argparse.Namespace) -> None:
    from autolog.server.serving import serve
    from autolog.server.settings import ServerSettings
    from autolog.tracking.stores import default_tracking_uri

    uri = args.backend_store_uri or default_tracking_uri()
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"autolog ui: open http://{host}:{args.port}/ in a browser", flush=True)
    serve(ServerSettings(backend_store_uri=uri, host=args.host, port=args.port))
