"""Metric history bucketed to a chart's width, so a 1,000,000-point series costs a screen.

A chart ``width`` pixels wide gets at most ``width`` buckets over its x range
(steps, or wall-clock ms): per bucket the x of its last point, the lowest and
highest value and the last value (by step, then time, then logging order). The
chart draws min..max as a band and ``last`` as a line: the shape is exact at
that width (no spike is lost) and drawing it costs ``width`` points. A series
of at most ``width`` points in range is returned point by point (``exact``).

Point ``x`` falls in bucket ``(x - first) * width // span`` (integer floor
division, the last point clamped into the last bucket): the same integer
arithmetic in Python and in SQL, so every backend gives the same buckets.
When several runs are asked for at once, the bucketed ones share their edges
(``first`` and ``span`` over the union of their ranges in view), so overlaid
curves line up on one x grid.

An overlay (``band=False``: several runs in one chart, drawn as lines) needs
only each bucket's last point: a bucketed series' ``min`` and ``max`` are
None, and a backend
that would have to read every point to count them may leave ``n`` and
``nonfinite`` None (not counted) for a bucketed series.

NaN values are left out of min and max and drawn as gaps; +-inf are clipped
to gaps too (a chart axis cannot hold them), and counted in ``nonfinite``.

On the SQL store the database does the work (``buckets_sql``); other stores
go through ``get_metric_history``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from autolog.errors import InvalidParameterError
from autolog.tracking.stores.base import AbstractStore

__all__ = [
    "MAX_WIDTH",
    "JsonBody",
    "bucket_points",
    "bucket_runs",
    "check_view",
    "history_points",
    "metric_series",
    "metric_series_json",
    "wire_item",
]

MAX_WIDTH = 4000
_X_AXES = ("step", "time")


def check_view(width: object, x_axis: str) -> None:
    """InvalidParameterError for an x axis or a width a chart cannot have."""
    if x_axis not in _X_AXES:
        raise InvalidParameterError(f"Invalid x axis {x_axis!r}: expected step or time")
    if not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise InvalidParameterError(f"Invalid width {width!r}: expected 1..{MAX_WIDTH}")


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


def in_view(
    points: Sequence[tuple[int, int, float | None]],
    x_axis: str,
    lo: float | None,
    hi: float | None,
) -> tuple[list, tuple[int, int] | None]:
    """The points (in x order) within ``[lo, hi]`` and the full x range of all."""
    xi = 0 if x_axis == "step" else 1
    if x_axis == "time":  # time order, not step order
        points = sorted(points, key=lambda p: p[1])
    full = (points[0][xi], points[-1][xi]) if points else None
    if lo is not None or hi is not None:
        low = -math.inf if lo is None else lo
        high = math.inf if hi is None else hi
        points = [p for p in points if low <= p[xi] <= high]
    return list(points), full


def bucket_points(
    points: Sequence[tuple[int, int, float | None]],
    width: int,
    x_axis: str = "step",
    lo: float | None = None,
    hi: float | None = None,
    edges: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Bucket ``points`` (in history order) over ``[lo, hi]`` of the x axis.

    Returns ``{"n", "nonfinite", "exact", "x", "last", "min", "max", "range"}``:
    ``n`` points in range; ``x``/``last``/``min``/``max`` lists of equal
    length (one entry per point when ``exact``, else per non-empty bucket);
    ``range`` the full x range of the series (for the chart's reset-zoom).
    ``edges`` (first, last x) spreads the buckets over a wider range than the
    points' own (the union of several runs' ranges).
    """
    check_view(width, x_axis)
    points, full = in_view(points, x_axis, lo, hi)
    return {**_bucket(points, width, 0 if x_axis == "step" else 1, edges), "range": full}


def _bucket(points: list, width: int, xi: int, edges: tuple[int, int] | None) -> dict[str, Any]:
    nonfinite = 0
    if len(points) <= width:
        xs, values = [], []
        for p in points:
            value = _finite(p[2])
            nonfinite += value is None
            xs.append(p[xi])
            values.append(value)
        return _answer(len(points), nonfinite, True, xs, values, values, values)
    first, last_x = edges or (points[0][xi], points[-1][xi])
    span = (last_x - first) or 1
    top = width - 1
    xs, lasts, mins, maxs = [], [], [], []
    current = -1
    for p in points:
        b = min((p[xi] - first) * width // span, top)
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
    return _answer(len(points), nonfinite, False, xs, lasts, mins, maxs)


def _answer(n, nonfinite, exact: bool, xs: list, lasts: list, mins, maxs) -> dict[str, Any]:
    return {
        "n": n,
        "nonfinite": nonfinite,
        "exact": exact,
        "x": xs,
        "last": lasts,
        "min": mins,
        "max": maxs,
    }


def shared_edges(ranges: Sequence[tuple[int, int] | None]) -> tuple[int, int] | None:
    """The edges the bucketed runs share: the union of their ranges in view."""
    found = [r for r in ranges if r is not None]
    if not found:
        return None
    return min(r[0] for r in found), max(r[1] for r in found)


def bucket_runs(
    points_by_run: Mapping[str, Sequence[tuple[int, int, float | None]]],
    width: int,
    x_axis: str = "step",
    lo: float | None = None,
    hi: float | None = None,
    band: bool = True,
) -> dict[str, dict[str, Any]]:
    """run id -> its :func:`bucket_points` answer, the bucketed runs sharing edges
    (the reference every backend's buckets are tested against)."""
    check_view(width, x_axis)
    xi = 0 if x_axis == "step" else 1
    viewed = {r: in_view(p, x_axis, lo, hi) for r, p in points_by_run.items()}
    edges = shared_edges([(p[0][xi], p[-1][xi]) for p, _ in viewed.values() if len(p) > width])
    out = {}
    for run_id, (points, full) in viewed.items():
        answer = {**_bucket(points, width, xi, edges), "range": full}
        if not band and not answer["exact"]:
            answer["min"] = answer["max"] = None
        out[run_id] = answer
    return out


def wire_item(run_id: str, key: str, answer: dict[str, Any]) -> dict[str, Any]:
    """One series as the UI's endpoint sends it: an exact series' band is its
    line, so it is not sent twice (``min`` and ``max`` None)."""
    item = {"run": run_id, "key": key, **answer}
    if answer["exact"]:
        item["min"] = item["max"] = None
    return item


def metric_series(
    store: AbstractStore,
    run_ids: Sequence[str],
    keys: Sequence[str],
    width: int,
    x_axis: str = "step",
    lo: float | None = None,
    hi: float | None = None,
    band: bool = True,
) -> list[dict[str, Any]]:
    """One bucketed series per (run, key): ``[{"run", "key", ...bucket_points}]``;
    a run without that metric gives ``n`` 0. ``band=False``: lines only (see
    the module's docstring)."""
    check_view(width, x_axis)
    ids = list(dict.fromkeys(run_ids))
    out = []
    for key in keys:
        if type(store).__name__ == "SqlStore":  # aggregated by the database
            from autolog.ui.buckets_sql import sql_series

            found = sql_series(store, ids, key, width, x_axis, lo, hi, band)
        else:
            points = {run_id: history_points(store, run_id, key) for run_id in ids}
            found = bucket_runs(points, width, x_axis, lo, hi, band)
        out.extend({"run": r, "key": key, **found[r]} for r in ids)
    return out


class JsonBody:
    """A JSON answer's bytes, and their gzip made once when first asked (a kept
    answer keeps both, so serving it again costs neither encoding)."""

    __slots__ = ("_gz", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw, self._gz = raw, None

    def gzipped(self) -> bytes:
        if self._gz is None:
            import gzip

            self._gz = gzip.compress(self.raw, 5, mtime=0)
        return self._gz


def metric_series_json(
    store: AbstractStore,
    run_ids: Sequence[str],
    keys: Sequence[str],
    width: int,
    x_axis: str = "step",
    lo: float | None = None,
    hi: float | None = None,
    band: bool = True,
) -> JsonBody:
    """``{"series": [...]}`` as the UI's endpoint sends it (:func:`wire_item`);
    on the SQL store a kept answer's JSON (one key's: also its gzip) is made once."""
    check_view(width, x_axis)
    ids = list(dict.fromkeys(run_ids))
    if type(store).__name__ == "SqlStore":
        from autolog.ui.buckets_sql import sql_series_body, sql_series_json

        if len(keys) == 1:
            return sql_series_body(store, ids, keys[0], width, x_axis, lo, hi, band)
        parts = [sql_series_json(store, ids, k, width, x_axis, lo, hi, band) for k in keys]
        return JsonBody(('{"series":[' + ",".join(p for p in parts if p) + "]}").encode())
    series = metric_series(store, ids, keys, width, x_axis, lo, hi, band)
    items = [wire_item(s.pop("run"), s.pop("key"), s) for s in series]
    return JsonBody(json.dumps({"series": items}, separators=(",", ":"), allow_nan=False).encode())
