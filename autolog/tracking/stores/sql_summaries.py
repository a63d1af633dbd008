"""Metric summaries kept by the SQL store at write time (SQLite, schema v4).

One row per run, metric key and block of ``BLOCK`` (2**8) steps holding
points: how many points it has, how many are NaN or +-inf, their finite min
and max, and, per step that holds a point, that step's last point (by
timestamp, then logging order) as float64 (non-finite ones as NaN: a chart
draws them as gaps). The UI's overlay lines need each pixel column's last
point; a column of a 10,000-step curve 590 pixels wide spans ~17 steps, so
its edges never align with blocks, but its last point is the last one at or
below its right edge, which a block's per-step values give at once. A curve
is then a few dozen rows read by one range scan instead of one index seek per
pixel column (``autolog.ui.buckets_sql``). A band (one run's chart: each
column's count, min and max too) takes a block inside a column from its
counts and a block that a column's edge cuts from its steps' values
(``read_bands``): a million points are ~4,000 rows, 8 MB, not 70 MB of index.

The rows are exact: ``record`` runs in ``log_batch``'s transaction, after its
points are inserted (``sql_write.py``). Points that extend a block (every
step above the block's last one: they cannot repeat a stored point, so they
were inserted) are appended; any other write to a block (an earlier step, a
step logged twice, a retried batch) summarises the block again from its
stored points. A block of more than ``CAP`` points (a step logged many
times) is marked unsummarised (``lasts`` NULL) and stays so: readers take the
points there. ``fill`` summarises every stored point (the v4 migration).

Every stored point (``sql_blocks``) is in its block's row; a reader trusts that, so
points written around the store (raw inserts) need ``fill``. PostgreSQL
keeps none: its buckets are one hash aggregate per metric for all runs
(``buckets_sql``), and a summary would add a round trip to each write.

Columns: ``first`` is the offset in the block of its first step holding a
point; ``offsets`` (uint16 little-endian) the offsets of the steps holding
points, NULL when they are every step from ``first`` on (one per value);
``lasts`` float64 little-endian, one per such step.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby, islice
from operator import itemgetter, lt
from typing import Any

from autolog.tracking.stores import sql_blocks
from autolog.tracking.stores.sql_blocks import pack, unpack

__all__ = [
    "BLOCK",
    "CAP",
    "Curve",
    "compact",
    "create",
    "fill",
    "read_bands",
    "read_curve",
    "record",
    "summarise",
]

K = 8
BLOCK = 1 << K
CAP = 4 * BLOCK  # more points than this in one block: not summarised
_NAN = math.nan
_INF = math.inf

_DDL = (
    "CREATE TABLE metric_summaries ("
    " run_id VARCHAR(32) NOT NULL, key VARCHAR(250) NOT NULL, block BIGINT NOT NULL,"
    " n BIGINT NOT NULL, nonfinite BIGINT NOT NULL, vmin FLOAT, vmax FLOAT,"
    " first INTEGER NOT NULL, offsets BLOB, lasts BLOB,"
    " PRIMARY KEY (run_id, key, block))"
)
_COLUMNS = "n, nonfinite, vmin, vmax, first, offsets, lasts"
_UPSERT = (
    f"INSERT INTO metric_summaries (run_id, key, block, {_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key, block) DO UPDATE SET"
    " n = excluded.n, nonfinite = excluded.nonfinite, vmin = excluded.vmin,"
    " vmax = excluded.vmax, first = excluded.first, offsets = excluded.offsets,"
    " lasts = excluded.lasts"
)
_OF_RANGE = (
    f"SELECT block, {_COLUMNS} FROM metric_summaries"
    " WHERE run_id = ? AND key = ? AND block >= ? AND block <= ?"
)
# blocks lie in [-2**55, 2**55): moved ones (block + _MOVED) lie above every real one
_MOVED = 1 << 57
_COMPACT = (
    f"INSERT INTO metric_summaries (run_id, key, block, {_COLUMNS})"
    f" SELECT run_id, key, block + {_MOVED}, {_COLUMNS} FROM metric_summaries"
    " WHERE run_id = ? ORDER BY key, block",
    f"DELETE FROM metric_summaries WHERE run_id = ? AND block < {_MOVED >> 1}",
    f"UPDATE metric_summaries SET block = block - {_MOVED} WHERE run_id = ?",
)

_by_series = itemgetter(0, 1)
_step = itemgetter(4)
_value = itemgetter(2)

# a row's fields after (run_id, key, block): n, nonfinite, vmin, vmax, first, offsets, lasts
Fields = tuple[int, int, "float | None", "float | None", int, "bytes | None", "bytes | None"]
_UNSUMMARISED: Fields = (0, 0, None, None, 0, None, None)


def create(conn: Any) -> None:
    """The table (an SQLAlchemy connection inside the migration's transaction)."""
    conn.exec_driver_sql(_DDL)


def _finite(value: float | None) -> bool:
    return value is not None and value - value == 0  # False for None, NaN, +-inf


def _values_fields(values: list[float | None]) -> tuple[int, float | None, float | None, bytes]:
    """nonfinite, vmin, vmax and the lasts blob of one value per step."""
    if None not in values:
        total = sum(values)
        if total - total == 0:  # finite: no NaN or +-inf among them (one pass)
            return 0, min(values), max(values), pack("d", values)
    nonfinite = values.count(None) + values.count(_INF) + values.count(-_INF)
    if not nonfinite:  # (a sum past the largest float)
        return 0, min(values), max(values), pack("d", values)
    finite = [v for v in values if _finite(v)]
    return (
        nonfinite,
        min(finite) if finite else None,
        max(finite) if finite else None,
        pack("d", (v if _finite(v) else _NAN for v in values)),
    )


def summarise(base: int, points: Sequence[tuple[int, float | None]]) -> Fields:
    """The fields of the block starting at step ``base`` from its points
    ``(step, value)`` in history order (step, timestamp, logging order); NaN
    is None. More than ``CAP`` points: unsummarised."""
    if len(points) > CAP:
        return _UNSUMMARISED
    return _fields(base, points)


def _fields(base: int, points: Sequence[tuple[int, float | None]]) -> Fields:
    """``summarise`` whatever the number of points."""
    values = [p[1] for p in points]
    nonfinite = sum(not _finite(v) for v in values)
    finite = [v for v in values if _finite(v)]
    steps: list[int] = []
    lasts: list[float | None] = []
    for step, value in points:  # each step's last point
        if steps and steps[-1] == step:
            lasts[-1] = value
        else:
            steps.append(step)
            lasts.append(value)
    offsets = [s - base for s in steps]
    contiguous = offsets[-1] - offsets[0] == len(offsets) - 1
    return (
        len(points),
        nonfinite,
        min(finite) if finite else None,
        max(finite) if finite else None,
        offsets[0],
        None if contiguous else pack("H", offsets),
        pack("d", (v if _finite(v) else _NAN for v in lasts)),
    )


def _last_offset(fields: Fields) -> int:
    first, offsets, lasts = fields[4], fields[5], fields[6]
    if offsets is None:
        return first + len(lasts) // 8 - 1  # type: ignore[arg-type]
    return unpack("H", offsets)[-1]


def _appended(old: Fields, base: int, steps: list[int], values: list[float | None]) -> Fields:
    """``old`` with points of strictly increasing steps above its last step."""
    n, nonfinite, vmin, vmax, first, offsets, lasts = old
    assert lasts is not None
    count = len(lasts) // 8
    added_nonfinite, low, high, blob = _values_fields(values)
    contiguous_new = steps[-1] - steps[0] == len(steps) - 1
    if offsets is None and contiguous_new and steps[0] - base == first + count:
        merged = None
    else:
        before = list(range(first, first + count)) if offsets is None else unpack("H", offsets)
        merged = pack("H", [*before, *(s - base for s in steps)])
    if low is not None:
        vmin = low if vmin is None else min(vmin, low)
        vmax = high if vmax is None else max(vmax, high)
    return (n + len(values), nonfinite + added_nonfinite, vmin, vmax, first, merged, lasts + blob)


def _new(base: int, steps: list[int], values: list[float | None]) -> Fields:
    """The fields of a new block from points of strictly increasing steps."""
    if len(values) > CAP:
        return _UNSUMMARISED
    nonfinite, vmin, vmax, blob = _values_fields(values)
    contiguous = steps[-1] - steps[0] == len(steps) - 1  # (strictly increasing)
    return (
        len(values),
        nonfinite,
        vmin,
        vmax,
        steps[0] - base,
        None if contiguous else pack("H", [s - base for s in steps]),
        blob,
    )


def record(cursor: Any, stored: Mapping[tuple[str, str], list[tuple]]) -> None:
    """Bring the summaries up to date with ``stored``: by (run_id, key), the
    ``MetricRow``s (run_id, key, value or None for NaN, is_nan, step,
    timestamp) that this transaction has just stored, in logging order
    (``sql_blocks.write``: identical repeats skipped), with SQLite's DB-API
    ``cursor``."""
    out: list[tuple] = []
    for (run_id, key), series in stored.items():
        _record_series(cursor, run_id, key, series, out)
    if out:
        cursor.executemany(_UPSERT, out)


def _record_series(cursor: Any, run_id: str, key: str, points: list[tuple], out: list) -> None:
    steps = list(map(_step, points))
    low, high = steps[0] >> K, steps[-1] >> K
    increasing = all(map(lt, steps, islice(steps, 1, None)))
    if not increasing:
        low, high = min(steps) >> K, max(steps) >> K
    stored = {
        row[0]: row[1:] for row in cursor.execute(_OF_RANGE, (run_id, key, low, high)).fetchall()
    }
    if not increasing:
        for block in sorted({s >> K for s in steps}):
            out.append((run_id, key, block, *_rebuilt(cursor, run_id, key, block, stored)))
        return
    values = list(map(_value, points))
    i, n = 0, len(steps)
    while i < n:
        block = steps[i] >> K
        base = block << K
        j = bisect_left(steps, base + BLOCK, i)
        old = stored.get(block)
        if old is None:
            fields = _new(base, steps[i:j], values[i:j])
        elif old[6] is None:
            fields = None  # unsummarised: stays so
        elif base + _last_offset(old) < steps[i]:
            if old[0] + (j - i) > CAP:
                fields = _UNSUMMARISED
            else:
                fields = _appended(old, base, steps[i:j], values[i:j])
        else:
            fields = _rebuilt(cursor, run_id, key, block, stored)
        if fields is not None:
            out.append((run_id, key, block, *fields))
        i = j


def _rebuilt(cursor: Any, run_id: str, key: str, block: int, stored: dict) -> Fields:
    """The block summarised again from its stored points (CAP + 1 at most read)."""
    old = stored.get(block)
    if old is not None and old[6] is None:
        return old  # unsummarised
    base = block << K
    steps, _times, values = sql_blocks.series(cursor, run_id, key, base, base + BLOCK - 1)
    return summarise(base, list(zip(steps[: CAP + 1], values[: CAP + 1])))


def compact(conn: Any, run_id: str) -> None:
    """Write the run's rows again, together and in (key, block) order: the
    store calls it when a run ends (inside that transaction).

    ``record`` grows a block's row batch by batch, so its pages were split
    and allocated among the points' pages as they came: a finished run's
    curve then costs one random read per row or two when the OS cache is
    cold (20,000 rows of a 100-run compare: ~10,000 scattered pages). Copied
    with new rowids, the rows fill pages taken in a row, so a curve's rows
    are a few consecutive pages; the old pages go to the free list, for the
    points written next. The copies take their keys moved (``_MOVED``) until
    the old rows are gone, then take them back in place (same rowid, same
    page). Costs a copy of the run's summaries (8 bytes a point)."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        for statement in _COMPACT:
            cursor.execute(statement, (run_id,))
    finally:
        cursor.close()


def fill(conn: Any, points: Iterable[tuple] | None = None) -> None:
    """Summarise every stored point (replacing any rows): after points were
    written around the store. ``points``: ``(run_id, key, step, value)`` by
    run and key, each series in history order; by default the stored ones
    (``sql_blocks``; the v4 migration passes the rows of its time)."""
    driver = conn.connection.driver_connection
    cursor = driver.cursor()
    try:
        cursor.execute("DELETE FROM metric_summaries")
        flat = sql_blocks.points_of_all(conn) if points is None else points
        try:
            out: list[tuple] = []

            def block_of(row: tuple) -> tuple:
                return row[0], row[1], row[2] >> K

            for (run_id, key, block), group in groupby(flat, block_of):
                points = [(r[2], r[3]) for r in islice(group, CAP + 1)]
                for _ in group:  # more than CAP: the rest is not needed
                    pass
                out.append((run_id, key, block, *summarise(block << K, points)))
                if len(out) >= 1000:
                    cursor.executemany(_UPSERT, out)
                    out.clear()
            if out:
                cursor.executemany(_UPSERT, out)
        finally:
            close = getattr(flat, "close", None)
            if close is not None:
                close()
    finally:
        cursor.close()


# -- reading ------------------------------------------------------------------------


class Curve:
    """One series' summary rows over a range of blocks, as segments of steps:
    ``(start, stop, values, steps)``: ``values`` the last value per step
    holding a point; ``steps`` None when they are every step of
    ``[start, stop)``, else the steps themselves."""

    __slots__ = ("n", "nonfinite", "segments")

    def __init__(self, rows: list[tuple]) -> None:
        self.n = sum(r[1] for r in rows)
        self.nonfinite = sum(r[2] for r in rows)
        segments: list[tuple[int, int, Any, Any]] = []
        parts: list[bytes] = []
        start = stop = None
        for block, _n, _nf, _lo, _hi, first, offsets, lasts in rows:
            base = block << K
            if offsets is None:
                begin = base + first
                if stop is not None and begin == stop:
                    parts.append(lasts)
                    stop = begin + len(lasts) // 8
                    continue
                if stop is not None:
                    segments.append((start, stop, unpack("d", b"".join(parts)), None))
                start, stop, parts = begin, begin + len(lasts) // 8, [lasts]
                continue
            if stop is not None:
                segments.append((start, stop, unpack("d", b"".join(parts)), None))
                start = stop = None
            steps = [base + o for o in unpack("H", offsets)]
            segments.append((steps[0], steps[-1] + 1, unpack("d", lasts), steps))
        if stop is not None:
            segments.append((start, stop, unpack("d", b"".join(parts)), None))
        self.segments = segments

    @property
    def first(self) -> int | None:
        return self.segments[0][0] if self.segments else None

    @property
    def last(self) -> int | None:
        return self.segments[-1][1] - 1 if self.segments else None

    def lasts(
        self, ranges: Sequence[tuple[int, int]], memo: dict | None = None
    ) -> tuple[list[int], list[float | None]]:
        """Per step range ``[lo, hi)`` (in order, not overlapping) that holds a
        point: the step of its last point and that point's value (None for
        NaN and +-inf). ``memo``: a dict kept by the caller for one ``ranges``,
        where curves of the same dense steps (overlaid runs of one length)
        share the steps picked and the C getter that picks their values."""
        segments = self.segments
        if len(segments) == 1 and segments[0][3] is None:  # every step from first to last
            start, stop, values, _ = segments[0]
            picked = None if memo is None else memo.get((start, stop))
            if picked is None:
                picked = _dense_pick(ranges, start, stop)
                if memo is not None:
                    memo[start, stop] = picked
            xs, pick = picked
            got = [] if not xs else [pick(values)] if len(xs) == 1 else list(pick(values))
            xs = list(xs)
        else:
            xs, got = [], []
            starts = [s[0] for s in segments]
            for lo, hi in ranges:
                at = bisect_right(starts, hi - 1) - 1  # the last segment starting in reach
                if at < 0:
                    continue
                start, stop, values, steps = segments[at]
                if steps is None:
                    step = min(hi - 1, stop - 1)
                    index = step - start
                else:
                    index = bisect_right(steps, hi - 1) - 1  # >= 0: steps[0] is start
                    step = steps[index]
                if step >= lo:  # else the range holds no point
                    xs.append(step)
                    got.append(values[index])
        if self.nonfinite:
            got = [v if v == v else None for v in got]
        return xs, got


def _dense_pick(ranges: Sequence[tuple[int, int]], start: int, stop: int) -> tuple[list, Any]:
    """The steps of ``ranges``' last points over the dense steps ``[start,
    stop)``, and an ``itemgetter`` of their positions in the values."""
    top = stop - 1
    head = 0
    while head < len(ranges) and ranges[head][1] <= start:
        head += 1  # ranges before the first step
    end = len(ranges)
    while end > head and ranges[end - 1][0] > top:
        end -= 1  # ranges after the last step
    xs = [hi - 1 for _, hi in islice(ranges, head, end)]
    if xs and xs[-1] > top:
        xs[-1] = top
    return xs, itemgetter(*[x - start for x in xs]) if xs else None


def read_curve(cursor: Any, run_id: str, key: str, first: int, last: int) -> Curve | None:
    """The summary of ``key`` between steps ``first`` and ``last`` (a DB-API
    cursor of SQLite); an unsummarised block's from its points (``sql_blocks``)."""
    rows = cursor.execute(_OF_RANGE, (run_id, key, first >> K, last >> K)).fetchall()
    rows = [_from_points(cursor, run_id, key, r[0]) if r[7] is None else r for r in rows]
    rows.sort(key=itemgetter(0))
    return Curve(rows)


def _block_points(cursor: Any, run_id: str, key: str, block: int) -> tuple[list[int], Any]:
    """The stored points of one block of steps: steps and values, history order."""
    base = block << K
    steps, _times, values = sql_blocks.series(cursor, run_id, key, base, base + BLOCK - 1)
    return steps, values


def _from_points(cursor: Any, run_id: str, key: str, block: int) -> tuple:
    """An unsummarised block's row (``_OF_RANGE``'s columns) from its points."""
    steps, values = _block_points(cursor, run_id, key, block)
    return (block, *_fields(block << K, list(zip(steps, values))))


def read_bands(
    cursor: Any, run_id: str, key: str, ranges: Sequence[tuple[int, int]]
) -> tuple[int, int, list[int], list[float | None], list, list] | None:
    """Per step range ``[lo, hi)`` of ``ranges`` (in order, not overlapping)
    that holds points, what a band needs: ``(n, nonfinite, xs, lasts, mins,
    maxs)`` as the points give them (the step and value of the range's last
    point, None for a non-finite one; its finite min and max, None if none).
    A block whose points all lie in one range gives its counts and min/max;
    a block that a range edge cuts gives them from its steps' values, which
    are all its points when no step holds two, else from its points
    (``sql_blocks``), as an unsummarised block does. None (the caller reads
    the points) where no block is kept at all."""
    if not ranges:
        return 0, 0, [], [], [], []
    low, high = ranges[0][0], ranges[-1][1] - 1
    rows = cursor.execute(_OF_RANGE, (run_id, key, low >> K, high >> K)).fetchall()
    if not rows:
        return None  # (the caller saw points there, so none were kept)
    rows.sort(key=itemgetter(0))
    blocks = [
        _Block.of_points(*_block_points(cursor, run_id, key, r[0])) if r[7] is None else _Block(r)
        for r in rows
    ]
    n = nonfinite = 0
    xs: list[int] = []
    lasts: list[float | None] = []
    mins: list = []
    maxs: list = []
    at = 0
    for lo, hi in ranges:
        while at < len(blocks) and blocks[at].top < lo:
            at += 1  # blocks below this range
        count = bad = 0
        vmin = vmax = step = value = None
        j = at
        while j < len(blocks) and blocks[j].bottom < hi:
            block = blocks[j]
            if lo <= block.bottom and block.top < hi:  # all its points in this range
                count += block.n
                bad += block.nonfinite
                part_min, part_max = block.vmin, block.vmax
                step, value = block.top, block.values[-1]
            else:
                if block.n != len(block.values):  # a step logged twice: its points say
                    block = blocks[j] = _Block.of_points(
                        *_block_points(cursor, run_id, key, block.bottom >> K)
                    )
                i0, i1 = bisect_left(block.steps, lo), bisect_left(block.steps, hi)
                if i1 == i0:
                    part_min = part_max = None
                else:
                    part = block.values[i0:i1]
                    count += i1 - i0
                    if block.nonfinite:
                        finite = [v for v in part if v == v]
                        bad += len(part) - len(finite)
                        part = finite
                    part_min = min(part) if part else None
                    part_max = max(part) if part else None
                    step, value = block.steps[i1 - 1], block.values[i1 - 1]
            if part_min is not None:
                vmin = part_min if vmin is None or part_min < vmin else vmin
                vmax = part_max if vmax is None or part_max > vmax else vmax
            if block.top >= hi:
                break  # it goes on into the next range
            j += 1
        at = j
        if count:
            n += count
            nonfinite += bad
            xs.append(step)  # type: ignore[arg-type]
            lasts.append(value if value == value else None)
            mins.append(vmin)
            maxs.append(vmax)
    return n, nonfinite, xs, lasts, mins, maxs


class _Block:
    """One summary row, decoded: its steps holding points (``bottom`` to
    ``top``), their last values, its counts and finite min/max."""

    __slots__ = ("bottom", "n", "nonfinite", "steps", "top", "values", "vmax", "vmin")

    def __init__(self, row: tuple) -> None:
        block, self.n, self.nonfinite, self.vmin, self.vmax, first, offsets, lasts = row
        base = block << K
        self.values = unpack("d", lasts)
        if offsets is None:
            self.steps: Sequence[int] = range(base + first, base + first + len(self.values))
        else:
            self.steps = [base + o for o in unpack("H", offsets)]
        self.bottom, self.top = self.steps[0], self.steps[-1]

    @classmethod
    def of_points(cls, steps: list[int], values: Sequence[float]) -> _Block:
        """A block of every point (``steps`` in history order, a step held by
        several points repeated), not one per step: ``n`` is ``len(values)``."""
        block = cls.__new__(cls)
        block.values = [v if _finite(v) else _NAN for v in values]
        block.steps = steps
        finite = [v for v in block.values if v == v]
        block.n, block.nonfinite = len(block.values), len(block.values) - len(finite)
        block.vmin, block.vmax = (min(finite), max(finite)) if finite else (None, None)
        block.bottom, block.top = steps[0], steps[-1]
        return block
