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
from collections.abc import Sequence
from typing import Any

from autolog.tracking.stores.base import AbstractStore
from autolog.ui.bucketing import (
    MAX_WIDTH,
    JsonBody,
    bucket_points,
    bucket_runs,
    check_view,
    history_points,
    wire_item,
    wire_items,
)

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
    "wire_items",
]


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


def metric_series_json(
    store: AbstractStore,
    run_ids: Sequence[str],
    keys: Sequence[str],
    width: int,
    x_axis: str = "step",
    lo: float | None = None,
    hi: float | None = None,
    band: bool = True,
    f64: bool = False,
) -> JsonBody:
    """``{"series": [...]}`` as the UI's endpoint sends it (:func:`wire_items`;
    ``f64``: values as base64 float64, x lists shared, not gzipped); on the
    SQL store a kept answer's JSON (one key's: also its gzip) is made once."""
    check_view(width, x_axis)
    ids = list(dict.fromkeys(run_ids))
    if type(store).__name__ == "SqlStore":
        from autolog.ui.buckets_sql import sql_series_body, sql_series_json

        view = (width, x_axis, lo, hi, band, f64)
        if len(keys) == 1:
            return sql_series_body(store, ids, keys[0], *view)
        parts = [sql_series_json(store, ids, k, *view) for k in keys]
        text = '{"series":[' + ",".join(p for p in parts if p) + "]}"
        return JsonBody(text.encode(), not f64)
    series = metric_series(store, ids, keys, width, x_axis, lo, hi, band)
    items = wire_items(((s.pop("run"), s.pop("key"), s) for s in series), f64)
    text = json.dumps({"series": items}, separators=(",", ":"), allow_nan=False)
    return JsonBody(text.encode(), not f64)
