"""How the background writer turns queued items into store operations.

Part of :mod:`autolog.tracking.writer` (which re-exports the public names):
the item kinds, :class:`Call` (a queued operation with its name and lane),
:func:`plan` (a chunk of items into store calls, keeping each lane's order),
the store transactions around them (:func:`write_in_one_batch`) and
:func:`is_transient`, which tells a failure a retry may fix from one it cannot.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from autolog.errors import TransientStoreError
from autolog.tracking.stores.base import AbstractStore

__all__ = [
    "CALL",
    "MAX_BATCH_OPERATIONS",
    "METRIC",
    "PARAM",
    "TAG",
    "Call",
    "Operation",
    "batch_end",
    "describe",
    "is_transient",
    "lane_of",
    "plan",
    "write_in_one_batch",
]

METRIC, PARAM, TAG, CALL = 0, 1, 2, 3

#: store operations per ``store.batch()``: on SQLite a batch holds the write lock
#: that other processes wait for, so it stays well under a second
MAX_BATCH_OPERATIONS = 1_000


#: errno values of writes that fail the same way however often they are retried
_NEVER_FIXED = frozenset({errno.ENAMETOOLONG, errno.EINVAL})


def is_transient(error: BaseException) -> bool:
    """True for a failure a retry may fix: a :class:`TransientStoreError` or an
    ``OSError`` (disk full, permission, connection reset), itself or as the
    cause of the error raised. Anything else is permanent for its item, and
    so is an ``OSError`` that no retry can fix: a name too long for the file
    system, an invalid argument (``_NEVER_FIXED``)."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 8:
        if isinstance(current, OSError) and current.errno in _NEVER_FIXED:
            return False
        if isinstance(current, (TransientStoreError, OSError)):
            return True
        current = current.__cause__
        seen += 1
    return False


class Call:
    """A queued store operation: ``fn()``, described by ``what`` in reports;
    ``lane`` (e.g. ``"artifacts"``) orders it apart from the run's data."""

    __slots__ = ("fn", "lane", "what")

    def __init__(self, fn: Callable[[], Any], what: str | None = None, lane: str | None = None):
        self.fn = fn
        self.what = what or getattr(fn, "__name__", "call")
        self.lane = lane

    def __call__(self) -> Any:
        return self.fn()


class Operation:
    """One store call: a CALL, or one ``log_batch`` of a lane's data items."""

    __slots__ = ("call", "items", "key", "run_id", "store")

    def __init__(self, key: tuple, store: Any, run_id: str | None, call: Call | None = None):
        self.key, self.store, self.run_id, self.call = key, store, run_id, call
        self.items: list[tuple] = []

    def run(self, items: list[tuple] | None = None) -> None:
        if self.call is not None:
            self.call()
            return
        lists: tuple[list, list, list] = ([], [], [])  # metrics, params, tags
        for kind, _store, _run_id, payload in self.items if items is None else items:
            lists[kind].append(payload)
        self.store.log_batch(self.run_id, metrics=lists[0], params=lists[1], tags=lists[2])


def lane_of(item: tuple) -> tuple:
    kind, store, run_id, payload = item
    return (id(store), run_id, payload.lane if kind == CALL else None)


_MAX_DESCRIBED = 120


def describe(item: tuple) -> str:
    kind, _store, _run_id, payload = item
    if kind == CALL:  # "artifact 'name'": the name may be thousands of characters
        what = payload.what
        return what if len(what) <= _MAX_DESCRIBED else what[:_MAX_DESCRIBED] + "...'"
    if kind == METRIC:
        return f"metric {payload.key!r} (step {payload.step})"
    return f"{'param' if kind == PARAM else 'tag'} {payload.key!r}"


def plan(chunk: list) -> list[Operation]:
    """Turn a chunk of queue items into store operations: each lane's data items
    between two of its CALLs become one ``log_batch``; each lane keeps its order."""
    operations: list[Operation] = []
    groups: dict[tuple, Operation] = {}  # the open data group of each lane
    for item in chunk:
        kind, store, run_id, payload = item
        if kind == CALL:
            key = (id(store), run_id, payload.lane)
            if run_id is None:
                groups.clear()  # a call of no run comes after everything before it
            else:
                groups.pop(key, None)
            op = Operation(key, store, run_id, payload)
            operations.append(op)
        else:
            key = (id(store), run_id, None)
            op = groups.get(key)
            if op is None:
                op = groups[key] = Operation(key, store, run_id)
                operations.append(op)
        op.items.append(item)
    return operations


def batch_end(operations: list[Operation], start: int) -> int:
    """End of the run of operations from ``start`` that go to the same store
    (at most MAX_BATCH_OPERATIONS)."""
    store = operations[start].store
    end = start + 1
    limit = min(len(operations), start + MAX_BATCH_OPERATIONS)
    while end < limit and operations[end].store is store:
        end += 1
    return end


def write_in_one_batch(operations: list[Operation]) -> bool:
    """Write ``operations`` (all to one store) in one ``store.batch()``. True when
    they are written; False when nothing is: the store's batch is no
    transaction, or it failed and was rolled back whole."""
    store = operations[0].store
    if not isinstance(store, AbstractStore):
        return False
    try:
        with store.batch() as atomic:
            if not atomic:
                return False
            for op in operations:
                op.run()
    except Exception:
        # Rolled back: the caller writes them one by one, which pins the error
        # (if it happens again) on the operation that causes it.
        return False
    return True
