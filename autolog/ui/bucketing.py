"""How a metric series is cut into buckets, shared by both paths of :mod:`autolog.ui.buckets`.

The view's checks, a run's points in view, the integer bucket edges (shared by
the runs of a request), one bucket's answer and the wire format of a series:
what the Python path (any store, through ``get_metric_history``) and the SQL
path (:mod:`autolog.ui.buckets_sql`, the database aggregates) both use, so
that every backend gives the same buckets. See :mod:`autolog.ui.buckets` for
what a bucket holds. A leaf: it imports neither path.
"""

from __future__ import annotations

import base64
import math
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from autolog.errors import InvalidParameterError
from autolog.tracking.stores.base import AbstractStore

__all__ = [
    "MAX_WIDTH",
    "JsonBody",
    "bucketed",
    "bucket_points",
    "bucket_runs",
    "check_view",
    "f64_text",
    "finite_or_none",
    "history_points",
    "in_view",
    "series_answer",
    "shared_edges",
    "wire_item",
    "wire_items",
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

        if store.dialect == "sqlite":  # type: ignore[attr-defined]
            from autolog.tracking.stores import sql_blocks

            def blocks(conn: sa.Connection) -> list[tuple[int, int, float]]:
                columns = sql_blocks.series(conn.connection.driver_connection, run_id, key)
                return list(zip(*columns))

            return store._read(blocks)  # type: ignore[attr-defined]

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


def finite_or_none(value: float | None) -> float | None:
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
    return {**bucketed(points, width, 0 if x_axis == "step" else 1, edges), "range": full}


def bucketed(points: list, width: int, xi: int, edges: tuple[int, int] | None) -> dict[str, Any]:
    nonfinite = 0
    if len(points) <= width:
        xs, values = [], []
        for p in points:
            value = finite_or_none(p[2])
            nonfinite += value is None
            xs.append(p[xi])
            values.append(value)
        return series_answer(len(points), nonfinite, True, xs, values, values, values)
    first, last_x = edges or (points[0][xi], points[-1][xi])
    span = (last_x - first) or 1
    top = width - 1
    xs, lasts, mins, maxs = [], [], [], []
    current = -1
    for p in points:
        b = min((p[xi] - first) * width // span, top)
        value = finite_or_none(p[2])
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
    return series_answer(len(points), nonfinite, False, xs, lasts, mins, maxs)


def series_answer(n, nonfinite, exact: bool, xs: list, lasts: list, mins, maxs) -> dict[str, Any]:
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
        answer = {**bucketed(points, width, xi, edges), "range": full}
        if not band and not answer["exact"]:
            answer["min"] = answer["max"] = None
        out[run_id] = answer
    return out


def wire_item(run_id: str, key: str, answer: dict[str, Any], f64: bool = False) -> dict[str, Any]:
    """One series as the UI's endpoint sends it: an exact series' band is its
    line, so it is not sent twice (``min`` and ``max`` None). ``f64``: the
    ``last``, ``min`` and ``max`` lists as :func:`f64_text` strings."""
    item = {"run": run_id, "key": key, **answer}
    if answer["exact"]:
        item["min"] = item["max"] = None
    if f64:
        for name in ("last", "min", "max"):
            if item[name] is not None:
                item[name] = f64_text(item[name])
    return item


def wire_items(
    answers: Iterable[tuple[str, str, dict[str, Any]]], f64: bool = False
) -> list[dict[str, Any]]:
    """:func:`wire_item` of each ``(run_id, key, answer)``. ``f64`` (the UI's
    compact encoding): a series whose ``x`` equals the previous series' is sent
    with ``"x": "same"`` (overlaid runs of one length share their bucket
    edges, so 100 runs' x lists are one list, not 100)."""
    out: list[dict[str, Any]] = []
    previous = None
    for run_id, key, answer in answers:
        item = wire_item(run_id, key, answer, f64)
        if f64 and previous is not None and answer["x"] == previous:
            item["x"] = "same"
        previous = answer["x"]
        out.append(item)
    return out


def f64_text(values: Sequence[float | None]) -> str:
    """``values`` as base64 of little-endian float64, None as NaN: the same
    numbers bit for bit, without formatting each one as decimal text (the
    browser reads them with a Float64Array)."""
    packed = array("d", [math.nan if v is None else v for v in values])
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


class JsonBody:
    """A JSON answer's bytes, and their gzip made once when first asked (a kept
    answer keeps both, so serving it again costs neither encoding).
    ``compressible`` False: sent as it is (mostly base64 of float64, which gzip
    shrinks by about half at some 40 ms of CPU per MB)."""

    __slots__ = ("_gz", "compressible", "raw")

    def __init__(self, raw: bytes, compressible: bool = True) -> None:
        self.raw, self._gz, self.compressible = raw, None, compressible

    def gzipped(self) -> bytes:
        if self._gz is None:
            import gzip

            self._gz = gzip.compress(self.raw, 5, mtime=0)
        return self._gz
