"""The flags of ``autolog server`` (argparse only: ``autolog --help`` stays fast)."""

from __future__ import annotations

import argparse

from autolog.server.settings import ServerSettings

__all__ = ["add_parser"]

_MiB = 1024 * 1024


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``server`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "server",
        help="serve a store over MLflow's tracking REST API (needs autolog[server])",
        description="A tracking server the official mlflow client and autolog's client log to.",
    )
    default = ServerSettings()
    add = parser.add_argument
    add(
        "--backend-store-uri",
        default=default.backend_store_uri,
        metavar="URI",
        help="store to serve: a path, file:, sqlite:, postgresql: (default ./mlruns)",
    )
    add(
        "--default-artifact-root",
        metavar="URI",
        help="artifact root of new experiments, used by clients directly (s3://..., gs://...)",
    )
    add(
        "--artifacts-destination",
        metavar="URI",
        help="where proxied artifacts go: a path or fsspec URL (default ./mlartifacts)",
    )
    add(
        "--serve-artifacts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="proxy artifact uploads and downloads (default on)",
    )
    add("--host", default=default.host, help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=default.port, help="port (default 5000)")
    add("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")
    add("--auth-file", metavar="PATH", help="JSON file of token hashes and users (off if unset)")
    add(
        "--allowed-hosts",
        type=_list,
        metavar="H1,H2",
        help="Host header values accepted (default: loopback, this machine, private IPs)",
    )
    add(
        "--cors-allowed-origins",
        type=_list,
        default=[],
        metavar="O1,O2",
        help="origins allowed to call from browsers (default none)",
    )
    add(
        "--max-request-mb",
        type=int,
        default=default.max_request_bytes // _MiB,
        metavar="MB",
        help="largest API request body (default 64)",
    )
    add(
        "--max-artifact-mb",
        type=int,
        default=0,
        metavar="MB",
        help="largest artifact upload (default 0: no limit)",
    )
    add(
        "--db-connections",
        type=int,
        default=default.db_connections,
        metavar="N",
        help="database connections (and store threads) per process (default 10)",
    )
    parser.set_defaults(handler=_run)
    return parser


def _run(args: argparse.Namespace) -> None:
    from autolog.server.serving import serve

    serve(
        ServerSettings(
            backend_store_uri=args.backend_store_uri,
            default_artifact_root=args.default_artifact_root,
            artifacts_destination=args.artifacts_destination,
            serve_artifacts=args.serve_artifacts,
            host=args.host,
            port=args.port,
            workers=args.workers,
            auth_file=args.auth_file,
            allowed_hosts=args.allowed_hosts,
            cors_allowed_origins=args.cors_allowed_origins,
            max_request_bytes=args.max_request_mb * _MiB,
            max_artifact_bytes=args.max_artifact_mb * _MiB or None,
            db_connections=args.db_connections,
        )
    )
