"""The append-only ``log.jsonl`` of a file-store run: its line format, writer and reader.

One line per ``log_batch``; metrics as per-key columns (see ``file.py`` for the
layout): a key's short column as JSON lists (``"m"``), a long one (``PACK_AT``
points or more in one batch) as packed little-endian arrays in hex (``"mb"``),
which cost a small fraction of writing and parsing a float's decimal text.
Kept apart from the store so the format is written and read in one place.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice, pairwise, repeat
from operator import attrgetter, le, lt
from pathlib import Path

from autolog.tracking.entities import Metric

__all__ = [
    "INFO_KEYS",
    "RunLog",
    "PACK_AT",
    "RunLogFiles",
    "gc_paused",
    "in_order",
    "entry_columns",
    "metric_columns",
    "metric_history",
    "parse_lines",
]

#: one line's JSON: compact, through one encoder made once (json.dumps with
#: ``separators`` makes a new JSONEncoder per call)
_ENCODE_LINE = json.JSONEncoder(separators=(",", ":")).encode
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT  # os.open adds O_CLOEXEC

#: a key with at least this many points in one batch is written packed (``"mb"``)
PACK_AT = 32
#: the fields of a run's info an ``"i"`` line may change (``update_run_info``)
INFO_KEYS = ("status", "end_time", "run_name")
_SWAP = sys.byteorder != "little"  # packed arrays are little-endian on disk

#: one key's points as parallel columns: (steps, timestamps, values)
Columns = tuple[Sequence[int], Sequence[int], Sequence[float]]


class RunLog:
    """What has been read of one run's ``log.jsonl``: params, tags, latest metrics.

    Kept per store object and brought up to date by reading only the bytes
    appended since (``offset``), so a run is never parsed twice.
    """

    __slots__ = ("info", "inode", "latest", "offset", "params", "tags")

    def __init__(self) -> None:
        self.inode = -1
        self.offset = 0
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.latest: dict[str, tuple[int, int, float]] = {}  # key -> (step, timestamp, value)
        #: the run's info changed since ``meta.json`` (``"i"`` lines: status, end time, name)
        self.info: dict[str, object] = {}

    def apply(self, entry: dict) -> None:
        latest = self.latest
        for key, (steps, timestamps, values) in entry_columns(entry):
            if len(steps) == 1:  # the common case of a run's summary metrics
                cur = latest.get(key)
                if cur is None or (steps[0], timestamps[0]) >= cur[:2]:
                    latest[key] = (steps[0], timestamps[0], values[0])
                continue
            # highest step wins, then the newest timestamp, then the later point
            top = max(steps)
            if steps.count(top) == 1:
                last = steps.index(top)
                newest = timestamps[last]
            else:
                at_top = [i for i, step in enumerate(steps) if step == top]
                newest = max(timestamps[i] for i in at_top)
                last = next(i for i in reversed(at_top) if timestamps[i] == newest)
            cur = latest.get(key)
            if cur is None or (top, newest) >= cur[:2]:
                latest[key] = (top, newest, values[last])
        for key, value in entry.get("p", ()):
            self.params[key] = value
        for key, value in entry.get("t", ()):
            self.tags[key] = value
        for key in entry.get("dt", ()):
            self.tags.pop(key, None)
        info = entry.get("i")
        if info:
            for key in INFO_KEYS:  # a field this version does not know is left out
                if key in info:
                    self.info[key] = info[key]


def metric_columns(metrics: Sequence[Metric]) -> tuple[dict, dict]:
    """The line's ``"m"`` and ``"mb"`` parts of ``metrics``, each ``{key: columns}``
    in logging order: ``"m"`` columns are ``{"value": [...], "step": [...],
    "timestamp": [...]}``; ``"mb"`` (keys with ``PACK_AT`` points or more, whose
    steps and timestamps fit 64 bits) the same three as hex strings of packed
    little-endian int64 / int64 / float64 arrays (hex: the fastest text of bytes
    to write and to read back in CPython, twice base64's speed)."""
    if not isinstance(metrics, (list, tuple)):
        metrics = list(metrics)  # a lazy sequence (wire.MetricRows): read once
    first = metrics[0].key
    keys = [m.key for m in metrics]
    if keys.count(first) == len(keys):  # one key: no grouping
        by_key: dict[str, Sequence[Metric]] = {first: metrics}
    else:
        by_key = {}
        for key, m in zip(keys, metrics):
            points = by_key.get(key)
            if points is None:
                by_key[key] = points = []
            points.append(m)  # type: ignore[attr-defined]
    plain: dict[str, dict[str, list]] = {}
    packed: dict[str, dict[str, str]] = {}
    for key, points in by_key.items():
        steps = [m.step for m in points]
        timestamps = [m.timestamp for m in points]
        values = [m.value for m in points]
        if len(points) >= PACK_AT:
            columns = _pack(steps, timestamps, values)
            if columns is not None:
                packed[key] = columns
                continue
        plain[key] = {"value": [float(v) for v in values], "step": steps, "timestamp": timestamps}
    return plain, packed


def _pack(steps: list, timestamps: list, values: list) -> dict[str, str] | None:
    """The ``"mb"`` columns, or None when a step or timestamp does not fit int64
    or a value is no plain number (then the JSON lists say what it is)."""
    try:
        arrays = (array("q", steps), array("q", timestamps), array("d", values))
    except (TypeError, OverflowError, ValueError):
        return None
    if _SWAP:
        for a in arrays:
            a.byteswap()
    return {name: a.tobytes().hex() for name, a in zip(("step", "timestamp", "value"), arrays)}


def _unpack(columns: dict[str, str]) -> Columns:
    """The arrays of one ``"mb"`` key (see ``metric_columns``)."""
    steps, timestamps, values = array("q"), array("q"), array("d")
    for a, name in ((steps, "step"), (timestamps, "timestamp"), (values, "value")):
        a.frombytes(bytes.fromhex(columns[name]))
        if _SWAP:
            a.byteswap()
    if not len(steps) == len(timestamps) == len(values):
        raise ValueError("packed metric columns of unequal length")
    return steps, timestamps, values


def entry_columns(entry: dict) -> Iterator[tuple[str, Columns]]:
    """Every (key, (steps, timestamps, values)) of a line, plain and packed."""
    for key, columns in entry.get("m", {}).items():
        yield key, (columns["step"], columns["timestamp"], columns["value"])
    for key, columns in entry.get("mb", {}).items():
        try:
            unpacked = _unpack(columns)
        except (ValueError, KeyError, TypeError):
            continue  # a damaged line: skipped like a torn one (metric_history does too)
        yield key, unpacked


def in_order(steps: Sequence[int], timestamps: Sequence[int], distinct: bool | None = None) -> bool:
    """True when the points are already ordered by (step, timestamp); cheap for the
    usual case of strictly increasing steps. ``distinct``: whether no step repeats,
    if the caller knows."""
    if distinct is None:
        distinct = len(set(steps)) == len(steps)
    ordered = all(map(le, steps, islice(steps, 1, None)))
    return ordered and (distinct or all(a <= b for a, b in pairwise(timestamps)))


def _increasing(steps: Sequence[int]) -> bool:
    """Whether every step is above the one before (then no point can repeat another
    and the points are in order): one pass in C."""
    return all(map(lt, steps, islice(steps, 1, None)))


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while a long history is built: a million new Metric objects
    would trigger collections that scan every one of them (80% of the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_lines(data: bytes, needle: bytes = b"") -> Iterator[dict]:
    """The entries of complete lines (those holding ``needle``, if given); an
    unparseable line (the torn tail of a killed writer, later followed by a
    newline) is skipped."""
    for line in data.split(b"\n"):
        if line and needle in line:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def metric_history(run_dir: str | Path, key: str) -> list[Metric]:
    """Every point of metric ``key`` in the run's log, by (step, timestamp), ties in
    logging order; [] if the run has logged nothing."""
    try:
        with open(os.path.join(run_dir, "log.jsonl"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    needle = json.dumps(key).encode()  # skip lines that cannot hold the key
    chunks: list[Columns] = []
    for entry in parse_lines(data, needle):
        columns = entry.get("m", {}).get(key)
        if columns is not None:
            chunks.append((columns["step"], columns["timestamp"], columns["value"]))
        columns = entry.get("mb", {}).get(key)
        if columns is not None:
            try:
                chunks.append(_unpack(columns))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line: skipped like a torn one
    steps, timestamps, values = _joined(chunks)
    if _increasing(steps):
        ordered = distinct = True
    else:
        distinct = len(set(steps)) == len(steps)  # then no point can repeat another
        if not distinct and len(set(zip(steps, timestamps))) < len(steps):
            values, steps, timestamps = _without_repeats(values, steps, timestamps)
        ordered = in_order(steps, timestamps, distinct)
    with gc_paused():
        points = list(map(Metric, repeat(key), values, timestamps, steps))
    if not ordered:
        points.sort(key=attrgetter("step", "timestamp"))  # stable: logging order on ties
    return points


def _joined(chunks: list[Columns]) -> Columns:
    """The chunks' columns end to end: packed arrays (a copy of bytes, no Python
    object per point) unless a plain column holds what int64 / float64 cannot."""
    joined: Columns = (array("q"), array("q"), array("d"))
    try:
        for chunk in chunks:
            for whole, part in zip(joined, chunk):
                whole.extend(part)  # type: ignore[attr-defined]
        return joined
    except (TypeError, OverflowError):
        as_lists: tuple[list, list, list] = ([], [], [])
        for chunk in chunks:
            for whole, part in zip(as_lists, chunk):
                whole += part
        return as_lists


def _without_repeats(
    values: list[float], steps: list[int], timestamps: list[int]
) -> tuple[list[float], list[int], list[int]]:
    """The points less the identical repeats of one (step, timestamp, value): a
    write retried after its first attempt got through is stored once (the
    store contract). NaN equals NaN here."""
    seen: set[tuple] = set()
    kept: tuple[list, list, list] = ([], [], [])
    for value, step, timestamp in zip(values, steps, timestamps):
        identity = (step, timestamp, value if value == value else "nan")
        if identity not in seen:
            seen.add(identity)
            kept[0].append(value)
            kept[1].append(step)
            kept[2].append(timestamp)
    return kept


#: how often an append looks again at a tail that seems torn before ending it
_TORN_LOOKS = 3


class RunLogFiles:
    """The ``log.jsonl`` files as one store object sees them: appends, and reads
    that pick up where the last one stopped (a run is never parsed twice).

    An append opens the file once: its ``fstat`` tells whether anything was
    appended since this object last looked (by another store object or
    process: then those bytes are read and applied first, so a param another
    process logged is known before ours is checked) and whether the file ends
    in a torn line (then ours starts with a newline); the ``fstat`` after the
    write tells whether ours was the only line since (then it is folded into
    the state without reading it back)."""

    def __init__(self, *, fsync: bool = False):
        self.fsync = fsync
        self._logs: dict[str, RunLog] = {}

    def read(self, run_dir: str | Path) -> RunLog:
        """The run's log state, after reading whatever was appended since last time."""
        path = os.path.join(run_dir, "log.jsonl")
        state = self._logs.get(path)
        if state is None:
            state = self._logs[path] = RunLog()
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return state
        if st.st_ino != state.inode or st.st_size < state.offset:
            state.__init__()  # replaced or truncated: read again from the start
            state.inode = st.st_ino
        if st.st_size > state.offset:
            with open(path, "rb") as f:
                f.seek(state.offset)
                data = f.read()
            complete = data.rfind(b"\n") + 1  # a torn tail stays unread
            for entry in parse_lines(data[:complete]):
                state.apply(entry)
            state.offset += complete
        return state

    def append(self, run_dir: str | Path, entry: dict, *, new: bool = False) -> RunLog:
        """Append ``entry`` to the run's log as one line in one ``write()``."""
        return self.update(run_dir, lambda state: entry, new=new)

    def update(
        self,
        run_dir: str | Path,
        make: Callable[[RunLog], dict | None],
        *,
        new: bool = False,
    ) -> RunLog:
        """Bring the run's state up to date, then append the line ``make(state)``
        returns (nothing when None; what it raises leaves the log as it was),
        in one open of the file: open, fstat, [read what others appended],
        write, fstat, close. Returns the state, our line folded in unless
        another process appended between our fstat and our write (then the
        next update reads both back from the file).

        ``new``: the run's folder was made by this call's caller a moment ago,
        so the file cannot hold anything yet (no fstat before the write)."""
        path = os.path.join(run_dir, "log.jsonl")
        state = self._logs.get(path)
        if state is None or new:
            state = self._logs[path] = RunLog()
        fd = os.open(path, _APPEND_FLAGS, 0o644)
        try:
            if new:
                size, torn = 0, False
            else:
                size, torn = self._catch_up(fd, state)
                for _ in range(_TORN_LOOKS):
                    if not torn:
                        break
                    # Another process's line may still be going in (the kernel
                    # grows the file a page at a time): a tail that stays torn
                    # is a killed writer's. Ended while it grows, it would
                    # leave a blank line (skipped by readers, never data lost).
                    os.sched_yield()
                    size, torn = self._catch_up(fd, state)
            entry = make(state)
            if entry is None:
                return state
            data = (_ENCODE_LINE(entry) + "\n").encode()
            if torn:  # a writer killed mid-line left a torn tail: end it so ours parses
                data = b"\n" + data
            written = os.write(fd, data)  # an error here wrote nothing
            if written != len(data):  # a full disk took part of the line
                self._take_back(fd, path, data[:written])
                raise OSError(errno.ENOSPC, f"short write to {path} ({written} bytes)")
            if self.fsync:
                os.fsync(fd)
            st = os.fstat(fd)
            # our line is the only one since we looked: known without reading it back
            if st.st_size == size + written and (new or st.st_ino == state.inode):
                state.inode = st.st_ino
                state.apply(entry)
                state.offset = st.st_size
            return state
        finally:
            os.close(fd)

    @staticmethod
    def _catch_up(fd: int, state: RunLog) -> tuple[int, bool]:
        """Apply to ``state`` the complete lines appended since it was last brought
        up to date (all of them when the file was replaced or cut); returns the
        file's size and whether it ends in a torn line."""
        st = os.fstat(fd)
        size = st.st_size
        if st.st_ino != state.inode or size < state.offset:
            state.__init__()  # replaced or truncated: read again from the start
            state.inode = st.st_ino
        if size == state.offset:  # the offset is always just past a newline
            return size, False
        chunks = []
        at = state.offset
        while at < size:
            chunk = os.pread(fd, size - at, at)
            if not chunk:
                break
            chunks.append(chunk)
            at += len(chunk)
        data = b"".join(chunks)
        complete = data.rfind(b"\n") + 1  # a torn tail stays unread
        for entry in parse_lines(data[:complete]):
            state.apply(entry)
        state.offset += complete
        return size, state.offset < size

    def _take_back(self, fd: int, path: str, torn: bytes) -> None:
        """After a short write (disk full): cut the torn line off when it is still
        the file's end, so that the retry of the batch writes it once; otherwise
        the next append starts a new line (readers skip the torn one)."""
        try:
            size = os.fstat(fd).st_size
            if torn and size >= len(torn) and os.pread(fd, len(torn), size - len(torn)) == torn:
                os.ftruncate(fd, size - len(torn))
        except OSError:
            pass

    def clear(self) -> None:
        self._logs.clear()
