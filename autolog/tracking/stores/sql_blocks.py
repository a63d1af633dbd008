"""SQLite's metric history as blocks (schema v5): the points of one write per
run and key in one row.

A row of ``metric_blocks`` holds up to ``BLOCK_POINTS`` points of one run and
key, in logging order: ``n``, their lowest and highest step and timestamp,
whether they are already in history order (``ordered``: (step, timestamp)
never decreasing), and three packed little-endian columns: ``steps`` and ``timestamps`` int64,
``vals`` float64 (NaN and +-inf as they are: no NULL stands for NaN here);
``steps`` is empty when the points are every step from ``min_step`` to
``max_step`` once, ``timestamps`` when they share one (``min_ts``).
``seq`` (the rowid) is the logging order of the blocks; a point's place in
the logging order is (its block's ``seq``, its index in the block). One row
per point cost a table row and an index entry per point (~5 us a point to
write); a block costs one row per write.

History order is (step, timestamp, logging order). Blocks of one series
whose step ranges do not meet (the usual case: steps that grow) are that
order once sorted by ``min_step``; blocks whose ranges meet form a cluster,
which is that order too when its blocks chain (each one's last point before
the next one's first: one step logged at times that go on, step 0 every
time say), else its points are sorted together. ``ix_metric_blocks_range
(run_id, key, max_step, min_step)`` finds the blocks that meet a step range
(``max_step >= lo AND min_step <= hi``), so a range of a long history reads
the blocks in it.

An identical point (same run, key, step, timestamp and value; NaN equal to
NaN, 0.0 to -0.0, as the unique index of the row layout compared them) is
stored once: ``write`` drops the points of a write that are already stored
or repeated in the write, and returns the points it stored (the UI's
summaries count those, ``sql_summaries``). Only a block that meets both the
write's step range and its time range can hold one of its points: a write
above every stored step (one seek in ``ix_metric_blocks_range``) or after
every stored timestamp (one seek in ``ix_metric_blocks_time (run_id, key,
max_ts, min_ts, ...)``) reads no block; a retried one reads the blocks that
meet it.

PostgreSQL keeps one row per point (``sql_schema.metrics``): this module is
SQLite's only.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from itertools import islice
from operator import itemgetter, le, lt
from typing import Any

__all__ = [
    "BLOCK_POINTS",
    "DDL",
    "convert_rows",
    "count",
    "create",
    "extent",
    "logged",
    "pack",
    "page",
    "points_of_all",
    "series",
    "unpack",
    "write",
]

#: the most points one row holds
BLOCK_POINTS = 4096
_SWAP = sys.byteorder == "big"  # the blobs are little-endian
_NAN = math.nan
_CONTIGUOUS = b""  # the steps blob of a block holding every step from min to max, once
_CONSTANT = b""  # the timestamps blob of a block whose points share one timestamp
_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1

DDL = (
    "CREATE TABLE metric_blocks ("
    " seq INTEGER PRIMARY KEY,"
    " run_id VARCHAR(32) NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,"
    " key VARCHAR(250) NOT NULL,"
    " n INTEGER NOT NULL, min_step BIGINT NOT NULL, max_step BIGINT NOT NULL,"
    " min_ts BIGINT NOT NULL, max_ts BIGINT NOT NULL, ordered BOOLEAN NOT NULL,"
    " steps BLOB NOT NULL, timestamps BLOB NOT NULL, vals BLOB NOT NULL)",
    "CREATE INDEX ix_metric_blocks_range ON metric_blocks (run_id, key, max_step, min_step)",
    "CREATE INDEX ix_metric_blocks_time"
    " ON metric_blocks (run_id, key, max_ts, min_ts, max_step, min_step)",
)
_INSERT = (
    "INSERT INTO metric_blocks (run_id, key, n, min_step, max_step, min_ts, max_ts, ordered,"
    " steps, timestamps, vals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "seq, min_step, max_step, ordered, steps, timestamps, vals, min_ts"
# the reads by step range: the range index (either index serves a whole series)
_BY_STEP = "FROM metric_blocks INDEXED BY ix_metric_blocks_range WHERE run_id = ? AND key = ?"
_ALL = f"SELECT {_COLUMNS} {_BY_STEP}"
_MEETING = f"{_ALL} AND max_step >= ? AND min_step <= ?"
# a write's lookups: any block reaching its lowest step (none: steps that grow),
# any reaching its earliest timestamp (none: time that goes on, whatever the
# steps, step 0 every time included), else the blocks meeting both its ranges
_ABOVE_STEP = (
    "SELECT 1 FROM metric_blocks INDEXED BY ix_metric_blocks_range"
    " WHERE run_id = ? AND key = ? AND max_step >= ? LIMIT 1"
)
_AFTER_TIME = (
    "SELECT 1 FROM metric_blocks INDEXED BY ix_metric_blocks_time"
    " WHERE run_id = ? AND key = ? AND max_ts >= ? LIMIT 1"
)
_STORED = (
    "SELECT min_step, max_step, min_ts, steps, timestamps, vals"
    " FROM metric_blocks INDEXED BY ix_metric_blocks_time"
    " WHERE run_id = ? AND key = ? AND max_ts >= ? AND min_ts <= ?"
    " AND max_step >= ? AND min_step <= ?"
)
_EXTENT = f"SELECT min(min_step), max(max_step) {_BY_STEP}"
_COUNTED = f"SELECT seq, min_step, max_step, n {_BY_STEP}"
_COUNTS = f"SELECT min_step, max_step, n, steps {_BY_STEP} AND max_step >= ? AND min_step <= ?"
_SERIES = "SELECT DISTINCT run_id, key FROM metric_blocks ORDER BY run_id, key"

# a MetricRow (sql_write): (run_id, key, value or None for NaN, is_nan, step, timestamp)
_SERIES_OF = itemgetter(0, 1)
_VALUE, _STEP, _TIME = itemgetter(2), itemgetter(4), itemgetter(5)
_IDENTITY = itemgetter(4, 5, 2)  # NaN's None equals None


def create(conn: Any) -> None:
    """The table and its indexes (an SQLAlchemy connection in the migration)."""
    for statement in DDL:
        conn.exec_driver_sql(statement)


def pack(code: str, values: Iterable) -> bytes:
    """``values`` as a little-endian array of ``code`` (``array`` type codes)."""
    packed = array(code, values)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def unpack(code: str, blob: bytes) -> array:
    """The array of ``code`` that :func:`pack` made ``blob`` of."""
    out = array(code)
    out.frombytes(blob)
    if _SWAP:
        out.byteswap()
    return out


def _ordered(steps: list[int], times: list[int]) -> bool:
    """Whether (step, timestamp) never decreases along the points."""
    if all(map(lt, steps, islice(steps, 1, None))):
        return True
    if not all(map(le, steps, islice(steps, 1, None))):
        return False
    return all(map(le, zip(steps, times), islice(zip(steps, times), 1, None)))


def _block_rows(run_id: str, key: str, points: list[tuple]) -> Iterator[tuple]:
    """The rows of ``points`` (MetricRows of one series, logging order)."""
    for at in range(0, len(points), BLOCK_POINTS):
        part = points[at : at + BLOCK_POINTS] if len(points) > BLOCK_POINTS else points
        steps = list(map(_STEP, part))
        times = list(map(_TIME, part))
        values = list(map(_VALUE, part))
        if None in values:
            values = [_NAN if v is None else v for v in values]
        low, high, n = steps[0], steps[-1], len(steps)
        early, late = min(times), max(times)
        if high - low == n - 1 and all(map(lt, steps, islice(steps, 1, None))):
            ordered, packed = True, _CONTIGUOUS  # every step from low to high, once
        else:
            low, high = min(steps), max(steps)
            ordered, packed = _ordered(steps, times), pack("q", steps)
        yield (
            run_id,
            key,
            n,
            low,
            high,
            early,
            late,
            ordered,
            packed,
            _CONSTANT if early == late else pack("q", times),
            pack("d", values),
        )


def _times(blob: bytes, early: int, n: int) -> array:
    """A block's ``n`` timestamps: its ``timestamps`` blob, or ``early`` n times."""
    return array("q", (early,)) * n if blob == _CONSTANT else unpack("q", blob)


def _time_bytes(row: tuple) -> bytes:
    """The timestamps of a block row (``_COLUMNS``) as packed bytes."""
    return row[5] or pack("q", (row[7],)) * (len(row[6]) // 8)


def _steps(low: int, high: int, blob: bytes) -> range | array:
    """A block's steps: its ``steps`` blob, or every step from low to high."""
    return range(low, high + 1) if blob == _CONTIGUOUS else unpack("q", blob)


def write(cursor: Any, history: list[tuple]) -> dict[tuple[str, str], list[tuple]]:
    """Store ``history`` (``sql_write.MetricRow``s in logging order) as blocks,
    one or more per run and key, less its points already stored or repeated;
    the points stored, by (run_id, key) (logging order)."""
    if not history:
        return {}
    first = history[0][:2]
    if history[-1][:2] == first and list(map(_SERIES_OF, history)).count(first) == len(history):
        groups = {first: history}
    else:
        groups = {}
        for row in history:
            groups.setdefault(row[:2], []).append(row)
    stored: dict[tuple[str, str], list[tuple]] = {}
    out: list[tuple] = []
    for (run_id, key), points in groups.items():
        points = _new_points(cursor, run_id, key, points)
        if points:
            out.extend(_block_rows(run_id, key, points))
            stored[run_id, key] = points
    if out:
        cursor.executemany(_INSERT, out)
    return stored


def _new_points(cursor: Any, run_id: str, key: str, points: list[tuple]) -> list[tuple]:
    """``points`` less those already stored or repeated among them."""
    steps = list(map(_STEP, points))
    increasing = all(map(lt, steps, islice(steps, 1, None)))
    low, high = (steps[0], steps[-1]) if increasing else (min(steps), max(steps))
    seen: set[tuple] = set()
    if cursor.execute(_ABOVE_STEP, (run_id, key, low)).fetchone() is None:
        stored = []
    else:
        times = list(map(_TIME, points))
        early, late = min(times), max(times)
        if cursor.execute(_AFTER_TIME, (run_id, key, early)).fetchone() is None:
            stored = []
        else:
            meeting = (run_id, key, early, late, low, high)
            stored = cursor.execute(_STORED, meeting).fetchall()
    for low_step, high_step, early, s_blob, t_blob, v_blob in stored:
        values = unpack("d", v_blob).tolist()
        if any(v != v for v in values):
            values = [None if v != v else v for v in values]
        block_steps = list(_steps(low_step, high_step, s_blob))
        block_times = _times(t_blob, early, len(values)).tolist()
        seen.update(zip(block_steps, block_times, values))
    if increasing and not seen:
        return points  # the usual write: steps above every stored one
    kept = []
    for point in points:
        identity = _IDENTITY(point)
        if identity not in seen:
            seen.add(identity)
            kept.append(point)
    return kept


def convert_rows(conn: Any, rows: Iterator[tuple]) -> None:
    """Write ``rows`` (MetricRows, grouped by series, in logging order within
    one) as blocks, without looking for stored points: the v5 migration."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        out: list[tuple] = []
        series: tuple | None = None
        points: list[tuple] = []
        for row in rows:
            if row[:2] != series or len(points) == BLOCK_POINTS:
                if points:
                    out.extend(_block_rows(*series, points))  # type: ignore[misc]
                series, points = row[:2], []
                if len(out) >= 64:
                    cursor.executemany(_INSERT, out)
                    out.clear()
            points.append(row)
        if points:
            out.extend(_block_rows(*series, points))  # type: ignore[misc]
        if out:
            cursor.executemany(_INSERT, out)
    finally:
        cursor.close()


# -- reading ------------------------------------------------------------------------


def _clusters(rows: list[tuple]) -> Iterator[list[tuple]]:
    """Block rows (``_COLUMNS``) sorted by (min_step, seq), in runs whose step
    ranges meet (each run: a contiguous part of the history order)."""
    rows.sort(key=itemgetter(1, 0))
    cluster: list[tuple] = []
    top = None
    for row in rows:
        if cluster and row[1] > top:  # type: ignore[operator]
            yield cluster
            cluster = []
        if not cluster or row[2] > top:  # type: ignore[operator]
            top = row[2]
        cluster.append(row)
    if cluster:
        yield cluster


def _first_time(row: tuple) -> int:
    return row[7] if row[5] == _CONSTANT else unpack("q", row[5][:8])[0]


def _last_time(row: tuple) -> int:
    return row[7] if row[5] == _CONSTANT else unpack("q", row[5][-8:])[0]


def _chain(cluster: list[tuple]) -> list[tuple] | None:
    """The cluster's blocks in an order whose concatenation is history order,
    if there is one: each block ordered, and each one's last point before the
    next one's first (step, timestamp, then the blocks' logging order), as
    when one step (step 0 every time, say) is logged at times that go on.
    None: the points must be sorted together."""
    if len(cluster) == 1:
        return cluster if cluster[0][3] else None
    if not all(row[3] for row in cluster):
        return None
    firsts = {row[0]: (row[1], _first_time(row), row[0]) for row in cluster}
    chain = sorted(cluster, key=lambda row: firsts[row[0]])
    for before, after in zip(chain, islice(chain, 1, None)):
        if (before[2], _last_time(before), before[0]) >= firsts[after[0]]:
            return None
    return chain


def series(
    cursor: Any, run_id: str, key: str, lo: int | None = None, hi: int | None = None
) -> tuple[list[int], array, array]:
    """The steps (a list), timestamps and values (arrays) of ``run_id``'s ``key`` with
    ``lo <= step <= hi`` (None: unbounded), in history order (step,
    timestamp, logging order). ``cursor``: SQLite's DB-API connection or cursor."""
    if lo is None and hi is None:
        rows = cursor.execute(_ALL, (run_id, key)).fetchall()
        lo, hi = _STEP_MIN, _STEP_MAX
    else:
        lo = _STEP_MIN if lo is None else lo
        hi = _STEP_MAX if hi is None else hi
        rows = cursor.execute(_MEETING, (run_id, key, lo, hi)).fetchall()
    return _columns(rows, lo, hi)


def page(
    cursor: Any, run_id: str, key: str, offset: int, limit: int
) -> tuple[list[int], array, array, int]:
    """Points ``offset`` to ``offset + limit`` of the history of ``run_id``'s
    ``key`` (``series``' order) and the number of points in all: the blocks'
    counts place the page, and only the clusters of blocks it meets are read
    (a page of a long history costs what its points cost, not the history's)."""
    meta = cursor.execute(_COUNTED, (run_id, key)).fetchall()  # (seq, min, max, n)
    total = sum(row[3] for row in meta)
    wanted: list[int] = []
    at = skip = 0
    for cluster in _clusters(meta):
        size = sum(row[3] for row in cluster)
        if at + size > offset and at < offset + limit:
            if not wanted:
                skip = offset - at
            wanted.extend(row[0] for row in cluster)
        at += size
    rows: list[tuple] = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        sql = f"SELECT {_COLUMNS} FROM metric_blocks WHERE seq IN ({', '.join('?' * len(chunk))})"
        rows.extend(cursor.execute(sql, chunk).fetchall())
    steps, times, values = _columns(rows, _STEP_MIN, _STEP_MAX)
    end = skip + max(0, limit)
    return steps[skip:end], times[skip:end], values[skip:end], total


def _columns(rows: list[tuple], lo: int, hi: int) -> tuple[list[int], array, array]:
    """The points of block ``rows`` (``_COLUMNS``) with ``lo <= step <= hi``,
    in history order."""
    steps: list[int] = []
    times, values = array("q"), array("d")
    whole: list[tuple] = []  # ordered blocks inside [lo, hi], in a row: joined at once

    def flush() -> None:
        if whole:
            start = stop = None  # a run of contiguous blocks' steps: one range
            for row in whole:
                if row[4] == _CONTIGUOUS:
                    if start is not None and row[1] == stop:
                        stop = row[2] + 1
                        continue
                    if start is not None:
                        steps.extend(range(start, stop))
                    start, stop = row[1], row[2] + 1
                    continue
                if start is not None:
                    steps.extend(range(start, stop))
                    start = None
                steps.extend(unpack("q", row[4]))
            if start is not None:
                steps.extend(range(start, stop))
            for out, at in ((times, 5), (values, 6)):
                part = b"".join(_time_bytes(r) if at == 5 else r[at] for r in whole)
                if _SWAP:
                    out.extend(unpack(out.typecode, part))
                else:
                    out.frombytes(part)
            whole.clear()

    for cluster in _clusters(rows):
        chain = _chain(cluster)
        if chain is not None:
            for row in chain:
                if lo <= row[1] and row[2] <= hi:
                    whole.append(row)
                    continue
                flush()
                s = _steps(row[1], row[2], row[4])
                i, j = bisect_left(s, lo), bisect_right(s, hi)
                steps.extend(s[i:j])
                times.extend(_times(row[5], row[7], len(s))[i:j])
                values.extend(unpack("d", row[6])[i:j])
            continue
        flush()
        points = []
        for seq, low, high, _ordered, s_blob, t_blob, v_blob, early in cluster:
            s = _steps(low, high, s_blob)
            points.extend(
                zip(
                    s,
                    _times(t_blob, early, len(s)),
                    [seq] * len(s),
                    range(len(s)),
                    unpack("d", v_blob),
                )
            )
        points.sort()  # (step, timestamp, seq, index): unique before the value
        if lo > points[0][0] or hi < points[-1][0]:
            points = [p for p in points if lo <= p[0] <= hi]
        steps.extend(p[0] for p in points)
        times.extend(p[1] for p in points)
        values.extend(p[4] for p in points)
    flush()
    return steps, times, values


def extent(cursor: Any, run_id: str, key: str) -> tuple[int | None, int | None]:
    """The lowest and highest step of ``run_id``'s ``key`` (None, None: no point)."""
    low, high = cursor.execute(_EXTENT, (run_id, key)).fetchone()
    return low, high


def count(
    cursor: Any, run_id: str, key: str, lo: int, hi: int
) -> tuple[int | None, int | None, int]:
    """The first and last step holding a point in ``[lo, hi]``, and the number
    of points there (a block inside the range by its row alone)."""
    first = last = None
    n = 0
    for low, high, size, blob in cursor.execute(_COUNTS, (run_id, key, lo, hi)).fetchall():
        if lo <= low and high <= hi:
            n += size
        else:
            inside = [s for s in _steps(low, high, blob) if lo <= s <= hi]
            if not inside:
                continue
            n += len(inside)
            low, high = min(inside), max(inside)
        first = low if first is None or low < first else first
        last = high if last is None or high > last else last
    return first, last, n


def logged(cursor: Any, run_id: str, key: str | None = None) -> list[tuple[str, int, int, float]]:
    """``(key, step, timestamp, value)`` of ``run_id``'s stored points (of
    ``key`` only, if given) in logging order: what a test or a check compares
    with what was sent."""
    sql = "SELECT key, min_step, max_step, min_ts, steps, timestamps, vals FROM metric_blocks"
    sql += " WHERE run_id = ?"
    args: tuple = (run_id,)
    if key is not None:
        sql, args = f"{sql} AND key = ?", (run_id, key)
    out: list[tuple[str, int, int, float]] = []
    for name, low, high, early, s_blob, t_blob, v_blob in cursor.execute(
        f"{sql} ORDER BY seq", args
    ):
        steps = _steps(low, high, s_blob)
        times = _times(t_blob, early, len(steps))
        out.extend(zip([name] * len(steps), steps, times, unpack("d", v_blob)))
    return out


def points_of_all(conn: Any) -> Iterator[tuple[str, str, int, float]]:
    """``(run_id, key, step, value)`` of every stored point, by run and key,
    each series in history order (``sql_summaries.fill``)."""
    driver = conn.connection.driver_connection
    for run_id, key in driver.execute(_SERIES).fetchall():
        steps, _times, values = series(driver, run_id, key)
        for step, value in zip(steps, values):
            yield run_id, key, step, value
