"""Metric history bucketed to a chart's width, so a 1,000,000-point series costs a screen.

A chart ``width`` pixels wide gets at most ``width`` buckets over its x range
(steps, or wall-clock ms): per bucket the x of its last point, the lowest and
highest value and the last value (by step, then time, then logging order). The
chart draws min..max as a band and ``last`` as a line: the shape is exact at
that width (no spike is lost) and drawing it costs ``width`` points. A series
of at most ``width`` points in range is returned point by point (``exact``).

NaN values are left out of min and max and drawn as gaps; +-inf are clipped
to gaps too (a chart axis cannot hold them), and counted in ``nonfinite``.

On the SQL store the points are read as bare tuples by one indexed query;
other stores go through ``get_metric_history``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from autolog.errors import InvalidParameterError
from autolog.tracking.stores.base import AbstractStore

__all__ = ["MAX_WIDTH", "bucket_points", "history_points", "metric_series"]

MAX_WIDTH = 4000
_X_AXES = ("step", "time")


def history_points(store: AbstractStore, run_id: str, key: str) -> list[tuple[int, int, float]]:
    """``(step, timestamp, value)`` of every point of ``key``, in history order."""
    if type(store).__name__ == "SqlStore":
        import sqlalchemy as sa

        from autolog.tracking.stores.sql_schema import metrics

        m = metrics.c
        stmt = (
            sa.select(m.step, m.timestamp, m.value)
            .where(m.run_id == run_id, m.key == key)
            .order_by(m.step, m.timestamp, m.seq)
        )

        def work(conn: sa.Connection) -> list[tuple[int, int, float]]:
            # NaN is stored as NULL (with is_nan): None reads as a gap either way
            return [tuple(row) for row in conn.execute(stmt)]  # type: ignore[misc]

        return store._read(work)  # type: ignore[attr-defined]
    return [(p.step, p.timestamp, p.value) for p in store.get_metric_history(run_id, key)]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def bucket_points(
    points: Sequence[tuple[int, int, float | None]],
    width: int,
    x_axis: str = "step",
    lo: float | None = None,
    hi: float | None = None,
) -> dict[str, Any]:
    """Bucket ``points`` (in history order) over ``[lo, hi]`` of the x axis.

    Returns ``{"n", "nonfinite", "exact", "x", "last", "min", "max", "range"}``:
    ``n`` points in range; ``x``/``last``/``min``/``max`` lists of equal
    length (one entry per point when ``exact``, else per non-empty bucket);
    ``range`` the full x range of the series (for the chart's reset-zoom).
    """
    if x_axis not in _X_AXES:
        raise InvalidParameterError(f"Invalid x axis {x_axis!r}: expected step or time")
    if not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise InvalidParameterError(f"Invalid width {width!r}: expected 1..{MAX_WIDTH}")
    xi = 0 if x_axis == "step" else 1
    if x_axis == "time":  # time order, not step order
        points = sorted(points, key=lambda p: p[1])
    full = (points[0][xi], points[-1][xi]) if points else None
    if lo is not None or hi is not None:
        low = -math.inf if lo is None else lo
        high = math.inf if hi is None else hi
        points = [p for p in points if low <= p[xi] <= high]
    nonfinite = 0
    if len(points) <= width:
        xs, values = [], []
        for p in points:
            value = _finite(p[2])
            nonfinite += value is None
            xs.append(p[xi])
            values.append(value)
        return {
            "n": len(points),
            "nonfinite": nonfinite,
            "exact": True,
            "x": xs,
            "last": values,
            "min": values,
            "max": values,
            "range": full,
        }
    first, last_x = points[0][xi], points[-1][xi]
    span = (last_x - first) or 1
    scale = width / span
    xs, lasts, mins, maxs = [], [], [], []
    current = -1
    for p in points:
        b = min(int((p[xi] - first) * scale), width - 1)
        value = _finite(p[2])
        if value is None:
            nonfinite += 1
        if b != current:
            current = b
            xs.append(p[xi])
            lasts.append(value)
            mins.append(value)
            maxs.append(value)
            continue
        xs[-1] = p[xi]
        lasts[-1] = value
        if value is not None:
            low_v, high_v = mins[-1], maxs[-1]
            if low_v is None or value < low_v:
                mins[-1] = value
            if high_v is None or value > high_v:
                maxs[-1] = value
    return {
        "n": len(points),
        "nonfinite": nonfinite,
        "exact": False,
        "x": xs,
        "last": lasts,
        "min": mins,
        "max": maxs,
        "range": full,
    }


def metric_series(
    store: AbstractStore,
    run_ids: Sequence[str],
    keys: Sequence[str],
    width: int,
    x_axis: str = "step",
    lo: float | None = None,
    hi: float | None = None,
) -> list[dict[str, Any]]:
    """One bucketed series per (run, key): ``[{"run", "key", ...bucket_points}]``;
    a run without that metric gives ``n`` 0."""
    if x_axis not in _X_AXES:
        raise InvalidParameterError(f"Invalid x axis {x_axis!r}: expected step or time")
    if not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise InvalidParameterError(f"Invalid width {width!r}: expected 1..{MAX_WIDTH}")
    out = []
    if type(store).__name__ == "SqlStore":  # aggregated by the database
        from autolog.ui.buckets_sql import sql_series

        for key in keys:
            found = sql_series(store, run_ids, key, width, x_axis, lo, hi)
            out.extend({"run": r, "key": key, **found[r]} for r in run_ids)
        return out
    for run_id in run_ids:
        for key in keys:
            points = history_points(store, run_id, key)
            out.append({"run": run_id, "key": key, **bucket_points(points, width, x_axis, lo, hi)})
    return out
