"""The UI's read endpoints and the projections behind them, on the file and SQL stores."""

from __future__ import annotations

import base64
import gzip
import json
import math
import random
import struct
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from autolog.errors import InvalidFilterError, InvalidParameterError
from autolog.tracking.entities import Metric, Param, RunStatus, RunTag
from autolog.tracking.stores.file import FileStore
from autolog.tracking.stores.sql import SqlStore
from autolog.ui.buckets import (
    bucket_points,
    bucket_runs,
    history_points,
    metric_series,
    metric_series_json,
)
from autolog.ui.projection import RunsQuery, count_runs, experiment_rows, runs_window
from tests.tracking.sql_stores import SQL_STORE_FACTORIES
from tests.ui.browser import UIServer
from tests.ui.conftest import repo_path, ui_app

# -- buckets ---------------------------------------------------------------------


def test_few_points_come_back_exactly():
    points = [(s, 1000 + s, s * 0.5) for s in range(50)]
    out = bucket_points(points, 50)
    assert (
        out["exact"] and out["x"] == list(range(50)) and out["last"] == [s * 0.5 for s in range(50)]
    )


def test_buckets_keep_every_extreme_and_the_last_value():
    rng = random.Random(7)
    points = [(s, s, rng.gauss(0, 1)) for s in range(100_000)]
    points[51_234] = (51_234, 51_234, 25.0)  # one spike must survive
    out = bucket_points(points, 300)
    assert not out["exact"] and out["n"] == 100_000
    assert len(out["x"]) <= 300
    assert max(out["max"]) == 25.0
    assert min(out["min"]) == min(p[2] for p in points)
    assert out["last"][-1] == points[-1][2] and out["x"][-1] == points[-1][0]
    # every point lies in the band of the bucket that holds it
    edges = out["x"]
    b = 0
    for step, _, value in points:
        while step > edges[b]:
            b += 1
        assert out["min"][b] <= value <= out["max"][b]


def test_a_zoomed_range_is_exact_again():
    points = [(s, s, float(s)) for s in range(1_000_000)]
    out = bucket_points(points, 800, lo=1000, hi=1500)
    assert out["exact"] and out["x"] == list(range(1000, 1501))
    assert out["range"] == (0, 999_999)


def test_nan_and_inf_are_gaps_not_values():
    points = [(0, 0, 1.0), (1, 1, math.nan), (2, 2, math.inf), (3, 3, 2.0)]
    out = bucket_points(points, 10)
    assert out["last"] == [1.0, None, None, 2.0] and out["nonfinite"] == 2
    many = [(s, s, math.nan if s % 2 else float(s)) for s in range(1000)]
    out = bucket_points(many, 10)
    assert None not in out["min"] and max(out["max"]) == 998.0


def test_time_axis_and_bad_arguments():
    points = [(0, 30, 1.0), (1, 10, 2.0), (2, 20, 3.0)]
    assert bucket_points(points, 10, "time")["x"] == [10, 20, 30]
    with pytest.raises(InvalidParameterError, match="x axis 'wall'"):
        bucket_points(points, 10, "wall")
    with pytest.raises(InvalidParameterError, match="width 0"):
        bucket_points(points, 0)


# -- projections, on the file store and both SQL stores -------------------------------------------


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def store(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if request.param == "file":
        s = FileStore(tmp_path / "mlruns")
    else:
        s = SQL_STORE_FACTORIES[request.param](tmp_path)
    yield s
    s.close()


def fill(store, n_parents=12, n_children=3):
    exp = store.create_experiment("grid")
    ids = {}
    for p in range(n_parents):
        parent = store.create_run(exp, "u", 1000 + p * 10, run_name=f"p{p:02d}").info.run_id
        store.log_batch(parent, [Metric("acc", p / 100, 1, 0)], [Param("i", str(p))])
        store.update_run_info(parent, RunStatus.FINISHED, 1000 + p * 10 + (p % 5))
        ids[f"p{p:02d}"] = parent
        for c in range(n_children):
            tags = [RunTag("mlflow.parentRunId", parent)]
            child = store.create_run(
                exp, "u", 2000 + p * 10 + c, tags, run_name=f"c{p}-{c}"
            ).info.run_id
            store.log_batch(child, [Metric("acc", c / 10, 1, 0)])
    return exp, ids


def test_the_window_folds_children_and_counts_them(store):
    exp, ids = fill(store)
    q = RunsQuery((exp,), sort="metrics.acc", columns=("metrics.acc", "params.i"))
    out = runs_window(store, q, offset=5, limit=4)
    assert out["total"] == 12
    assert [r["name"] for r in out["rows"]] == ["p06", "p05", "p04", "p03"]
    assert [r["values"] for r in out["rows"]] == [[p / 100, str(p)] for p in (6, 5, 4, 3)]
    assert all(r["children"] == 3 for r in out["rows"])
    kids = runs_window(store, q, parent=ids["p05"])
    assert sorted(r["name"] for r in kids["rows"]) == ["c5-0", "c5-1", "c5-2"]
    assert kids["total"] == 3
    flat = runs_window(store, RunsQuery((exp,), nested=False), limit=100)
    assert flat["total"] == 48 and all(r["children"] == 0 for r in flat["rows"])


def test_the_filter_applies_to_parents_and_their_counted_children(store):
    exp, _ = fill(store)
    q = RunsQuery((exp,), filter="metrics.acc >= 0.1 OR attributes.run_name LIKE 'p0%'")
    out = runs_window(store, q, limit=100)
    assert {r["name"] for r in out["rows"]} == {f"p{p:02d}" for p in range(12)}
    assert all(r["children"] == 2 for r in out["rows"])  # c*-1 and c*-2 match, c*-0 not
    assert count_runs(store, [exp], "metrics.acc >= 0.1") == 2 + 2 * 12


def test_a_matching_child_shows_under_its_parent_as_context(store):
    exp, ids = fill(store)
    q = RunsQuery((exp,), filter="attributes.run_name = 'c5-1' OR attributes.run_name = 'p07'")
    out = runs_window(store, q, limit=100)
    by_name = {r["name"]: r for r in out["rows"]}
    assert set(by_name) == {"p05", "p07"} and out["total"] == 2
    assert by_name["p05"]["context"] is True and by_name["p05"]["children"] == 1
    assert by_name["p07"]["context"] is False and by_name["p07"]["children"] == 0
    kids = runs_window(store, q, parent=ids["p05"])
    assert [(r["name"], r["context"]) for r in kids["rows"]] == [("c5-1", False)]
    flat = runs_window(store, RunsQuery((exp,), filter=q.filter, nested=False), limit=100)
    assert sorted(r["name"] for r in flat["rows"]) == ["c5-1", "p07"]
    # a child whose parent is gone stands at the top level
    store.delete_run(ids["p05"])
    out = runs_window(store, q, limit=100)
    assert sorted((r["name"], r["context"]) for r in out["rows"]) == [
        ("c5-1", False),
        ("p07", False),
    ]


def test_the_window_reads_only_the_columns_shown(store):
    exp, _ = fill(store, n_parents=3, n_children=0)
    q = RunsQuery((exp,), sort="params.i", descending=False, columns=("params.i", "tags.none"))
    out = runs_window(store, q, limit=2)
    assert [r["values"] for r in out["rows"]] == [["0", None], ["1", None]]
    assert out["keys"]["params"] == ["i"] and out["keys"]["metrics"] == ["acc"]
    assert out["total"] == 3


def test_sort_by_duration_and_experiment_counts(store):
    exp, _ = fill(store, n_parents=6, n_children=0)
    out = runs_window(store, RunsQuery((exp,), sort="duration", descending=True), limit=10)
    durations = [r["end"] - r["start"] for r in out["rows"]]
    assert durations == sorted(durations, reverse=True)
    rows = {r["name"]: r for r in experiment_rows(store)}
    assert rows["grid"]["runs"] == 6 and rows["Default"]["runs"] == 0
    assert rows["grid"]["last"] == max(1000 + p * 10 + (p % 5) for p in range(6))
    assert [r["name"] for r in experiment_rows(store, "RI")] == ["grid"]


def test_bad_views_are_typed_errors(store):
    exp, _ = fill(store, n_parents=1, n_children=0)
    with pytest.raises(InvalidFilterError) as bad:
        runs_window(store, RunsQuery((exp,), filter="metrics.acc >"))
    assert bad.value.position == len("metrics.acc >")
    with pytest.raises(InvalidParameterError, match="column 'colour'"):
        runs_window(store, RunsQuery((exp,), columns=("colour",)))
    with pytest.raises(InvalidParameterError, match="limit=0"):
        runs_window(store, RunsQuery((exp,)), limit=0)


def test_history_points_are_the_logged_ones(store):
    exp = store.create_experiment("h")
    run_id = store.create_run(exp, "u", 0).info.run_id
    logged = [
        Metric("m", v, 100 + i, s) for i, (s, v) in enumerate([(2, 0.5), (0, 1.5), (1, math.nan)])
    ]
    store.log_batch(run_id, logged)
    got = history_points(store, run_id, "m")
    assert [(s, t) for s, t, _ in got] == [(0, 101), (1, 102), (2, 100)]
    assert got[0][2] == 1.5 and got[2][2] == 0.5
    assert got[1][2] is None or math.isnan(got[1][2])  # NaN: a gap either way


@pytest.mark.parametrize("x_axis", ["step", "time"])
@pytest.mark.parametrize("window", [(None, None), (100.5, 3000.2), (10, 200)])
@pytest.mark.parametrize("read", ["aggregates", "points"])
def test_the_database_buckets_as_python_does(store, x_axis, window, read, monkeypatch):
    """On the SQL stores the buckets are computed by the database; the answer is
    the one bucket_runs gives over the same points (NaN, inf, a repeated step,
    runs of different lengths sharing edges), bands and lines alike, whether
    the points are aggregated in SQL or read (a few widths' worth)."""
    from autolog.ui import buckets_sql

    if read == "aggregates":  # every bucketed series through the per-bucket SQL
        monkeypatch.setattr(buckets_sql, "PYTHON_BANDS", 0)
        monkeypatch.setattr(buckets_sql, "PYTHON_LINES", 0)
    rng = random.Random(1)
    exp = store.create_experiment("b")
    runs = []
    for length, every in ((3000, 1), (2400, 1), (150, 1), (500, 7)):  # the last one sparse
        run_id = store.create_run(exp, "u", 0).info.run_id
        points = [
            Metric("m", rng.random() if s % 13 else math.nan, 1000 + s * 3 + s % 5, s * every)
            for s in range(length)
        ]
        points += [Metric("m", 5.0, 999, 100), Metric("m", math.inf, 998, 101)]
        points += [Metric("m", -math.inf, 997, 102), Metric("m", 0.25, 1000 + 3 * 102, 102)]
        store.log_batch(run_id, points)
        runs.append(run_id)
    for band in (True, False):
        got = metric_series(store, runs, ["m", "missing"], 300, x_axis, *window, band=band)
        assert len(got) == 8
        history = {r: history_points(store, r, "m") for r in runs}
        want = bucket_runs(history, 300, x_axis, *window, band=band)
        for item in got[:4]:
            mine = {k: item[k] for k in want[item["run"]]}
            mine["range"] = tuple(mine["range"]) if mine["range"] else None
            expected = dict(want[item["run"]])
            if mine["n"] is None:  # a line whose points were not counted
                assert not band and not mine["exact"] and mine["nonfinite"] is None
                mine["n"], mine["nonfinite"] = expected["n"], expected["nonfinite"]
            assert mine == expected
        assert all(item["n"] == 0 and item["range"] is None for item in got[4:])
        if window == (None, None):
            assert not got[0]["exact"] and not got[1]["exact"] and got[2]["exact"]
            if x_axis == "step":  # the bucketed runs share their edges: one x grid
                assert set(got[1]["x"][:-1]) <= set(got[0]["x"])


def _decoded(text: str) -> list:
    """An f64 list as the page decodes it: base64 float64, NaN a gap."""
    values = struct.unpack(f"<{len(text) * 3 // 32}d", base64.b64decode(text))
    return [None if v != v else v for v in values]


@pytest.mark.parametrize("band", [True, False])
def test_the_compact_encoding_is_the_same_answer(store, band):
    """enc=f64: values as base64 float64, bit for bit those of the decimal
    answer (NaN and inf as gaps), an x list equal to the previous series' sent
    as "same", and the body marked not to be gzipped."""
    runs = []
    for length in (3000, 3000, 3000, 40, 2500):
        run_id = store.create_run("0", "u", 0).info.run_id
        points = [Metric("m", math.sin(s) / 3 + s * 1e-9, 5 + s, s) for s in range(length)]
        points[length // 2] = Metric("m", math.nan, 5, length // 2)
        points[length // 3] = Metric("m", math.inf, 5, length // 3)
        store.log_batch(run_id, [*points, Metric("k", 0.1 * length, 1, 0)])
        runs.append(run_id)
    for keys in (["m"], ["m", "k"]):
        plain = metric_series_json(store, runs, keys, 200, band=band)
        compact = metric_series_json(store, runs, keys, 200, band=band, f64=True)
        assert plain.compressible and not compact.compressible
        want = json.loads(plain.raw)["series"]
        got = json.loads(compact.raw)["series"]
        assert len(got) == len(want)
        same = 0
        for i, (item, expected) in enumerate(zip(got, want)):
            if item["x"] == "same":
                assert i > 0 and want[i - 1]["x"] == expected["x"]
                item["x"] = got[i - 1]["x"]
                same += 1
            for name in ("last", "min", "max"):
                if item[name] is not None:
                    item[name] = _decoded(item[name])
            assert item == expected
        # the three bucketed runs of one length share one x list, the others
        # differ; k's one point (step 0) is one x list for all five runs
        assert same == (2 if keys == ["m"] else 2 + 4)


# -- HTTP: headers, errors, artifact paths ----------------------------------------------


@pytest.fixture
def http(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = SqlStore(f"sqlite:///{tmp_path}/h.db")
    exp = store.create_experiment("web")
    run = store.create_run(exp, "u", 0, run_name="r").info
    root = Path(run.artifact_uri.removeprefix("file://"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "ok.txt").write_text("fine")
    (tmp_path / "secret.txt").write_text("top secret")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    srv = UIServer(ui_app(store))
    yield srv.url, run.run_id, exp, store
    srv.close()
    store.close()


def get(url):
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_the_page_is_served_under_a_restrictive_csp(http):
    url, *_ = http
    status, headers, body = get(url)
    assert status == 200 and b'<script type="module" src="ui-static/app.js">' in body
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "object-src 'none'" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    status, _, js = get(url + "ui-static/vendor/uPlot.iife.min.js")
    assert status == 200 and js.startswith(b"/*! https://github.com/leeoniya/uPlot")


def test_static_files_come_from_memory_with_validators(http):
    """Each file as it is on disk, its type, an ETag a revalidation answers
    304 to; a name that is not one of them (or climbs out) is a 404."""
    from autolog.ui.app import STATIC_DIR

    url, *_ = http
    status, headers, body = get(url + "ui-static/app.js")
    assert status == 200 and body == (STATIC_DIR / "app.js").read_bytes()
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    status, headers, body = get(url + "ui-static/vendor/uPlot.min.css")
    assert status == 200 and body == (STATIC_DIR / "vendor/uPlot.min.css").read_bytes()
    assert headers["content-type"] == "text/css; charset=utf-8" and headers["last-modified"]
    request = urllib.request.Request(url + "ui-static/vendor/uPlot.min.css")
    request.add_header("If-None-Match", headers["etag"])
    assert get(request)[0] == 304
    for path in ("nope.js", "../app.py", "..%2Fapp.py", "vendor", "__pycache__/x.pyc"):
        assert get(url + "ui-static/" + path)[0] == 404, path


def test_the_warm_up_reads_and_meets_failures_quietly(http, monkeypatch):
    """warm_up reads the first windows a page would (its statements compiled)
    and changes nothing; a store that fails leaves it silent."""
    from autolog.ui import app, projection

    *_, store = http
    for thread in threading.enumerate():  # the one the server started: done first
        if thread.name == "autolog-ui-warm-up":
            thread.join(30)
    before = projection.experiment_rows(store)
    seen = []
    window = projection.runs_window
    monkeypatch.setattr(
        projection, "runs_window", lambda s, q, *a: seen.append(q.columns) or window(s, q, *a)
    )
    app.warm_up(store)
    assert seen == [(), ("tags.mlflow.runName",)]  # the second with a column of each kind found
    assert projection.experiment_rows(store) == before

    def broken(*_):
        raise OSError("disk gone")

    monkeypatch.setattr(projection, "experiment_rows", broken)
    app.warm_up(store)  # no exception


def test_artifact_paths_cannot_leave_the_runs_root(http):
    url, run_id, *_ = http
    status, headers, body = get(f"{url}ui-api/artifact?run={run_id}&path=ok.txt")
    assert (status, body) == (200, b"fine")
    assert headers["content-disposition"].startswith("attachment")
    assert headers["content-security-policy"].startswith("sandbox")
    for path in ("../../../secret.txt", "/etc/passwd", "link.txt", "..%2F..%2Fsecret.txt"):
        status, _, body = get(f"{url}ui-api/artifact?run={run_id}&path={path}")
        assert status in (400, 404), path
        assert b"top secret" not in body and b"Traceback" not in body
        assert json.loads(body)["message"]
    status, _, body = get(f"{url}ui-api/artifacts?run={run_id}&path=../..")
    assert status == 400 and "escapes" in json.loads(body)["message"]


def test_errors_are_typed_json_without_a_stack_trace(http):
    url, run_id, exp, _ = http
    status, _, body = get(f"{url}ui-api/runs?e={exp}&filter=metrics.a%20%3E%3E%201")
    answer = json.loads(body)
    assert status == 400 and answer["position"] == len("metrics.a >") and answer["expected"]
    status, _, body = get(f"{url}ui-api/run?id={'0' * 32}")
    assert status == 404 and json.loads(body)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, _, body = get(f"{url}ui-api/metrics?runs={run_id}&keys=m&width=abc")
    assert status == 400 and "width" in json.loads(body)["message"]
    status, _, body = get(f"{url}ui-api/parse?filter=params.a%20%3D")
    answer = json.loads(body)
    assert status == 200 and answer["ok"] is False and answer["position"] == len("params.a =")


def test_metric_buckets_over_http_send_a_band_only_where_one_is_drawn(http):
    url, run_id, _, store = http
    store.log_batch(run_id, [Metric("m", float(s % 10), s, s) for s in range(5000)])
    store.log_batch(run_id, [Metric("few", 1.0, 0, 0)])

    def series(**query):
        query = "&".join(f"{k}={v}" for k, v in query.items())
        status, _, body = get(f"{url}ui-api/metrics?runs={run_id}&{query}")
        assert status == 200, body
        return json.loads(body)["series"][0]

    banded = series(keys="m", width=100)
    assert not banded["exact"] and len(banded["x"]) == 100
    assert set(banded["min"]) == {0.0} and set(banded["max"]) == {9.0}
    line = series(keys="m", width=100, band=0)
    assert line["min"] is None and line["max"] is None and line["last"] == banded["last"]
    exact = series(keys="few", width=100)
    assert exact["exact"] and exact["last"] == [1.0] and exact["min"] is None
    # a big answer comes gzipped to a client that accepts it, and is the same answer
    query = f"{url}ui-api/metrics?runs={run_id}&keys=m&width=2000"
    request = urllib.request.Request(query, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        zipped = response.read()
    status, headers, plain = get(query)
    assert status == 200
    assert "Content-Encoding" not in headers and len(zipped) < len(plain) / 2
    assert json.loads(gzip.decompress(zipped)) == json.loads(plain)
    # the compact answer (base64 float64) is sent as it is, gzip or not
    request = urllib.request.Request(query + "&enc=f64", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request) as response:
        assert "Content-Encoding" not in response.headers
        compact = json.loads(response.read())["series"][0]
    assert _decoded(compact["last"]) == json.loads(plain)["series"][0]["last"]


def test_the_vendored_uplot_is_the_npm_package():
    vendor = repo_path() / "autolog/ui/static/vendor"
    npm = repo_path() / "tests/js/node_modules/uplot"
    assert json.loads((npm / "package.json").read_text())["version"] == "1.6.32"
    assert (vendor / "uPlot.iife.min.js").read_bytes() == (
        npm / "dist/uPlot.iife.min.js"
    ).read_bytes()
    assert (vendor / "uPlot.min.css").read_bytes() == (npm / "dist/uPlot.min.css").read_bytes()
    assert (vendor / "uPlot.LICENSE").read_bytes() == (npm / "LICENSE").read_bytes()


def test_a_finished_runs_buckets_are_kept_until_it_changes(store):
    exp = store.create_experiment("kept")
    run_id = store.create_run(exp, "u", 0).info.run_id
    store.log_batch(run_id, [Metric("m", float(s), s, s) for s in range(1000)])
    store.update_run_info(run_id, RunStatus.FINISHED, 5000)
    first = metric_series(store, [run_id], ["m"], 100)[0]
    assert metric_series(store, [run_id], ["m"], 100)[0] == first
    store.log_batch(run_id, [Metric("m", -7.0, 2000, 1000)])  # logged after the end
    again = metric_series(store, [run_id], ["m"], 100)[0]
    assert again["n"] == 1001 and again["last"][-1] == -7.0 and min(again["min"]) == -7.0
