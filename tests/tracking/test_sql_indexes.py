"""Schema version 3: the covering indexes of the hot reads, the planner using
them (EXPLAIN), and the migration of a version 2 database that keeps its data;
on SQLite, version 5's history blocks found by their range index."""

from __future__ import annotations

import math
import uuid

import pytest
import sqlalchemy as sa

from autolog.tracking.entities import Metric, Param, RunTag
from autolog.tracking.stores import sql_blocks, sql_schema
from autolog.tracking.stores.sql import SqlStore, engine_url
from tests.tracking.sql_stores import (
    SQL_STORE_FACTORIES,
    ThrowawaySchemaStore,
    _admin,
    postgres_schema_uri,
    require_postgres,
)

HISTORY = (
    "SELECT step, timestamp, value FROM metrics WHERE run_id = '{run}' AND key = 'loss' "
    "ORDER BY step, timestamp"
)


@pytest.fixture(params=sorted(SQL_STORE_FACTORIES))
def sql_store(request, tmp_path):
    store = SQL_STORE_FACTORIES[request.param](tmp_path)
    yield store
    store.close()


def _v2_database(dialect: str, tmp_path) -> tuple[str, type[SqlStore], str | None]:
    """A database at schema version 2 with one run, its points (a NaN among them),
    params and tags, written as version 2 wrote them; (uri, store class, schema)."""
    schema = None
    if dialect == "sqlite":
        uri, cls = f"sqlite:///{tmp_path / 'v2.db'}", SqlStore
    else:
        require_postgres()
        schema = f"autolog_test_{uuid.uuid4().hex[:16]}"
        _admin(f'CREATE SCHEMA "{schema}"')
        uri, cls = postgres_schema_uri(schema), ThrowawaySchemaStore
    engine = sa.create_engine(engine_url(uri))

    def default_experiment(conn):
        conn.execute(
            sql_schema.experiments.insert(),
            {"experiment_id": 0, "name": "Default", "artifact_location": "/a/0"}
            | {"lifecycle_stage": "active"},
        )

    with engine.begin() as conn:
        assert sql_schema.ensure_schema(conn, default_experiment, sql_schema.MIGRATIONS[:2]) == 2
        conn.execute(
            sql_schema.runs.insert(),
            {"run_id": "a" * 32, "experiment_id": 0, "run_name": "r", "user_id": "u"}
            | {"status": "RUNNING", "start_time": 1, "artifact_uri": "/a/0/r"}
            | {"lifecycle_stage": "active"},
        )
        points = [(0, 1.0, False), (1, None, True), (2, 0.5, False)]
        conn.execute(
            sql_schema.metrics.insert(),
            [
                {"run_id": "a" * 32, "key": "loss", "value": v, "is_nan": nan}
                | {"step": step, "timestamp": 10}
                for step, v, nan in points
            ],
        )
        conn.execute(
            sql_schema.latest_metrics.insert(),
            {"run_id": "a" * 32, "key": "loss", "value": 0.5, "is_nan": False}
            | {"step": 2, "timestamp": 10},
        )
        conn.execute(sql_schema.params.insert(), {"run_id": "a" * 32, "key": "lr", "value": "0.1"})
        conn.execute(sql_schema.tags.insert(), {"run_id": "a" * 32, "key": "team", "value": "x"})
    engine.dispose()
    return uri, cls, schema


def _indexes(store: SqlStore) -> dict[str, set[str]]:
    """Index names by table; the history's table is ``metrics`` on PostgreSQL,
    ``metric_blocks`` on SQLite (schema v5)."""
    history = "metric_blocks" if store.dialect == "sqlite" else "metrics"
    with store._engine.connect() as conn:
        inspector = sa.inspect(conn)
        found = {
            table: {i["name"] for i in inspector.get_indexes(table)}
            for table in (history, "latest_metrics", "params", "tags")
        }
        found["tables"] = set(inspector.get_table_names())
        return found


def _plan(store: SqlStore, sql: str) -> str:
    """The plan of ``sql`` as text (PostgreSQL: with sequential and bitmap scans
    off, since a table of a few rows is cheapest to read whole)."""
    with store._engine.connect() as conn:
        if store.dialect == "sqlite":
            return "\n".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        conn.exec_driver_sql("SET enable_seqscan = off")
        conn.exec_driver_sql("SET enable_bitmapscan = off")
        return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_version_2_database_migrates_through_3_and_keeps_its_data(dialect, tmp_path):
    uri, cls, schema = _v2_database(dialect, tmp_path)
    store = cls(uri, artifact_root=str(tmp_path / "artifacts"))
    if schema is not None:
        store.schema = schema
    try:
        with store._engine.connect() as conn:
            version = conn.execute(sa.select(sql_schema.schema_version.c.version)).scalar()
        assert version == sql_schema.SCHEMA_VERSION  # v3's indexes, then the newer versions
        indexes = _indexes(store)
        assert "ix_latest_metrics_search" in indexes["latest_metrics"]
        assert "ix_latest_metrics_key_value" not in indexes["latest_metrics"]
        if dialect == "sqlite":  # v5: the rows became blocks, the table of rows is gone
            assert indexes["metric_blocks"] == {"ix_metric_blocks_range", "ix_metric_blocks_time"}
            assert "metrics" not in indexes["tables"]
            assert "ix_params_search" in indexes["params"] and "ix_tags_search" in indexes["tags"]
        else:
            assert {"ux_metrics_point", "ix_metrics_history"} <= indexes["metrics"]
            assert "ix_params_value" in indexes["params"] and "ix_tags_value" in indexes["tags"]
        run_id = "a" * 32
        history = store.get_metric_history(run_id, "loss")
        assert [m.step for m in history] == [0, 1, 2]
        assert math.isnan(history[1].value) and history[2].value == 0.5
        run = store.get_run(run_id)
        assert (run.data.params, run.data.tags) == ({"lr": "0.1"}, {"team": "x"})
        assert run.data.metrics == {"loss": 0.5}
        # the migrated identity still stores a retried point once, NaN included
        store.log_batch(
            run_id, metrics=[Metric("loss", math.nan, 10, 1), Metric("loss", 1.0, 10, 0)]
        )
        assert len(store.get_metric_history(run_id, "loss")) == 3
        if dialect == "sqlite":  # v4: the UI's summaries hold every point, old and new
            counted = "SELECT sum(n) FROM metric_summaries WHERE run_id = ? AND key = 'loss'"
            with store._engine.connect() as conn:
                assert conn.exec_driver_sql(counted, (run_id,)).scalar() == 3
        found = store.search_runs(
            ["0"], "params.lr = '0.1' and tags.team = 'x' and metrics.loss < 1"
        )
        assert [r.info.run_id for r in found] == [run_id]
    finally:
        store.close()


def test_history_reads_are_index_only(sql_store):
    """PostgreSQL: the history from its covering index alone. SQLite (v5): the
    series' blocks found by their range index (a row per block, not per point:
    their blobs are then read from the table), a step range by its lower bound
    too; the extent from the index alone."""
    run_id = sql_store.create_run("0", "u", 1).info.run_id
    sql_store.log_batch(run_id, metrics=[Metric("loss", 1.0 / (i + 1), 5, i) for i in range(50)])
    if sql_store.dialect != "sqlite":
        plan = _plan(sql_store, HISTORY.format(run=run_id))
        assert "Index Only Scan using ix_metrics_history" in plan, plan
        return

    def bound(sql: str, *values: str) -> str:
        for value in values:
            sql = sql.replace("?", value, 1)
        return sql

    series = (f"'{run_id}'", "'loss'")
    plan = _plan(sql_store, bound(sql_blocks._ALL, *series))
    assert "SEARCH metric_blocks USING INDEX ix_metric_blocks_range (run_id=? AND key=?)" in plan
    plan = _plan(sql_store, bound(sql_blocks._MEETING, *series, "10", "20"))
    assert "USING INDEX ix_metric_blocks_range (run_id=? AND key=? AND max_step>?)" in plan, plan
    plan = _plan(sql_store, bound(sql_blocks._EXTENT, *series))
    assert "USING COVERING INDEX ix_metric_blocks_range (run_id=? AND key=?)" in plan, plan
    # a write's lookups: one seek each, from the index alone; the blocks that
    # meet a retried write by their time range first, their step range checked
    # on the index entries
    plan = _plan(sql_store, bound(sql_blocks._ABOVE_STEP, *series, "10"))
    assert "COVERING INDEX ix_metric_blocks_range (run_id=? AND key=? AND max_step>?)" in plan
    plan = _plan(sql_store, bound(sql_blocks._AFTER_TIME, *series, "10"))
    assert "COVERING INDEX ix_metric_blocks_time (run_id=? AND key=? AND max_ts>?)" in plan
    plan = _plan(sql_store, bound(sql_blocks._STORED, *series, "1", "9", "10", "20"))
    assert "USING INDEX ix_metric_blocks_time (run_id=? AND key=? AND max_ts>?)" in plan, plan


def test_filter_candidates_come_from_the_search_indexes(sql_store):
    run_id = sql_store.create_run("0", "u", 1).info.run_id
    sql_store.log_batch(
        run_id,
        metrics=[Metric("acc", 0.9, 1)],
        params=[Param("model", "rf")],
        tags=[RunTag("team", "a")],
    )
    plan = _plan(sql_store, "SELECT run_id FROM latest_metrics WHERE key = 'acc' AND value > 0.5")
    if sql_store.dialect == "sqlite":
        assert "USING COVERING INDEX ix_latest_metrics_search" in plan, plan
        for table in ("params", "tags"):
            plan = _plan(sql_store, f"SELECT run_id FROM {table} WHERE key = 'k' AND value = 'v'")
            assert f"USING COVERING INDEX ix_{table}_search" in plan, plan
    else:
        assert "Index Only Scan using ix_latest_metrics_search" in plan, plan
        for table in ("params", "tags"):
            plan = _plan(sql_store, f"SELECT run_id FROM {table} WHERE key = 'k' AND value = 'v'")
            assert f"ix_{table}_value" in plan, plan


def test_a_nan_point_logged_again_is_stored_once(sql_store):
    """SQLite's unique index cannot see two NULLs as equal: the writer skips the
    stored NaN point itself (in logging order with the finite points around it)."""
    run_id = sql_store.create_run("0", "u", 1).info.run_id
    batch = [Metric("m", 1.0, 7, 0), Metric("m", math.nan, 7, 0), Metric("m", 2.0, 7, 0)]
    for _ in range(2):
        sql_store.log_batch(run_id, metrics=[*batch, Metric("m", math.nan, 7, 0)])
    values = [m.value for m in sql_store.get_metric_history(run_id, "m")]
    assert len(values) == 3 and values[0] == 1.0 and math.isnan(values[1]) and values[2] == 2.0
