"""The tables of the SQL store and the migrations that create and change them.

The schema carries a version (table ``autolog_schema_version``, one row).
``ensure_schema`` applies, in order and in one transaction, every migration
newer than the database's version: version 1 is the initial schema. A later
change to the tables is a new function appended to ``MIGRATIONS``; the table
definitions below always describe the newest version.

Why the columns look the way they do:

- ``metrics`` keeps the full history on PostgreSQL, one row per point;
  ``seq`` is the logging order (the tie-break of ``get_metric_history``); an
  identical point (same run, key, step, timestamp and value) is stored once,
  so a retried write adds nothing. NaN is stored as ``value`` NULL with
  ``is_nan`` true: PostgreSQL sorts NaN above every number, which does not
  match the search semantics (NaN compares False to everything).
- ``metric_blocks`` keeps it on SQLite (version 5, ``sql_blocks.py``): the
  points of one write per run and key in one row (packed steps, timestamps
  and float64 values, NaN as it is), found by their step range; the writer
  drops identical points already stored. One row and one index entry per
  point (versions 1 to 4, ``metrics`` there too) capped SQLite near 200,000
  points a second; a block is one row per write.
- ``latest_metrics`` is what searches filter and sort on (one row per run and
  key: highest step, then latest timestamp), maintained by ``log_batch``.
- Param and tag values are unbounded ``TEXT``. On SQLite they are indexed by
  ``(key, value, run_id)``; PostgreSQL's B-tree cannot hold index entries above
  ~2.7 kB, so there a long value would make the insert fail: searches on params
  and tags go through the ``(run_id, key)`` primary key instead.

Indexes that reads use without touching the table (version 3), checked with
``EXPLAIN`` in ``tests/tracking/test_sql_indexes.py``:

- metric history (``get_metric_history``, the UI's buckets: ``WHERE run_id = ?
  AND key = ? ORDER BY step, timestamp``, reading ``value``): on PostgreSQL
  ``ix_metrics_history`` ``(run_id, key, step, timestamp, seq) INCLUDE
  (value, is_nan)`` beside the unique ``ux_metrics_point``. On SQLite the
  unique point index ``ux_metrics_history`` ``(run_id, key, step, timestamp,
  is_nan, value)`` served it up to version 4; from version 5 the blocks' range
  index ``ix_metric_blocks_range`` ``(run_id, key, max_step, min_step)`` finds
  a series' blocks (one entry per block), a step range's by its bounds;
- search filters: ``(key, value, run_id)`` on ``latest_metrics`` (both
  backends) and, on SQLite, on ``params`` and ``tags``: a filter's candidate
  runs come from the index alone; on PostgreSQL a hash index on the ``value``
  of ``params`` and ``tags`` (any length) serves equality filters;
  ``runs (experiment_id, lifecycle_stage, start_time, run_id)``: a search's
  runs in the default order.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from autolog.errors import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "ensure_schema", "metadata"]

metadata = sa.MetaData()

# An id column that autoincrements everywhere: SQLite only does so for
# "INTEGER PRIMARY KEY" (an alias of the rowid), not for BIGINT.
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Key = sa.String(250)

schema_version = sa.Table(
    "autolog_schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("experiment_id", _AutoId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(500), nullable=False, unique=True),
    sa.Column("artifact_location", sa.Text, nullable=False),
    sa.Column("lifecycle_stage", sa.String(32), nullable=False),
    sa.Column("creation_time", sa.BigInteger),
    sa.Column("last_update_time", sa.BigInteger),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column(
        "experiment_id",
        _AutoId,
        sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", _Key, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("experiment_id", _AutoId, sa.ForeignKey("experiments.experiment_id"), nullable=False),
    sa.Column("run_name", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    sa.Column("lifecycle_stage", sa.String(32), nullable=False),
    # its search index is plain DDL in the migrations (version 3: covering)
)


def _run_id_column() -> sa.Column:
    return sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    )


params = sa.Table(
    "params",
    metadata,
    _run_id_column(),
    sa.Column("key", _Key, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

tags = sa.Table(
    "tags",
    metadata,
    _run_id_column(),
    sa.Column("key", _Key, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("seq", _AutoId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("key", _Key, nullable=False),
    sa.Column("value", sa.Double),
    sa.Column("is_nan", sa.Boolean, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    # its index, unique per point, is plain DDL in _migrate_v2_point_identity;
    # SQLite's history is in metric_blocks from version 5 (sql_blocks)
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    _run_id_column(),
    sa.Column("key", _Key, primary_key=True),
    sa.Column("value", sa.Double),
    sa.Column("is_nan", sa.Boolean, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    # its search index is plain DDL in the migrations (version 3: covering)
)


def _migrate_v1_initial(conn: sa.Connection) -> None:
    """Every table of version 1, plus the value indexes SQLite can afford."""
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t is not schema_version])
    # the default order of search_runs is start_time DESC, run_id ASC
    conn.exec_driver_sql(
        "CREATE INDEX ix_runs_experiment_start ON runs (experiment_id, start_time)"
    )
    conn.exec_driver_sql("CREATE INDEX ix_latest_metrics_key_value ON latest_metrics (key, value)")
    if conn.dialect.name == "sqlite":
        # plain DDL: an sa.Index on the columns would attach itself to the shared
        # Table objects and reach PostgreSQL's create_all too
        conn.exec_driver_sql("CREATE INDEX ix_params_key_value ON params (key, value)")
        conn.exec_driver_sql("CREATE INDEX ix_tags_key_value ON tags (key, value)")


def _migrate_v2_point_identity(conn: sa.Connection) -> None:
    """A metric point is identified by (run, key, step, timestamp, value): the
    identical point logged again (a retried write) is stored once. Repeats
    already stored are removed (the first one stays), then one unique index
    replaces the history index of version 1 (its leading columns serve the
    history's lookups). NaN is stored as value NULL, hence the COALESCE."""
    identity = "run_id, key, step, timestamp, is_nan, COALESCE(value, 0)"
    conn.exec_driver_sql(
        f"DELETE FROM metrics WHERE seq NOT IN (SELECT MIN(seq) FROM metrics GROUP BY {identity})"
    )
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_metrics_history")
    conn.exec_driver_sql(f"CREATE UNIQUE INDEX ux_metrics_point ON metrics ({identity})")


def _migrate_v3_covering_indexes(conn: sa.Connection) -> None:
    """Indexes that answer the hot reads alone (see the module docstring): metric
    history with its values, and a filter's run ids. SQLite's point index takes
    the plain columns (one index per point written, as before); PostgreSQL keeps
    its point index and gets a covering one beside it."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "CREATE UNIQUE INDEX ux_metrics_history "
            "ON metrics (run_id, key, step, timestamp, is_nan, value)"
        )
        conn.exec_driver_sql("DROP INDEX ux_metrics_point")
        for table in ("params", "tags"):
            conn.exec_driver_sql(f"DROP INDEX ix_{table}_key_value")
            conn.exec_driver_sql(f"CREATE INDEX ix_{table}_search ON {table} (key, value, run_id)")
    else:
        conn.exec_driver_sql(
            "CREATE INDEX ix_metrics_history "
            "ON metrics (run_id, key, step, timestamp, seq) INCLUDE (value, is_nan)"
        )
        # a hash index holds a value of any length (a B-tree entry cannot pass
        # ~2.7 kB): equality filters on params and tags find their rows by it
        for table in ("params", "tags"):
            conn.exec_driver_sql(f"CREATE INDEX ix_{table}_value ON {table} USING hash (value)")
    conn.exec_driver_sql("DROP INDEX ix_latest_metrics_key_value")
    conn.exec_driver_sql(
        "CREATE INDEX ix_latest_metrics_search ON latest_metrics (key, value, run_id)"
    )
    # a search's runs (experiment, stage) in the default order, without the table
    conn.exec_driver_sql("DROP INDEX ix_runs_experiment_start")
    conn.exec_driver_sql(
        "CREATE INDEX ix_runs_search ON runs (experiment_id, lifecycle_stage, start_time, run_id)"
    )


def _migrate_v4_metric_summaries(conn: sa.Connection) -> None:
    """SQLite: per run, key and block of 256 steps, what the UI's buckets need
    (``sql_summaries.py``), filled from the stored points; kept by ``log_batch``
    from then on. PostgreSQL: nothing (its buckets are aggregated per query)."""
    if conn.dialect.name == "sqlite":
        from autolog.tracking.stores import sql_summaries

        sql_summaries.create(conn)
        rows = conn.exec_driver_sql(
            "SELECT run_id, key, step, value FROM metrics"
            " ORDER BY run_id, key, step, timestamp, seq"
        )
        sql_summaries.fill(conn, (tuple(row) for row in rows))


def _migrate_v5_metric_blocks(conn: sa.Connection) -> None:
    """SQLite: the history as blocks of points (``sql_blocks``: one row per
    write and key instead of one per point), converted from the rows of
    ``metrics`` (each series in logging order), which then goes. The
    summaries of version 4 hold the same points: they stay. PostgreSQL:
    nothing (one row per point)."""
    if conn.dialect.name == "sqlite":
        from autolog.tracking.stores import sql_blocks

        sql_blocks.create(conn)
        rows = conn.exec_driver_sql(
            "SELECT run_id, key, value, is_nan, step, timestamp FROM metrics"
            " ORDER BY run_id, key, seq"
        )
        sql_blocks.convert_rows(conn, (tuple(row) for row in rows))
        conn.exec_driver_sql("DROP TABLE metrics")


#: (version, migration) in order; ``ensure_schema`` runs those above the stored version.
MIGRATIONS: list[tuple[int, Callable[[sa.Connection], None]]] = [
    (1, _migrate_v1_initial),
    (2, _migrate_v2_point_identity),
    (3, _migrate_v3_covering_indexes),
    (4, _migrate_v4_metric_summaries),
    (5, _migrate_v5_metric_blocks),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# Serialises the first use of one PostgreSQL database by several processes.
_PG_SCHEMA_LOCK = 0x6175746F6C6F67  # "autolog"


def _stored_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0


def ensure_schema(
    conn: sa.Connection,
    on_created: Callable[[sa.Connection], None],
    migrations: list[tuple[int, Callable[[sa.Connection], None]]] | None = None,
) -> int:
    """Bring the database at ``conn`` (inside a write transaction) to the newest
    schema version and return it; ``on_created`` runs once, right after the
    initial schema is created (it inserts the default experiment).

    Raises StoreError when the database is newer than this autolog."""
    migrations = MIGRATIONS if migrations is None else migrations
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})
    current = _stored_version(conn)
    newest = migrations[-1][0]
    if current > newest:
        raise StoreError(
            f"database schema version {current} is newer than this autolog supports "
            f"({newest}); upgrade autolog"
        )
    if current == newest:
        return current
    if current == 0:
        schema_version.create(conn)
        conn.execute(schema_version.insert(), {"version": 0})
    for version, migrate in migrations:
        if version > current:
            migrate(conn)
            conn.execute(schema_version.update().values(version=version))
            if current == 0 and version == migrations[0][0]:
                on_created(conn)
    return newest
