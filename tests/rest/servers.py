"""Tracking servers for the REST tests: ``autolog server`` and the real ``mlflow
server``, each in a subprocess on 127.0.0.1 and a free port.

:class:`ServerProcess` starts one and waits until it answers; ``stop()`` kills
its whole process group. :func:`shared_server` keeps one per backend for the
whole session (the conformance suite), stopped by :func:`stop_all` (called at
the end of the session by ``tests/conftest.py``, and at exit as a fallback).
Between tests :func:`wipe_sql_store` empties its database under it: the server
keeps no state of its own (ARCHITECTURE.md rule 6), so that is a fresh store.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON_ENV = "AUTOLOG_TEST_MLFLOW_PYTHON"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mlflow_python() -> str:
    """The official mlflow's interpreter (its own venv), or fail saying how to get it."""
    python = os.environ.get(MLFLOW_PYTHON_ENV) or str(REPO / ".venv-mlflow" / "bin" / "python")
    if not Path(python).exists():
        pytest.fail(
            f"the real mlflow server is needed: {python} is missing; run "
            "`bash .ci/install-test-peers` (or set AUTOLOG_TEST_MLFLOW_PYTHON)"
        )
    return python


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the test process dies, so
    that a killed pytest run leaves no server behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ServerProcess:
    """A server subprocess; ``url`` is its base URL once :meth:`start` returned."""

    def __init__(self, argv: Sequence[str], port: int, log: Path, env: dict | None = None):
        self.argv = list(argv)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 240.0) -> ServerProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: stop() kills workers too
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}): {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return self
            except OSError as error:
                # 401: up, with auth on; anything else: not yet
                if getattr(error, "code", None) == 401:
                    return self
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s: {self.tail()}")

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(10)


def autolog_server(
    tmp: Path, backend_store_uri: str | None = None, *extra: str, env: dict | None = None
) -> ServerProcess:
    """``autolog server`` over ``backend_store_uri`` (default SQLite in ``tmp``),
    artifacts proxied to ``tmp/artifacts``; not started yet."""
    port = free_port()
    backend = backend_store_uri or f"sqlite:///{tmp / 'server.db'}"
    argv = [
        sys.executable,
        "-c",
        "import sys; from autolog.cli import main; sys.exit(main())",
        "server",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(tmp / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    return ServerProcess(argv, port, tmp / "autolog-server.log", env)


def mlflow_server(tmp: Path, *extra: str) -> ServerProcess:
    """The real ``mlflow server`` on SQLite with ``--artifacts-destination``; not started."""
    port = free_port()
    argv = [
        mlflow_python(),
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp / "mlflow-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        *extra,
    ]
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    return ServerProcess(argv, port, tmp / "mlflow-server.log", env)


# -- one server per backend for the whole session -------------------------------------
class _Shared:
    def __init__(self, server: ServerProcess, uri: str, root: Path, schema: str | None):
        self.server, self.uri, self.root, self.schema = server, uri, root, schema


_shared: dict[str, _Shared] = {}


def shared_server(backend: str) -> _Shared:
    """The session's ``autolog server`` over ``backend`` ("sqlite" or
    "postgresql"), started on first use."""
    if backend not in _shared:
        root = Path(tempfile.mkdtemp(prefix=f"autolog-rest-{backend}-"))
        schema = None
        if backend == "sqlite":
            uri = f"sqlite:///{root / 'server.db'}"
        else:
            from tests.tracking.sql_stores import _admin, postgres_schema_uri, require_postgres

            require_postgres()
            schema = f"autolog_rest_{uuid.uuid4().hex[:12]}"
            _admin(f'CREATE SCHEMA "{schema}"')
            uri = postgres_schema_uri(schema)
        _shared[backend] = _Shared(autolog_server(root, uri).start(), uri, root, schema)
    return _shared[backend]


def stop_all() -> None:
    """Stop the shared servers, drop their PostgreSQL schemas and folders."""
    while _shared:
        _backend, shared = _shared.popitem()
        shared.server.stop()
        if shared.schema is not None:
            from tests.tracking.sql_stores import _admin

            _admin(f'DROP SCHEMA IF EXISTS "{shared.schema}" CASCADE')
        shutil.rmtree(shared.root, ignore_errors=True)


atexit.register(stop_all)


def _rest_store_factory(backend: str):
    def make_rest_store(tmp_path: Path):
        """A RestStore over the shared server of ``backend``, its database emptied."""
        from autolog.tracking.stores.rest import RestStore

        shared = shared_server(backend)
        if wipe_sql_store(shared.uri) and backend == "sqlite":
            # SQLite gives a new experiment the id of a deleted one, and the
            # store rightly remembers an id's immutable artifact location: the
            # old one would stick to the new experiment, so start afresh
            shared.server.stop()
            shared.server.start()
        return RestStore(shared.server.url)

    return make_rest_store


#: the conformance suite's REST backends (tests/tracking/conftest.py)
REST_STORE_FACTORIES = {
    "rest-sqlite": _rest_store_factory("sqlite"),
    "rest-postgresql": _rest_store_factory("postgresql"),
}


def wipe_sql_store(uri: str) -> bool:
    """Empty the database of a running server: every row but the default
    experiment's, which is put back as new (active, no tags). True when
    experiments were deleted."""
    import sqlalchemy as sa

    from autolog.tracking.stores.sql_schema import metadata

    engine = sa.create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            present = set(sa.inspect(conn).get_table_names())
            tables = [t for t in reversed(metadata.sorted_tables) if t.name in present]
            experiments = metadata.tables["experiments"]
            deleted = False
            for table in tables:
                if table.name == "autolog_schema_version":
                    continue
                if table is experiments:
                    others = table.c.experiment_id != 0
                    deleted = conn.execute(table.delete().where(others)).rowcount > 0
                    conn.execute(table.update().values(name="Default", lifecycle_stage="active"))
                else:
                    conn.execute(table.delete())
    finally:
        engine.dispose()
    return deleted
