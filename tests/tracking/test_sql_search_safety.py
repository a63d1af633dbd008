"""Hostile filters against the SQL stores: the typed error, and never SQL built
from the user's text.

Every statement the store sends is recorded through SQLAlchemy's
``before_cursor_execute`` event: a malformed filter sends none, and a
well-formed filter full of SQL sends the user's text only as parameters.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from autolog.errors import InvalidFilterError
from autolog.tracking.entities import Param, RunTag
from autolog.tracking.search import MAX_IN_LIST_ITEMS
from tests.tracking.sql_stores import SQL_STORE_FACTORIES


@pytest.fixture(params=sorted(SQL_STORE_FACTORIES))
def sql_store(request, tmp_path):
    store = SQL_STORE_FACTORIES[request.param](tmp_path)
    run_id = store.create_run("0", "u", 1).info.run_id
    store.log_batch(run_id, params=[Param("x", "1")], tags=[RunTag("team", "a")])
    yield store
    store.close()


@pytest.fixture
def statements(sql_store):
    """The SQL text of every statement the store runs, as it is sent."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    sa.event.listen(sql_store._engine, "before_cursor_execute", record)
    yield sent
    sa.event.remove(sql_store._engine, "before_cursor_execute", record)


MALFORMED = [
    "params.x = '1' OR 1=1 --",  # the classic: a comparison, then garbage
    "params.x = '1'; DROP TABLE runs; --",
    "params.x = '1",  # unbalanced quotes
    "params.x = \"1'",
    "params.x = '1'')",
    "((params.x = '1')",
    "sqlite_master.name = 'runs'",  # unknown prefixes
    "pg_catalog.x = '1'",
    "metric.acc = 'high'",  # a string where a metric needs a number
    "metrics.acc = 'high'",
    "params.x = 1",  # a number where a param needs a string
    "metrics.acc > 0.5 UNION SELECT * FROM params",
    "params.`x = '1'",
    "params.x IN ()",
    "params.x IN (" + ", ".join(f"'{i}'" for i in range(MAX_IN_LIST_ITEMS + 1)) + ")",
    "attributes.experiment_id = '0'",
    "start_time > '0 OR 1=1'",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_filters_raise_the_typed_error_before_any_sql(sql_store, statements, text):
    with pytest.raises(InvalidFilterError):
        sql_store.search_runs(["0"], text)
    assert statements == []


# Well-formed filters whose values carry SQL: they select nothing, and each
# marker (a string of the filter's values and keys) may appear only as a parameter.
HOSTILE = {
    "params.x = '1'' OR ''1''=''1'": "OR '1'='1",
    "params.x = '1\\' OR 1=1 --'": "OR 1=1 --",
    "tags.team LIKE '%'' UNION SELECT name FROM sqlite_master --'": "UNION SELECT",
    "params.`x'); DROP TABLE runs; --` = 'a'": "DROP TABLE",
    "run_name ILIKE '%\"; DELETE FROM runs; --'": "DELETE FROM",
    "tags.team IN ('a'' OR 1=1 --', 'b')": "OR 1=1",
    "metrics.`m) OR (1=1` > 0": "OR (1=1",
}


@pytest.mark.parametrize("text", sorted(HOSTILE))
def test_user_text_reaches_the_database_only_as_parameters(sql_store, statements, text):
    assert list(sql_store.search_runs(["0"], text)) == []
    assert statements, "the search ran no SQL"
    marker = HOSTILE[text]
    for statement in statements:
        assert marker not in statement
    assert len(sql_store.search_runs(["0"], "params.x = '1'")) == 1  # nothing was dropped


def test_a_huge_in_list_is_one_parameter(sql_store, statements):
    members = [f"v{i}" for i in range(MAX_IN_LIST_ITEMS - 1)] + ["1"]
    text = "params.x IN (" + ", ".join(f"'{m}'" for m in members) + ")"
    assert len(sql_store.search_runs(["0"], text)) == 1
    assert len(sql_store.search_runs(["0"], text.replace(" IN (", " NOT IN ("))) == 0
    # SQLite caps a statement's parameters: the list travels as one value
    assert all("v9998" not in s and s.count("?") + s.count("%(") < 50 for s in statements)
