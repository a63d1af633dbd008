"""The transactions of ``SqlStore.batch()``, and the facts that save write-path lookups.

A batch is one connection and one transaction per thread. The rows of its
``create_run`` / ``log_batch`` / ``update_run_info`` calls are held, not
written: they are written together (one multi-row statement per table, see
``sql_write.py``) before any other statement of the batch and at its end, so a
burst of runs costs a handful of round trips instead of several per run. Their
errors (a duplicate run id, a param changed since an earlier transaction)
therefore surface at that point, and roll the whole batch back like any other.

``KnownFacts`` are facts that no later write can undo (runs and experiments are
never removed, an experiment's artifact_location never changes): what a call
learns counts once its transaction commits, so what a batch learns counts only
when the batch commits (a rolled-back batch teaches nothing).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa

from autolog.errors import StoreError
from autolog.tracking.stores.sql_engine import store_error
from autolog.tracking.stores.sql_write import MetricRow, RowWriter, supersedes
from autolog.tracking.validation import check_param_unchanged

__all__ = ["Batch", "KnownFacts", "ThreadBatches"]

# runs known to exist, so log_batch need not look them up; bounded, since a
# long-lived process may log to any number of runs
_KNOWN_RUNS_LIMIT = 100_000
T = TypeVar("T")


class KnownFacts:
    """Run ids known to exist, and experiments' artifact locations (by experiment key).

    At most ``runs_limit`` run ids (None: no limit); past it they are forgotten."""

    __slots__ = ("locations", "runs", "runs_limit")

    def __init__(self, runs_limit: int | None = _KNOWN_RUNS_LIMIT) -> None:
        self.runs: set[str] = set()
        self.locations: dict[int, str] = {}
        self.runs_limit = runs_limit

    def add(self, run_ids: Collection[str], locations: Mapping[int, str]) -> None:
        if self.runs_limit is not None and len(self.runs) + len(run_ids) > self.runs_limit:
            self.runs.clear()
        self.runs.update(run_ids)
        self.locations.update(locations)


class Batch:
    """The one connection and transaction of a batch on one thread, what it
    learnt, and the rows of its calls not yet written."""

    __slots__ = ("conn", "failure", "history", "latest", "learnt", "new_runs", "params", "tags")

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.failure: BaseException | None = None  # a call inside failed: never commit
        # never forgets: it holds the runs this batch created and has not written
        self.learnt = KnownFacts(runs_limit=None)
        self.new_runs: dict[str, dict] = {}  # run_id -> its runs row
        self.history: list[MetricRow] = []  # metric points, in logging order
        self.latest: dict[tuple[str, str], MetricRow] = {}  # (run_id, key) -> latest point
        self.params: dict[tuple[str, str], str] = {}
        self.tags: dict[tuple[str, str], str] = {}

    @property
    def pending(self) -> bool:
        return bool(self.new_runs or self.history or self.params or self.tags)

    def hold_run(self, row: dict, tags: dict[str, str]) -> None:
        """Hold a new run's row and its tags (the run is then known to this batch)."""
        run_id = row["run_id"]
        self.new_runs[run_id] = row
        for key, value in tags.items():
            self.tags[run_id, key] = value
        self.learnt.runs.add(run_id)

    def hold_log(
        self,
        run_id: str,
        history: list[MetricRow],
        latest: dict[str, MetricRow],
        params: dict[str, str],
        tags: dict[str, str],
    ) -> None:
        """Hold one ``log_batch``: ``latest`` is its latest point per key."""
        for key, value in params.items():
            check_param_unchanged(key, self.params.setdefault((run_id, key), value), value)
        self.history.extend(history)
        for key, point in latest.items():
            best = self.latest.get((run_id, key))
            if best is None or supersedes(point, best):
                self.latest[run_id, key] = point
        for key, value in tags.items():
            self.tags[run_id, key] = value

    def write_held(self, writer: RowWriter) -> None:
        """Write the held rows in the batch's transaction; none is held after."""
        held = self.new_runs, self.history, self.latest, self.params, self.tags
        self.new_runs, self.history, self.latest, self.params, self.tags = {}, [], {}, {}, {}
        writer.write(self.conn, *held)


class ThreadBatches:
    """Each thread's open batch of one store, and the facts learnt from its
    committed transactions. ``label`` names the store in error messages."""

    def __init__(
        self,
        write_engine: sa.Engine,
        writer: RowWriter,
        label: str,
        lock: contextlib.AbstractContextManager | None = None,
    ):
        self._write_engine = write_engine
        self._lock = lock or contextlib.nullcontext()  # held while a batch is open
        self._writer = writer
        self._label = label
        self._local = threading.local()  # .batch: this thread's open batch, if any
        self.known = KnownFacts()  # from committed transactions only

    def current(self) -> Batch | None:
        """This thread's open batch, if any."""
        return getattr(self._local, "batch", None)

    @contextmanager
    def open(self) -> Iterator[bool]:
        """``SqlStore.batch()``: one transaction for this thread's calls inside."""
        if self.current() is not None:
            yield True  # nested: the outer batch commits or rolls back
            return
        with self._lock:
            yield from self._open()

    def _open(self) -> Iterator[bool]:
        try:
            conn = self._write_engine.connect()
            transaction = conn.begin()
        except sa.exc.DBAPIError as exc:
            raise store_error(self._label, exc) from exc
        batch = self._local.batch = Batch(conn)
        try:
            try:
                yield True
            finally:
                self._local.batch = None
            if batch.failure is None and batch.pending:
                self.run(batch, lambda conn: None)  # writes them; a failure is kept
            if batch.failure is not None:
                raise StoreError(
                    f"{self._label}: a call in the batch failed "
                    f"({batch.failure!r}); the batch was rolled back"
                ) from batch.failure
            try:
                transaction.commit()
            except sa.exc.DBAPIError as exc:
                raise store_error(self._label, exc) from exc
        except BaseException:
            if transaction.is_active:
                transaction.rollback()
            raise
        finally:
            conn.close()
        self.known.add(batch.learnt.runs, batch.learnt.locations)

    def run(self, batch: Batch, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work`` in the batch's transaction, after writing its held rows
        (``work`` may read or depend on them)."""
        if batch.failure is not None:
            raise StoreError(
                f"{self._label}: an earlier call in this batch failed "
                f"({batch.failure!r}); the batch will be rolled back"
            ) from batch.failure
        try:
            if batch.pending:
                batch.write_held(self._writer)
            return work(batch.conn)
        except BaseException as exc:
            # Its partial writes are in the transaction (and PostgreSQL refuses
            # every later statement): the batch must not commit, even if the
            # caller catches this error.
            batch.failure = exc
            if isinstance(exc, sa.exc.DBAPIError):
                raise store_error(self._label, exc) from exc
            raise

    def hold(self, batch: Batch, work: Callable[[], T]) -> T:
        """Run ``work``, which only adds rows to the batch's held ones; an error
        fails the batch like a statement's would."""
        if batch.failure is not None:
            return self.run(batch, lambda conn: None)  # raises the batch's failure
        try:
            return work()
        except BaseException as exc:
            batch.failure = exc
            raise

    def learnt(self, run_id: str | None = None, location: tuple[int, str] | None = None) -> None:
        """Record what a call just found: at once when it committed, at the end
        of the batch when it ran in one."""
        batch = self.current()
        facts = self.known if batch is None else batch.learnt
        facts.add(() if run_id is None else (run_id,), {} if location is None else dict([location]))

    def run_known(self, run_id: str) -> bool:
        if run_id in self.known.runs:
            return True
        batch = self.current()
        return batch is not None and run_id in batch.learnt.runs

    def location_known(self, exp_key: int) -> str | None:
        location = self.known.locations.get(exp_key)
        if location is None:
            batch = self.current()
            if batch is not None:
                location = batch.learnt.locations.get(exp_key)
        return location
