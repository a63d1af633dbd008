"""The SQL store's rows read back as entities: experiments with their tags, runs
with their params, latest metrics and tags."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from autolog.errors import ResourceNotFoundError, RunStateError
from autolog.tracking.entities import Experiment, LifecycleStage, Run, RunData, RunInfo
from autolog.tracking.stores.sql_schema import experiment_tags, experiments, runs

__all__ = [
    "artifact_location",
    "load_experiments",
    "SQLITE_RUN_DATA",
    "load_runs",
    "load_search",
    "observed",
    "raw_rows",
    "require_active",
    "require_run",
    "run_info",
    "run_row",
    "search_page",
]

# the lookups of the write path, built once (when the store does not know the answer yet)
_RUN_STAGE = sa.select(runs.c.lifecycle_stage).where(runs.c.run_id == sa.bindparam("run_id"))
_ARTIFACT_LOCATION = sa.select(experiments.c.artifact_location).where(
    experiments.c.experiment_id == sa.bindparam("experiment_id")
)


def require_run(conn: sa.Connection, run_id: str) -> None:
    """ResourceNotFoundError unless the run exists, RunStateError if it is deleted."""
    stage = conn.execute(_RUN_STAGE, {"run_id": run_id}).scalar()
    if stage is None:
        raise ResourceNotFoundError(f"No run with id {run_id!r}")
    require_active(run_id, stage)


def require_active(run_id: str, stage: str) -> None:
    """RunStateError when the run's lifecycle ``stage`` forbids writing to it."""
    if stage == LifecycleStage.DELETED:
        raise RunStateError(f"run {run_id} is deleted; restore it before writing to it")


def artifact_location(conn: sa.Connection, exp_key: int) -> str | None:
    """The experiment's artifact_location; None when there is no such experiment."""
    return conn.execute(_ARTIFACT_LOCATION, {"experiment_id": exp_key}).scalar()


def load_experiments(conn: sa.Connection, where: sa.ColumnElement | None) -> list[Experiment]:
    """The experiments matching ``where`` (all of them when None), with their tags."""
    query = sa.select(experiments)
    if where is not None:
        query = query.where(where)
    rows = conn.execute(query).all()
    ids = [row.experiment_id for row in rows]
    tag_map: dict[int, dict[str, str]] = {i: {} for i in ids}
    if ids:
        tag_rows = conn.execute(
            sa.select(experiment_tags).where(experiment_tags.c.experiment_id.in_(ids))
        )
        for tag in tag_rows:
            tag_map[tag.experiment_id][tag.key] = tag.value
    return [
        Experiment(
            experiment_id=str(row.experiment_id),
            name=row.name,
            artifact_location=row.artifact_location,
            lifecycle_stage=row.lifecycle_stage,
            tags=tag_map[row.experiment_id],
            creation_time=row.creation_time,
            last_update_time=row.last_update_time,
        )
        for row in rows
    ]


def run_row(conn: sa.Connection, run_id: str) -> sa.Row:
    """The runs row of ``run_id``; ResourceNotFoundError when there is none."""
    row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    if row is None:
        raise ResourceNotFoundError(f"No run with id {run_id!r}")
    return row


def run_info(row: sa.Row | tuple | dict) -> RunInfo:
    """The RunInfo of a runs row (read: its columns in table order; or a dict
    about to be written)."""
    if isinstance(row, dict):
        return RunInfo(**{**row, "experiment_id": str(row["experiment_id"])})
    run_id, experiment_id, run_name, user_id, status, start, end, uri, stage = row
    return RunInfo(run_id, str(experiment_id), run_name, user_id, status, start, end, uri, stage)


# The page's params, tags and latest metrics in one statement (one round trip).
# SQLite: rows (position of the run in the page's ids, kind, key, value): kind 0
# a param, 1 a tag, 2 a metric (NULL for NaN); the ids are one JSON parameter,
# walked first (CROSS JOIN keeps that order), each run's rows found by primary key.
SQLITE_RUN_DATA = """
SELECT j.key, 0, x.key, x.value FROM json_each(?1) AS j CROSS JOIN params AS x
 WHERE x.run_id = j.value
UNION ALL
SELECT j.key, 1, x.key, x.value FROM json_each(?1) AS j CROSS JOIN tags AS x
 WHERE x.run_id = j.value
UNION ALL
SELECT j.key, 2, x.key, iif(x.is_nan, NULL, x.value)
  FROM json_each(?1) AS j CROSS JOIN latest_metrics AS x
 WHERE x.run_id = j.value
"""
# PostgreSQL: (run_id, kind, key, text value, number value, is_nan), the ids an array
_PG_RUN_DATA = """
SELECT run_id, 0, key, value, CAST(NULL AS float8), false FROM params
 WHERE run_id = ANY(CAST(%(ids)s AS text[]))
UNION ALL
SELECT run_id, 1, key, value, NULL, false FROM tags
 WHERE run_id = ANY(CAST(%(ids)s AS text[]))
UNION ALL
SELECT run_id, 2, key, NULL, value, is_nan FROM latest_metrics
 WHERE run_id = ANY(CAST(%(ids)s AS text[]))
"""


def raw_rows(conn: sa.Connection, sql: str, parameters: Any) -> list[tuple]:
    """The rows of driver-level ``sql`` as the driver's tuples (SQLAlchemy's
    errors on failure, none of its per-row work on success)."""
    return conn.exec_driver_sql(sql, parameters).cursor.fetchall()


def _sqlite_runs(run_rows: Sequence[sa.Row | tuple], data_rows: Sequence[tuple]) -> list[Run]:
    """Runs of ``run_rows`` (in order) with the SQLITE_RUN_DATA rows of their ids."""
    found = [Run(run_info(row), RunData()) for row in run_rows]
    fields = [(r.data.params, r.data.tags, r.data.metrics) for r in found]
    nan = math.nan
    for position, kind, key, value in data_rows:
        fields[position][kind][key] = nan if value is None else value
    return found


def load_runs(conn: sa.Connection, run_rows: Sequence[sa.Row | tuple], dialect: str) -> list[Run]:
    """Runs with their params, latest metrics and tags, in the order of ``run_rows``
    (rows of ``runs``, its columns in order; their data read by one statement)."""
    if not run_rows:
        return []
    if dialect != "postgresql":
        ids = json.dumps([row[0] for row in run_rows])
        return _sqlite_runs(run_rows, raw_rows(conn, SQLITE_RUN_DATA, (ids,)))
    loaded = {row[0]: Run(run_info(row), RunData()) for row in run_rows}
    rows = raw_rows(conn, _PG_RUN_DATA, {"ids": list(loaded)})
    fields = {run_id: (r.data.params, r.data.tags, r.data.metrics) for run_id, r in loaded.items()}
    nan = math.nan
    for run_id, kind, key, text, number, is_nan in rows:
        fields[run_id][kind][key] = text if kind < 2 else nan if is_nan else number
    return list(loaded.values())


def search_page(driver: Any, dialect: str, sql: str, parameters: Any) -> list[Run]:
    """The runs of a ``sql_search.search_statement`` with their data, read on
    the DBAPI connection ``driver`` (its cursor, none of SQLAlchemy's work per
    statement), a pooled one outside any transaction. PostgreSQL: its one
    statement in autocommit (no BEGIN and COMMIT round trips), prepared on the
    connection at its first run there (later runs skip parsing and, once the
    server settles on a generic plan, planning). SQLite: its two statements in
    one read transaction (one snapshot)."""
    if dialect == "postgresql":
        driver.autocommit = True
        try:
            # binary rows: the numbers arrive as machine values, not text that
            # the server prints and the driver parses (a fifth of the driver's
            # CPU for the 1,000-run search's 374 rows)
            rows = driver.execute(sql, parameters, prepare=True, binary=True).fetchall()
        finally:
            try:
                driver.autocommit = False
            except Exception:  # a broken connection: never pooled in autocommit
                driver.close()
        return _pg_runs(rows)
    cursor = driver.cursor()
    try:
        cursor.execute("BEGIN")
        try:
            run_rows = cursor.execute(sql, parameters).fetchall()
            data = []
            if run_rows:
                ids = json.dumps([row[0] for row in run_rows])
                data = cursor.execute(SQLITE_RUN_DATA, (ids,)).fetchall()
        except BaseException:
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")  # a read: ends the snapshot
    finally:
        cursor.close()
    return _sqlite_runs(run_rows, data)


def load_search(conn: sa.Connection, dialect: str, sql: str, parameters: Any) -> list[Run]:
    """``search_page`` through SQLAlchemy's connection ``conn`` (its events see
    each statement)."""
    rows = raw_rows(conn, sql, parameters)
    return _pg_runs(rows) if dialect == "postgresql" else load_runs(conn, rows, dialect)


def observed(engine: sa.Engine) -> bool:
    """Whether something listens to ``engine``'s statements (SQLAlchemy's cursor
    events): then they go through SQLAlchemy, which tells the listeners."""
    dispatch = engine.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def _pg_runs(rows: list[tuple]) -> list[Run]:
    """Runs from the rows of ``sql_search._PG_SEARCH``, in the page's order."""
    found: dict[int, Run] = {}
    for row in rows:
        if row[1] == 3:
            found[row[0]] = Run(RunInfo(row[2], row[3], *row[5:]), RunData())
    fields = {ord_: (r.data.params, r.data.tags, r.data.metrics) for ord_, r in found.items()}
    for row in rows:
        kind = row[1]
        if kind != 3:
            fields[row[0]][kind][row[2]] = row[3] if kind < 2 else row[4]
    return [found[ord_] for ord_ in sorted(found)]
