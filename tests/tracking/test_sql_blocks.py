"""SQLite's history as blocks (schema v5, ``sql_blocks``): the history order
and its step ranges against a model of the row layout, identical points
stored once, blocks capped, the migration of a v4 database's rows."""

from __future__ import annotations

import math
import random
import sqlite3

import pytest
import sqlalchemy as sa

from autolog.tracking.entities import Metric
from autolog.tracking.stores import sql_blocks, sql_schema
from autolog.tracking.stores.sql import SqlStore
from tests.tracking.sql_stores import fill_old_schema, send_points


@pytest.fixture
def store(tmp_path):
    s = SqlStore(f"sqlite:///{tmp_path}/b.db", artifact_root=str(tmp_path / "a"))
    yield s
    s.close()


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


class _Model:
    """The row layout's semantics: one row per distinct point (run, key, step,
    timestamp, value; NaN equal to NaN), history order (step, timestamp,
    logging order)."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, str], list[tuple[int, int, float]]] = {}

    def log(self, run_id: str, metrics: list[Metric]) -> None:
        for m in metrics:
            stored = self.points.setdefault((run_id, m.key), [])
            point = (m.step, m.timestamp, float(m.value))
            if not any(
                p[0] == point[0] and p[1] == point[1] and _same(p[2], point[2]) for p in stored
            ):
                stored.append(point)

    def history(self, run_id: str, key: str) -> list[tuple[int, int, float]]:
        stored = self.points.get((run_id, key), [])
        order = sorted(range(len(stored)), key=lambda i: (stored[i][0], stored[i][1], i))
        return [stored[i] for i in order]


def _as_points(history: list[Metric]) -> list[tuple[int, int, float]]:
    return [(m.step, m.timestamp, m.value) for m in history]


def _equal(got: list[tuple], want: list[tuple]) -> bool:
    return len(got) == len(want) and all(
        g[0] == w[0] and g[1] == w[1] and _same(g[2], w[2]) for g, w in zip(got, want)
    )


def _value(rng: random.Random) -> float:
    roll = rng.random()
    if roll < 0.05:
        return rng.choice([math.nan, math.inf, -math.inf, -0.0])
    return float(rng.randint(-3, 3)) if roll < 0.3 else rng.uniform(-1, 1)


def test_history_order_and_ranges_match_the_row_layout(store):
    """Appends, earlier steps, a step logged again with another timestamp or
    value, the same (step, timestamp) across writes, retried writes, repeats
    within one write, interleaved keys and runs, one store.batch(): after each
    write the history (and any step range of it) is the model's."""
    rng = random.Random(16)
    model = _Model()
    runs = [store.create_run("0", "u", 0).info.run_id for _ in range(2)]
    top = {"a": 0, "b": 0}
    sent: list[tuple[str, list[Metric]]] = []
    for round_ in range(60):
        run_id = rng.choice(runs)
        kind = rng.choice(["append", "append", "earlier", "same", "retry", "repeat", "batch"])
        points = []
        for _ in range(rng.randint(1, 300)):
            key = rng.choice("ab")
            if kind in ("append", "batch"):
                top[key] += rng.choice([1, 1, 2, 300])
                step = top[key]
            elif kind == "earlier":
                step = rng.randint(-50, top[key])
            else:  # a step already logged, maybe at the same timestamp
                step = rng.randint(max(0, top[key] - 5), top[key])
            points.append(Metric(key, _value(rng), 1000 + rng.randint(0, 2), step))
        if kind == "repeat":
            points += rng.sample(points, len(points) // 2)
        run_id, points = send_points(store, kind, run_id, points, sent, rng)
        model.log(run_id, points)
        for run in runs:
            for key in "ab":
                want = model.history(run, key)
                got = _as_points(store.get_metric_history(run, key))
                assert _equal(got, want), (round_, kind, run, key)
    # a page (the server's get-history) is the same slice of the whole
    for run in runs:
        for key in "ab":
            whole = _as_points(store.get_metric_history(run, key))
            for offset, limit in [(0, 1), (0, 10**6), (3, 50), (len(whole) - 5, 100), (10**6, 5)]:
                page, total = store.metric_history_page(run, key, max(0, offset), limit)
                assert total == len(whole)
                assert _equal(_as_points(page), whole[max(0, offset) : max(0, offset) + limit])
    # a step range reads the blocks meeting it: the same points as the whole, cut
    driver = store._engine.raw_connection()
    try:
        for run in runs:
            for key in "ab":
                want = model.history(run, key)
                for lo, hi in [(-10, 5), (3, 3), (50, 400), (top[key] - 20, 10**9)]:
                    columns = sql_blocks.series(driver.driver_connection, run, key, lo, hi)
                    got = list(zip(*columns))
                    assert _equal(got, [p for p in want if lo <= p[0] <= hi]), (key, lo, hi)
                    first, last, n = sql_blocks.count(driver.driver_connection, run, key, lo, hi)
                    inside = [p[0] for p in want if lo <= p[0] <= hi]
                    assert (first, last, n) == (
                        (min(inside), max(inside), len(inside)) if inside else (None, None, 0)
                    )
    finally:
        driver.close()


def _blocks(store: SqlStore) -> list[tuple]:
    sql = "SELECT run_id, key, n, min_step, max_step, ordered FROM metric_blocks ORDER BY seq"
    return store._read(lambda conn: conn.exec_driver_sql(sql).fetchall())


def test_an_identical_point_is_stored_once_and_a_retried_write_adds_no_row(store):
    run_id = store.create_run("0", "u", 0).info.run_id
    batch = [
        Metric("m", 1.0, 7, 0),
        Metric("m", math.nan, 7, 0),
        Metric("m", 0.0, 7, 1),
        Metric("m", math.inf, 7, 2),
        Metric("m", math.nan, 7, 0),  # repeated in the write
    ]
    store.log_batch(run_id, batch)
    assert [r[2] for r in _blocks(store)] == [4]
    store.log_batch(run_id, batch)  # retried: nothing new, no row
    store.log_batch(run_id, [Metric("m", -0.0, 7, 1)])  # equal to 0.0, as SQL compares
    assert [r[2] for r in _blocks(store)] == [4]
    history = store.get_metric_history(run_id, "m")
    assert [(m.step, m.timestamp) for m in history] == [(0, 7), (0, 7), (1, 7), (2, 7)]
    assert history[0].value == 1.0 and math.isnan(history[1].value)
    assert history[3].value == math.inf
    # a new point among stored ones: only it is stored
    store.log_batch(run_id, [*batch, Metric("m", 2.0, 7, 0)])
    assert [r[2] for r in _blocks(store)] == [4, 1]
    assert [m.value for m in store.get_metric_history(run_id, "m")][2] == 2.0
    latest = store.get_run(run_id).data.metrics
    assert latest == {"m": math.inf}


def test_a_page_of_a_long_history_reads_only_the_blocks_it_meets(store):
    run_id = store.create_run("0", "u", 0).info.run_id
    for b in range(50):
        store.log_batch(
            run_id, [Metric("m", float(s), 5, s) for s in range(b * 100, b * 100 + 100)]
        )
    path = store.uri.removeprefix("sqlite:///")
    conn = sqlite3.connect(path)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        steps, _times, values, total = sql_blocks.page(conn, run_id, "m", 1250, 100)
    finally:
        conn.close()
    assert total == 5000 and steps == list(range(1250, 1350)) and list(values) == steps
    (read,) = [s for s in statements if "WHERE seq IN" in s]
    assert len(read.split("WHERE seq IN (")[1].split(",")) == 2  # the page's two blocks of 50


def test_a_long_write_is_cut_into_capped_blocks_in_logging_order(store):
    run_id = store.create_run("0", "u", 0).info.run_id
    n = 2 * sql_blocks.BLOCK_POINTS + 10
    store.log_batch(run_id, [Metric("m", float(i), 5, n - i) for i in range(n)])  # descending
    blocks = _blocks(store)
    assert [b[2] for b in blocks] == [sql_blocks.BLOCK_POINTS] * 2 + [10]
    assert [b[5] for b in blocks] == [0, 0, 0]  # not in history order: sorted when read
    assert [m.step for m in store.get_metric_history(run_id, "m")] == list(range(1, n + 1))


def test_a_block_row_cascades_with_its_run(store):
    run_id = store.create_run("0", "u", 0).info.run_id
    store.log_batch(run_id, [Metric("m", 1.0, 5, s) for s in range(10)])
    path = store.uri.removeprefix("sqlite:///")
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        for table in ("latest_metrics", "metric_summaries"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM tags WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        assert conn.execute("SELECT count(*) FROM metric_blocks").fetchone()[0] == 0


def _v4_database(path) -> tuple[str, dict[tuple[str, str], list[tuple]]]:
    """A database at schema v4 (rows, one per point) as an autolog before v5
    wrote it; the rows of each series in logging order."""
    uri = f"sqlite:///{path}"
    engine = sa.create_engine(uri)
    rng = random.Random(4)
    rows = []
    runs = [f"{i:032x}" for i in range(1, 4)]
    for run_id in runs:
        for key in ("loss", "acc"):
            size = 5000 if key == "loss" and run_id == runs[0] else rng.randint(1, 900)
            for s in range(size):
                step = s if key == "loss" else 900 - s * 3  # acc: logged downwards
                rows.append((run_id, key, _value(rng), step, 1000 + s))
                if rng.random() < 0.05:  # the step logged again, later, another value
                    rows.append((run_id, key, _value(rng), step, 1000 + s + 7))
    rng.shuffle(rows)  # series interleaved in the logging order
    with engine.begin() as conn:
        fill_old_schema(conn, 4, runs, rows)
        from autolog.tracking.stores import sql_summaries

        sql_summaries.fill(
            conn,
            (
                tuple(row)
                for row in conn.exec_driver_sql(
                    "SELECT run_id, key, step, value FROM metrics"
                    " ORDER BY run_id, key, step, timestamp, seq"
                )
            ),
        )
        stored = conn.exec_driver_sql(
            "SELECT run_id, key, step, timestamp, value FROM metrics"
            " ORDER BY run_id, key, step, timestamp, seq"
        ).fetchall()
        assert conn.exec_driver_sql("SELECT version FROM autolog_schema_version").scalar() == 4
    engine.dispose()
    want: dict[tuple[str, str], list[tuple]] = {}
    for run_id, key, step, ts, value in stored:
        want.setdefault((run_id, key), []).append((step, ts, math.nan if value is None else value))
    return uri, want


def test_migration_from_v4_converts_the_rows_into_blocks(tmp_path):
    from tests.tracking.test_sql_summaries import _refilled, _rows

    uri, want = _v4_database(tmp_path / "v4.db")
    engine = sa.create_engine(uri)
    with engine.connect() as conn:
        before = conn.exec_driver_sql(
            "SELECT * FROM metric_summaries ORDER BY run_id, key, block"
        ).fetchall()
    engine.dispose()
    store = SqlStore(uri)
    try:
        tables = store._read(lambda conn: set(sa.inspect(conn).get_table_names()))
        assert "metric_blocks" in tables and "metrics" not in tables
        version = store._read(
            lambda conn: conn.exec_driver_sql("SELECT version FROM autolog_schema_version").scalar()
        )
        assert version == sql_schema.SCHEMA_VERSION == 5
        for (run_id, key), points in want.items():
            got = _as_points(store.get_metric_history(run_id, key))
            assert _equal(got, points), (run_id, key)
        blocks = _blocks(store)
        assert sum(b[2] for b in blocks) == sum(map(len, want.values()))
        assert max(b[2] for b in blocks) == sql_blocks.BLOCK_POINTS  # the long series: cut
        # the summaries of v4 hold the same points: kept as they were, and exact
        assert _rows(store) == before == _refilled(store)
        # a retried point is still stored once; a new one is stored
        run_id, key = next(iter(want))
        step, ts, value = want[run_id, key][0]
        store.log_batch(run_id, [Metric(key, value, ts, step), Metric(key, 0.5, ts + 1, step)])
        assert len(store.get_metric_history(run_id, key)) == len(want[run_id, key]) + 1
        assert _rows(store) == _refilled(store)
    finally:
        store.close()


def test_one_step_logged_at_times_that_go_on_reads_no_block_and_chains(store, tmp_path):
    """Step 0 every time (log_metric without a step): a write after every
    stored timestamp reads no stored block, the history needs no sort (the
    blocks chain), a retried write reads the blocks it meets and adds nothing."""
    run_id = store.create_run("0", "u", 0).info.run_id
    path = store.uri.removeprefix("sqlite:///")
    store.close()
    statements: list[str] = []  # as traced: the parameters in place
    stored = sql_blocks._STORED.split(" WHERE")[0]  # the lookup that reads blocks
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.set_trace_callback(statements.append)
        cursor = conn.cursor()
        sent = []
        for b in range(20):
            rows = [(run_id, "m", float(i), False, 0, b * 100 + i) for i in range(100)]
            sent.append(rows)
            assert len(sql_blocks.write(cursor, rows)[run_id, "m"]) == 100
        assert not [s for s in statements if s.startswith(stored)]
        assert sql_blocks.write(cursor, sent[7]) == {}  # retried: nothing stored
        assert [s for s in statements if s.startswith(stored)]
        rows = conn.execute(f"{sql_blocks._ALL}", (run_id, "m")).fetchall()
        (cluster,) = sql_blocks._clusters(rows)
        assert sql_blocks._chain(cluster) is not None
        steps, times, values = sql_blocks.series(conn, run_id, "m")
        assert list(times) == list(range(2000)) and set(steps) == {0}
        assert list(values) == [float(i) for _ in range(20) for i in range(100)]
    finally:
        conn.close()


def test_latest_of_is_the_highest_step_then_timestamp_then_the_later_point():
    """Every fast path of sql_write.latest_of (steps that grow over interleaved
    keys, one key with a unique top step) against the rule itself."""
    from autolog.tracking.stores.sql_write import latest_of

    def rule(history):
        latest = {}
        for point in history:
            best = latest.get(point[1])
            if best is None or (point[4], point[5]) >= (best[4], best[5]):
                latest[point[1]] = point
        return latest

    rng = random.Random(12)
    for _ in range(300):
        keys = rng.choice(["a", "ab", "abc"])
        grow = rng.random() < 0.5
        history, step = [], rng.randint(-5, 5)
        for i in range(rng.randint(1, 40)):
            step = step + rng.randint(1, 3) if grow else rng.randint(-3, 3)
            history.append(("r", rng.choice(keys), float(i), False, step, rng.randint(0, 2)))
        assert latest_of(history) == rule(history)
