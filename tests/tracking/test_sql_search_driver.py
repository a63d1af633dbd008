"""The SQL stores' search read straight on the driver's connection
(``sql_engine.run_raw`` + ``sql_read.search_page``): the same answers as the
path through SQLAlchemy (taken inside a batch, or while something listens to
the engine's statements), a connection the server dropped is replaced and the
search retried, and a database error is the store's typed error."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from autolog.errors import StoreError
from autolog.tracking.entities import Metric, Param, RunTag
from tests.tracking.sql_stores import SQL_STORE_FACTORIES

SEARCHES = [
    ("", ()),
    ("params.p = 'a'", ("metrics.m DESC",)),
    ("params.p = 'a' AND metrics.m > 0.2 AND tags.t = 'x'", ("metrics.m ASC",)),
    ("tags.t IN ('x', 'y') AND metrics.m >= 0", ("params.p", "attributes.start_time DESC")),
    ("metrics.m = 0.5 AND params.p != 'c'", ()),
    ("attributes.run_name LIKE 'r1%'", ("attributes.run_name",)),
    ("params.p = 'zzz'", ()),
]


@pytest.fixture(params=sorted(SQL_STORE_FACTORIES))
def sql_store(request, tmp_path):
    store = SQL_STORE_FACTORIES[request.param](tmp_path)
    for i in range(30):
        run_id = store.create_run("0", "u", 1000 + i, run_name=f"r{i}").info.run_id
        value = math.nan if i % 7 == 3 else math.inf if i % 11 == 5 else (i % 10) / 10
        store.log_batch(
            run_id,
            metrics=[Metric("m", value, 1, 0), Metric("n", -i, 1, 0)],
            params=[Param("p", "abc"[i % 3]), Param("q", str(i))],
            tags=[RunTag("t", "xyz"[i % 4 % 3])],
        )
    yield store
    store.close()


def _answer(store, filter_string, order_by, max_results=7) -> list:
    """Every page of a search, each run as comparable values (NaN as a word)."""
    pages, token = [], None
    while True:
        page = store.search_runs(["0"], filter_string, max_results=max_results,
                                 order_by=list(order_by), page_token=token)  # fmt: skip
        pages.append([
            (r.info.run_id, r.info.run_name, r.info.experiment_id, r.info.status,
             r.info.start_time, r.info.end_time, r.info.artifact_uri, r.info.lifecycle_stage,
             r.data.params, r.data.tags,
             {k: "NaN" if v != v else v for k, v in r.data.metrics.items()})
            for r in page
        ])  # fmt: skip
        token = page.token
        if token is None:
            return pages


@pytest.mark.parametrize(("filter_string", "order_by"), SEARCHES)
def test_the_driver_path_answers_as_the_sqlalchemy_path(sql_store, filter_string, order_by):
    direct = _answer(sql_store, filter_string, order_by)

    def listen(*_args):  # a listener: the store goes through SQLAlchemy
        seen.append(1)

    seen: list[int] = []
    sa.event.listen(sql_store._engine, "before_cursor_execute", listen)
    try:
        through = _answer(sql_store, filter_string, order_by)
    finally:
        sa.event.remove(sql_store._engine, "before_cursor_execute", listen)
    assert seen, "the listener saw no statement: the SQLAlchemy path was not taken"
    with sql_store.batch():
        in_batch = _answer(sql_store, filter_string, order_by)
    assert direct == through == in_batch
    if filter_string == "params.p = 'zzz'":
        assert direct == [[]]
    else:
        assert direct[0], filter_string
    if filter_string == "":
        nans = [run for page in direct for run in page if run[10]["m"] == "NaN"]
        infs = [run for page in direct for run in page if run[10]["m"] == math.inf]
        assert len(nans) == 4 and len(infs) == 3 and sum(map(len, direct)) == 30


def test_a_dropped_connection_is_replaced_and_the_search_retried(sql_store, tmp_path):
    first = _answer(sql_store, "params.p = 'a'", ())
    if sql_store.dialect == "postgresql":
        import psycopg

        from tests.tracking.sql_stores import postgres_uri

        # every connection of the store's pool, ended by the server
        with psycopg.connect(postgres_uri(), autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND query LIKE '%page AS MATERIALIZED%'"
            ).fetchall()
        assert ended, "no pooled connection had searched"
    else:
        # a pooled connection closed under the pool: the driver refuses to use it
        pooled = sql_store._engine.raw_connection()
        pooled.driver_connection.close()
        pooled.close()
    assert _answer(sql_store, "params.p = 'a'", ()) == first


def test_a_database_error_is_the_stores_typed_error(sql_store):
    with sql_store._engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE tags RENAME TO tags_gone")
    with pytest.raises(StoreError) as caught:
        sql_store.search_runs(["0"], "params.p = 'a'")
    assert "tags" in str(caught.value) and sql_store.dialect in str(caught.value)
