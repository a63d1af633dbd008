"""The append-only ``log.jsonl`` of a file-store run: its line format, writer and reader.

One line per ``log_batch``; metrics as per-key columns (see ``file.py`` for the
layout). Kept apart from the store so the format is written and read in one place.
"""

from __future__ import annotations

import errno
import gc
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise, repeat
from operator import attrgetter
from pathlib import Path

from autolog.tracking.entities import Metric

__all__ = [
    "RunLog",
    "RunLogFiles",
    "gc_paused",
    "in_order",
    "metric_columns",
    "metric_history",
    "parse_lines",
]

_COMPACT = {"separators": (",", ":")}


class RunLog:
    """What has been read of one run's ``log.jsonl``: params, tags, latest metrics.

    Kept per store object and brought up to date by reading only the bytes
    appended since (``offset``), so a run is never parsed twice.
    """

    __slots__ = ("inode", "latest", "offset", "params", "tags")

    def __init__(self) -> None:
        self.inode = -1
        self.offset = 0
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.latest: dict[str, tuple[int, int, float]] = {}  # key -> (step, timestamp, value)

    def apply(self, entry: dict) -> None:
        latest = self.latest
        for key, columns in entry.get("m", {}).items():
            steps, timestamps = columns["step"], columns["timestamp"]
            if len(steps) == 1:  # the common case of a run's summary metrics
                cur = latest.get(key)
                if cur is None or (steps[0], timestamps[0]) >= cur[:2]:
                    latest[key] = (steps[0], timestamps[0], columns["value"][0])
                continue
            # highest step wins, then the newest timestamp, then the later point
            top = max(steps)
            at_top = [i for i, step in enumerate(steps) if step == top]
            newest = max(timestamps[i] for i in at_top)
            last = next(i for i in reversed(at_top) if timestamps[i] == newest)
            cur = latest.get(key)
            if cur is None or (top, newest) >= cur[:2]:
                latest[key] = (top, newest, columns["value"][last])
        for key, value in entry.get("p", ()):
            self.params[key] = value
        for key, value in entry.get("t", ()):
            self.tags[key] = value
        for key in entry.get("dt", ()):
            self.tags.pop(key, None)


def metric_columns(metrics: Sequence[Metric]) -> dict[str, dict[str, list]]:
    """``{key: {"value": [...], "step": [...], "timestamp": [...]}}`` in logging order."""
    by_key: dict[str, list[Metric]] = {}
    for m in metrics:
        points = by_key.get(m.key)
        if points is None:
            by_key[m.key] = points = []
        points.append(m)
    return {
        key: {
            "value": [float(m.value) for m in points],
            "step": [m.step for m in points],
            "timestamp": [m.timestamp for m in points],
        }
        for key, points in by_key.items()
    }


def in_order(steps: list[int], timestamps: list[int], distinct: bool | None = None) -> bool:
    """True when the points are already ordered by (step, timestamp); cheap for the
    usual case of strictly increasing steps. ``distinct``: whether no step repeats,
    if the caller knows."""
    if distinct is None:
        distinct = len(set(steps)) == len(steps)
    return steps == sorted(steps) and (distinct or all(a <= b for a, b in pairwise(timestamps)))


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


def parse_lines(data: bytes) -> Iterator[dict]:
    """The entries of complete lines; an unparseable line (the torn tail of a
    killed writer, later followed by a newline) is skipped."""
    for line in data.splitlines():
        if line:
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
    values: list[float] = []
    steps: list[int] = []
    timestamps: list[int] = []
    for entry in parse_lines(b"\n".join(x for x in data.split(b"\n") if needle in x)):
        columns = entry.get("m", {}).get(key)
        if columns is not None:
            values += columns["value"]
            steps += columns["step"]
            timestamps += columns["timestamp"]
    distinct = len(set(steps)) == len(steps)  # then no point can repeat another
    if not distinct and len(set(zip(steps, timestamps))) < len(steps):
        values, steps, timestamps = _without_repeats(values, steps, timestamps)
    with gc_paused():
        points = list(map(Metric, repeat(key), values, timestamps, steps))
    if not in_order(steps, timestamps, distinct):
        points.sort(key=attrgetter("step", "timestamp"))  # stable: logging order on ties
    return points


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


class RunLogFiles:
    """The ``log.jsonl`` files as one store object sees them: appends, and reads
    that pick up where the last one stopped (a run is never parsed twice)."""

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

    def append(self, run_dir: str | Path, entry: dict) -> None:
        """Append ``entry`` to the run's log as one line in one ``write()``."""
        path = os.path.join(run_dir, "log.jsonl")
        written, size, inode = self._write_line(path, entry)
        # Fold our own line into the cached state unless another process
        # appended meanwhile (then the next read picks both up from the file).
        state = self._logs.get(path)
        if state is None or size != state.offset + written:
            return
        if inode == state.inode or state.offset == 0:
            state.inode = inode
            state.apply(entry)
            state.offset = size

    def _write_line(self, path: str, entry: dict) -> tuple[int, int, int]:
        """Returns (bytes written, file size and inode right after) so the caller
        can tell whether the line is the only thing appended since it last read."""
        data = (json.dumps(entry, **_COMPACT) + "\n").encode()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # A writer killed mid-line (in any process, at any time since our
            # last append) leaves a torn tail: end it so that ours parses.
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            written = os.write(fd, data)  # an error here wrote nothing
            if written != len(data):  # a full disk took part of the line
                self._take_back(fd, path, data[:written])
                raise OSError(errno.ENOSPC, f"short write to {path} ({written} bytes)")
            if self.fsync:
                os.fsync(fd)
            st = os.fstat(fd)
            return len(data), st.st_size, st.st_ino
        finally:
            os.close(fd)

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
