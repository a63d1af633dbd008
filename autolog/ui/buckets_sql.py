"""Metric buckets computed by the SQL database: a million points never leave it.

The same answer as :func:`autolog.ui.buckets.bucket_runs` over the points of
the SQL store's history (SQLite: ``metric_blocks``, schema v5; PostgreSQL:
``metrics``).

SQLite, step axis (the common chart), from the store's metric summaries
(schema v4, :mod:`autolog.tracking.stores.sql_summaries`: per block of 256
steps its counts, finite min/max and each step's last value) where they hold
the range, else from the points of the history blocks that meet it
(:mod:`autolog.tracking.stores.sql_blocks`):

- per run: the x range and how many points are in view, from the blocks'
  rows (a block that the view cuts by its steps): at most ``width`` points
  are sent point by point; up to a few widths' worth are read and bucketed
  in Python;
- a band (one run's chart): the summary rows in range, a block inside a
  bucket by its counts, a block cut by a bucket edge by its steps' values
  (``read_bands``; a cut block holding a step logged twice, or an
  unsummarised block, by its points, read from its history blocks);
- an overlay (several runs' lines): each bucket's last point, from the
  summaries' per-step values (``read_curve``; an unsummarised block's from
  its points); nothing else is read, so ``n`` is not counted.

Where no summary is kept (points written around the store) or ``SUMMARIES``
is off, the points in view are bucketed in Python.

SQLite, time axis: the points are read in history order and bucketed in Python.
PostgreSQL: three aggregate queries per metric for all runs at once (``GROUP
BY`` the bucket), which its hash aggregate does well.

Answers for finished runs are kept (a few hundred, least recently used
dropped), with their JSON, and served again while the runs' status and
latest point of the key stay the same.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from autolog.tracking.stores import sql_blocks
from autolog.tracking.stores.sql_schema import metrics
from autolog.tracking.stores.sql_summaries import read_bands, read_curve
from autolog.ui.bucketing import (
    JsonBody,
    bucket_runs,
    bucketed,
    finite_or_none,
    series_answer,
    shared_edges,
    wire_items,
)

__all__ = ["sql_series", "sql_series_body", "sql_series_json"]

_IN_CHUNK = 900  # stay below SQLite's bound-parameter limit
_BIG = 1.7976931348623157e308  # the largest finite float
_TERMINATED = ("FINISHED", "FAILED", "KILLED")
_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1
#: up to this many widths of points, reading them beats a statement per bucket
PYTHON_BANDS = 12
PYTHON_LINES = 2  # a line costs one seek per bucket, a read point about half a seek
#: bands and overlay lines from the store's summaries (sql_summaries) where they cover the range
SUMMARIES = True


def sql_series(
    store: Any,
    run_ids: Sequence[str],
    key: str,
    width: int,
    x_axis: str,
    lo: float | None,
    hi: float | None,
    band: bool = True,
) -> dict[str, dict[str, Any]]:
    """run id -> the bucket_runs answer for ``key`` (runs without it: ``n`` 0)."""
    return _entry(store, run_ids, key, width, x_axis, lo, hi, band).answer


def sql_series_json(
    store: Any,
    run_ids: Sequence[str],
    key: str,
    width: int,
    x_axis: str,
    lo: float | None,
    hi: float | None,
    band: bool = True,
    f64: bool = False,
) -> str:
    """The same answer as the JSON of ``[{"run", "key", ...}, ...]`` items
    (without the brackets; ``f64``: the UI's compact encoding, see
    :func:`wire_items`), encoded once per kept answer."""
    entry = _entry(store, run_ids, key, width, x_axis, lo, hi, band)
    if f64 not in entry.json:
        items = wire_items(((r, key, entry.answer[r]) for r in dict.fromkeys(run_ids)), f64)
        text = json.dumps(items, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        entry.json[f64] = text[1:-1]
    return entry.json[f64]


def sql_series_body(
    store: Any,
    run_ids: Sequence[str],
    key: str,
    width: int,
    x_axis: str,
    lo: float | None,
    hi: float | None,
    band: bool = True,
    f64: bool = False,
) -> JsonBody:
    """``{"series": [...]}`` of one key, kept with its answer."""
    entry = _entry(store, run_ids, key, width, x_axis, lo, hi, band)
    if f64 not in entry.body:
        text = sql_series_json(store, run_ids, key, width, x_axis, lo, hi, band, f64)
        entry.body[f64] = JsonBody(('{"series":[' + text + "]}").encode(), not f64)
    return entry.body[f64]


def _entry(store, run_ids, key, width, x_axis, lo, hi, band) -> _Entry:
    ids = list(dict.fromkeys(run_ids))
    if store.dialect != "sqlite":
        work = _pg_work(ids, key, width, x_axis, lo, hi, band)
    elif x_axis == "step":
        work = _sqlite_steps(ids, key, width, lo, hi, band)
    else:
        work = _sqlite_points(ids, key, width, lo, hi, band)
    return _cached(store, ids, key, (width, x_axis, lo, hi, band), work)


# -- SQLite ---------------------------------------------------------------------------


def _bounds(lo: float | None, hi: float | None) -> tuple[int, int]:
    """The integer steps of ``[lo, hi]`` (steps are integers)."""
    low = _STEP_MIN if lo is None else max(_STEP_MIN, min(_STEP_MAX, math.ceil(lo)))
    high = _STEP_MAX if hi is None else max(_STEP_MIN, min(_STEP_MAX, math.floor(hi)))
    return low, high


def _points(cursor, run_id: str, key: str, first: int, last: int) -> list[tuple]:
    """``(step, timestamp, value)`` of the points in ``[first, last]``, in history order."""
    steps, times, values = sql_blocks.series(cursor, run_id, key, first, last)
    return list(zip(steps, times, values))


def _sqlite_steps(run_ids, key, width, lo, hi, band):
    low, high = _bounds(lo, hi)
    python = (PYTHON_BANDS if band else PYTHON_LINES) * width

    def work(conn: sa.Connection) -> dict[str, dict[str, Any]]:
        summaries = SUMMARIES
        cursor = conn.connection.driver_connection.cursor()
        try:
            views, curves = {}, {}
            for run_id in run_ids:
                if summaries and not band and lo is None and hi is None:
                    curve = read_curve(cursor, run_id, key, _STEP_MIN, _STEP_MAX)
                    if curve is not None and curve.segments:  # none: the blocks say why
                        first, last = curve.first, curve.last
                        views[run_id] = ((first, last), first, last, curve.n)
                        curves[run_id] = curve
                        continue
                full = sql_blocks.extent(cursor, run_id, key)
                if full[0] is None:
                    views[run_id] = (None, None, None, 0)  # no such metric
                    continue
                if lo is None and hi is None:
                    first, last, n = sql_blocks.count(cursor, run_id, key, *full)
                else:
                    first, last, n = sql_blocks.count(cursor, run_id, key, low, high)
                views[run_id] = (full, first, last, n)
            edges = shared_edges([(v[1], v[2]) for v in views.values() if v[3] > width])
            out: dict[str, dict[str, Any]] = {}
            ranges: dict[tuple[int, int], tuple[list, dict]] = {}  # and their memo
            for run_id, (full, first, last, n) in views.items():
                if n <= width or n <= python:
                    points = _points(cursor, run_id, key, first, last) if n else []
                    answer = bucketed(points, width, 0, edges) if n else _empty()
                    if not band and not answer["exact"]:
                        answer["min"] = answer["max"] = None
                elif band:
                    spans = _ranges(first, last, edges, width)
                    got = read_bands(cursor, run_id, key, spans) if summaries else None
                    if got is None:  # none kept there: from the points
                        answer = _bands(cursor, run_id, key, width, first, last, edges)
                    else:
                        answer = series_answer(*got[:2], False, *got[2:])
                else:
                    curve = curves.get(run_id)
                    if curve is None and summaries:
                        curve = read_curve(cursor, run_id, key, first, last)
                    if curve is not None:
                        if (first, last) not in ranges:  # runs of one length share them
                            ranges[first, last] = (_ranges(first, last, edges, width), {})
                        xs, lasts = curve.lasts(*ranges[first, last])
                    else:  # none kept there: from the points
                        whole = bucketed(_points(cursor, run_id, key, first, last), width, 0, edges)
                        xs, lasts = whole["x"], whole["last"]
                    answer = series_answer(None, None, False, xs, lasts, None, None)
                answer["range"] = full
                out[run_id] = answer
            return out
        finally:
            cursor.close()

    return work


def _empty() -> dict[str, Any]:
    return series_answer(0, 0, True, [], [], [], [])


def _ranges(first: int, last: int, edges: tuple[int, int], width: int) -> list[tuple[int, int]]:
    """The step ranges [lo, hi) of the buckets that this run's [first, last]
    meets: bucket i of the shared edges starts at start + ceil(i * span / width)."""
    start, span = edges[0], (edges[1] - edges[0]) or 1
    top = width - 1
    i0, i1 = (min((x - start) * width // span, top) for x in (first, last))
    bounds = [start + (i * span + width - 1) // width for i in range(i0, i1 + 1)]
    bounds.append(edges[1] + 1 if i1 == top else start + ((i1 + 1) * span + width - 1) // width)
    return [(lo, hi) for lo, hi in itertools.pairwise(bounds) if lo < hi]


def _bands(cursor, run_id, key, width, first, last, edges) -> dict[str, Any]:
    """A band where the summaries do not hold it: the points in view, bucketed here."""
    return bucketed(_points(cursor, run_id, key, first, last), width, 0, edges)


def _lines(cursor, run_id, key, width, first, last, edges) -> dict[str, Any]:
    """Each bucket's last point where the summaries do not hold them: from the
    points in view."""
    whole = bucketed(_points(cursor, run_id, key, first, last), width, 0, edges)
    return series_answer(None, None, False, whole["x"], whole["last"], None, None)


def _sqlite_points(run_ids, key, width, lo, hi, band):
    """The time axis: the points in history order, bucketed here."""

    def work(conn: sa.Connection) -> dict[str, dict[str, Any]]:
        cursor = conn.connection.driver_connection.cursor()
        try:
            points = {r: _points(cursor, r, key, _STEP_MIN, _STEP_MAX) for r in run_ids}
        finally:
            cursor.close()
        return bucket_runs(points, width, "time", lo, hi, band)

    return work


# -- PostgreSQL ---------------------------------------------------------------------


def _pg_work(run_ids, key, width, x_axis, lo, hi, band):
    m = metrics.c
    x = m.step if x_axis == "step" else m.timestamp

    def of(runs: list[str], *columns: Any, zoomed: bool = True) -> Any:
        query = sa.select(*columns).where(m.key == key, m.run_id.in_(runs))
        if zoomed and lo is not None:
            query = query.where(x >= lo)
        if zoomed and hi is not None:
            query = query.where(x <= hi)
        return query

    def work(conn: sa.Connection) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}  # one read: the same snapshot as the stamp
        for at in range(0, len(run_ids), _IN_CHUNK):
            chunk = run_ids[at : at + _IN_CHUNK]
            stmt = of(chunk, m.run_id, sa.func.min(x), sa.func.max(x), sa.func.count())
            ranges = {r: (a, b, n) for r, a, b, n in conn.execute(stmt.group_by(m.run_id))}
            if lo is None and hi is None:  # the range in view is the whole range
                full = {r: (a, b) for r, (a, b, _) in ranges.items()}
            else:
                stmt = of(chunk, m.run_id, sa.func.min(x), sa.func.max(x), zoomed=False)
                full = {r: (a, b) for r, a, b in conn.execute(stmt.group_by(m.run_id))}
            exact = [r for r in chunk if ranges.get(r, (0, 0, 0))[2] <= width]
            many = [r for r in chunk if r not in set(exact)]
            out.update(_exact(conn, of, x, exact, ranges))
            out.update(_bucketed(conn, of, x, width, many, ranges))
            for run_id in chunk:
                out[run_id]["range"] = full.get(run_id)
                if not band and not out[run_id]["exact"]:
                    out[run_id]["min"] = out[run_id]["max"] = None
        return out

    return work


def _exact(conn, of, x, runs: list[str], ranges) -> dict[str, dict[str, Any]]:
    m = metrics.c
    points: dict[str, tuple[list, list]] = {r: ([], []) for r in runs}
    wanted = [r for r in runs if ranges.get(r, (0, 0, 0))[2]]
    if wanted:
        stmt = of(wanted, m.run_id, x, m.value).order_by(m.run_id, x, m.step, m.timestamp, m.seq)
        for run_id, px, value in conn.execute(stmt):
            xs, values = points[run_id]
            xs.append(px)
            values.append(finite_or_none(value))
    return {
        r: series_answer(len(xs), sum(v is None for v in vs), True, xs, vs, vs, vs)
        for r, (xs, vs) in points.items()
    }


def _bucketed(conn, of, x, width: int, runs: list[str], ranges) -> dict[str, dict[str, Any]]:
    if not runs:
        return {}
    m = metrics.c
    first = min(ranges[r][0] for r in runs)
    span = (max(ranges[r][1] for r in runs) - first) or 1
    # integer floor division: the bucket of bucket_points, on SQLite and PostgreSQL alike
    bucket = sa.func.least((x - first) * width // span, width - 1).label("b")
    finite = sa.case((m.value.between(-_BIG, _BIG), m.value))  # NULL for NaN and +-inf
    stmt = of(
        runs,
        m.run_id,
        bucket,
        sa.func.min(finite),
        sa.func.max(finite),
        sa.func.max(x),
        sa.func.count() - sa.func.count(finite),
    )
    rows: dict[str, list] = {r: [] for r in runs}
    for row in conn.execute(stmt.group_by(m.run_id, sa.text("b")).order_by(m.run_id, sa.text("b"))):
        rows[row[0]].append(row)
    ends = sorted({row[4] for found in rows.values() for row in found})
    lasts: dict[tuple[str, int], float | None] = {}
    groups = [runs] if len(ends) <= 4 * width else [[r] for r in runs]  # unaligned: per run
    for group in groups:
        mine = ends if len(groups) == 1 else [row[4] for row in rows[group[0]]]
        for at in range(0, len(mine), _IN_CHUNK):
            stmt = (
                of(group, m.run_id, x, m.value)
                .where(x.in_(mine[at : at + _IN_CHUNK]))
                .order_by(m.run_id, x, m.step, m.timestamp, m.seq)
            )
            for run_id, px, value in conn.execute(stmt):
                lasts[(run_id, px)] = value  # the last row per x wins
    out = {}
    for run_id, found in rows.items():
        xs = [row[4] for row in found]
        out[run_id] = series_answer(
            ranges[run_id][2],
            sum(row[5] for row in found),
            False,
            xs,
            [finite_or_none(lasts.get((run_id, e))) for e in xs],
            [finite_or_none(row[2]) for row in found],
            [finite_or_none(row[3]) for row in found],
        )
    return out


# -- kept answers -------------------------------------------------------------------


class _Entry:
    """One answer, its JSON once encoded (by f64 or not), and the state of the
    runs it was read at."""

    __slots__ = ("answer", "body", "json", "stamp")

    def __init__(self, stamp: tuple, answer: dict) -> None:
        self.stamp, self.answer = stamp, answer
        self.json: dict[bool, str] = {}
        self.body: dict[bool, JsonBody] = {}


#: answers for finished runs, by request; checked against the runs' status and
#: latest point of the key, so a run that changes is read again
_CACHE: OrderedDict[tuple, _Entry] = OrderedDict()
_CACHE_SIZE = 256
_CACHE_LOCK = threading.Lock()


def _cached(store: Any, ids: list[str], key: str, view: tuple, work: Any) -> _Entry:
    from autolog.tracking.stores.sql_schema import latest_metrics, runs

    def stamp(conn: sa.Connection) -> tuple:
        lm = latest_metrics.c
        state: dict[str, list] = {r: [None, None] for r in ids}
        for at in range(0, len(ids), _IN_CHUNK):
            chunk = ids[at : at + _IN_CHUNK]
            query = sa.select(runs.c.run_id, runs.c.status, runs.c.end_time)
            for run_id, status, end in conn.execute(query.where(runs.c.run_id.in_(chunk))):
                state[run_id][0] = (status, end)
            query = sa.select(lm.run_id, lm.step, lm.timestamp, lm.value)
            query = query.where(lm.key == key, lm.run_id.in_(chunk))
            for run_id, *point in conn.execute(query):
                state[run_id][1] = tuple(point)
        return tuple((r, *state[r]) for r in ids)

    def read(conn: sa.Connection) -> tuple[tuple, dict]:
        return stamp(conn), work(conn)

    request = (store.uri, tuple(ids), key, view)
    with _CACHE_LOCK:
        hit = _CACHE.get(request)
    if hit is not None:
        now = store._read(stamp)
        if now == hit.stamp:
            with _CACHE_LOCK:
                _CACHE.move_to_end(request)
            return hit
    now, answer = store._read(read)
    entry = _Entry(now, answer)
    if all(s[1] is not None and s[1][0] in _TERMINATED for s in now):
        with _CACHE_LOCK:
            _CACHE[request] = entry
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return entry
