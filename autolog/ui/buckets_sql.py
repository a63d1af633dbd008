"""Metric buckets computed by the SQL database: a million points never leave it.

The same answer as :func:`autolog.ui.buckets.bucket_points` over the points
of the SQL store's ``metrics`` table, in three indexed queries per metric
(for any number of runs at once):

1. per run: the x range and the number of points in range;
2. per run and bucket (``(x - first) * width / span``, integer division:
   floor on both SQLite and PostgreSQL): min, max and the highest x;
3. the points at those highest x, whose last (by step, time, logging order)
   is the bucket's ``last``.

A run with at most ``width`` points in range is read point by point (exact).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from autolog.tracking.stores.sql_schema import metrics

__all__ = ["sql_series"]

_IN_CHUNK = 900  # stay below SQLite's bound-parameter limit
_BIG = 1.7976931348623157e308  # the largest finite float


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


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
    low, high = lo, hi

    def in_range(query: Any, run_id: Any = None) -> Any:
        query = query.where(m.key == key)
        query = query.where(m.run_id == run_id) if run_id is not None else query
        if low is not None:
            query = query.where(x >= low)
        if high is not None:
            query = query.where(x <= high)
        return query

    def work(conn: sa.Connection) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for at in range(0, len(run_ids), _IN_CHUNK):
            chunk = list(run_ids[at : at + _IN_CHUNK])
            full = dict.fromkeys(chunk)
            stmt = (
                sa.select(m.run_id, sa.func.min(x), sa.func.max(x))
                .where(m.key == key, m.run_id.in_(chunk))
                .group_by(m.run_id)
            )
            for run_id, first, last in conn.execute(stmt):
                full[run_id] = (first, last)
            stmt = in_range(
                sa.select(m.run_id, sa.func.min(x), sa.func.max(x), sa.func.count())
            ).where(m.run_id.in_(chunk))
            ranges = {r: (a, b, n) for r, a, b, n in conn.execute(stmt.group_by(m.run_id))}
            for run_id in chunk:
                first, last, n = ranges.get(run_id, (None, None, 0))
                if n <= width:
                    out[run_id] = _exact(conn, in_range, run_id, x, n, full[run_id])
                else:
                    out[run_id] = _bucketed(conn, in_range, run_id, key, x, width, (first, last), n)
                    out[run_id]["range"] = full[run_id]
        return out

    return store._read(work)


def _exact(conn, in_range, run_id, x, n, full) -> dict[str, Any]:
    m = metrics.c
    xs: list = []
    values: list = []
    nonfinite = 0
    if n:
        stmt = in_range(sa.select(x, m.value), run_id).order_by(x, m.step, m.timestamp, m.seq)
        for px, value in conn.execute(stmt):
            value = _finite(value)
            nonfinite += value is None
            xs.append(px)
            values.append(value)
    return {
        "n": n,
        "nonfinite": nonfinite,
        "exact": True,
        "x": xs,
        "last": values,
        "min": values,
        "max": values,
        "range": full,
    }


def _bucketed(conn, in_range, run_id, key, x, width, bounds, n) -> dict[str, Any]:
    m = metrics.c
    first, last = bounds
    span = (last - first) or 1
    # integer floor division: the bucket of bucket_points, on SQLite and PostgreSQL alike
    smaller = sa.func.least if conn.dialect.name == "postgresql" else sa.func.min
    bucket = smaller((x - first) * width // span, width - 1).label("b")
    finite = sa.case((m.value.between(-_BIG, _BIG), m.value))  # NULL for NaN and +-inf
    stmt = in_range(
        sa.select(bucket, sa.func.min(finite), sa.func.max(finite), sa.func.max(x)), run_id
    )
    rows = conn.execute(stmt.group_by(sa.text("b")).order_by(sa.text("b"))).all()
    ends = [row[3] for row in rows]
    lasts: dict[int, float | None] = {}
    for at in range(0, len(ends), _IN_CHUNK):
        stmt = (
            sa.select(x, m.value)
            .where(m.run_id == run_id, m.key == key, x.in_(ends[at : at + _IN_CHUNK]))
            .order_by(x, m.step, m.timestamp, m.seq)
        )
        for px, value in conn.execute(stmt):
            lasts[px] = value  # the last row per x wins
    nonfinite_stmt = in_range(sa.select(sa.func.count()), run_id).where(
        sa.or_(m.value.is_(None), sa.not_(m.value.between(-_BIG, _BIG)))
    )
    nonfinite = conn.execute(nonfinite_stmt).scalar() or 0
    return {
        "n": n,
        "nonfinite": nonfinite,
        "exact": False,
        "x": ends,
        "last": [_finite(lasts.get(e)) for e in ends],
        "min": [_finite(row[1]) for row in rows],
        "max": [_finite(row[2]) for row in rows],
    }
