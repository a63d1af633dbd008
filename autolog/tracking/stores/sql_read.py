"""The SQL store's rows read back as entities: experiments with their tags, runs
with their params, latest metrics and tags."""

from __future__ import annotations

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
    "load_runs",
    "raw_rows",
    "require_active",
    "require_run",
    "run_info",
    "run_row",
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


# The page's params, tags and latest metrics in one statement (one round trip):
# (run_id, kind, key, text value, number value, is_nan); the page's ids are one
# parameter, a JSON array on SQLite and an array on PostgreSQL.
_SQLITE_RUN_DATA = """
SELECT run_id, 0, key, value, NULL, 0 FROM params
 WHERE run_id IN (SELECT value FROM json_each(?1))
UNION ALL
SELECT run_id, 1, key, value, NULL, 0 FROM tags
 WHERE run_id IN (SELECT value FROM json_each(?1))
UNION ALL
SELECT run_id, 2, key, NULL, value, is_nan FROM latest_metrics
 WHERE run_id IN (SELECT value FROM json_each(?1))
"""
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


def load_runs(conn: sa.Connection, run_rows: Sequence[sa.Row | tuple], dialect: str) -> list[Run]:
    """Runs with their params, latest metrics and tags, in the order of ``run_rows``
    (rows of ``runs``, its columns in order; their data read by one statement)."""
    loaded = {row[0]: Run(run_info(row), RunData()) for row in run_rows}
    if not loaded:
        return []
    ids = list(loaded)
    if dialect == "postgresql":
        rows = raw_rows(conn, _PG_RUN_DATA, {"ids": ids})
    else:
        rows = raw_rows(conn, _SQLITE_RUN_DATA, (json.dumps(ids),))
    fields = {run_id: (r.data.params, r.data.tags, r.data.metrics) for run_id, r in loaded.items()}
    nan = math.nan
    for run_id, kind, key, text, number, is_nan in rows:
        fields[run_id][kind][key] = text if kind < 2 else nan if is_nan else number
    return list(loaded.values())
