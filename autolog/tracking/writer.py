"""The background batching writer (ARCHITECTURE.md rule 2).

The training thread never waits on store I/O: the fluent API validates a value
and appends one small tuple to a queue; one daemon thread per process takes
items off the queue and writes them. Items carry their store, so one writer
serves every store of the process.

Queue items (built by the fluent API and the client):

- ``(METRIC, store, run_id, Metric)``, ``(PARAM, store, run_id, Param)``,
  ``(TAG, store, run_id, RunTag)``: data points. The metric / param / tag items
  of one run between two of its other operations are grouped into one
  ``store.log_batch`` call; the order of each run's items is kept.
- ``(CALL, store, run_id, Call)``: any other operation (``create_run``,
  ``update_run_info``, writing an artifact file), run in queue order among
  its run's items (one of no run, after every item before it).
  :meth:`BatchingWriter.submit` enqueues one.

**Lanes.** Order is kept per *lane*: the items of one run of one store (an
artifact write is in a lane of its own per run, so a model that cannot be
written never holds back the run's metrics). Lanes are independent: what
happens to one never delays another.

**Transactions.** The operations of one drain that go to one store in a row
are written inside one ``store.batch()`` (at most ``MAX_BATCH_OPERATIONS``),
which a SQL store makes one transaction: a burst of runs costs a few commits.
When such a batch fails it was rolled back whole, and the operations are
written again one by one (a CALL of a rolled-back batch therefore runs twice:
store operations are idempotent, artifact writes replace their file).

**Failures** are told apart by :func:`is_transient`:

- *transient* (:class:`~autolog.errors.TransientStoreError`, or an ``OSError``
  such as a full disk or a lost connection, also as the ``__cause__`` of
  another error): the lane's items stay, in order, *held for retry*; the
  writer retries the lane on a growing interval (up to 2 s), one warning is
  issued while lanes are held, and every :meth:`~BatchingWriter.flush` retries
  once and raises :class:`~autolog.errors.TrackingWriteError` ("N items kept
  for retry") until the write succeeds. Other lanes go on meanwhile.
- *permanent* (any other error): the operation's items are split in halves
  and written again until the item(s) the store refuses are found; the
  others are written. Each refused item is *rejected* (dropped), reported
  once as a warning naming its run, its key and the reason, and raised by the
  next ``flush()`` (or ``flush(run_id)`` of its run) as ``TrackingWriteError``.
  A run whose creation is rejected, or that the store no longer has, takes
  its later items with it (counted, reported once). ``store.log_batch``
  writes all or nothing, which is what makes the halving safe.

The queue is bounded (items queued plus items held): a producer that finds it
full blocks until the writer makes room (never drops data); if lanes are held
for retry it raises instead of blocking forever. ``os.fork()`` first drains
the queue in the parent (so the child finds the runs it may log into); the
child gets a fresh writer and none of the parent's items. At interpreter exit
:meth:`~BatchingWriter.lost_report` says what could not be written.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any

from autolog.errors import ResourceNotFoundError, TrackingWriteError
from autolog.tracking import training_calls
from autolog.tracking.writer_ops import (
    CALL,
    METRIC,
    PARAM,
    TAG,
    Call,
    Operation,
    batch_end,
    describe,
    is_transient,
    lane_of,
    plan,
    write_in_one_batch,
)

__all__ = [
    "CALL",
    "METRIC",
    "PARAM",
    "TAG",
    "BatchingWriter",
    "Call",
    "get_writer",
    "is_transient",
    "reset_writer",
    "started_writer",
]

_MAX_RETRY_INTERVAL = 2.0
_MAX_REJECTIONS_KEPT = 1_000  # past it only counted
_CREATE_RUN = "create_run"
#: seconds between drains while a training call is in progress
TRAINING_INTERVAL = 1.0


class _Held:
    """A lane's items waiting for a retry, in order, and why."""

    __slots__ = ("attempts", "error", "items", "retry_at", "run_id")

    def __init__(self, run_id: str | None, error: BaseException, attempts: int):
        self.run_id, self.error, self.attempts = run_id, error, attempts
        self.items: list[tuple] = []
        self.retry_at = monotonic() + min(_MAX_RETRY_INTERVAL, 0.05 * 2**attempts)


class _Rejection:
    """An item the store refused for good: its run, what it was, why."""

    __slots__ = ("dropped", "error", "run_id", "what")

    def __init__(self, run_id: str | None, what: str, error: BaseException):
        self.run_id, self.what, self.error = run_id, what, error
        self.dropped = 0  # later items of a run whose creation was rejected

    def __str__(self) -> str:
        text = f"run {self.run_id}: {self.what}: {self.error}"
        if self.dropped:
            text += f" ({self.dropped} later writes of the run dropped with it)"
        return text


def _run_missing(error: BaseException, run_id: str | None) -> bool:
    """Whether the store refused because the run itself does not exist."""
    return run_id is not None and isinstance(error, ResourceNotFoundError) and run_id in str(error)


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
        self._limit = max_queue  # queue length at which append blocks: max less held items
        self._wake_threshold = wake_threshold
        self._interval = interval
        self._max_batch = max_batch
        self._wake = threading.Event()
        self._room = threading.Condition(threading.Lock())  # producers waiting for space
        self._drain_lock = threading.Lock()  # one drainer at a time keeps queue order
        self._held: dict[tuple, _Held] = {}  # lanes waiting for a retry
        self._attempts: dict[tuple, int] = {}  # failed tries of lanes not yet written
        self._warned = False  # the warning of the current episode of held lanes
        self._errors_lock = threading.Lock()  # guards _rejected: flush() need not wait a drain
        self._rejected: list[_Rejection] = []  # not yet raised by a flush
        self._rejected_count = 0  # beyond what _rejected keeps
        self._dead: dict[tuple, _Rejection] = {}  # (store, run) whose creation was rejected
        self._warned_keys: set[tuple] = set()  # (run, what) already warned about
        self._closed = False
        self._drained_at = monotonic()  # when the writer's own last drain ended
        self._thread = threading.Thread(target=self._run, name="autolog-writer", daemon=True)
        self._thread.start()

    # -- producer side (the training thread) -------------------------------
    def append(self, item: tuple[int, Any, str | None, Any]) -> None:
        """Enqueue one item; blocks only when the queue is full."""
        queue = self._queue
        if len(queue) >= self._limit:
            self._wait_for_room()
        queue.append(item)
        if len(queue) >= self._wake_threshold and not self._wake.is_set():
            self._wake.set()

    def extend(self, items: list[tuple[int, Any, str | None, Any]]) -> None:
        """Enqueue ``items`` in order: ``append`` for each, with one check for room
        and one wake-up (``log_metrics``, ``log_batch``)."""
        queue = self._queue
        if len(queue) + len(items) > self._limit:
            for item in items:
                self.append(item)
            return
        queue.extend(items)  # one C call: no other thread's item lands in between
        if len(queue) >= self._wake_threshold and not self._wake.is_set():
            self._wake.set()

    def submit(
        self,
        store: Any,
        fn: Callable[[], Any],
        run_id: str | None = None,
        *,
        what: str | None = None,
        lane: str | None = None,
    ) -> None:
        """Run ``fn()`` on the writer thread, after everything enqueued before it
        in its lane (``run_id``'s, or its ``lane`` of that run); ``what`` names
        it in warnings and errors."""
        self.append((CALL, store, run_id, Call(fn, what, lane)))

    def wake(self) -> None:
        """Ask the writer to drain now rather than at its next interval."""
        self._wake.set()

    def _wait_for_room(self) -> None:
        self._wake.set()
        with self._room:
            while len(self._queue) >= self._limit:
                if self._held:
                    raise TrackingWriteError(
                        f"the tracking queue is full ({self._max_queue} items) and the "
                        f"store keeps failing: {self._first_held().error!r}"
                    ) from self._first_held().error
                self._room.wait(0.1)

    @property
    def pending(self) -> int:
        """Items queued or held for retry, not yet written."""
        return len(self._queue) + self._max_queue - self._limit

    @property
    def failing(self) -> bool:
        """True while some items are held for retry after a transient failure."""
        return bool(self._held)

    def _first_held(self) -> _Held:
        return next(iter(self._held.values()))

    # -- draining ------------------------------------------------------------
    def flush(
        self, run_id: str | None = None, *, raise_errors: bool = True, retry: bool | None = None
    ) -> None:
        """Write everything queued before this call, on the caller's thread.

        Lanes held for retry are retried once. Then raises
        :class:`TrackingWriteError` for what could not be written: items still
        held (kept, raised again next time) and items rejected since the last
        flush (dropped, raised once). ``run_id``: raise only for that run's
        items (the others stay for the next flush). ``raise_errors=False``
        (reads) raises nothing and, unless ``retry``, retries nothing.
        """
        with self._drain_lock:
            budget = len(self._queue)  # items logged after this call are not waited for
            try:
                if raise_errors if retry is None else retry:
                    self._retry_held(force=True)
                while budget > 0 and self._queue:
                    budget -= self._drain_once()
            finally:
                self._notify_room()
        if raise_errors:
            self._raise_errors(run_id)

    def check(self, run_id: str | None = None) -> None:
        """Raise what :meth:`flush` would for ``run_id`` (every run if None),
        without writing or retrying anything: cheap enough for the end of each fit."""
        if self._held or self._rejected or self._rejected_count:
            self._raise_errors(run_id)

    def _raise_errors(self, run_id: str | None) -> None:
        with self._errors_lock:
            held = [h for h in list(self._held.values()) if run_id is None or h.run_id == run_id]
            mine = [r for r in self._rejected if run_id is None or r.run_id == run_id]
            if mine:
                self._rejected = (
                    [] if run_id is None else [r for r in self._rejected if r.run_id != run_id]
                )
            extra = 0
            if run_id is None:
                extra, self._rejected_count = self._rejected_count, 0
        if not held and not mine:
            return
        parts = []
        if mine:
            total = len(mine) + extra
            shown = "; ".join(str(r) for r in mine[:5])
            more = f"; and {total - 5} more" if total > 5 else ""
            parts.append(f"{total} tracking write(s) were rejected by the store: {shown}{more}")
        if held:
            count = sum(len(h.items) for h in held)
            runs = ", ".join(sorted({str(h.run_id) for h in held}))
            first = ", ".join(describe(h.items[0]) for h in held[:3] if h.items)
            parts.append(
                f"could not write tracking data of run(s) {runs} ({count} items kept for "
                f"retry, from {first}): {held[0].error!r}"
            )
        error = TrackingWriteError("; ".join(parts))
        error.rejected = [(r.run_id, r.what, r.error) for r in mine]  # type: ignore[attr-defined]
        raise error from (mine[0].error if mine else held[0].error)

    def _run(self) -> None:
        while not self._closed:
            woken = self._wake.wait(self._sleep_time())
            self._wake.clear()
            if self._closed:
                return
            if not (woken or self._held or self._drain_due()):
                continue  # asleep since before a training call began: sleep on
            try:
                with self._drain_lock:
                    self._retry_held(force=False)
                    while self._queue and not self._closed:
                        self._drain_once()
                        self._notify_room()
            except Exception as error:  # a bug of ours: say so, keep the thread alive
                message = f"autolog: the tracking writer failed: {error!r}"
                warnings.warn(message, RuntimeWarning, stacklevel=1)
            finally:
                self._drained_at = monotonic()
                self._notify_room()

    def _drain_due(self) -> bool:
        """False while a training call is in progress and the last drain is recent."""
        if not training_calls.in_progress:
            return True
        return monotonic() >= self._drained_at + TRAINING_INTERVAL

    def _sleep_time(self) -> float:
        interval = self._interval
        if training_calls.in_progress:
            interval = max(interval, self._drained_at + TRAINING_INTERVAL - monotonic())
        held = self._held
        if not held:
            return interval
        soonest = min(h.retry_at for h in list(held.values()))
        return max(0.005, min(interval, soonest - monotonic()))

    def _notify_room(self) -> None:
        with self._room:
            self._room.notify_all()

    def _drain_once(self) -> int:
        """Write one chunk from the head of the queue; returns items taken.
        Items of held lanes join them. Called with ``_drain_lock`` held."""
        queue = self._queue
        count = min(len(queue), self._max_batch)
        chunk = [queue.popleft() for _ in range(count)]
        if self._held or self._dead:
            chunk = [item for item in chunk if not self._set_aside(item)]
        self._write(plan(chunk))
        return count

    def _set_aside(self, item: tuple) -> bool:
        """Put ``item`` behind its held lane, or count it with its dead run."""
        dead = self._dead.get((id(item[1]), item[2]))
        if dead is not None:
            dead.dropped += 1
            return True
        held = self._held.get(lane_of(item))
        if held is None:
            return False
        held.items.append(item)
        self._limit -= 1
        return True

    def _retry_held(self, force: bool) -> None:
        now = monotonic()
        for key, held in list(self._held.items()):
            if force or held.retry_at <= now:
                del self._held[key]
                self._limit += len(held.items)
                self._write(plan(held.items))
        if not self._held:
            self._warned = False

    def _write(self, operations: list[Operation]) -> None:
        start = 0
        while start < len(operations):
            end = batch_end(operations, start)
            segment = operations[start:end]
            if self._held or self._dead:  # lanes that failed earlier in this drain
                for op in [op for op in segment if self._set_aside_op(op)]:
                    self._write_op(op)  # held behind their lane, or dropped with their run
                segment = [op for op in segment if not self._set_aside_op(op)]
            if len(segment) == 1 or (segment and not write_in_one_batch(segment)):
                for op in segment:
                    self._write_op(op)
            start = end
        for op in operations:
            if op.key not in self._held:
                self._attempts.pop(op.key, None)

    def _set_aside_op(self, op: Operation) -> bool:
        return op.key in self._held or (op.key[0], op.run_id) in self._dead

    def _write_op(self, op: Operation, items: list[tuple] | None = None) -> None:
        """Write ``op`` (or the part ``items`` of its items); a failure holds or rejects."""
        items = op.items if items is None else items
        if op.key in self._held:  # failed earlier in this drain: keep the lane's order
            self._hold(op.key, op.run_id, items, self._held[op.key].error)
            return
        if self._dead and (op.key[0], op.run_id) in self._dead:
            self._dead[op.key[0], op.run_id].dropped += len(items)
            return
        try:
            op.run(items)
        except Exception as error:
            if is_transient(error):
                self._hold(op.key, op.run_id, items, error)
            elif len(items) == 1:
                self._reject(op, items[0], error)
            elif _run_missing(error, op.run_id):  # every item would fail alike: no halving
                self._reject(op, items[0], error)
                self._dead[op.key[0], op.run_id].dropped += len(items) - 1
            else:  # find the bad item(s): halves, each written or split again
                middle = len(items) // 2
                self._write_op(op, items[:middle])
                self._write_op(op, items[middle:])

    def _hold(self, key: tuple, run_id: str | None, items: list[tuple], error: Exception) -> None:
        held = self._held.get(key)
        if held is None:
            attempts = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempts
            held = self._held[key] = _Held(run_id, error, attempts)
        held.items.extend(items)
        self._limit -= len(items)
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"autolog: could not write tracking data of run {run_id}, will retry "
                f"({len(held.items)} items kept; flush() / end_run() raise while it "
                f"fails; other runs go on): {error!r}",
                RuntimeWarning,
                stacklevel=2,
            )

    def _reject(self, op: Operation, item: tuple, error: Exception) -> None:
        what = describe(item)
        rejection = _Rejection(op.run_id, what, error)
        if (op.call is not None and op.call.what == _CREATE_RUN) or _run_missing(error, op.run_id):
            # the run cannot be written to: its later items go with it, reported once
            self._dead[op.key[0], op.run_id] = rejection
        with self._errors_lock:
            if len(self._rejected) < _MAX_REJECTIONS_KEPT:
                self._rejected.append(rejection)
            else:
                self._rejected_count += 1
        warn_key = (op.run_id, what.split(" (step")[0])
        if warn_key not in self._warned_keys:
            if len(self._warned_keys) < 10_000:
                self._warned_keys.add(warn_key)
            warnings.warn(
                f"autolog: the store rejected a tracking write of run {op.run_id}, {what}: "
                f"{error} (dropped; the next flush() raises TrackingWriteError)",
                RuntimeWarning,
                stacklevel=2,
            )

    def lost_report(self) -> list[str]:
        """What is not written: lanes held for retry and rejections not yet
        raised, one line each (what interpreter exit prints)."""
        lines = []
        for held in list(self._held.values()):
            kinds: dict[str, int] = {}
            for item in held.items:
                name = ("metric point(s)", "param(s)", "tag(s)", "other write(s)")[item[0]]
                kinds[name] = kinds.get(name, 0) + 1
            counted = ", ".join(f"{n} {name}" for name, n in kinds.items())
            lines.append(f"run {held.run_id}: {counted} not written: {held.error!r}")
        lines += [f"{r} (rejected)" for r in self._rejected]
        if self._rejected_count:
            lines.append(f"{self._rejected_count} more rejected writes")
        return lines

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
        """Forget every queued and held item and every recorded error; returns how
        many items were dropped."""
        with self._drain_lock:
            dropped = self.pending
            self._queue.clear()
            self._held.clear()
            self._attempts.clear()
            self._limit = self._max_queue
            self._warned = False
            self._rejected, self._rejected_count = [], 0
            self._dead.clear()
            self._warned_keys.clear()
        self._notify_room()
        return dropped


_writer: BatchingWriter | None = None
_writer_lock = threading.Lock()


def get_writer() -> BatchingWriter:
    """The process's writer, started on first use."""
    writer = _writer
    if writer is None:
        writer = _start_writer()
    return writer


def started_writer() -> BatchingWriter | None:
    """The process's writer if one was started, else None (no thread is started to
    find nothing queued)."""
    return _writer


def _start_writer() -> BatchingWriter:
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = BatchingWriter()
        return _writer


def _wake_writer() -> None:
    writer = _writer
    if writer is not None:
        writer.wake()


training_calls.on_idle = _wake_writer


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
    # cannot be written twice. A failure stays in the parent.
    writer = _writer
    if writer is not None and writer.pending:
        try:
            writer.flush(raise_errors=False)
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
