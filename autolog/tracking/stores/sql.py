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

**Batches.** ``with store.batch():`` makes every call of this thread inside it
one transaction (one commit: on PostgreSQL the commit's WAL flush is most of
the cost of a small write). The background writer wraps each drain in one, so
a burst of runs costs a few commits. A call that fails inside a batch rolls the
whole batch back and the error propagates (the writer then writes the same
operations one transaction each, which pins the error on the offending one).
A batch is not retried on a lock timeout or deadlock: its caller decides.
"""

from __future__ import annotations

import math
import os
import random
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
# runs known to exist, so log_batch need not look them up; bounded, since a
# long-lived process may log to any number of runs
_KNOWN_RUNS_LIMIT = 100_000
T = TypeVar("T")

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
_PG_LOG_BATCH = sa.text(
    """
    WITH history AS (
        INSERT INTO metrics (run_id, key, value, is_nan, step, "timestamp")
        SELECT h.run_id, h.key, h.value, h.is_nan, h.step, h.ts
        FROM unnest(CAST(:h_runs AS text[]), CAST(:h_keys AS text[]), CAST(:h_values AS float8[]),
                    CAST(:h_nans AS boolean[]), CAST(:h_steps AS bigint[]),
                    CAST(:h_times AS bigint[]))
             WITH ORDINALITY AS h(run_id, key, value, is_nan, step, ts, position)
        ORDER BY h.position  -- seq follows the logging order
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


class _Batch:
    """The one connection and transaction of a ``SqlStore.batch()`` on one thread,
    what it learnt that holds only once it commits, and the rows of its
    ``create_run`` / ``log_batch`` / ``update_run_info`` calls not yet written.

    Those rows are written together (one multi-row statement per table) before
    any other statement of the batch and at its end: a burst of runs costs a
    handful of round trips instead of several per run. Their errors (a
    duplicate run id, a param changed since an earlier transaction) therefore
    surface at that point, and roll the whole batch back like any other."""

    __slots__ = (
        "conn",
        "failure",
        "history",
        "known_runs",
        "latest",
        "locations",
        "new_runs",
        "params",
        "tags",
    )

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.failure: BaseException | None = None  # a call inside failed: never commit
        self.known_runs: set[str] = set()
        self.locations: dict[int, str] = {}
        self.new_runs: dict[str, dict] = {}  # run_id -> its runs row
        self.history: list[dict] = []  # metric points, in logging order
        self.latest: dict[tuple[str, str], dict] = {}  # (run_id, key) -> latest point
        self.params: dict[tuple[str, str], str] = {}
        self.tags: dict[tuple[str, str], str] = {}

    @property
    def pending(self) -> bool:
        return bool(self.new_runs or self.history or self.params or self.tags)


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
        self._local = threading.local()  # .batch: this thread's open batch, if any
        # Facts that no later write can undo (runs and experiments are never
        # removed, an experiment's artifact_location never changes), learnt from
        # committed transactions only: they save the lookups of the write path.
        self._known_runs: set[str] = set()
        self._locations: dict[int, str] = {}
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
        and deadlocks (the failed attempt rolled back completely). Inside this
        thread's batch, ``work`` runs in the batch's transaction instead."""
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None:
            return self._in_batch(batch, work)
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

    def _in_batch(self, batch: _Batch, work: Callable[[sa.Connection], T]) -> T:
        if batch.failure is not None:
            raise StoreError(
                f"{self.dialect} store {self.uri!r}: an earlier call in this batch failed "
                f"({batch.failure!r}); the batch will be rolled back"
            ) from batch.failure
        try:
            if batch.pending:  # this statement may read or depend on them
                self._write_pending(batch)
            return work(batch.conn)
        except BaseException as exc:
            # Its partial writes are in the transaction (and PostgreSQL refuses
            # every later statement): the batch must not commit, even if the
            # caller catches this error.
            batch.failure = exc
            if isinstance(exc, sa.exc.DBAPIError):
                raise StoreError(f"{self.dialect} store {self.uri!r}: {exc.orig}") from exc
            raise

    @contextmanager
    def batch(self) -> Iterator[bool]:
        """Every call of this thread inside the block is one transaction (yields True).

        Committed when the block ends; rolled back when anything inside raises,
        and then the error propagates. Nested ``batch()`` blocks join the outer
        one. Other threads keep their own transactions; on SQLite their writes
        wait for this one to commit, so keep a batch short.
        """
        if getattr(self._local, "batch", None) is not None:
            yield True  # nested: the outer batch commits or rolls back
            return
        try:
            conn = self._write_engine.connect()
            transaction = conn.begin()
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"{self.dialect} store {self.uri!r}: {exc.orig}") from exc
        batch = self._local.batch = _Batch(conn)
        try:
            try:
                yield True
            finally:
                self._local.batch = None
            if batch.failure is None and batch.pending:
                self._in_batch(batch, lambda conn: None)  # writes them; a failure is kept
            if batch.failure is not None:
                raise StoreError(
                    f"{self.dialect} store {self.uri!r}: a call in the batch failed "
                    f"({batch.failure!r}); the batch was rolled back"
                ) from batch.failure
            try:
                transaction.commit()
            except sa.exc.DBAPIError as exc:
                raise StoreError(f"{self.dialect} store {self.uri!r}: {exc.orig}") from exc
        except BaseException:
            if transaction.is_active:
                transaction.rollback()
            raise
        finally:
            conn.close()
        self._locations.update(batch.locations)
        self._remember_runs(batch.known_runs)

    def _deferred(self, batch: _Batch, work: Callable[[], T]) -> T:
        """Run ``work``, which only adds rows to the batch's pending ones; an error
        fails the batch like a statement's would."""
        if batch.failure is not None:
            return self._in_batch(batch, lambda conn: None)  # raises the batch's failure
        try:
            return work()
        except BaseException as exc:
            batch.failure = exc
            raise

    def _write_pending(self, batch: _Batch) -> None:
        """Write the batch's pending rows: one statement per table, keys sorted so
        that two writers take row locks in one order."""
        conn = batch.conn
        new_runs, history, latest, params, tags = (
            batch.new_runs,
            batch.history,
            batch.latest,
            batch.params,
            batch.tags,
        )
        batch.new_runs, batch.history, batch.latest, batch.params, batch.tags = {}, [], {}, {}, {}
        if new_runs:
            try:
                conn.execute(self._insert_run, [new_runs[k] for k in sorted(new_runs)])
            except sa.exc.IntegrityError:
                raise ResourceAlreadyExistsError(
                    f"One of the runs {sorted(new_runs)} already exists"
                ) from None
        if self.dialect == "postgresql":
            self._pg_write(conn, history, [latest[k] for k in sorted(latest)], params, tags)
            return
        if history:
            conn.execute(self._insert_metric, history)
        if latest:
            conn.execute(self._upsert_latest, [latest[k] for k in sorted(latest)])
        if params:
            rows = [{"run_id": r, "key": k, "value": params[r, k]} for r, k in sorted(params)]
            if conn.execute(self._insert_param, rows).rowcount < len(rows):
                self._check_pending_params(conn, params)
        if tags:
            rows = [{"run_id": r, "key": k, "value": tags[r, k]} for r, k in sorted(tags)]
            conn.execute(self._upsert_tag, rows)

    def _remember_runs(self, run_ids: set[str] | list[str]) -> None:
        if len(self._known_runs) + len(run_ids) > _KNOWN_RUNS_LIMIT:
            self._known_runs.clear()
        self._known_runs.update(run_ids)

    def _learnt(self, run_id: str | None = None, location: tuple[int, str] | None = None) -> None:
        """Record what a call just found: at once when it committed, at the end
        of the batch when it ran in one (a rolled-back batch teaches nothing)."""
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None:
            if run_id is not None:
                batch.known_runs.add(run_id)
            if location is not None:
                batch.locations[location[0]] = location[1]
            return
        if run_id is not None:
            self._remember_runs([run_id])
        if location is not None:
            self._locations[location[0]] = location[1]

    def _run_known(self, run_id: str) -> bool:
        if run_id in self._known_runs:
            return True
        batch: _Batch | None = getattr(self._local, "batch", None)
        return batch is not None and run_id in batch.known_runs

    def _location_known(self, exp_key: int) -> str | None:
        location = self._locations.get(exp_key)
        if location is None:
            batch: _Batch | None = getattr(self._local, "batch", None)
            if batch is not None:
                location = batch.locations.get(exp_key)
        return location

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
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None:
            info = self._deferred(
                batch,
                lambda: self._defer_create_run(
                    batch, exp_key, run_id, run_name, user_id, start_time, tag_map
                ),
            )
            return Run(info, RunData(tags=tag_map))

        def work(conn: sa.Connection) -> tuple[RunInfo, str]:
            location = self._location_known(exp_key)
            if location is None:
                location = conn.execute(
                    self._experiment_location, {"experiment_id": exp_key}
                ).scalar()
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
            keys = sorted(tag_map)
            try:
                if self.dialect == "postgresql":
                    row.update(tag_keys=keys, tag_values=[tag_map[k] for k in keys])
                    conn.execute(_PG_CREATE_RUN, row)
                    return info, location
                conn.execute(self._insert_run, row)
            except sa.exc.IntegrityError:
                raise ResourceAlreadyExistsError(f"Run {run_id!r} already exists") from None
            if tag_map:
                rows = [{"run_id": run_id, "key": k, "value": tag_map[k]} for k in keys]
                conn.execute(self._insert_tag, rows)
            return info, location

        info, location = self._transaction(work)
        self._learnt(run_id, (exp_key, location))
        return Run(info, RunData(tags=tag_map))

    def _experiment_location_of(self, conn: sa.Connection, exp_key: int) -> str:
        location = self._location_known(exp_key)
        if location is None:
            location = conn.execute(self._experiment_location, {"experiment_id": exp_key}).scalar()
            if location is None:
                raise ResourceNotFoundError(f"No experiment with id {str(exp_key)!r}")
            self._learnt(location=(exp_key, location))
        return location

    def _defer_create_run(
        self,
        batch: _Batch,
        exp_key: int,
        run_id: str,
        run_name: str,
        user_id: str,
        start_time: int,
        tag_map: dict[str, str],
    ) -> RunInfo:
        if run_id in batch.new_runs:
            raise ResourceAlreadyExistsError(f"Run {run_id!r} already exists")
        location = self._experiment_location_of(batch.conn, exp_key)
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
        batch.new_runs[run_id] = {**vars(info), "experiment_id": exp_key}
        for key, value in tag_map.items():
            batch.tags[run_id, key] = value
        batch.known_runs.add(run_id)
        return info

    @staticmethod
    def _run_info(row: sa.Row | dict) -> RunInfo:
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
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None and run_id in batch.new_runs:
            # created in this batch and not written yet: change the pending row
            def change_pending() -> RunInfo:
                batch.new_runs[run_id].update(values)
                if run_name is not None:
                    batch.tags[run_id, RUN_NAME_TAG] = run_name
                return self._run_info(batch.new_runs[run_id])

            return self._deferred(batch, change_pending)

        def work(conn: sa.Connection) -> RunInfo:
            if values:
                # RETURNING: the changed row comes back without a second query
                query = runs.update().where(runs.c.run_id == run_id).values(**values)
                row = conn.execute(query.returning(*runs.c)).first()
                if row is None:
                    raise ResourceNotFoundError(f"No run with id {run_id!r}")
            else:
                row = self._run_row(conn, run_id)
            if run_name is not None:
                conn.execute(
                    self._upsert_tag, {"run_id": run_id, "key": RUN_NAME_TAG, "value": run_name}
                )
            return self._run_info(row)

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
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None and (RUN_NAME_TAG not in tag_map or run_id in batch.new_runs):
            self._deferred(
                batch,
                lambda: self._defer_log_batch(batch, run_id, history, latest, param_map, tag_map),
            )
            return

        def work(conn: sa.Connection) -> None:
            known = self._run_known(run_id)
            if not known and not conn.execute(self._run_exists, {"run_id": run_id}).first():
                raise ResourceNotFoundError(f"No run with id {run_id!r}")
            if self.dialect == "postgresql":
                self._pg_log_batch(conn, run_id, history, latest, param_map, tag_map)
                return
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
        self._learnt(run_id)

    def _defer_log_batch(
        self,
        batch: _Batch,
        run_id: str,
        history: list[dict],
        latest: dict[str, dict],
        param_map: dict[str, str],
        tag_map: dict[str, str],
    ) -> None:
        if not self._run_known(run_id):
            if not batch.conn.execute(self._run_exists, {"run_id": run_id}).first():
                raise ResourceNotFoundError(f"No run with id {run_id!r}")
            batch.known_runs.add(run_id)
        for key, value in param_map.items():
            logged = batch.params.setdefault((run_id, key), value)
            if logged != value:
                raise ParamOverwriteError(
                    f"Param {key!r} was already logged with value {logged!r}; "
                    f"cannot change it to {value!r} (params are immutable)"
                )
        batch.history.extend(history)
        for key, point in latest.items():
            best = batch.latest.get((run_id, key))
            if best is None or (point["step"], point["timestamp"]) >= (
                best["step"],
                best["timestamp"],
            ):
                batch.latest[run_id, key] = point
        for key, value in tag_map.items():
            batch.tags[run_id, key] = value
        if RUN_NAME_TAG in tag_map:
            batch.new_runs[run_id]["run_name"] = tag_map[RUN_NAME_TAG]

    def _pg_log_batch(
        self,
        conn: sa.Connection,
        run_id: str,
        history: list[dict],
        latest: dict[str, dict],
        param_map: dict[str, str],
        tag_map: dict[str, str],
    ) -> None:
        """``log_batch`` on PostgreSQL: one statement (see ``_PG_LOG_BATCH``)."""
        # sorted keys: two writers of one run take the row locks in one order
        params = {(run_id, k): v for k, v in param_map.items()}
        tags = {(run_id, k): v for k, v in tag_map.items()}
        self._pg_write(conn, history, [latest[k] for k in sorted(latest)], params, tags)
        if RUN_NAME_TAG in tag_map:
            self._update_run(conn, run_id, run_name=tag_map[RUN_NAME_TAG])

    def _pg_write(
        self,
        conn: sa.Connection,
        history: list[dict],
        latest: list[dict],
        params: dict[tuple[str, str], str],
        tags: dict[tuple[str, str], str],
    ) -> None:
        """Metric points, latest points, params and tags of any runs, in one
        statement; ``latest`` has one point per (run, key), in the lock order."""
        values: dict[str, object] = {}
        for prefix, points in (("h", history), ("l", latest)):
            values[f"{prefix}_runs"] = [p["run_id"] for p in points]
            values[f"{prefix}_keys"] = [p["key"] for p in points]
            values[f"{prefix}_values"] = [p["value"] for p in points]
            values[f"{prefix}_nans"] = [p["is_nan"] for p in points]
            values[f"{prefix}_steps"] = [p["step"] for p in points]
            values[f"{prefix}_times"] = [p["timestamp"] for p in points]
        for prefix, mapping in (("p", params), ("t", tags)):
            keys = sorted(mapping)
            values[f"{prefix}_runs"] = [run_id for run_id, _key in keys]
            values[f"{prefix}_keys"] = [key for _run_id, key in keys]
            values[f"{prefix}_values"] = [mapping[k] for k in keys]
        if conn.execute(_PG_LOG_BATCH, values).scalar_one() < len(params):
            self._check_pending_params(conn, params)

    def _check_pending_params(
        self, conn: sa.Connection, params: dict[tuple[str, str], str]
    ) -> None:
        """Some of ``params`` already existed: raise if one had another value."""
        per_run: dict[str, dict[str, str]] = {}
        for (run_id, key), value in params.items():
            per_run.setdefault(run_id, {})[key] = value
        for run_id, param_map in sorted(per_run.items()):
            self._check_params(conn, run_id, param_map)

    def _write_params(self, conn: sa.Connection, run_id: str, param_map: dict[str, str]) -> None:
        """Insert new params; an existing key with another value rolls the batch back."""
        keys = sorted(param_map)
        inserted = conn.execute(
            self._insert_param, [{"run_id": run_id, "key": k, "value": param_map[k]} for k in keys]
        ).rowcount
        if inserted < len(keys):
            self._check_params(conn, run_id, param_map)

    def _check_params(self, conn: sa.Connection, run_id: str, param_map: dict[str, str]) -> None:
        """Some params already existed: raise if one had another value."""
        keys = sorted(param_map)
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
