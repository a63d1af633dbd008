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

**Retries and deleted runs.** Every write is idempotent (``base.py``): a
retried ``create_run`` returns the run it made, an identical metric point is
stored once (PostgreSQL: a unique index; SQLite: the writer drops it,
``sql_blocks.py``). Errors that a retry may fix (a lost connection, a lock
timeout, a full disk) are ``TransientStoreError``. A write to a deleted
run is ``RunStateError``, also when another process deleted it (one query
per write finds deleted runs among those written to).

This module is the store's contract (``base.py``) on top of its parts:
``sql_engine.py`` (URIs, engines, retried transactions, artifact root),
``sql_batch.py`` (``batch()`` and the rows it holds), ``sql_write.py`` (the
write statements of both backends), ``sql_read.py`` (rows back to entities),
``sql_search.py`` (search filters as SQL), ``sql_blocks.py`` (SQLite's metric
history as blocks of points) and ``sql_schema.py`` (tables, migrations).
"""

from __future__ import annotations

import contextlib
import gc
import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import starmap
from operator import countOf, itemgetter
from typing import TypeVar

import sqlalchemy as sa

from autolog.errors import (
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    StoreError,
    TransientStoreError,
)
from autolog.tracking import search as _search
from autolog.tracking.context import RUN_NAME as RUN_NAME_TAG
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
from autolog.tracking.stores import sql_blocks
from autolog.tracking.stores.base import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    AbstractStore,
    new_run_identity,
    new_run_info,
)
from autolog.tracking.stores.sql_batch import ThreadBatches
from autolog.tracking.stores.sql_engine import (
    ARTIFACT_ROOT_ENV,
    DEFAULT_ARTIFACT_ROOT,
    ChangeStamp,
    artifact_root_uri,
    engine_url,
    in_memory,
    open_engines,
    run_raw,
    run_retried,
    write_lock,
)
from autolog.tracking.stores.sql_read import (
    artifact_location,
    load_experiments,
    load_runs,
    load_search,
    observed,
    raw_rows,
    require_active,
    require_run,
    run_info,
    run_row,
    search_page,
)
from autolog.tracking.stores.sql_schema import ensure_schema, experiment_tags, experiments, runs
from autolog.tracking.stores.sql_schema import tags as run_tags
from autolog.tracking.stores.sql_search import search_statement
from autolog.tracking.stores.sql_summaries import compact as compact_summaries
from autolog.tracking.stores.sql_write import RowWriter, metric_rows, param_values
from autolog.tracking.stores.uris import mask_uri

__all__ = ["ARTIFACT_ROOT_ENV", "DEFAULT_ARTIFACT_ROOT", "SqlStore", "engine_url"]

T = TypeVar("T")


# PostgreSQL: a NaN is stored as value NULL (sql_schema), the only NULL value:
# rows are Metric's arguments after the key as they come. SQLite: blocks (sql_blocks)
_PG_HISTORY = (
    "SELECT value, timestamp, step FROM metrics WHERE run_id = %(run_id)s AND key = %(key)s "
    "ORDER BY step, timestamp, seq"
)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _experiment_key(experiment_id: str) -> int:
    try:
        return int(experiment_id)
    except (TypeError, ValueError):
        raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}") from None


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(f"Experiment name must be a non-empty string, got {name!r}")


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
        self._label = f"{self.dialect} store {mask_uri(uri)!r}"  # names the store in errors
        try:
            self._engine, self._write_engine = open_engines(url)
        except (sa.exc.SQLAlchemyError, sqlite3.Error, OSError) as exc:
            # SQLite connects here (WAL): a read-only or vanished folder is a
            # store error, as it would be at the first write
            raise TransientStoreError(f"{self._label}: cannot open: {exc}") from exc
        self._write_lock = write_lock(url)
        self._writer = RowWriter(self.dialect)
        self._batches = ThreadBatches(
            self._write_engine, self._writer, self._label, self._write_lock
        )
        self._transaction(lambda conn: ensure_schema(conn, self._insert_default_experiment))
        sqlite_file = self.dialect == "sqlite" and not in_memory(url)
        self._stamp = ChangeStamp(url.database) if sqlite_file else None

    # -- plumbing --------------------------------------------------------------
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
        """Run ``work`` in one transaction (see ``run_retried``); inside this
        thread's batch, in the batch's transaction instead."""
        batch = self._batches.current()
        if batch is not None:
            return self._batches.run(batch, work)
        if write:
            return run_retried(self._write_engine, work, self._label, self._write_lock)
        return run_retried(self._engine, work, self._label)

    def _read(self, work: Callable[[sa.Connection], T]) -> T:
        return self._transaction(work, write=False)

    def change_stamp(self) -> int | None:
        """A number that is the same at two calls only if nothing was committed
        to the database in between, by any process (SQLite); None where the
        store cannot tell cheaply (PostgreSQL). A reader caches what it read
        after a stamp, and serves it again while the stamp is unchanged."""
        if self._stamp is None:
            return None
        try:
            return self._stamp.read()
        except sqlite3.Error:
            return None  # no answer: the caller reads afresh

    def batch(self) -> contextlib.AbstractContextManager[bool]:
        """Every call of this thread inside the block is one transaction (yields True).

        Committed when the block ends; rolled back when anything inside raises,
        and then the error propagates. Nested ``batch()`` blocks join the outer
        one. Other threads keep their own transactions; on SQLite their writes
        wait for this one to commit, so keep a batch short.
        """
        return self._batches.open()

    # -- experiments -------------------------------------------------------------
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        _check_name(name)

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
        key = _experiment_key(experiment_id)
        found = self._read(lambda conn: load_experiments(conn, experiments.c.experiment_id == key))
        if not found:
            raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}")
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self._read(lambda conn: load_experiments(conn, experiments.c.name == name))
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
            lambda conn: load_experiments(conn, experiments.c.lifecycle_stage.in_(stages))
        )
        return _search.search_experiments(found, filter_string, order_by, max_results)

    def _touch_experiment(self, conn: sa.Connection, experiment_id: str, **values: object) -> int:
        """Update the experiment's row (and its last_update_time); its key."""
        key = _experiment_key(experiment_id)
        done = conn.execute(
            experiments.update()
            .where(experiments.c.experiment_id == key)
            .values(**values, last_update_time=_now_ms())
        )
        if done.rowcount == 0:
            raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}")
        return key

    def _update_experiment(self, experiment_id: str, **values: object) -> None:
        _experiment_key(experiment_id)  # a malformed id fails before any transaction
        try:
            self._transaction(lambda conn: self._touch_experiment(conn, experiment_id, **values))
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
        _check_name(new_name)
        self._update_experiment(experiment_id, name=new_name)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        _experiment_key(experiment_id)

        def work(conn: sa.Connection) -> None:
            exp_key = self._touch_experiment(conn, experiment_id)
            row = {"experiment_id": exp_key, "key": key, "value": value}
            conn.execute(self._writer.upsert_experiment_tag, row)

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
        exp_key = _experiment_key(experiment_id)
        run_id, tag_map, run_name = new_run_identity(run_id, tags, run_name)

        def new_run(conn: sa.Connection) -> tuple[dict, str]:
            """The new run's row, and its experiment's artifact location."""
            location = self._batches.location_known(exp_key)
            if location is None:
                location = artifact_location(conn, exp_key)
                if location is None:
                    raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}")
            info = new_run_info(run_id, str(exp_key), run_name, user_id, start_time, location)
            return {**vars(info), "experiment_id": exp_key}, location

        batch = self._batches.current()
        if batch is not None:

            def hold() -> dict:
                if run_id in batch.new_runs:
                    raise ResourceAlreadyExistsError(f"Run {run_id!r} already exists")
                row, location = new_run(batch.conn)
                self._batches.learnt(location=(exp_key, location))
                batch.hold_run(row, tag_map)
                return row

            row = self._batches.hold(batch, hold)
            return Run(run_info(row), RunData(tags=tag_map))

        def work(conn: sa.Connection) -> tuple[dict, str]:
            row, location = new_run(conn)
            self._writer.create_run(conn, row, tag_map)
            return row, location

        try:
            row, location = self._transaction(work)
        except ResourceAlreadyExistsError:
            return self._same_creation(run_id, str(exp_key), user_id, start_time)
        self._batches.learnt(run_id, (exp_key, location))
        return Run(run_info(row), RunData(tags=tag_map))

    def _same_creation(self, run_id: str, experiment_id: str, user_id: str, start: int) -> Run:
        """A retried ``create_run`` of a run that exists returns it (idempotent: the
        first attempt committed but its answer was lost); another run with that
        id is ResourceAlreadyExistsError."""
        existing = self.get_run(run_id)
        info = existing.info
        if (info.experiment_id, info.user_id, info.start_time) != (experiment_id, user_id, start):
            raise ResourceAlreadyExistsError(f"Run {run_id!r} already exists")
        return existing

    def get_run(self, run_id: str) -> Run:
        return self._read(lambda conn: load_runs(conn, [run_row(conn, run_id)], self.dialect)[0])

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
        batch = self._batches.current()
        if batch is not None and run_id in batch.new_runs:
            # created in this batch and not written yet: change the held row
            def change_held() -> RunInfo:
                batch.new_runs[run_id].update(values)
                if run_name is not None:
                    batch.tags[run_id, RUN_NAME_TAG] = run_name
                return run_info(batch.new_runs[run_id])

            return self._batches.hold(batch, change_held)

        def work(conn: sa.Connection) -> RunInfo:
            if values:
                # RETURNING: the changed row comes back without a second query
                query = runs.update().where(
                    runs.c.run_id == run_id, runs.c.lifecycle_stage != LifecycleStage.DELETED
                )
                row = conn.execute(query.values(**values).returning(*runs.c)).first()
                if row is None:
                    require_run(conn, run_id)  # says why: no such run, or deleted
                if status in RunStatus.TERMINATED and self.dialect == "sqlite":
                    compact_summaries(conn, run_id)  # the UI's summaries together (owner: ui)
            else:
                row = run_row(conn, run_id)
                require_active(run_id, row.lifecycle_stage)
            if run_name is not None:
                conn.execute(
                    self._writer.upsert_tag,
                    {"run_id": run_id, "key": RUN_NAME_TAG, "value": run_name},
                )
            return run_info(row)

        return self._transaction(work)

    def delete_run(self, run_id: str) -> None:
        self._transaction(
            lambda conn: self._update_run(conn, run_id, lifecycle_stage=LifecycleStage.DELETED)
        )
        # log_batch skips the lookup of runs it knows: this one must be looked up again
        self._batches.known.runs.discard(run_id)

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
        history, latest = metric_rows(run_id, metrics)
        param_map = param_values(params)
        tag_map = {t.key: t.value for t in tags}
        run_name = tag_map.get(RUN_NAME_TAG)
        batch = self._batches.current()
        # a new run name of a run already written changes its runs row: not held
        if batch is not None and (run_name is None or run_id in batch.new_runs):

            def hold() -> None:
                if not self._batches.run_known(run_id):
                    require_run(batch.conn, run_id)
                    self._batches.learnt(run_id)
                batch.hold_log(run_id, history, latest, param_map, tag_map)
                if run_name is not None:
                    batch.new_runs[run_id]["run_name"] = run_name

            self._batches.hold(batch, hold)
            return

        def work(conn: sa.Connection) -> None:
            if not self._batches.run_known(run_id):
                require_run(conn, run_id)
            self._writer.write(
                conn,
                {},
                history,
                {(run_id, k): p for k, p in latest.items()},
                {(run_id, k): v for k, v in param_map.items()},
                {(run_id, k): v for k, v in tag_map.items()},
            )
            if run_name is not None:
                self._update_run(conn, run_id, run_name=run_name)

        self._transaction(work)
        self._batches.learnt(run_id)

    def delete_tag(self, run_id: str, key: str) -> None:
        def work(conn: sa.Connection) -> None:
            require_active(run_id, run_row(conn, run_id).lifecycle_stage)
            done = conn.execute(
                run_tags.delete().where(run_tags.c.run_id == run_id, run_tags.c.key == key)
            )
            if done.rowcount == 0:
                raise ResourceNotFoundError(f"Run {run_id!r} has no tag {key!r}")

        self._transaction(work)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        # SQLite: the series' blocks, unpacked (sql_blocks); PostgreSQL: the
        # history index alone (sql_schema, version 3), rows as the driver's
        # tuples. A million points cost what building their Metrics costs.
        def sqlite_work(conn: sa.Connection) -> list[Metric]:
            run_row(conn, run_id)
            steps, times, values = sql_blocks.series(conn.connection.driver_connection, run_id, key)
            with _gc_paused():  # a million new objects would trigger full collections
                return list(map(partial(Metric, key), values.tolist(), times.tolist(), steps))

        def pg_work(conn: sa.Connection) -> list[Metric]:
            run_row(conn, run_id)
            rows = raw_rows(conn, _PG_HISTORY, {"run_id": run_id, "key": key})
            with _gc_paused():
                points = list(starmap(partial(Metric, key), rows))
            if countOf(map(itemgetter(0), rows), None):
                nan = math.nan
                for point in points:
                    if point.value is None:
                        point.value = nan
            return points

        return self._read(sqlite_work if self.dialect == "sqlite" else pg_work)

    def metric_history_page(
        self, run_id: str, key: str, offset: int, max_results: int
    ) -> tuple[list[Metric], int]:
        """Points ``offset`` to ``offset + max_results`` of ``get_metric_history``
        and how many there are: the server's paged get-history. SQLite reads the
        blocks the page meets only (``sql_blocks.page``), so paging through a
        long history costs what its points cost once."""
        if self.dialect != "sqlite":
            points = self.get_metric_history(run_id, key)
            return points[offset : offset + max_results], len(points)

        def work(conn: sa.Connection) -> tuple[list[Metric], int]:
            run_row(conn, run_id)
            driver = conn.connection.driver_connection
            steps, times, values, total = sql_blocks.page(driver, run_id, key, offset, max_results)
            with _gc_paused():
                points = list(map(partial(Metric, key), values.tolist(), times.tolist(), steps))
            return points, total

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
        _search.parse_filter(filter_string or "")  # bad input fails here, before any I/O
        _search.parse_order_by(list(order_by or ()))
        offset = _search.decode_page_token(page_token)
        _search.check_max_results(max_results)
        exp_keys = tuple(int(e) for e in experiment_ids if str(e).isdigit())
        # one statement filters, orders and pages (one row more than the page
        # tells whether there is a next page); then one reads the page's data
        sql, parameters = search_statement(
            self._engine.dialect,
            exp_keys,
            tuple(ViewType.stages(run_view_type)),
            filter_string or "",
            tuple(order_by or ()),
            max_results + 1,
            offset,
        )

        if self._batches.current() is None and not observed(self._engine):
            # the common case: straight to the driver (sql_read.search_page)
            found = run_raw(
                self._engine,
                lambda driver: search_page(driver, self.dialect, sql, parameters),
                self._label,
            )
        else:  # inside this thread's batch, or watched through SQLAlchemy's events
            found = self._read(lambda conn: load_search(conn, self.dialect, sql, parameters))
        token = None
        if len(found) > max_results:
            found = found[:max_results]
            token = _search.encode_page_token(offset + max_results)
        return PagedList(found, token)

    def close(self) -> None:
        """Close the pooled connections; the store opens new ones if used again
        (the change stamp is off from then on: searches are read afresh)."""
        self._engine.dispose()
        if self._stamp is not None:
            self._stamp.close()
            self._stamp = None
