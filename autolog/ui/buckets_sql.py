"""Metric buckets computed by the SQL database: a million points never leave it.

The same answer as :func:`autolog.ui.buckets.bucket_points` over the points
of the SQL store's ``metrics`` table, in three indexed queries per metric
(for any number of runs at once):

1. per run: the x range and the number of points in range (and the whole
   x range when zoomed);
2. per run and bucket (``(x - first) * width / span``, integer division:
   floor on both SQLite and PostgreSQL): min, max, the highest x and how
   many values are not finite;
3. the points at those highest x, whose last (by step, time, logging order)
   is the bucket's ``last``.

A run with at most ``width`` points in range is read point by point (exact).
Answers for finished runs are kept (a few hundred, least recently used
dropped) and served again while the runs' status and latest point of the key
stay the same. Several runs are answered by the same few queries; their buckets share edges
(over the union of their x ranges), so overlaid curves line up. SQLite is
the exception: there the points are read in index order and bucketed in
Python (see ``_sqlite_work``), one run at a time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from autolog.tracking.stores.sql_schema import metrics
from autolog.ui.buckets import _finite

__all__ = ["sql_series"]

_IN_CHUNK = 900  # stay below SQLite's bound-parameter limit
_BIG = 1.7976931348623157e308  # the largest finite float
_TERMINATED = ("FINISHED", "FAILED", "KILLED")


def sql_series(
    store: Any,
    run_ids: Sequence[str],
    key: str,
    width: int,
    x_axis: str,
    lo: float | None,
    hi: float | None,
) -> dict[str, dict[str, Any]]:
    """run id -> the bucket_points answer for ``key`` (runs without it: ``n`` 0)."""
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
            chunk = list(dict.fromkeys(run_ids[at : at + _IN_CHUNK]))
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
        return out

    if store.dialect == "sqlite":
        work = _sqlite_work(run_ids, key, width, x_axis, lo, hi)
    return _cached(store, run_ids, key, (width, x_axis, lo, hi), work)


def _sqlite_work(run_ids, key, width, x_axis, lo, hi):
    """SQLite's GROUP BY on a computed bucket sorts every point in a temporary
    B-tree; reading the points in index order (run, key, step, time: no sort)
    through the bare driver and bucketing them here is several times faster."""
    from autolog.ui.buckets import bucket_points

    sql = (
        "SELECT step, timestamp, value FROM metrics WHERE run_id = ? AND key = ?"
        " ORDER BY step, timestamp"
    )

    def work(conn: sa.Connection) -> dict[str, dict[str, Any]]:
        cursor = conn.connection.driver_connection.cursor()
        try:
            return {
                run_id: bucket_points(
                    cursor.execute(sql, (run_id, key)).fetchall(), width, x_axis, lo, hi
                )
                for run_id in dict.fromkeys(run_ids)
            }
        finally:
            cursor.close()

    return work


#: answers for finished runs, by request; checked against the runs' status and
#: latest point of the key, so a run that changes is read again
_CACHE: OrderedDict[tuple, tuple[tuple, dict]] = OrderedDict()
_CACHE_SIZE = 256
_CACHE_LOCK = threading.Lock()


def _cached(store: Any, run_ids: Sequence[str], key: str, view: tuple, work: Any) -> dict:
    from autolog.tracking.stores.sql_schema import latest_metrics, runs

    ids = list(dict.fromkeys(run_ids))

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
        if now == hit[0]:
            with _CACHE_LOCK:
                _CACHE.move_to_end(request)
            return hit[1]
    now, answer = store._read(read)
    if all(s[1] is not None and s[1][0] in _TERMINATED for s in now):
        with _CACHE_LOCK:
            _CACHE[request] = (now, answer)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return answer


def _answer(n: int, exact: bool, xs: list, lasts: list, mins: list, maxs: list, nonfinite: int):
    return {
        "n": n,
        "nonfinite": nonfinite,
        "exact": exact,
        "x": xs,
        "last": lasts,
        "min": mins,
        "max": maxs,
    }


def _exact(conn, of, x, runs: list[str], ranges) -> dict[str, dict[str, Any]]:
    m = metrics.c
    points: dict[str, tuple[list, list]] = {r: ([], []) for r in runs}
    wanted = [r for r in runs if ranges.get(r, (0, 0, 0))[2]]
    if wanted:
        stmt = of(wanted, m.run_id, x, m.value).order_by(m.run_id, x, m.step, m.timestamp, m.seq)
        for run_id, px, value in conn.execute(stmt):
            xs, values = points[run_id]
            xs.append(px)
            values.append(_finite(value))
    return {
        r: _answer(len(xs), True, xs, vs, vs, vs, sum(v is None for v in vs))
        for r, (xs, vs) in points.items()
    }


def _bucketed(conn, of, x, width: int, runs: list[str], ranges) -> dict[str, dict[str, Any]]:
    if not runs:
        return {}
    m = metrics.c
    first = min(ranges[r][0] for r in runs)
    span = (max(ranges[r][1] for r in runs) - first) or 1
    # integer floor division: the bucket of bucket_points, on SQLite and PostgreSQL alike
    smaller = sa.func.least if conn.dialect.name == "postgresql" else sa.func.min
    bucket = smaller((x - first) * width // span, width - 1).label("b")
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
        out[run_id] = _answer(
            ranges[run_id][2],
            False,
            xs,
            [_finite(lasts.get((run_id, e))) for e in xs],
            [_finite(row[2]) for row in found],
            [_finite(row[3]) for row in found],
            sum(row[5] for row in found),
        )
    return out
