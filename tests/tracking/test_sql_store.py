"""What only the SQL store has: schema versions and migrations, SQLite's WAL
mode and many writer processes, URIs, the artifact root, NaN in SQL."""

from __future__ import annotations

import math
import multiprocessing
import sqlite3

import pytest
import sqlalchemy as sa

from autolog.errors import ParamOverwriteError, StoreError
from autolog.tracking.entities import Metric, Param, RunTag
from autolog.tracking.stores import sql_schema
from autolog.tracking.stores.sql import SqlStore, engine_url
from tests.tracking.sql_stores import SQL_STORE_FACTORIES, make_sqlite_store


@pytest.fixture(params=sorted(SQL_STORE_FACTORIES))
def sql_store(request, tmp_path):
    store = SQL_STORE_FACTORIES[request.param](tmp_path)
    yield store
    store.close()


def _new_run(store: SqlStore, start_time: int = 1) -> str:
    return store.create_run("0", "tester", start_time).info.run_id


# -- schema version and migrations ------------------------------------------------
def test_new_database_carries_the_newest_schema_version(sql_store):
    with sql_store._engine.connect() as conn:
        stored = conn.execute(sa.select(sql_schema.schema_version.c.version)).scalars().all()
        tables = set(sa.inspect(conn).get_table_names())
    assert stored == [sql_schema.SCHEMA_VERSION]
    assert {"experiments", "runs", "params", "tags", "latest_metrics"} <= tables
    # the history: blocks of points on SQLite (v5, sql_blocks), one row per point on PostgreSQL
    history = "metric_blocks" if sql_store.dialect == "sqlite" else "metrics"
    assert history in tables and ({"metrics", "metric_blocks"} - {history}).isdisjoint(tables)


def test_reopening_keeps_the_data_and_the_version(tmp_path):
    store = make_sqlite_store(tmp_path)
    run_id = _new_run(store)
    store.close()
    again = make_sqlite_store(tmp_path)
    assert again.get_run(run_id).info.user_id == "tester"
    assert len(again.search_experiments()) == 1  # the default experiment was not recreated
    again.close()


def test_migrations_run_in_order_once_and_keep_the_data(sql_store):
    run_id = _new_run(sql_store)
    sql_store.log_batch(run_id, params=[Param("lr", "0.1")])
    applied = []
    next_version = sql_schema.SCHEMA_VERSION + 1

    def add_note_column(conn):
        applied.append(next_version)
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN note TEXT"))

    migrations = [*sql_schema.MIGRATIONS, (next_version, add_note_column)]
    for _ in range(2):  # the second pass finds the new version and does nothing
        with sql_store._write_engine.begin() as conn:
            assert sql_schema.ensure_schema(conn, lambda c: None, migrations) == next_version
    assert applied == [next_version]
    with sql_store._engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    assert "note" in columns
    assert sql_store.get_run(run_id).data.params == {"lr": "0.1"}
    # an autolog that does not know the new version refuses the newer database
    with pytest.raises(StoreError, match="newer than this autolog"):
        SqlStore(sql_store.uri)


# -- URIs and artifacts -------------------------------------------------------------
def test_plain_postgresql_uri_uses_psycopg3():
    assert engine_url("postgresql://u:p@db:5432/x").drivername == "postgresql+psycopg"
    assert engine_url("postgresql+psycopg://u:p@db/x").drivername == "postgresql+psycopg"
    assert engine_url("sqlite:///a.db").drivername == "sqlite"


def test_artifact_root_option_env_and_default(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    monkeypatch.delenv("AUTOLOG_ARTIFACT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    store = SqlStore(uri)  # default: ./mlartifacts, as an absolute file URI
    run = store.create_run("0", "u", 1)
    assert run.info.artifact_uri == (
        f"{(tmp_path / 'mlartifacts').as_uri()}/0/{run.info.run_id}/artifacts"
    )
    monkeypatch.setenv("AUTOLOG_ARTIFACT_ROOT", "s3://bucket/team")
    env_store = SqlStore(uri)
    assert env_store.get_experiment(env_store.create_experiment("e")).artifact_location == (
        "s3://bucket/team/1"
    )
    option_store = SqlStore(uri, artifact_root=str(tmp_path / "arts"))
    exp_id = option_store.create_experiment("f")
    assert option_store.get_experiment(exp_id).artifact_location == (
        f"{(tmp_path / 'arts').as_uri()}/{exp_id}"
    )
    own = option_store.create_experiment("g", artifact_location="gs://b/own")
    run = option_store.create_run(own, "u", 1)
    assert run.info.artifact_uri == f"gs://b/own/{run.info.run_id}/artifacts"
    for s in (store, env_store, option_store):
        s.close()


# -- values SQL would otherwise lose -------------------------------------------------
def test_nan_and_infinities_survive_and_latest_follows_step_then_time(sql_store):
    run_id = _new_run(sql_store)
    sql_store.log_batch(
        run_id,
        metrics=[
            Metric("loss", math.nan, timestamp=50, step=3),
            Metric("loss", 1.0, timestamp=99, step=2),  # newer but a lower step: not latest
            Metric("up", math.inf, timestamp=1),
            Metric("down", -math.inf, timestamp=1),
        ],
    )
    data = sql_store.get_run(run_id).data
    assert math.isnan(data.metrics["loss"])
    assert (data.metrics["up"], data.metrics["down"]) == (math.inf, -math.inf)
    history = sql_store.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [2, 3] and math.isnan(history[1].value)
    # NaN is present for IS NOT NULL, and false for every comparison
    found = sql_store.search_runs(["0"], "metrics.loss IS NOT NULL")
    assert [r.info.run_id for r in found] == [run_id]
    assert not sql_store.search_runs(["0"], "metrics.loss != 1 OR metrics.loss < 1e308")


def test_a_rejected_batch_writes_nothing(sql_store):
    run_id = _new_run(sql_store)
    sql_store.log_batch(run_id, params=[Param("lr", "0.1")])
    with pytest.raises(ParamOverwriteError):
        sql_store.log_batch(
            run_id,
            metrics=[Metric("acc", 0.9, 1)],
            params=[Param("lr", "0.2")],
            tags=[RunTag("t", "v")],
        )
    data = sql_store.get_run(run_id).data
    assert (data.params, data.metrics, data.tags) == ({"lr": "0.1"}, {}, {})
    assert sql_store.get_metric_history(run_id, "acc") == []


def test_like_is_case_sensitive_and_ilike_folds_case(sql_store):
    run_id = _new_run(sql_store)
    sql_store.log_batch(run_id, tags=[RunTag("team", "Vision*[x]"), RunTag("pct", "50%")])
    for text, hit in [
        ("tags.team LIKE 'Vision%'", True),
        ("tags.team LIKE 'vision%'", False),  # SQLite's own LIKE would say True
        ("tags.team ILIKE 'VISION%'", True),
        ("tags.team LIKE 'Vision*[x]'", True),  # GLOB's wildcards are literals here
        ("tags.team LIKE 'Vision?[x]'", False),
        ("tags.pct LIKE '5_%'", True),
        ("tags.pct LIKE '50'", False),
    ]:
        assert bool(sql_store.search_runs(["0"], text)) is hit, text


# -- SQLite: WAL and many writer processes -------------------------------------------
def test_sqlite_runs_in_wal_mode(tmp_path):
    make_sqlite_store(tmp_path).close()
    with sqlite3.connect(tmp_path / "store.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


WRITERS, RUNS_PER_WRITER, POINTS_PER_RUN, POINTS_PER_BATCH = 8, 250, 100, 10


def _write_runs(uri: str, writer: int) -> None:
    """One writer process: its own store, RUNS_PER_WRITER runs of POINTS_PER_RUN points."""
    store = SqlStore(uri)
    for i in range(RUNS_PER_WRITER):
        run_id = store.create_run("0", f"writer-{writer}", start_time=i).info.run_id
        store.log_batch(run_id, params=[Param("writer", str(writer))])
        for first in range(0, POINTS_PER_RUN, POINTS_PER_BATCH):
            points = [
                Metric("loss", step / 10, 1000 + step, step)
                for step in range(first, first + POINTS_PER_BATCH)
            ]
            store.log_batch(run_id, metrics=points)
    store.close()


@pytest.mark.slow
def test_many_processes_write_one_sqlite_file(tmp_path):
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    SqlStore(uri).close()  # the schema exists before the writers start
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_runs, args=(uri, w)) for w in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=300)
    assert [p.exitcode for p in writers] == [0] * WRITERS  # no "database is locked"
    store = SqlStore(uri)
    runs, token = [], None
    while True:
        page = store.search_runs(["0"], max_results=1000, page_token=token)
        runs += page
        token = page.token
        if token is None:
            break
    assert len(runs) == WRITERS * RUNS_PER_WRITER
    per_writer = {w: 0 for w in range(WRITERS)}
    for run in runs:
        per_writer[int(run.data.params["writer"])] += 1
        assert run.data.metrics == {"loss": (POINTS_PER_RUN - 1) / 10}
    assert set(per_writer.values()) == {RUNS_PER_WRITER}
    with sqlite3.connect(tmp_path / "shared.db") as conn:
        points = conn.execute("SELECT sum(n) FROM metric_blocks").fetchone()[0]
    assert points == WRITERS * RUNS_PER_WRITER * POINTS_PER_RUN
    history = store.get_metric_history(runs[0].info.run_id, "loss")
    assert [m.step for m in history] == list(range(POINTS_PER_RUN))
    store.close()


def test_a_run_deleted_by_another_process_is_refused_although_this_store_knows_it(sql_store):
    from autolog.errors import RunStateError
    from autolog.tracking.entities import Metric

    run_id = _new_run(sql_store)
    sql_store.log_batch(run_id, metrics=[Metric("m", 1.0, 1, 0)])  # now known to this store
    other = SqlStore(sql_store.uri, artifact_root=sql_store.artifact_root)  # another process
    other.delete_run(run_id)
    other.close()
    with pytest.raises(RunStateError, match=run_id):
        sql_store.log_batch(run_id, metrics=[Metric("m", 2.0, 2, 1)])
    with pytest.raises(RunStateError, match=run_id), sql_store.batch():  # in a batch too
        sql_store.log_batch(run_id, params=[Param("lr", "0.1")])
    assert sql_store.get_run(run_id).data.metrics == {"m": 1.0}
