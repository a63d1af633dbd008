"""The SQL store's write path: runs, metric points, params and tags in few statements.

``RowWriter`` writes the rows of any number of runs at once: on SQLite one
multi-row statement per table, on PostgreSQL one statement in all (rows passed
as arrays, one round trip whatever their number). Keys are written in sorted
order so that two writers of one run take the row locks in one order and
cannot deadlock. Params are inserted first and compared after, so a param
changed by a concurrent writer is seen too.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from operator import itemgetter, lt

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from autolog.errors import ParamOverwriteError, ResourceAlreadyExistsError, RunStateError
from autolog.tracking.entities import LifecycleStage, Metric, Param
from autolog.tracking.stores.sql_blocks import write as write_blocks
from autolog.tracking.stores.sql_schema import experiment_tags, runs
from autolog.tracking.stores.sql_schema import params as run_params
from autolog.tracking.stores.sql_schema import tags as run_tags
from autolog.tracking.stores.sql_summaries import record as record_summaries
from autolog.tracking.validation import check_param_unchanged
from autolog.tracking.wire import MetricRows

__all__ = ["MetricRow", "RowWriter", "latest_of", "metric_rows", "param_values", "supersedes"]

# PostgreSQL's write path: one statement (one round trip) per call, rows passed
# as arrays, whatever their number. Data-modifying CTEs all run to completion;
# the foreign keys are checked at the end of the statement, after the run row.
# Every value is a bound parameter.
_PG_CREATE_RUN = sa.text(
    """
    WITH new_run AS (
        INSERT INTO runs (run_id, experiment_id, run_name, user_id, status, start_time,
                          end_time, artifact_uri, lifecycle_stage)
        VALUES (:run_id, :experiment_id, :run_name, :user_id, :status, :start_time,
                :end_time, :artifact_uri, :lifecycle_stage)
    )
    INSERT INTO tags (run_id, key, value)
    SELECT :run_id, t.key, t.value
    FROM unnest(CAST(:tag_keys AS text[]), CAST(:tag_values AS text[])) AS t(key, value)
    """
)
_PG_WRITE = sa.text(
    """
    WITH history AS (
        INSERT INTO metrics (run_id, key, value, is_nan, step, "timestamp")
        SELECT h.run_id, h.key, h.value, h.is_nan, h.step, h.ts
        FROM unnest(CAST(:h_runs AS text[]), CAST(:h_keys AS text[]), CAST(:h_values AS float8[]),
                    CAST(:h_nans AS boolean[]), CAST(:h_steps AS bigint[]),
                    CAST(:h_times AS bigint[]))
             WITH ORDINALITY AS h(run_id, key, value, is_nan, step, ts, position)
        ORDER BY h.position  -- seq follows the logging order
        ON CONFLICT DO NOTHING  -- an identical point is stored once
    ), latest AS (
        INSERT INTO latest_metrics AS old (run_id, key, value, is_nan, step, "timestamp")
        SELECT l.run_id, l.key, l.value, l.is_nan, l.step, l.ts
        FROM unnest(CAST(:l_runs AS text[]), CAST(:l_keys AS text[]), CAST(:l_values AS float8[]),
                    CAST(:l_nans AS boolean[]), CAST(:l_steps AS bigint[]),
                    CAST(:l_times AS bigint[])) AS l(run_id, key, value, is_nan, step, ts)
        ON CONFLICT (run_id, key) DO UPDATE
        SET value = excluded.value, is_nan = excluded.is_nan, step = excluded.step,
            "timestamp" = excluded."timestamp"
        WHERE excluded.step > old.step
           OR (excluded.step = old.step AND excluded."timestamp" >= old."timestamp")
    ), new_params AS (
        INSERT INTO params (run_id, key, value)
        SELECT p.run_id, p.key, p.value
        FROM unnest(CAST(:p_runs AS text[]), CAST(:p_keys AS text[]),
                    CAST(:p_values AS text[])) AS p(run_id, key, value)
        ON CONFLICT DO NOTHING
        RETURNING 1
    ), new_tags AS (
        INSERT INTO tags (run_id, key, value)
        SELECT t.run_id, t.key, t.value
        FROM unnest(CAST(:t_runs AS text[]), CAST(:t_keys AS text[]),
                    CAST(:t_values AS text[])) AS t(run_id, key, value)
        ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value
    )
    SELECT count(*) FROM new_params
    """
)


def _refuse_deleted(conn: sa.Connection, run_ids: set[str]) -> None:
    """RunStateError when one of ``run_ids`` is deleted: one query per write, so
    that a run deleted by another process is refused too (the store remembers
    which runs exist, not whether they are still active). On SQLite straight
    to the driver (building the statement cost more than running it)."""
    ids = sorted(run_ids)
    if conn.dialect.name == "sqlite" and len(ids) <= _SQLITE_IDS:
        marks = ", ".join("?" * len(ids))
        sql = f"SELECT run_id FROM runs WHERE run_id IN ({marks}) AND lifecycle_stage = ? LIMIT 1"
        found = conn.connection.driver_connection.execute(sql, (*ids, LifecycleStage.DELETED))
        row = found.fetchone()
        deleted = None if row is None else row[0]
    else:
        deleted = conn.execute(
            sa.select(runs.c.run_id).where(
                runs.c.run_id.in_(ids), runs.c.lifecycle_stage == LifecycleStage.DELETED
            )
        ).scalar()
    if deleted is not None:
        raise RunStateError(f"run {deleted} is deleted; restore it before writing to it")


_SQLITE_IDS = 500  # bound parameters of one statement, well below SQLite's limit


#: a metric point as written: (run_id, key, value or None for NaN, is_nan, step, timestamp)
MetricRow = tuple[str, str, "float | None", bool, int, int]
_STEP, _TIMESTAMP = 4, 5
_KEY_OF, _STEP_OF = itemgetter(1), itemgetter(_STEP)

_SQLITE_UPSERT_LATEST = (
    "INSERT INTO latest_metrics (run_id, key, value, is_nan, step, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET "
    "value = excluded.value, is_nan = excluded.is_nan, step = excluded.step, "
    "timestamp = excluded.timestamp "
    "WHERE excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step "
    "AND excluded.timestamp >= latest_metrics.timestamp)"
)


def supersedes(point: MetricRow, best: MetricRow) -> bool:
    """Whether metric ``point`` replaces ``best`` as the latest: a higher step, then
    a newer timestamp (ties: the later write), as the latest_metrics upsert does."""
    return (point[_STEP], point[_TIMESTAMP]) >= (best[_STEP], best[_TIMESTAMP])


def metric_rows(
    run_id: str, metrics: Sequence[Metric]
) -> tuple[list[MetricRow], dict[str, MetricRow]]:
    """The rows of ``metrics`` in logging order (``MetricRow``), and
    the latest point per key."""
    if type(metrics) is MetricRows and metrics.run_id == run_id:
        history: list[MetricRow] = metrics.rows  # the server's points: rows already
    else:
        history = [
            (run_id, m.key, None, True, m.step, m.timestamp)
            if m.value != m.value  # NaN: None (PostgreSQL stores NULL, see sql_schema)
            else (run_id, m.key, float(m.value), False, m.step, m.timestamp)
            for m in metrics
        ]
    return history, latest_of(history)


def latest_of(history: list[MetricRow]) -> dict[str, MetricRow]:
    """The latest of ``history``'s points per key (``supersedes``: ties go to the
    later point). Steps that grow, or one key whose highest step is logged
    once (the usual batches): passes in C over the steps only."""
    if not history:
        return {}
    steps = list(map(_STEP_OF, history))
    if all(map(lt, steps, islice(steps, 1, None))):
        # steps that grow (the usual batch, one key or many interleaved): each
        # key's last point is its latest
        return dict(zip(map(_KEY_OF, history), history))
    first = history[0][1]
    keys = list(map(_KEY_OF, history))
    if keys.count(first) == len(keys):
        top = max(steps)
        if steps.count(top) == 1:
            return {first: history[steps.index(top)]}
    latest: dict[str, MetricRow] = {}
    for point in history:
        best = latest.get(point[1])
        if best is None or (point[_STEP], point[_TIMESTAMP]) >= (best[_STEP], best[_TIMESTAMP]):
            latest[point[1]] = point
    return latest


def param_values(params: Sequence[Param]) -> dict[str, str]:
    """Each param's value by key; ParamOverwriteError if a key comes with two values."""
    values: dict[str, str] = {}
    for p in params:
        if values.setdefault(p.key, p.value) != p.value:
            raise ParamOverwriteError(
                f"Param {p.key!r} is logged twice in one batch with different values "
                f"({values[p.key]!r}, {p.value!r}); params are immutable"
            )
    return values


class RowWriter:
    """The write statements of one dialect, built once (SQLAlchemy caches their SQL)."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        insert = pg_dialect.insert if dialect == "postgresql" else sqlite_dialect.insert
        upsert = insert(run_tags)
        self.upsert_tag = upsert.on_conflict_do_update(
            index_elements=[run_tags.c.run_id, run_tags.c.key],
            set_={"value": upsert.excluded.value},
        )
        upsert = insert(experiment_tags)
        self.upsert_experiment_tag = upsert.on_conflict_do_update(
            index_elements=[experiment_tags.c.experiment_id, experiment_tags.c.key],
            set_={"value": upsert.excluded.value},
        )
        self._insert_param = insert(run_params).on_conflict_do_nothing()
        self._insert_run = runs.insert()
        self._insert_tag = run_tags.insert()

    def create_run(self, conn: sa.Connection, row: dict, tags: dict[str, str]) -> None:
        """Insert one run's row and its tags."""
        keys = sorted(tags)
        try:
            if self.dialect == "postgresql":
                values = {**row, "tag_keys": keys, "tag_values": [tags[k] for k in keys]}
                conn.execute(_PG_CREATE_RUN, values)
                return
            conn.execute(self._insert_run, row)
        except sa.exc.IntegrityError:
            raise ResourceAlreadyExistsError(f"Run {row['run_id']!r} already exists") from None
        if tags:
            rows = [{"run_id": row["run_id"], "key": k, "value": tags[k]} for k in keys]
            conn.execute(self._insert_tag, rows)

    def write(
        self,
        conn: sa.Connection,
        new_runs: dict[str, dict],
        history: list[MetricRow],
        latest: dict[tuple[str, str], MetricRow],
        params: dict[tuple[str, str], str],
        tags: dict[tuple[str, str], str],
    ) -> None:
        """Insert the new runs' rows (by run id), metric points (in logging order),
        latest points, params (by (run id, key)) and upsert the tags.

        ``latest`` has one point per (run id, key), already the latest of this
        write; a stored point with a higher step or newer timestamp stays."""
        if new_runs:
            try:
                conn.execute(self._insert_run, [new_runs[k] for k in sorted(new_runs)])
            except sa.exc.IntegrityError:
                raise ResourceAlreadyExistsError(
                    f"One of the runs {sorted(new_runs)} already exists"
                ) from None
        touched = {p[0] for p in history} | {r for r, _k in params} | {r for r, _k in tags}
        touched.difference_update(new_runs)
        if touched:
            _refuse_deleted(conn, touched)
        latest_points = [latest[k] for k in sorted(latest)]
        if self.dialect == "postgresql":
            self._pg_write(conn, history, latest_points, params, tags)
            return
        if history:
            cursor = conn.connection.driver_connection.cursor()
            try:
                stored = write_blocks(cursor, history)  # less the points already stored
                record_summaries(cursor, stored)  # the UI's bucket summaries
            finally:
                cursor.close()
        if latest_points:
            conn.exec_driver_sql(_SQLITE_UPSERT_LATEST, latest_points)
        if params:
            rows = [{"run_id": r, "key": k, "value": params[r, k]} for r, k in sorted(params)]
            if conn.execute(self._insert_param, rows).rowcount < len(rows):
                self._check_params(conn, params)
        if tags:
            rows = [{"run_id": r, "key": k, "value": tags[r, k]} for r, k in sorted(tags)]
            conn.execute(self.upsert_tag, rows)

    def _pg_write(
        self,
        conn: sa.Connection,
        history: list[MetricRow],
        latest: list[MetricRow],
        params: dict[tuple[str, str], str],
        tags: dict[tuple[str, str], str],
    ) -> None:
        """``write`` less the runs on PostgreSQL, in one statement (``_PG_WRITE``)."""
        values: dict[str, object] = {}
        for prefix, points in (("h", history), ("l", latest)):
            columns = [list(c) for c in zip(*points)] if points else [[]] * 6
            for name, column in zip(("runs", "keys", "values", "nans", "steps", "times"), columns):
                values[f"{prefix}_{name}"] = column
        for prefix, mapping in (("p", params), ("t", tags)):
            keys = sorted(mapping)
            values[f"{prefix}_runs"] = [run_id for run_id, _key in keys]
            values[f"{prefix}_keys"] = [key for _run_id, key in keys]
            values[f"{prefix}_values"] = [mapping[k] for k in keys]
        if conn.execute(_PG_WRITE, values).scalar_one() < len(params):
            self._check_params(conn, params)

    @staticmethod
    def _check_params(conn: sa.Connection, params: dict[tuple[str, str], str]) -> None:
        """Some of ``params`` already existed: raise if one had another value."""
        per_run: dict[str, dict[str, str]] = {}
        for (run_id, key), value in params.items():
            per_run.setdefault(run_id, {})[key] = value
        for run_id, param_map in sorted(per_run.items()):
            stored = conn.execute(
                sa.select(run_params.c.key, run_params.c.value).where(
                    run_params.c.run_id == run_id, run_params.c.key.in_(sorted(param_map))
                )
            )
            for key, value in stored:
                check_param_unchanged(key, value, param_map[key])
