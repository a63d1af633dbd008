"""The SQL store's metric summaries (schema v4, SQLite): kept exact by every
write, filled by the migration from a v3 database, and read by the UI's
overlay lines with the same answer as the points give."""

from __future__ import annotations

import math
import random

import pytest
import sqlalchemy as sa

from autolog.tracking.entities import Metric
from autolog.tracking.stores import sql_schema, sql_summaries
from autolog.tracking.stores.sql import SqlStore
from autolog.ui import buckets_sql
from autolog.ui.buckets import bucket_runs, history_points, metric_series
from tests.tracking.sql_stores import SQL_STORE_FACTORIES, fill_old_schema, send_points

_ROWS = (
    "SELECT run_id, key, block, n, nonfinite, vmin, vmax, first, offsets, lasts"
    " FROM metric_summaries ORDER BY run_id, key, block"
)


def _rows(store: SqlStore) -> list[tuple]:
    return store._read(lambda conn: conn.exec_driver_sql(_ROWS).fetchall())


def _refilled(store: SqlStore) -> list[tuple]:
    """The rows as summarised afresh from the stored points (rolled back)."""

    def work(conn):
        sql_summaries.fill(conn)
        rows = conn.exec_driver_sql(_ROWS).fetchall()
        raise _Rollback(rows)

    try:
        store._transaction(work)
    except _Rollback as done:
        return done.rows
    raise AssertionError("unreachable")


class _Rollback(Exception):
    def __init__(self, rows):
        self.rows = rows


@pytest.fixture
def store(tmp_path):
    s = SqlStore(f"sqlite:///{tmp_path}/s.db")
    yield s
    s.close()


def _value(rng: random.Random) -> float:
    roll = rng.random()
    if roll < 0.03:
        return math.nan
    if roll < 0.05:
        return rng.choice([math.inf, -math.inf])
    return rng.uniform(-5, 5)


def test_every_kind_of_write_keeps_the_summaries_exact(store):
    """Appends, earlier steps, a step logged twice, identical repeats (a retried
    batch), NaN and +-inf, sparse and negative steps, interleaved keys, one
    store.batch(): after each write the rows are the ones summarising the
    stored points afresh gives."""
    rng = random.Random(7)
    runs = [store.create_run("0", "u", 0).info.run_id for _ in range(2)]
    step = {key: 0 for key in ("a", "b")}
    sent = []
    for round_ in range(40):
        run_id = rng.choice(runs)
        kind = rng.choice(["append", "append", "earlier", "twice", "retry", "sparse", "batch"])
        points = []
        for _ in range(rng.randint(1, 700)):
            key = rng.choice(["a", "b"])
            if kind == "earlier":
                s = rng.randint(-300, step[key])
            elif kind == "twice":
                s = step[key]
            elif kind == "sparse":
                step[key] += rng.choice([1, 255, 256, 257, 5000])
                s = step[key]
            else:
                step[key] += 1
                s = step[key]
            points.append(Metric(key, _value(rng), 1000 + round_ * 10 + rng.randint(0, 3), s))
        send_points(store, kind, run_id, points, sent, rng)
        assert _rows(store) == _refilled(store), (round_, kind)
    assert any(r[8] is not None for r in _rows(store))  # sparse blocks were written


def test_a_step_logged_past_the_cap_leaves_its_block_to_the_points(store):
    run_id = store.create_run("0", "u", 0).info.run_id
    values = [float(i) for i in range(sql_summaries.CAP + 5)]
    values[0], values[4], values[7] = math.inf, math.nan, -math.inf  # counted, not min or max
    store.log_batch(run_id, [Metric("m", v, i, 3) for i, v in enumerate(values)])
    store.log_batch(run_id, [Metric("m", 1.0, 0, s) for s in range(4, 2000)])
    (first, *rest) = _rows(store)
    assert first[2] == 0 and first[9] is None  # block 0: unsummarised
    assert all(r[9] is not None for r in rest)
    assert _rows(store) == _refilled(store)
    # the UI's lines and band there come from that block's points, and are exact
    got = metric_series(store, [run_id], ["m"], 50, band=False)[0]
    want = bucket_runs({run_id: history_points(store, run_id, "m")}, 50, band=False)[run_id]
    assert (got["x"], got["last"]) == (want["x"], want["last"])
    buckets_sql._CACHE.clear()
    got = metric_series(store, [run_id], ["m"], 50)[0]
    want = bucket_runs({run_id: history_points(store, run_id, "m")}, 50)[run_id]
    for field in ("n", "nonfinite", "exact", "x", "last", "min", "max"):
        assert got[field] == want[field], field


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
def test_a_run_that_ends_has_its_rows_written_again_together(store, status):
    """Rows grown batch by batch among other runs' rows come out, once the
    run ends, with consecutive rowids in (key, block) order (so they fill
    pages taken in a row), holding what they held; the other run's rows are
    untouched, and writes after the end still keep the rows exact."""
    ours, other = (store.create_run("0", "u", 0).info.run_id for _ in range(2))
    for at in range(0, 3000, 200):  # two runs' batches interleaved, keys interleaved
        for run_id in (ours, other):
            store.log_batch(
                run_id,
                [Metric(k, float(s % 37), s, s) for s in range(at, at + 200) for k in "ba"],
            )

    def layout(run_id):
        sql = "SELECT rowid, key, block FROM metric_summaries WHERE run_id = ? ORDER BY rowid"
        return store._read(lambda conn: conn.exec_driver_sql(sql, (run_id,)).fetchall())

    before, others = _rows(store), layout(other)
    rowids = [r[0] for r in layout(ours)]
    assert rowids != list(range(rowids[0], rowids[0] + len(rowids)))  # interleaved
    store.update_run_info(ours, status, 5)
    assert _rows(store) == before and layout(other) == others
    after = layout(ours)
    assert [r[1:] for r in after] == sorted(r[1:] for r in after)  # (key, block) order
    assert [r[0] for r in after] == list(range(after[0][0], after[0][0] + len(after)))
    assert after[0][0] > max(rowids)  # new rows: pages taken after every other row's
    store.log_batch(ours, [Metric("a", -1.0, 9, 5), Metric("a", 2.0, 9, 4000)])
    assert _rows(store) == _refilled(store)


def _v3_database(path) -> str:
    """A database at schema v3 (as an autolog before v4 made it) with points."""
    uri = f"sqlite:///{path}"
    engine = sa.create_engine(uri)
    rng = random.Random(3)
    rows = []
    runs = [f"{i:032x}" for i in range(1, 4)]
    for run_id in runs:
        for key in ("loss", "acc"):
            for s in range(rng.randint(1, 3000)):
                step = s if key == "loss" else s * 7 - 100
                rows.append((run_id, key, _value(rng), step, 1000 + s))
                if rng.random() < 0.05:  # the step logged again, later
                    rows.append((run_id, key, _value(rng), step, 2000 + s))
    with engine.begin() as conn:
        fill_old_schema(conn, 3, runs, rows)
        assert conn.exec_driver_sql("SELECT version FROM autolog_schema_version").scalar() == 3
    engine.dispose()
    return uri


def test_migration_from_v3_fills_the_summaries(tmp_path):
    uri = _v3_database(tmp_path / "old.db")
    store = SqlStore(uri)  # migrates to v4, then v5 (the blocks)
    try:
        version = store._read(
            lambda conn: conn.exec_driver_sql("SELECT version FROM autolog_schema_version").scalar()
        )
        assert version == sql_schema.SCHEMA_VERSION == 5
        rows = _rows(store)
        assert rows and rows == _refilled(store)
        runs = sorted({r[0] for r in rows})
        assert sum(r[3] for r in rows) == store._read(
            lambda conn: conn.exec_driver_sql("SELECT sum(n) FROM metric_blocks").scalar()
        )
        # and the overlay lines read from them are those of the points
        for key in ("loss", "acc"):
            got = metric_series(store, runs, [key], 120, band=False)
            want = bucket_runs({r: history_points(store, r, key) for r in runs}, 120, band=False)
            for item in got:
                if not item["exact"]:
                    assert (item["x"], item["last"]) == (
                        want[item["run"]]["x"],
                        want[item["run"]]["last"],
                    )
    finally:
        store.close()


@pytest.mark.parametrize("window", [(None, None), (-50.5, 4000.2), (300, 301)])
def test_overlay_lines_come_from_the_summaries_and_match_the_points(store, window, monkeypatch):
    """Dense, sparse, gapped and NaN/inf-holding runs sharing edges: the lines
    read from the summaries (no seek per bucket: _lines is never called) are
    the ones bucket_runs gives over the points."""
    rng = random.Random(11)
    runs = []
    shapes = [
        range(0, 5000),
        range(-40, 3000, 3),
        [*range(0, 900), *range(2000, 4100)],
        range(7, 600),
    ]
    for steps in shapes:
        run_id = store.create_run("0", "u", 0).info.run_id
        points = [Metric("m", _value(rng), 10 + i, s) for i, s in enumerate(steps)]
        for at in range(0, len(points), 333):
            store.log_batch(run_id, points[at : at + 333])
        runs.append(run_id)

    def no_seeks(*args):
        raise AssertionError("a line was sought bucket by bucket")

    monkeypatch.setattr(buckets_sql, "_lines", no_seeks)
    monkeypatch.setattr(buckets_sql, "PYTHON_LINES", 0)
    got = metric_series(store, runs, ["m"], 200, "step", *window, band=False)
    want = bucket_runs(
        {r: history_points(store, r, "m") for r in runs}, 200, "step", *window, band=False
    )
    for item in got:
        expected = want[item["run"]]
        assert item["exact"] == expected["exact"]
        assert (item["x"], item["last"]) == (expected["x"], expected["last"])
        assert tuple(item["range"] or ()) == tuple(expected["range"] or ())


def test_postgresql_keeps_no_summaries_and_its_lines_are_exact(tmp_path):
    store = SQL_STORE_FACTORIES["postgresql"](tmp_path)
    try:
        run_id = store.create_run("0", "u", 0).info.run_id
        store.log_batch(run_id, [Metric("m", math.sin(s), s, s) for s in range(3000)])
        tables = store._read(lambda conn: set(sa.inspect(conn).get_table_names()))
        assert "metric_summaries" not in tables
        got = metric_series(store, [run_id], ["m"], 100, band=False)[0]
        want = bucket_runs({run_id: history_points(store, run_id, "m")}, 100, band=False)[run_id]
        assert (got["x"], got["last"]) == (want["x"], want["last"])
    finally:
        store.close()


@pytest.mark.parametrize("window", [(None, None), (-50.5, 4000.2), (300, 301), (1000, 2500)])
def test_bands_come_from_the_summaries_and_match_the_points(store, window, monkeypatch):
    """One run's band (count, NaN/inf count, finite min and max, last point per
    bucket) over dense, sparse, gapped and NaN/inf-holding runs, and one whose
    steps were logged twice: what bucket_runs gives over the points. Only the
    run with repeated steps may fall back to the per-bucket aggregates, and
    only where a bucket edge cuts a block holding a repeat."""
    rng = random.Random(5)
    shapes = {
        "dense": range(0, 6000),
        "sparse": range(-40, 9000, 3),
        "gapped": [*range(0, 900), *range(2000, 4100)],
        "repeats": range(0, 5000),
    }
    runs = {}
    for name, steps in shapes.items():
        run_id = store.create_run("0", "u", 0).info.run_id
        points = [Metric("m", _value(rng), 10 + i, s) for i, s in enumerate(steps)]
        if name == "repeats":  # every 700th step logged again, later
            points += [Metric("m", _value(rng), 99_999, s) for s in steps[::700]]
        for at in range(0, len(points), 333):
            store.log_batch(run_id, points[at : at + 333])
        runs[name] = run_id
    aggregated = []
    real_bands = buckets_sql._bands

    def counted_bands(cursor, run_id, *args):
        aggregated.append(run_id)
        return real_bands(cursor, run_id, *args)

    monkeypatch.setattr(buckets_sql, "_bands", counted_bands)
    monkeypatch.setattr(buckets_sql, "PYTHON_BANDS", 0)  # never the points in Python
    for name, run_id in runs.items():
        got = metric_series(store, [run_id], ["m"], 150, "step", *window)[0]
        want = bucket_runs({run_id: history_points(store, run_id, "m")}, 150, "step", *window)
        expected = want[run_id]
        for field in ("n", "nonfinite", "exact", "x", "last", "min", "max"):
            assert got[field] == expected[field], (name, field)
        if name != "repeats":
            assert run_id not in aggregated, name
    if window == (None, None):
        assert not any(run_id != runs["repeats"] for run_id in aggregated)
