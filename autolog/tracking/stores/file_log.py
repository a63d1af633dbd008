"""The append-only ``log.jsonl`` of a file-store run: its line format and its reader.

One line per ``log_batch``; metrics as per-key columns (see ``file.py`` for the
layout). Kept apart from the store so the format is read in one place.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise

from autolog.tracking.entities import Metric

__all__ = ["RunLog", "gc_paused", "in_order", "metric_columns", "parse_lines"]


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


def in_order(steps: list[int], timestamps: list[int]) -> bool:
    """True when the points are already ordered by (step, timestamp); cheap for the
    usual case of strictly increasing steps."""
    return steps == sorted(steps) and (
        len(set(steps)) == len(steps) or all(a <= b for a, b in pairwise(timestamps))
    )


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
