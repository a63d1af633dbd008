"""The SQL store's rows read back as entities: experiments with their tags, runs
with their params, latest metrics and tags."""

from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect

from autolog.errors import ResourceNotFoundError, RunStateError
from autolog.tracking.entities import Experiment, LifecycleStage, Run, RunData, RunInfo
from autolog.tracking.stores.sql_schema import experiment_tags, experiments, latest_metrics, runs
from autolog.tracking.stores.sql_schema import params as run_params
from autolog.tracking.stores.sql_schema import tags as run_tags

__all__ = [
    "artifact_location",
    "load_experiments",
    "load_runs",
    "require_active",
    "require_run",
    "run_info",
    "run_row",
]

# run data is fetched with ``run_id IN (...)``: stay below SQLite's variable limit
_IN_CHUNK = 10_000
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


def run_info(row: sa.Row | dict) -> RunInfo:
    """The RunInfo of a runs row (read, or a dict about to be written)."""
    if isinstance(row, dict):
        return RunInfo(**{**row, "experiment_id": str(row["experiment_id"])})
    return RunInfo(
        run_id=row.run_id,
        experiment_id=str(row.experiment_id),
        run_name=row.run_name,
        user_id=row.user_id,
        status=row.status,
        start_time=row.start_time,
        end_time=row.end_time,
        artifact_uri=row.artifact_uri,
        lifecycle_stage=row.lifecycle_stage,
    )


def load_runs(conn: sa.Connection, run_rows: Sequence[sa.Row], dialect: str) -> list[Run]:
    """Runs with their params, latest metrics and tags, in the order of ``run_rows``."""
    loaded = {row.run_id: Run(run_info(row), RunData()) for row in run_rows}
    ids = list(loaded)
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        for table, field in ((run_params, "params"), (run_tags, "tags")):
            query = sa.select(table.c.run_id, table.c.key, table.c.value)
            query = query.where(_among(table.c.run_id, chunk, dialect))
            for run_id, key, value in conn.execute(query):
                getattr(loaded[run_id].data, field)[key] = value
        lm = latest_metrics.c
        query = sa.select(lm.run_id, lm.key, lm.value, lm.is_nan)
        for run_id, key, value, is_nan in conn.execute(
            query.where(_among(lm.run_id, chunk, dialect))
        ):
            loaded[run_id].data.metrics[key] = math.nan if is_nan else value
    return list(loaded.values())


def _among(column: sa.ColumnElement, ids: list[str], dialect: str) -> sa.ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY``), which
    it plans far faster than hundreds of separate parameters."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(None, ids, pg_dialect.ARRAY(sa.String)))
    return column.in_(ids)
