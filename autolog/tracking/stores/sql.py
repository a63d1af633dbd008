"""The SQL store: experiments and runs in SQLite or PostgreSQL (SQLAlchemy Core).

Tracking URIs::

    sqlite:///mlruns.db                              a file, relative to the working dir
    sqlite:////abs/path/mlruns.db                    an absolute path
    postgresql://user:password@host:5432/dbname      psycopg 3 is the driver

The schema is created on first use and carries a version; a newer autolog
migrates an older database on open (see ``sql_schema.py``).

**Artifacts** are not stored in the database. A new experiment's
``artifact_location`` is ``<artifact root>/<experiment_id>`` unless the
experiment is created with its own ``artifact_location``; a run's
``artifact_uri`` is ``<experiment artifact_location>/<run_id>/artifacts``.
The artifact root is, first found wins:

1. ``SqlStore(uri, artifact_root=...)`` (a path or a URI such as ``s3://bucket/x``);
2. the environment variable ``AUTOLOG_ARTIFACT_ROOT``;
3. ``./mlartifacts`` in the working directory.

A local path is stored as an absolute ``file://`` URI, so the runs' artifact
URIs do not depend on where a later process runs.

**Many writers.** On SQLite the database runs in WAL mode (readers never block
the writer), every write is one ``BEGIN IMMEDIATE`` transaction (one per
``log_batch``) that waits up to ``busy_timeout`` for the write lock, and a
transaction that still meets "database is locked" is retried with backoff, so
many processes can write one file. On PostgreSQL concurrent writers are the
server's business; upserts use ``ON CONFLICT`` and keys are written in sorted
order so two writers of one run cannot deadlock.
"""

from __future__ import annotations

import math
import os
import random
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from autolog.errors import (
    InvalidParameterError,
    ParamOverwriteError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    StoreError,
)
from autolog.tracking import search as _search
from autolog.tracking.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from autolog.tracking.stores.base import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    AbstractStore,
)
from autolog.tracking.stores.sql_schema import (
    ensure_schema,
    experiment_tags,
    experiments,
    latest_metrics,
    runs,
)
from autolog.tracking.stores.sql_schema import metrics as metric_history
from autolog.tracking.stores.sql_schema import params as run_params
from autolog.tracking.stores.sql_schema import tags as run_tags
from autolog.tracking.stores.sql_search import SQLITE_LOWER, compile_filter, order_by_clauses

__all__ = ["SqlStore", "ARTIFACT_ROOT_ENV", "DEFAULT_ARTIFACT_ROOT"]

ARTIFACT_ROOT_ENV = "AUTOLOG_ARTIFACT_ROOT"
DEFAULT_ARTIFACT_ROOT = "./mlartifacts"
RUN_NAME_TAG = "mlflow.runName"
SQLITE_BUSY_TIMEOUT_MS = 60_000
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_RETRY_ATTEMPTS = 8
# page data is fetched with ``run_id IN (...)``: stay below SQLite's variable limit
_IN_CHUNK = 10_000
T = TypeVar("T")


def _now_ms() -> int:
    return int(time.time() * 1000)


def engine_url(uri: str) -> sa.URL:
    """The SQLAlchemy URL of a tracking URI; a plain ``postgresql://`` uses psycopg 3."""
    url = sa.make_url(uri)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidParameterError(f"Unsupported SQL tracking URI {uri!r}: sqlite or postgresql")
    return url


def artifact_root_uri(artifact_root: str | None = None) -> str:
    """The artifact root as a URI: the option, else ``AUTOLOG_ARTIFACT_ROOT``, else
    ``./mlartifacts`` (a local path becomes an absolute ``file://`` URI)."""
    root = artifact_root or os.environ.get(ARTIFACT_ROOT_ENV) or DEFAULT_ARTIFACT_ROOT
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", root):
        return root.rstrip("/")
    return Path(root).expanduser().resolve().as_uri()


def _is_retryable(exc: sa.exc.DBAPIError) -> bool:
    """SQLite's lock timeouts, PostgreSQL's deadlock / serialization aborts, and a
    connection the server dropped (the pool then opens a new one)."""
    if exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.OperationalError):
        message = str(exc.orig).lower()
        if "database is locked" in message or "database is busy" in message:
            return True
    return getattr(exc.orig, "sqlstate", None) in ("40001", "40P01")


def _configure_sqlite(engine: sa.Engine) -> None:
    """Per connection: our own transaction control, busy timeout, cheap WAL commits."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # The driver's implicit BEGIN would be DEFERRED; we emit our own below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # In WAL mode NORMAL is crash-safe (a power loss may lose the last commits).
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()
        # ILIKE folds case with str.lower, exactly as the Python evaluator does
        dbapi_connection.create_function(SQLITE_LOWER, 1, str.lower, deterministic=True)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A write transaction takes the write lock up front (waiting busy_timeout
        # for it): a DEFERRED one that upgrades later fails at once when another
        # writer got there first, which is the "database is locked" error.
        write = conn.get_execution_options().get("autolog_write", False)
        # straight to the driver: this runs once per transaction, on the hot path
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")


class SqlStore(AbstractStore):
    """A tracking store in SQLite (``sqlite:///path.db``) or PostgreSQL (``postgresql://...``).

    >>> store = SqlStore("sqlite:///mlruns.db")             # doctest: +SKIP
    >>> exp_id = store.create_experiment("churn")           # doctest: +SKIP
    """

    def __init__(self, uri: str, artifact_root: str | None = None):
        self.uri = uri
        self.artifact_root = artifact_root_uri(artifact_root)
        url = engine_url(uri)
        self.dialect = url.get_backend_name()
        if self.dialect == "sqlite":
            database = url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._engine = sa.create_engine(url, pool_reset_on_return=None)
            _configure_sqlite(self._engine)
            self._insert = sqlite_dialect.insert
        else:
            # Every use ends in commit or rollback (engine.begin()), so the pool's
            # reset-on-return would be one more round trip per transaction; a
            # dropped connection is retried by _transaction instead of pinged.
            self._engine = sa.create_engine(url, pool_reset_on_return=None)
            self._insert = pg_dialect.insert
        self._write_engine = self._engine.execution_options(autolog_write=True)
        self._prepare_statements()
        if self.dialect == "sqlite":
            self._enable_wal()
        self._transaction(lambda conn: ensure_schema(conn, self._insert_default_experiment))

    # -- plumbing --------------------------------------------------------------
    def _enable_wal(self) -> None:
        """Switch the file to WAL (persistent in the file; a no-op once done).

        Outside any transaction: SQLite cannot change the journal mode inside one."""
        for attempt in range(_RETRY_ATTEMPTS):
            raw = self._engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                if attempt + 1 == _RETRY_ATTEMPTS:
                    raise
                time.sleep(0.05 * 2**attempt)
            finally:
                raw.close()

    def _insert_default_experiment(self, conn: sa.Connection) -> None:
        now = _now_ms()
        conn.execute(
            experiments.insert(),
            {
                "experiment_id": int(DEFAULT_EXPERIMENT_ID),
                "name": DEFAULT_EXPERIMENT_NAME,
                "artifact_location": f"{self.artifact_root}/{DEFAULT_EXPERIMENT_ID}",
                "lifecycle_stage": LifecycleStage.ACTIVE,
                "creation_time": now,
                "last_update_time": now,
            },
        )

    def _transaction(self, work: Callable[[sa.Connection], T], *, write: bool = True) -> T:
        """Run ``work`` in one transaction; retried from scratch on lock timeouts
        and deadlocks (the failed attempt rolled back completely)."""
        engine = self._write_engine if write else self._engine
        for attempt in range(_RETRY_ATTEMPTS):
            try:
                with engine.begin() as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if attempt + 1 < _RETRY_ATTEMPTS and _is_retryable(exc):
                    time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
                    continue
                raise StoreError(f"{self.dialect} store {self.uri!r}: {exc.orig}") from exc
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[sa.Connection], T]) -> T:
        return self._transaction(work, write=False)

    def _prepare_statements(self) -> None:
        """Statements of the hot write path, built once (SQLAlchemy caches their SQL)."""
        upsert = self._insert(latest_metrics)
        new, old = upsert.excluded, latest_metrics.c
        self._upsert_latest = upsert.on_conflict_do_update(
            index_elements=[old.run_id, old.key],
            set_={c: new[c] for c in ("value", "is_nan", "step", "timestamp")},
            # the latest point: highest step, then newest timestamp (ties: the later write)
            where=sa.or_(
                new.step > old.step, sa.and_(new.step == old.step, new.timestamp >= old.timestamp)
            ),
        )
        upsert = self._insert(run_tags)
        self._upsert_tag = upsert.on_conflict_do_update(
            index_elements=[run_tags.c.run_id, run_tags.c.key],
            set_={"value": upsert.excluded.value},
        )
        self._insert_param = self._insert(run_params).on_conflict_do_nothing()
        self._insert_metric = metric_history.insert()
        self._run_exists = sa.select(runs.c.run_id).where(runs.c.run_id == sa.bindparam("run_id"))
        self._experiment_location = sa.select(experiments.c.artifact_location).where(
            experiments.c.experiment_id == sa.bindparam("experiment_id")
        )
        self._insert_run = runs.insert()
        self._insert_tag = run_tags.insert()

    @staticmethod
    def _experiment_key(experiment_id: str) -> int:
        try:
            return int(experiment_id)
        except (TypeError, ValueError):
            raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}") from None

    # -- experiments -------------------------------------------------------------
    def _experiments(self, conn: sa.Connection, where: sa.ColumnElement | None) -> list[Experiment]:
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

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        if not isinstance(name, str) or not name.strip():
            raise InvalidParameterError(f"Experiment name must be a non-empty string, got {name!r}")

        def work(conn: sa.Connection) -> str:
            if conn.execute(
                sa.select(experiments.c.name).where(experiments.c.name == name)
            ).first():
                raise ResourceAlreadyExistsError(f"Experiment {name!r} already exists")
            now = _now_ms()
            row = {"name": name, "artifact_location": artifact_location or "", "creation_time": now}
            row.update(lifecycle_stage=LifecycleStage.ACTIVE, last_update_time=now)
            try:
                new_id = conn.execute(experiments.insert(), row).inserted_primary_key[0]
            except sa.exc.IntegrityError:  # a concurrent writer took the name first
                raise ResourceAlreadyExistsError(f"Experiment {name!r} already exists") from None
            if not artifact_location:
                conn.execute(
                    experiments.update()
                    .where(experiments.c.experiment_id == new_id)
                    .values(artifact_location=f"{self.artifact_root}/{new_id}")
                )
            if tags:
                conn.execute(
                    experiment_tags.insert(),
                    [{"experiment_id": new_id, "key": k, "value": v} for k, v in tags.items()],
                )
            return str(new_id)

        return self._transaction(work)

    def get_experiment(self, experiment_id: str) -> Experiment:
        key = self._experiment_key(experiment_id)
        found = self._read(lambda conn: self._experiments(conn, experiments.c.experiment_id == key))
        if not found:
            raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}")
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self._read(lambda conn: self._experiments(conn, experiments.c.name == name))
        return found[0] if found else None

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
    ) -> list[Experiment]:
        # Experiments are few: filter them with the Python evaluator, which
        # makes the result identical to every other store's by construction.
        stages = list(ViewType.stages(view_type))
        found = self._read(
            lambda conn: self._experiments(conn, experiments.c.lifecycle_stage.in_(stages))
        )
        return _search.search_experiments(found, filter_string, order_by, max_results)

    def _update_experiment(self, experiment_id: str, **values: object) -> None:
        key = self._experiment_key(experiment_id)

        def work(conn: sa.Connection) -> None:
            done = conn.execute(
                experiments.update()
                .where(experiments.c.experiment_id == key)
                .values(**values, last_update_time=_now_ms())
            )
            if done.rowcount == 0:
                raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}")

        try:
            self._transaction(work)
        except StoreError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise ResourceAlreadyExistsError(
                    f"Experiment {values.get('name')!r} already exists"
                ) from None
            raise

    def delete_experiment(self, experiment_id: str) -> None:
        self._update_experiment(experiment_id, lifecycle_stage=LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id: str) -> None:
        self._update_experiment(experiment_id, lifecycle_stage=LifecycleStage.ACTIVE)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        if not isinstance(new_name, str) or not new_name.strip():
            raise InvalidParameterError(
                f"Experiment name must be a non-empty string, got {new_name!r}"
            )
        self._update_experiment(experiment_id, name=new_name)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        exp_key = self._experiment_key(experiment_id)
        upsert = self._insert(experiment_tags)
        upsert = upsert.on_conflict_do_update(
            index_elements=[experiment_tags.c.experiment_id, experiment_tags.c.key],
            set_={"value": upsert.excluded.value},
        )

        def work(conn: sa.Connection) -> None:
            done = conn.execute(
                experiments.update()
                .where(experiments.c.experiment_id == exp_key)
                .values(last_update_time=_now_ms())
            )
            if done.rowcount == 0:
                raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}")
            conn.execute(upsert, {"experiment_id": exp_key, "key": key, "value": value})

        self._transaction(work)

    # -- runs --------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: Sequence[RunTag] = (),
        run_name: str = "",
        run_id: str | None = None,
    ) -> Run:
        exp_key = self._experiment_key(experiment_id)
        if run_id is None:
            run_id = uuid.uuid4().hex
        elif not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise InvalidParameterError(f"Invalid run id {run_id!r}: expected 32 hex characters")
        tag_map = {t.key: t.value for t in tags}
        run_name = run_name or tag_map.get(RUN_NAME_TAG, "")
        if run_name:
            tag_map[RUN_NAME_TAG] = run_name

        def work(conn: sa.Connection) -> RunInfo:
            location = conn.execute(self._experiment_location, {"experiment_id": exp_key}).scalar()
            if location is None:
                raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}")
            info = RunInfo(
                run_id=run_id,
                experiment_id=str(exp_key),
                run_name=run_name,
                user_id=user_id,
                status=RunStatus.RUNNING,
                start_time=start_time,
                end_time=None,
                artifact_uri=f"{location.rstrip('/')}/{run_id}/artifacts",
            )
            row = {**vars(info), "experiment_id": exp_key}
            try:
                conn.execute(self._insert_run, row)
            except sa.exc.IntegrityError:
                raise ResourceAlreadyExistsError(f"Run {run_id!r} already exists") from None
            if tag_map:
                rows = [
                    {"run_id": run_id, "key": k, "value": v} for k, v in sorted(tag_map.items())
                ]
                conn.execute(self._insert_tag, rows)
            return info

        return Run(self._transaction(work), RunData(tags=tag_map))

    @staticmethod
    def _run_info(row: sa.Row) -> RunInfo:
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

    def _load_runs(self, conn: sa.Connection, run_rows: Sequence[sa.Row]) -> list[Run]:
        """Runs with their params, latest metrics and tags, in the order of ``run_rows``."""
        loaded = {row.run_id: Run(self._run_info(row), RunData()) for row in run_rows}
        ids = list(loaded)
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            for table, field in ((run_params, "params"), (run_tags, "tags")):
                query = sa.select(table.c.run_id, table.c.key, table.c.value)
                query = query.where(self._among(table.c.run_id, chunk))
                for run_id, key, value in conn.execute(query):
                    getattr(loaded[run_id].data, field)[key] = value
            lm = latest_metrics.c
            query = sa.select(lm.run_id, lm.key, lm.value, lm.is_nan)
            for run_id, key, value, is_nan in conn.execute(
                query.where(self._among(lm.run_id, chunk))
            ):
                loaded[run_id].data.metrics[key] = math.nan if is_nan else value
        return list(loaded.values())

    def _among(self, column: sa.ColumnElement, ids: list[str]) -> sa.ColumnElement[bool]:
        """``column IN ids``; on PostgreSQL one array parameter (``= ANY``), which
        it plans far faster than hundreds of separate parameters."""
        if self.dialect == "postgresql":
            return column == sa.any_(sa.bindparam(None, ids, pg_dialect.ARRAY(sa.String)))
        return column.in_(ids)

    def _run_row(self, conn: sa.Connection, run_id: str) -> sa.Row:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        if row is None:
            raise ResourceNotFoundError(f"No run with id {run_id!r}")
        return row

    def get_run(self, run_id: str) -> Run:
        return self._read(lambda conn: self._load_runs(conn, [self._run_row(conn, run_id)])[0])

    def _update_run(self, conn: sa.Connection, run_id: str, **values: object) -> None:
        done = conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
        if done.rowcount == 0:
            raise ResourceNotFoundError(f"No run with id {run_id!r}")

    def update_run_info(
        self,
        run_id: str,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        values: dict[str, object] = {}
        if status is not None:
            if status not in RunStatus.ALL:
                raise InvalidParameterError(f"Invalid run status {status!r}")
            values["status"] = status
        if end_time is not None:
            values["end_time"] = end_time
        if run_name is not None:
            values["run_name"] = run_name

        def work(conn: sa.Connection) -> RunInfo:
            if values:
                self._update_run(conn, run_id, **values)
            if run_name is not None:
                conn.execute(
                    self._upsert_tag, {"run_id": run_id, "key": RUN_NAME_TAG, "value": run_name}
                )
            return self._run_info(self._run_row(conn, run_id))

        return self._transaction(work)

    def delete_run(self, run_id: str) -> None:
        self._transaction(
            lambda conn: self._update_run(conn, run_id, lifecycle_stage=LifecycleStage.DELETED)
        )

    def restore_run(self, run_id: str) -> None:
        self._transaction(
            lambda conn: self._update_run(conn, run_id, lifecycle_stage=LifecycleStage.ACTIVE)
        )

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        history = []
        latest: dict[str, dict] = {}
        for m in metrics:
            is_nan = m.value != m.value
            point = {
                "run_id": run_id,
                "key": m.key,
                "value": None if is_nan else float(m.value),
                "is_nan": is_nan,
                "step": m.step,
                "timestamp": m.timestamp,
            }
            history.append(point)
            best = latest.get(m.key)
            if best is None or (m.step, m.timestamp) >= (best["step"], best["timestamp"]):
                latest[m.key] = point
        param_map: dict[str, str] = {}
        for p in params:
            if param_map.setdefault(p.key, p.value) != p.value:
                raise ParamOverwriteError(
                    f"Param {p.key!r} is logged twice in one batch with different values "
                    f"({param_map[p.key]!r}, {p.value!r}); params are immutable"
                )
        tag_map = {t.key: t.value for t in tags}

        def work(conn: sa.Connection) -> None:
            if not conn.execute(self._run_exists, {"run_id": run_id}).first():
                raise ResourceNotFoundError(f"No run with id {run_id!r}")
            if history:
                conn.execute(self._insert_metric, history)
                # sorted keys: two writers of one run take the row locks in one order
                conn.execute(self._upsert_latest, [latest[k] for k in sorted(latest)])
            if param_map:
                self._write_params(conn, run_id, param_map)
            if tag_map:
                rows = [
                    {"run_id": run_id, "key": k, "value": v} for k, v in sorted(tag_map.items())
                ]
                conn.execute(self._upsert_tag, rows)
                if RUN_NAME_TAG in tag_map:
                    self._update_run(conn, run_id, run_name=tag_map[RUN_NAME_TAG])

        self._transaction(work)

    def _write_params(self, conn: sa.Connection, run_id: str, param_map: dict[str, str]) -> None:
        """Insert new params; an existing key with another value rolls the batch back."""
        keys = sorted(param_map)
        inserted = conn.execute(
            self._insert_param, [{"run_id": run_id, "key": k, "value": param_map[k]} for k in keys]
        ).rowcount
        if inserted == len(keys):
            return  # every key was new
        # Insert first, compare after: a concurrent writer of the same key is seen too.
        stored = conn.execute(
            sa.select(run_params.c.key, run_params.c.value).where(
                run_params.c.run_id == run_id, run_params.c.key.in_(keys)
            )
        )
        for key, value in stored:
            if value != param_map[key]:
                raise ParamOverwriteError(
                    f"Param {key!r} was already logged with value {value!r}; "
                    f"cannot change it to {param_map[key]!r} (params are immutable)"
                )

    def delete_tag(self, run_id: str, key: str) -> None:
        def work(conn: sa.Connection) -> None:
            self._run_row(conn, run_id)
            done = conn.execute(
                run_tags.delete().where(run_tags.c.run_id == run_id, run_tags.c.key == key)
            )
            if done.rowcount == 0:
                raise ResourceNotFoundError(f"Run {run_id!r} has no tag {key!r}")

        self._transaction(work)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        m = metric_history.c
        query = (
            sa.select(m.value, m.is_nan, m.timestamp, m.step)
            .where(m.run_id == run_id, m.key == key)
            .order_by(m.step, m.timestamp, m.seq)
        )

        def work(conn: sa.Connection) -> list[Metric]:
            self._run_row(conn, run_id)
            return [
                Metric(key, math.nan if is_nan else value, timestamp, step)
                for value, is_nan, timestamp, step in conn.execute(query)
            ]

        return self._read(work)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        tree = _search.parse_filter(filter_string or "")
        keys = _search.parse_order_by(list(order_by or ()))
        offset = _search.decode_page_token(page_token)
        _search.check_max_results(max_results)
        exp_keys = [int(e) for e in experiment_ids if str(e).isdigit()]
        query = sa.select(runs).where(
            runs.c.experiment_id.in_(exp_keys),
            runs.c.lifecycle_stage.in_(list(ViewType.stages(run_view_type))),
        )
        if tree is not None:
            query = query.where(compile_filter(tree, self.dialect))
        query, ordering = order_by_clauses(query, keys, self.dialect)
        # one row more than the page tells whether there is a next page
        query = query.order_by(*ordering).limit(max_results + 1).offset(offset)

        def work(conn: sa.Connection) -> list[Run]:
            return self._load_runs(conn, conn.execute(query).all())

        found = self._read(work)
        token = None
        if len(found) > max_results:
            found = found[:max_results]
            token = _search.encode_page_token(offset + max_results)
        return PagedList(found, token)

    def close(self) -> None:
        """Close the pooled connections; the store opens new ones if used again."""
        self._engine.dispose()
