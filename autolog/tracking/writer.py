"""The background batching writer (ARCHITECTURE.md rule 2).

The training thread never waits on store I/O: the fluent API validates a value
and appends one small tuple to a queue; one daemon thread per process takes
items off the queue and writes them. Items carry their store, so one writer
serves every store of the process.

Queue items (built by the fluent API and the client):

- ``(METRIC, store, run_id, Metric)``, ``(PARAM, store, run_id, Param)``,
  ``(TAG, store, run_id, RunTag)``: data points. The metric / param / tag items
  between two other operations are grouped per run into one
  ``store.log_batch`` call; the order of each run's items is kept.
- ``(CALL, store, run_id, fn)``: any other operation (``create_run``,
  ``update_run_info``, writing an artifact file), run as ``fn()`` in queue
  order. :meth:`BatchingWriter.submit` enqueues one.

Transactions: the operations of one drain that go to one store in a row are
written inside one ``store.batch()`` (at most ``MAX_BATCH_OPERATIONS`` of
them), which a SQL store makes one transaction: a burst of runs costs a few
commits, not two per run. When such a batch fails it was rolled back whole,
and the writer writes the same operations again one by one, each in its own
transaction, so the failure handling below sees exactly the operation that
fails. (A CALL of a rolled-back batch therefore runs twice: CALLs are store
writes and artifact file writes, which may.)

Failures: when the store raises, the items are put back at the head of the
queue, one warning is issued for the episode (not one per item), and the
writer retries on a growing interval. The next :meth:`~BatchingWriter.flush`
retries once synchronously and, if that fails too, raises
:class:`~autolog.errors.TrackingWriteError` with the store's error as
``__cause__``: never swallowed, never a hang. A store error that retrying
cannot fix (an invalid value, an overwritten param from another process)
drops only the offending items and is raised by the next flush.

The queue is bounded: a producer that finds it full blocks until the writer
makes room (never drops data); if the writer is failing it raises instead of
blocking forever. ``os.fork()`` first drains the queue in the parent (so the
child finds the runs it may log into); the child gets a fresh writer and
none of the parent's items.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

from autolog.errors import (
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    TrackingWriteError,
)
from autolog.tracking.stores.base import AbstractStore

__all__ = ["CALL", "METRIC", "PARAM", "TAG", "BatchingWriter", "get_writer", "reset_writer"]

METRIC, PARAM, TAG, CALL = 0, 1, 2, 3

#: errors that a retry cannot fix: the offending items are dropped and reported
_PERMANENT_ERRORS = (InvalidParameterError, ResourceNotFoundError, ResourceAlreadyExistsError)

#: store operations per ``store.batch()``: on SQLite a batch holds the write lock
#: that other processes wait for, so it stays well under a second
MAX_BATCH_OPERATIONS = 1_000


class BatchingWriter:
    """A bounded queue drained by one daemon thread into ``store.log_batch`` calls.

    ``max_queue``: items held before producers block; ``wake_threshold``: queue
    length at which a producer wakes the writer early; ``interval``: seconds the
    writer sleeps between drains otherwise; ``max_batch``: items taken per drain.
    """

    def __init__(
        self,
        max_queue: int = 100_000,
        wake_threshold: int = 5_000,
        interval: float = 0.05,
        max_batch: int = 50_000,
    ):
        self._queue: deque[tuple[int, Any, str | None, Any]] = deque()
        self._max_queue = max_queue
        self._wake_threshold = wake_threshold
        self._interval = interval
        self._max_batch = max_batch
        self._wake = threading.Event()
        self._room = threading.Condition(threading.Lock())  # producers waiting for space
        self._drain_lock = threading.Lock()  # one drainer at a time keeps queue order
        self._failure: BaseException | None = None  # set while the head cannot be written
        self._warned = False
        self._dropped: list[BaseException] = []  # permanent errors not yet raised
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="autolog-writer", daemon=True)
        self._thread.start()

    # -- producer side (the training thread) -------------------------------
    def append(self, item: tuple[int, Any, str | None, Any]) -> None:
        """Enqueue one item; blocks only when the queue is full."""
        queue = self._queue
        if len(queue) >= self._max_queue:
            self._wait_for_room()
        queue.append(item)
        if len(queue) >= self._wake_threshold and not self._wake.is_set():
            self._wake.set()

    def submit(self, store: Any, fn: Callable[[], Any], run_id: str | None = None) -> None:
        """Run ``fn()`` on the writer thread, after everything enqueued before it."""
        self.append((CALL, store, run_id, fn))

    def wake(self) -> None:
        """Ask the writer to drain now rather than at its next interval."""
        self._wake.set()

    def _wait_for_room(self) -> None:
        self._wake.set()
        with self._room:
            while len(self._queue) >= self._max_queue:
                if self._failure is not None:
                    raise TrackingWriteError(
                        f"the tracking queue is full ({self._max_queue} items) and the "
                        f"store keeps failing: {self._failure!r}"
                    ) from self._failure
                self._room.wait(0.1)

    @property
    def pending(self) -> int:
        """Items queued and not yet written."""
        return len(self._queue)

    @property
    def failing(self) -> bool:
        """True while a store error keeps the head of the queue from being written."""
        return self._failure is not None

    # -- draining ------------------------------------------------------------
    def flush(self) -> None:
        """Write everything queued before this call, on the caller's thread.

        Raises :class:`TrackingWriteError` if the store fails (the items stay
        queued for a later retry) or if a background write dropped items.
        """
        with self._drain_lock:
            budget = len(self._queue)  # items logged after this call are not waited for
            try:
                while budget > 0 and self._queue:
                    budget -= self._drain_once()
            except Exception as error:
                raise TrackingWriteError(
                    f"could not write tracking data ({len(self._queue)} items kept for "
                    f"retry): {error!r}"
                ) from error
            finally:
                self._notify_room()
        self._raise_dropped()

    def _raise_dropped(self) -> None:
        if self._dropped:
            errors, self._dropped = self._dropped, []
            raise TrackingWriteError(
                f"{len(errors)} tracking write(s) were rejected by the store; first: {errors[0]}"
            ) from errors[0]

    def _run(self) -> None:
        backoff = self._interval
        while not self._closed:
            self._wake.wait(backoff)
            self._wake.clear()
            if self._closed:
                return
            try:
                with self._drain_lock:
                    while self._queue and not self._closed:
                        self._drain_once()
                        self._notify_room()
                backoff = self._interval
            except Exception:
                # _drain_once kept the items and recorded the failure; retry later,
                # less often while the store keeps failing.
                backoff = min(backoff * 2, 2.0)
            finally:
                self._notify_room()

    def _notify_room(self) -> None:
        with self._room:
            self._room.notify_all()

    def _drain_once(self) -> int:
        """Write one chunk from the head of the queue; returns items written.

        On a store error the unwritten items go back to the head, in order.
        Called with ``_drain_lock`` held.
        """
        queue = self._queue
        count = min(len(queue), self._max_batch)
        chunk = [queue.popleft() for _ in range(count)]
        operations = _plan(chunk)
        start = 0
        while start < len(operations):
            end = _batch_end(chunk, operations, start)
            if end - start == 1 or not _write_in_one_batch(chunk, operations[start:end]):
                self._write_one_by_one(chunk, operations, start, end)
            start = end
        if self._failure is not None:
            self._failure = None
            self._warned = False
        return count

    def _write_one_by_one(self, chunk: list, operations: list, start: int, end: int) -> None:
        """Write ``operations[start:end]`` one store call each. On an error a retry
        may fix, every item from the failing operation on (of the whole chunk)
        goes back to the head of the queue and the error is raised."""
        for position in range(start, end):
            indices, operation = operations[position]
            try:
                operation()
            except _PERMANENT_ERRORS as error:
                self._retry_singly(chunk, indices, error)
            except Exception as error:
                unwritten = sorted(i for ids, _ in operations[position:] for i in ids)
                self._queue.extendleft(chunk[i] for i in reversed(unwritten))
                self._record_failure(error)
                raise

    def _retry_singly(self, chunk: list, indices: list[int], error: BaseException) -> None:
        """A batch the store rejected: write its items one by one, keep the good ones."""
        if len(indices) == 1 or chunk[indices[0]][0] == CALL:
            self._report_dropped(error)
            return
        for index in indices:
            try:
                _plan([chunk[index]])[0][1]()
            except _PERMANENT_ERRORS as single_error:
                self._report_dropped(single_error)

    def _report_dropped(self, error: BaseException) -> None:
        self._dropped.append(error)
        warnings.warn(
            f"autolog: the store rejected a tracking write: {error}", RuntimeWarning, stacklevel=2
        )

    def _record_failure(self, error: BaseException) -> None:
        self._failure = error
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"autolog: could not write tracking data, will retry ({len(self._queue)} items "
                f"queued; flush() / end_run() raise if it keeps failing): {error!r}",
                RuntimeWarning,
                stacklevel=2,
            )

    # -- lifecycle -------------------------------------------------------------
    def close(self, drain: bool = True) -> None:
        """Stop the thread; with ``drain`` write what is queued first (errors raise)."""
        try:
            if drain:
                self.flush()
        finally:
            self._closed = True
            self._wake.set()

    def discard(self) -> int:
        """Forget every queued item and recorded error; returns how many items were dropped."""
        with self._drain_lock:
            dropped = len(self._queue)
            self._queue.clear()
            self._failure = None
            self._warned = False
            self._dropped = []
        self._notify_room()
        return dropped


def _plan(chunk: list) -> list[tuple[list[int], Callable[[], Any]]]:
    """Turn a chunk of queue items into store operations, in an order that keeps
    queue order per run and keeps every CALL where it was."""
    operations: list[tuple[list[int], Callable[[], Any]]] = []
    groups: dict[tuple[int, str | None], list[int]] = {}  # data items since the last CALL

    def close_groups() -> None:
        for indices in groups.values():
            operations.append((indices, _log_batch_operation(chunk, indices)))
        groups.clear()

    for index, (kind, store, run_id, _payload) in enumerate(chunk):
        if kind == CALL:
            close_groups()
            operations.append(([index], chunk[index][3]))
        else:
            groups.setdefault((id(store), run_id), []).append(index)
    close_groups()
    return operations


def _batch_end(chunk: list, operations: list, start: int) -> int:
    """End of the run of operations from ``start`` that go to the same store
    (at most MAX_BATCH_OPERATIONS)."""
    store = chunk[operations[start][0][0]][1]
    end = start + 1
    limit = min(len(operations), start + MAX_BATCH_OPERATIONS)
    while end < limit and chunk[operations[end][0][0]][1] is store:
        end += 1
    return end


def _write_in_one_batch(chunk: list, operations: list) -> bool:
    """Write ``operations`` (all to one store) in one ``store.batch()``. True when
    they are written; False when nothing is: the store's batch is no
    transaction, or it failed and was rolled back whole."""
    store = chunk[operations[0][0][0]][1]
    if not isinstance(store, AbstractStore):
        return False
    try:
        with store.batch() as atomic:
            if not atomic:
                return False
            for _indices, operation in operations:
                operation()
    except Exception:
        # Rolled back: the caller writes them one by one, which pins the error
        # (if it happens again) on the operation that causes it.
        return False
    return True


def _log_batch_operation(chunk: list, indices: list[int]) -> Callable[[], Any]:
    lists: tuple[list, list, list] = ([], [], [])  # metrics, params, tags
    for index in indices:
        kind, _store, _run_id, payload = chunk[index]
        lists[kind].append(payload)
    _kind, store, run_id, _payload = chunk[indices[0]]
    metrics, params, tags = lists
    return lambda: store.log_batch(run_id, metrics=metrics, params=params, tags=tags)


_writer: BatchingWriter | None = None
_writer_lock = threading.Lock()


def get_writer() -> BatchingWriter:
    """The process's writer, started on first use."""
    writer = _writer
    if writer is None:
        writer = _start_writer()
    return writer


def _start_writer() -> BatchingWriter:
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = BatchingWriter()
        return _writer


def reset_writer() -> None:
    """Drop the current writer (draining nothing); the next use starts a new one."""
    global _writer
    writer, _writer = _writer, None
    if writer is not None:
        writer.discard()
        writer.close(drain=False)


def _before_fork() -> None:
    # Write what the parent queued so that the child finds the runs it may log
    # into (a run's creation is queued too); the items then leave the queue and
    # cannot be written twice. A failure stays queued in the parent.
    writer = _writer
    if writer is not None and writer.pending:
        try:
            writer.flush()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    # The parent's thread does not exist in the child and its locks may be held
    # by it: start over with a new writer, leaving the parent's items to the parent.
    global _writer, _writer_lock
    _writer = None
    _writer_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
