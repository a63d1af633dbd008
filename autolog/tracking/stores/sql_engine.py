"""The SQL store's way to its database: URIs, engines and retried transactions.

- ``engine_url``: a tracking URI as a SQLAlchemy URL (psycopg 3 for a plain
  ``postgresql://``); only SQLite and PostgreSQL are accepted.
- ``open_engines``: the engine of reads and the one of writes (one pool). On
  SQLite every connection gets a busy timeout, crash-safe cheap WAL commits and
  our own ``BEGIN`` (``BEGIN IMMEDIATE`` for writes), and the file is switched
  to WAL once.
- ``run_retried``: one transaction, retried with backoff on lock timeouts,
  deadlocks and dropped connections; ``run_raw`` the same on the driver's own
  connection (the search's hot path).
- ``write_lock``: the lock that queues this process's writers of one SQLite file.
- ``OneMemoryConnectionPool``: an in-memory SQLite database's one connection,
  lent to one thread at a time, so that every thread sees the same database.
- ``ChangeStamp``: a number that changes whenever anything is committed to a
  SQLite file, by any process (what a reader's cache is validated against).
- ``artifact_root_uri``: the artifact root rules (documented in ``sql.py``).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from autolog.errors import InvalidParameterError, StoreError, TransientStoreError
from autolog.tracking.stores.sql_search import SQLITE_LOWER
from autolog.tracking.stores.uris import expand_home

__all__ = [
    "ARTIFACT_ROOT_ENV",
    "ChangeStamp",
    "DEFAULT_ARTIFACT_ROOT",
    "SQLITE_BUSY_TIMEOUT_MS",
    "artifact_root_uri",
    "engine_url",
    "open_engines",
    "run_raw",
    "run_retried",
    "store_error",
    "write_lock",
]

ARTIFACT_ROOT_ENV = "AUTOLOG_ARTIFACT_ROOT"
DEFAULT_ARTIFACT_ROOT = "./mlartifacts"
SQLITE_BUSY_TIMEOUT_MS = 60_000
_RETRY_ATTEMPTS = 8
T = TypeVar("T")


_SPELLINGS = (
    "sqlite:///mlflow.db (a file relative to the working directory), "
    "sqlite:////abs/path/mlflow.db, or postgresql://user:password@host:5432/dbname"
)


def engine_url(uri: str) -> sa.URL:
    """The SQLAlchemy URL of a tracking URI; a plain ``postgresql://`` uses psycopg 3.

    A malformed URI (``sqlite://mlflow.db``, ``sqlite:mlflow.db``, ...) is an
    InvalidParameterError that shows the right spelling."""
    from autolog.tracking.stores.uris import mask_uri

    shown = mask_uri(uri)
    try:
        url = sa.make_url(uri)
    except sa.exc.ArgumentError:
        raise InvalidParameterError(
            f"malformed SQL tracking URI {shown!r}{_sqlite_hint(uri)}; the forms are {_SPELLINGS}"
        ) from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise InvalidParameterError(f"Unsupported SQL tracking URI {shown!r}: sqlite or postgresql")
    if backend == "sqlite" and (url.host or not url.database):
        raise InvalidParameterError(
            f"SQLite tracking URI {shown!r} names no database file{_sqlite_hint(uri)} "
            f"(three slashes before a relative path, four before an absolute one); "
            f"the forms are {_SPELLINGS}"
        )
    return url


def _sqlite_hint(uri: str) -> str:
    """``: did you mean sqlite:///name.db?`` for a SQLite URI missing slashes."""
    scheme, _colon, rest = uri.partition(":")
    if not scheme.lower().startswith("sqlite"):
        return ""
    path = rest.lstrip("/")
    if not path or rest.startswith("///"):
        return ""
    return f" (did you mean {scheme}:///{path}?)"


def artifact_root_uri(artifact_root: str | None = None) -> str:
    """The artifact root as a URI: the option, else ``AUTOLOG_ARTIFACT_ROOT``, else
    ``./mlartifacts`` (a local path becomes an absolute ``file://`` URI)."""
    root = artifact_root or os.environ.get(ARTIFACT_ROOT_ENV) or DEFAULT_ARTIFACT_ROOT
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", root):
        return root.rstrip("/")
    return expand_home(root).resolve().as_uri()


def open_engines(url: sa.URL) -> tuple[sa.Engine, sa.Engine]:
    """The engine of reads and the engine of writes of ``url`` (one pool).

    A SQLite file's folder is created; the file itself is switched to WAL."""
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite:
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            expand_home(database).parent.mkdir(parents=True, exist_ok=True)
    # Every use ends in commit or rollback (engine.begin()), so the pool's
    # reset-on-return would be one more round trip per transaction; a dropped
    # connection is retried by run_retried instead of pinged.
    engine = sa.create_engine(url, pool_reset_on_return=None, **_pool_budget(url))
    if sqlite:
        _configure_sqlite(engine)
        _enable_wal(engine)
    # the option that makes _configure_sqlite's BEGIN take the write lock
    return engine, engine.execution_options(autolog_write=True)


_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(url: sa.URL) -> contextlib.AbstractContextManager:
    """What a write transaction of this process holds: for a SQLite file, one
    lock per file, so that the process's threads queue for SQLite's single
    writer slot here (woken the moment it is free) instead of in SQLite's busy
    handler, which polls with sleeps of up to 100 ms. Other processes still
    meet the busy timeout. PostgreSQL: nothing (row locks are the server's)."""
    if url.get_backend_name() != "sqlite" or in_memory(url):
        return contextlib.nullcontext()  # in memory: the pool lends its one connection
    path = str(expand_home(url.database).resolve())
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(path, threading.RLock())


class _Lender:
    """One thing lent to one thread at a time: ``take`` waits while another
    thread holds it (the holder may take it again); ``give_back`` frees it,
    from any thread (a connection that the garbage collector returns).

    Not counted: the pool below has one connection record, and SQLAlchemy
    returns a record once however often its holder took it (a nested
    checkout's second return is a "double checkin" it skips), so a count
    would never reach zero again and every other thread would wait forever."""

    def __init__(self) -> None:
        self._free = threading.Condition(threading.Lock())
        self._holder: int | None = None

    def take(self) -> None:
        me = threading.get_ident()
        with self._free:
            while self._holder not in (None, me):
                self._free.wait()
            self._holder = me

    def give_back(self) -> None:
        with self._free:
            self._holder = None
            self._free.notify()


class OneMemoryConnectionPool(sa.pool.StaticPool):
    """The pool of an in-memory SQLite database (``sqlite:///:memory:``): its one
    connection, so that every thread of the process sees one database (SQLAlchemy's
    default for it gives each thread a connection, so an empty database of its
    own), lent to one thread at a time, so that two threads' transactions never
    interleave on it (the thread that holds it may take it again)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lender = _Lender()

    def _do_get(self):
        self._lender.take()
        try:
            return super()._do_get()
        except BaseException:
            self._lender.give_back()
            raise

    def _do_return_conn(self, record) -> None:
        try:
            super()._do_return_conn(record)
        finally:
            self._lender.give_back()


def in_memory(url: sa.URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database: ``sqlite://``,
    ``sqlite:///:memory:``, or a URI with ``mode=memory``
    (``sqlite:///file:name?mode=memory&cache=shared&uri=true``), as SQLAlchemy
    tells them from files."""
    if url.get_backend_name() != "sqlite":
        return False
    return (url.database or ":memory:") == ":memory:" or url.query.get("mode") == "memory"


def _pool_budget(url: sa.URL) -> dict[str, object]:
    """The connections one process keeps (``AUTOLOG_SQL_POOL_SIZE``, default 5) and
    may open beyond them (``AUTOLOG_SQL_MAX_OVERFLOW``, default 10); the tracking
    server sets both from ``--db-connections``."""
    if in_memory(url):
        # one in-memory database: its one connection, for every thread
        return {
            "poolclass": OneMemoryConnectionPool,
            "connect_args": {"check_same_thread": False},
        }
    # LIFO: the connection returned last is handed out again, so SQLite's
    # serialized writer keeps one whose page cache is warm (in turn, each of
    # the pool's would reread its pages: +1 us of CPU per metric point written)
    budget: dict[str, object] = {"pool_use_lifo": True}
    for env, option in (
        ("AUTOLOG_SQL_POOL_SIZE", "pool_size"),
        ("AUTOLOG_SQL_MAX_OVERFLOW", "max_overflow"),
    ):
        value = os.environ.get(env, "").strip()
        if value:
            if not value.isdigit():
                raise InvalidParameterError(f"{env}={value!r}: expected a whole number")
            budget[option] = int(value)
    return budget


def store_error(label: str, exc: sa.exc.DBAPIError) -> StoreError:
    """The StoreError of a database error, naming the store (``label``): a
    TransientStoreError when a retry may fix it (a lost or refused connection,
    a lock timeout, a full disk: SQLAlchemy's OperationalError and
    InterfaceError), else a StoreError (a value the database refuses)."""
    transient = exc.connection_invalidated or isinstance(
        exc, (sa.exc.OperationalError, sa.exc.InterfaceError)
    )
    return (TransientStoreError if transient else StoreError)(f"{label}: {exc.orig}")


def run_retried(
    engine: sa.Engine,
    work: Callable[[sa.Connection], T],
    label: str,
    lock: contextlib.AbstractContextManager | None = None,
) -> T:
    """Run ``work`` in one transaction of ``engine`` (holding ``lock``, when given,
    for each attempt); retried from scratch on lock timeouts and deadlocks (the
    failed attempt rolled back completely). A database error that is not retried,
    or still there at the last attempt, becomes a StoreError naming the store
    (``label``)."""

    def attempt() -> T:
        with lock or contextlib.nullcontext(), engine.begin() as conn:
            return work(conn)

    return _retried(attempt, label)


def run_raw(engine: sa.Engine, work: Callable[[Any], T], label: str) -> T:
    """``work`` of a pooled connection's DBAPI connection (none of SQLAlchemy's
    work per statement), outside any transaction: ``work`` begins and ends its
    own. Retried as :func:`run_retried` retries (a dropped connection is thrown
    out of the pool first)."""
    dbapi_error = engine.dialect.loaded_dbapi.Error

    def attempt() -> T:
        pooled = engine.raw_connection()  # cannot connect: SQLAlchemy's DBAPIError
        try:
            return work(pooled.driver_connection)
        except dbapi_error as exc:
            gone = engine.dialect.is_disconnect(exc, pooled.dbapi_connection, None)
            if gone:
                pooled.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                None, None, exc, dbapi_error, connection_invalidated=gone, dialect=engine.dialect
            ) from exc
        finally:
            pooled.close()

    return _retried(attempt, label)


def _retried(attempt: Callable[[], T], label: str) -> T:
    """``attempt()`` until it returns, retrying what ``_is_retryable`` names (with
    backoff and jitter); any other database error, or one still there at the
    last attempt, becomes the StoreError naming the store (``label``)."""
    for number in range(_RETRY_ATTEMPTS):
        try:
            return attempt()
        except sa.exc.DBAPIError as exc:
            if number + 1 < _RETRY_ATTEMPTS and _is_retryable(exc):
                time.sleep(min(2.0, 0.05 * 2**number) * (0.5 + random.random()))
                continue
            raise store_error(label, exc) from exc
    raise AssertionError("unreachable")


class ChangeStamp:
    """A number that changes whenever anything is committed to one SQLite file,
    by this process or any other: what a cache of reads is checked against.

    SQLite's ``PRAGMA data_version`` changes on a connection whenever *another*
    connection committed since that connection last asked. The stamp asks on a
    connection of its own that never writes, so every commit (this store's, any
    other process's) is another connection's; a commit is seen by the first
    :meth:`read` after it. The stamp is this process's and holds nothing another
    process needs."""

    def __init__(self, database: str):
        self._connection = sqlite3.connect(
            database, uri=database.startswith("file:"), check_same_thread=False
        )
        self._connection.isolation_level = None  # each PRAGMA: a snapshot of its own
        self._guard = threading.Lock()
        self._version: int | None = None
        self._stamp = 0

    def read(self) -> int:
        """The stamp now: equal to an earlier answer only if nothing was
        committed in between. Read it before the reads it validates."""
        with self._guard:
            version = self._connection.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._version = version
                self._stamp += 1
            return self._stamp

    def close(self) -> None:
        with self._guard:
            self._connection.close()


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


def _enable_wal(engine: sa.Engine) -> None:
    """Switch the file to WAL (persistent in the file; a no-op once done).

    Outside any transaction: SQLite cannot change the journal mode inside one."""
    for attempt in range(_RETRY_ATTEMPTS):
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt + 1 == _RETRY_ATTEMPTS:
                raise
            time.sleep(0.05 * 2**attempt)
        finally:
            raw.close()
