"""Factories of fresh SQL stores for the tests: SQLite in a temporary folder,
PostgreSQL in a throwaway schema of the test server.

The PostgreSQL server is the one ``.ci/start-postgres`` starts; its URL comes
from ``AUTOLOG_TEST_POSTGRES_URI``. When it cannot be reached the tests fail
in CI (env ``CI`` set) and are skipped on a developer's machine.
"""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from autolog.tracking.stores.sql import SqlStore

POSTGRES_URI_ENV = "AUTOLOG_TEST_POSTGRES_URI"
DEFAULT_POSTGRES_URI = "postgresql://autolog:autolog@127.0.0.1:5432/autolog_test"


def postgres_uri() -> str:
    return os.environ.get(POSTGRES_URI_ENV, DEFAULT_POSTGRES_URI)


@functools.cache
def _postgres_unreachable_reason() -> str | None:
    import psycopg

    try:
        with psycopg.connect(postgres_uri(), connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {postgres_uri()!r} is unreachable ({exc}); run .ci/start-postgres"


def require_postgres() -> None:
    """Fail (in CI) or skip (locally) the calling test when the server is down."""
    reason = _postgres_unreachable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(postgres_uri(), autocommit=True) as conn:
        conn.execute(sql)


class ThrowawaySchemaStore(SqlStore):
    """A SqlStore whose tables live in their own PostgreSQL schema, dropped on close."""

    schema: str

    def close(self) -> None:
        super().close()
        _admin(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def make_sqlite_store(tmp_path: Path) -> SqlStore:
    return SqlStore(f"sqlite:///{tmp_path / 'store.db'}", artifact_root=str(tmp_path / "artifacts"))


def postgres_schema_uri(schema: str) -> str:
    """The test server's URL with ``search_path`` set to ``schema`` on every connection."""
    url = sa.make_url(postgres_uri()).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def make_postgresql_store(tmp_path: Path) -> SqlStore:
    require_postgres()
    schema = f"autolog_test_{uuid.uuid4().hex[:16]}"
    _admin(f'CREATE SCHEMA "{schema}"')
    store = ThrowawaySchemaStore(
        postgres_schema_uri(schema), artifact_root=str(tmp_path / "artifacts")
    )
    store.schema = schema
    return store


SQL_STORE_FACTORIES = {"sqlite": make_sqlite_store, "postgresql": make_postgresql_store}


def fill_old_schema(conn, version: int, runs: list[str], rows: list[tuple]) -> None:
    """Bring an empty SQLite database (``conn``, in a transaction) to schema
    ``version`` (one that still has the row table ``metrics``) and store the
    Default experiment, ``runs`` and the metric ``rows`` (run, key, value, step,
    timestamp; NaN as that version stored it), as an older autolog left them."""
    from autolog.tracking.stores import sql_schema

    sql_schema.ensure_schema(conn, lambda c: None, sql_schema.MIGRATIONS[:version])
    conn.exec_driver_sql(
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage)"
        " VALUES (0, 'Default', '', 'active')"
    )
    for run_id in runs:
        conn.exec_driver_sql(
            "INSERT INTO runs (run_id, experiment_id, run_name, user_id, status,"
            " start_time, artifact_uri, lifecycle_stage)"
            " VALUES (?, 0, 'r', 'u', 'FINISHED', 0, '', 'active')",
            (run_id,),
        )
    conn.exec_driver_sql(
        "INSERT INTO metrics (run_id, key, value, is_nan, step, timestamp)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(r, k, None if v != v else v, v != v, s, t) for r, k, v, s, t in rows],
    )


def send_points(store, kind: str, run_id: str, points: list, sent: list, rng) -> tuple[str, list]:
    """Write ``points`` to ``run_id`` as a round of ``kind`` asks: ``"retry"``
    sends one of the earlier rounds (``sent``) again instead, ``"batch"``
    writes them in two calls inside ``store.batch()``. Returns what was sent
    and records it in ``sent``."""
    if kind == "retry" and sent:
        run_id, points = rng.choice(sent)
    if kind == "batch":
        with store.batch():
            half = len(points) // 2
            store.log_batch(run_id, points[:half])
            store.log_batch(run_id, points[half:])
    else:
        store.log_batch(run_id, points)
    sent.append((run_id, points))
    return run_id, points
