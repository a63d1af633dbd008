"""The web UI in headless Chromium: navigation to a painted page, and payload sizes.

Three pages over one SQLite store (issue 14's goals):

- the runs table of an experiment of 10,000 runs, each with 50 params and 20
  metrics, showing 10 param and metric columns (goal <= 500 ms);
- the run page of a run with a 1,000,000-point metric (goal <= 1 s);
- compare of 100 runs x 5 metrics x 10,000 steps (goal <= 1 s).

Time is the page's own: from navigation start to the frame after its view is
complete (``window.autologUI.painted``), in one browser. Each page reports
the median of ROUNDS - 1 navigations (``$AUTOLOG_BENCH_UI_ROUNDS``, default
3) after a first one (the server has never read that data; kept answers
empty), and one more "OS cache cold": kept answers and pooled connections
dropped and the database file's pages evicted from the OS page cache with
``posix_fadvise(DONTNEED)`` (what a restarted server on a cold machine finds;
the browser keeps our few scripts cached). Payload is the bytes of the page's
``/ui-api/`` answers.

Runs, params and tags are written straight into the SQL store's tables in
one transaction (the product's write path is measured in bench_sql.py); the
metric histories go through ``log_batch``, which keeps the bucket summaries
the UI reads (sql_summaries.py), and each run then ends through
``update_run_info`` (which writes its summaries together), so set-up takes
tens of seconds. With
``$AUTOLOG_BENCH_MLFLOW_PYTHON`` (default ``.venv-mlflow``) the same data is
written into a store that mlflow created, and the same pages of ``mlflow ui``
are timed the same way (until the view shows the data; see
``_mlflow_pages``), after ours: their rows are ``... [mlflow ui]`` and our
rows name them as the peer. Filter with ``runs table``, ``run page``,
``compare``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS, PARAMS, METRICS = 10_000, 50, 20
T0 = 1_700_000_000_000
ROUNDS = int(os.environ.get("AUTOLOG_BENCH_UI_ROUNDS", "3"))
MLFLOW_ROUNDS = 2  # its first navigation and one more: each takes tens of seconds


_COLUMNS = {
    "runs": (
        "run_id",
        "experiment_id",
        "run_name",
        "user_id",
        "status",
        "start_time",
        "end_time",
        "artifact_uri",
        "lifecycle_stage",
    ),
    "tags": ("run_id", "key", "value"),
    "params": ("run_id", "key", "value"),
    "metrics": ("run_id", "key", "value", "is_nan", "step", "timestamp"),
    "latest_metrics": ("run_id", "key", "value", "is_nan", "step", "timestamp"),
}


def _insert(store, rows_by_table: dict[str, list[tuple]]) -> None:
    """Rows straight into the SQL store's tables, one transaction, executemany."""

    def work(conn):
        for table, rows in rows_by_table.items():
            if table == "metrics" and store.dialect == "sqlite":
                from autolog.tracking.stores import sql_blocks

                sql_blocks.convert_rows(conn, iter(rows))  # SQLite's history: blocks (v5)
                continue
            cols = _COLUMNS[table]
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            for at in range(0, len(rows), 200_000):
                conn.exec_driver_sql(sql, rows[at : at + 200_000])

    store._transaction(work)


def _insert_runs(store, exp: str, n: int, params: int, metrics: int, prefix: str) -> list[str]:
    """``n`` finished runs with ``params`` params and ``metrics`` one-point metrics."""
    rng = random.Random(n)
    location = store.get_experiment(exp).artifact_location.rstrip("/")
    ids = [uuid.uuid4().hex for _ in range(n)]
    rows: dict[str, list[tuple]] = {t: [] for t in _COLUMNS}
    for i, run_id in enumerate(ids):
        start = T0 + i * 1000
        name = f"{prefix}-{i}"
        rows["runs"].append(
            (
                run_id,
                int(exp),
                name,
                "bench",
                "FINISHED",
                start,
                start + 900 + i % 97,
                f"{location}/{run_id}/artifacts",
                "active",
            )
        )
        rows["tags"] += [
            (run_id, "mlflow.runName", name),
            (run_id, "mlflow.source.name", "train.py"),
        ]
        rows["params"] += [(run_id, f"p{k}", str(rng.randint(0, 99))) for k in range(params)]
        points = [(run_id, f"m{k}", rng.random(), False, 0, start + 5) for k in range(metrics)]
        rows["metrics"] += points
        rows["latest_metrics"] += points
    _insert(store, rows)
    return ids


def _log_history(store, run_ids, keys, steps: int, batch: int = 1000) -> None:
    """A noisy decaying curve of ``steps`` points per run and key, written
    through the store's ``log_batch`` (batches of ``batch`` points, the keys
    interleaved step by step as a training loop logs them), then the run
    ends (``update_run_info``): the write path, which keeps the summaries the
    UI's buckets read (``sql_summaries``) and writes a run's together when it
    ends."""
    from autolog.tracking.entities import Metric

    for r, run_id in enumerate(run_ids):
        points = [
            Metric(key, 1.0 / (1 + i / 100.0) + ((i * 7919 + r + k) % 101) / 1000.0, T0 + i, i)
            for i in range(steps)
            for k, key in enumerate(keys)
        ]
        for at in range(0, len(points), batch):
            store.log_batch(run_id, metrics=points[at : at + batch])
        store.update_run_info(run_id, "FINISHED")


def _mlflow_python() -> Path | None:
    path = Path(os.environ.get("AUTOLOG_BENCH_MLFLOW_PYTHON", ROOT / ".venv-mlflow/bin/python"))
    return path if path.exists() else None


def _mlflow_store(python: Path, tmp: str, which: set[str]) -> tuple[str, dict]:
    """An mlflow SQLite store (schema and experiments made by mlflow itself)
    holding the same data as ours: ``{"big": exp, "one": (exp, run), "many": (exp, runs)}``."""
    import sqlite3

    db = f"{tmp}/mlflow.db"
    make = (
        "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore;"
        f"store = SqlAlchemyStore('sqlite:///{db}', '{tmp}/mlflow-artifacts');"
        "print(*(store.create_experiment(n) for n in ('big', 'million', 'compare')))"
    )
    out = subprocess.run([str(python), "-c", make], capture_output=True, text=True, check=True)
    big, one, many = out.stdout.strip().splitlines()[-1].split()
    made: dict = {}
    with sqlite3.connect(db) as conn:
        if "big" in which:
            _mlflow_runs(conn, big, RUNS, PARAMS, METRICS, "run", tmp)
            made["big"] = big
        if "one" in which:
            (long_run,) = _mlflow_runs(conn, one, 1, 5, 0, "long", tmp)
            _mlflow_history(conn, [long_run], ["loss"], 1_000_000)
            made["one"] = (one, long_run)
        if "many" in which:
            compared = _mlflow_runs(conn, many, 100, 5, 0, "cmp", tmp)
            _mlflow_history(conn, compared, [f"c{k}" for k in range(5)], 10_000)
            made["many"] = (many, compared)
    return db, made


def _mlflow_runs(conn, exp: str, n: int, params: int, metrics: int, prefix: str, tmp: str):
    """``n`` finished runs written into mlflow's own tables, as _insert_runs does ours."""
    rng = random.Random(n)
    runs, param_rows, tags, metric_rows, ids = [], [], [], [], []
    for i in range(n):
        run_id, start, name = uuid.uuid4().hex, T0 + i * 1000, f"{prefix}-{i}"
        ids.append(run_id)
        runs.append(
            (
                run_id,
                name,
                "LOCAL",
                "train.py",
                "",
                "bench",
                "FINISHED",
                start,
                start + 900 + i % 97,
                "",
                "active",
                f"{tmp}/a/{run_id}",
                int(exp),
            )
        )
        tags += [("mlflow.runName", name, run_id), ("mlflow.source.name", "train.py", run_id)]
        param_rows += [(f"p{k}", str(rng.randint(0, 99)), run_id) for k in range(params)]
        metric_rows += [(f"m{k}", rng.random(), start + 5, 0, 0, run_id) for k in range(metrics)]
    conn.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name,"
        " user_id, status, start_time, end_time, source_version, lifecycle_stage,"
        " artifact_uri, experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        runs,
    )
    conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
    conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", param_rows)
    for table in ("metrics", "latest_metrics"):
        conn.executemany(
            f"INSERT INTO {table} (key, value, timestamp, step, is_nan, run_uuid)"
            " VALUES (?,?,?,?,?,?)",
            metric_rows,
        )
    return ids


def _mlflow_history(conn, run_ids, keys, steps: int) -> None:
    """The curve of _log_history in mlflow's tables (its latest_metrics too)."""
    curve = "1.0 / (1 + i / 100.0) + ((i * 7919 + :salt) % 101) / 1000.0"
    for r, run_id in enumerate(run_ids):
        for k, key in enumerate(keys):
            args = {"run": run_id, "key": key, "last": steps - 1, "salt": r + k, "t0": T0}
            for table, first in (("metrics", 0), ("latest_metrics", steps - 1)):
                conn.execute(
                    "WITH RECURSIVE s(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM s"
                    " WHERE i < :last)"
                    f" INSERT INTO {table} (key, value, timestamp, step, is_nan, run_uuid)"
                    f" SELECT :key, {curve}, :t0 + i, i, 0, :run FROM s",
                    {**args, "first": first},
                )


#: how long one navigation of ``mlflow ui`` may take before its row says so
MLFLOW_TIMEOUT_S = 300


def _mlflow_pages(browser, tmp: str, which: set[str]) -> dict[str, tuple]:
    """The same pages of ``mlflow ui`` over the same data, measured the same way:
    navigation until the view shows the data (its runs table lists the newest
    run; its run page and its metric page have drawn their plotly traces).

    Returns name -> (median of the later navigations, the first one, payload
    bytes, what was waited for); the times are None where the page was not
    painted within MLFLOW_TIMEOUT_S."""
    found: dict[str, tuple] = {}
    python = _mlflow_python()
    if python is None:
        print("bench_ui: no mlflow venv: mlflow ui rows left out", file=sys.stderr)
        return found
    from tests.ui.browser import free_port

    db, made = _mlflow_store(python, tmp, which)
    port = free_port()
    mlflow = Path(python).with_name("mlflow")
    proc = subprocess.Popen(
        [
            str(mlflow),
            "ui",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its job consumers go with it
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("bench_ui: mlflow ui did not start", file=sys.stderr)
                    return found
                time.sleep(0.5)
        base = f"http://127.0.0.1:{port}/#/"
        traces = "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length"
        pages = []
        if "big" in made:
            newest = f"run-{RUNS - 1}"
            pages.append(
                (
                    "runs table 10k runs [mlflow ui]",
                    f"experiments/{made['big']}/runs",
                    f"document.body.innerText.includes({newest!r})",
                    "its runs table (the experiment's Runs tab) lists the newest run",
                )
            )
        if "one" in made:
            exp, run_id = made["one"]
            pages.append(
                (
                    "run page 1M points [mlflow ui]",
                    f"experiments/{exp}/runs/{run_id}/model-metrics",
                    f"{traces} >= 1",
                    "its run page's Model metrics tab has drawn the loss chart",
                )
            )
        if "many" in made:
            exp, compared = made["many"]
            runs = json.dumps(compared).replace(" ", "")
            keys = json.dumps([f"c{k}" for k in range(5)]).replace(" ", "")
            # its route: /metric?runs=[...]&metric="key"&experiments=["id"]&plot_metric_keys=[...]
            query = f'runs={runs}&metric="c0"&experiments=["{exp}"]&plot_metric_keys={keys}'
            pages.append(
                (
                    "compare 100 runs x 5 x 10k [mlflow ui]",
                    "metric?" + query,
                    f"{traces} >= 500",
                    "its metric page of the 100 runs with the 5 metrics overlaid in one chart,"
                    " 500 curves (its compare-runs page draws no curves over steps)",
                )
            )
        for name, path, ready, what in pages:
            times, sizes = [], []
            for _ in range(MLFLOW_ROUNDS):
                browser.goto("about:blank")
                browser.goto(base + path, "commit", MLFLOW_TIMEOUT_S * 1000)
                try:
                    browser.wait_for(ready, MLFLOW_TIMEOUT_S * 1000)
                except AssertionError:
                    times.append(None)
                    break
                times.append(browser.eval("performance.now()"))
                sizes.append(
                    browser.eval(
                        "performance.getEntriesByType('resource')"
                        ".filter(e => e.name.includes('-api/'))"
                        ".reduce((a, e) => a + e.encodedBodySize, 0)"
                    )
                )
            if None in times:
                found[name] = (None, None, None, what)
                print(f"bench_ui: {name}: not painted", file=sys.stderr)
                continue
            warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
            found[name] = (warm, times[0], statistics.median(sizes), what)
            print(f"bench_ui: {name}: {warm:.0f} ms ({times[0]:.0f} first)", file=sys.stderr)
        return found
    finally:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _chill(store, server_store_path: str) -> None:
    """What a server restart on a machine with a cold OS cache would find: no
    kept answer, no pooled connection (SQLite's page cache), and the database's
    pages dropped from the OS cache (posix_fadvise DONTNEED, after fsync: it
    drops clean pages only, and only this file's)."""
    from autolog.ui import buckets_sql

    with buckets_sql._CACHE_LOCK:
        buckets_sql._CACHE.clear()
    store.close()  # the pool reopens on the next read
    for path in (server_store_path, server_store_path + "-wal"):
        if os.path.exists(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _cpu_s() -> float:
    """This process's CPU seconds: the server's threads (the browser is another process)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _navigate(browser, url: str, ready_js: str) -> tuple[float, int, float]:
    """(ms to painted, payload bytes, the server's CPU ms) of one navigation."""
    browser.goto("about:blank")
    cpu = _cpu_s()
    browser.goto(url, "commit", 300_000)
    browser.wait_for(f"window.autologUI && window.autologUI.painted && ({ready_js})", 300_000)
    cpu = (_cpu_s() - cpu) * 1000
    size = browser.eval(
        "performance.getEntriesByType('resource').filter(e => e.name.includes('/ui-api/'))"
        ".reduce((a, e) => a + e.encodedBodySize, 0)"
    )
    return browser.eval("window.autologUI.painted"), int(size), cpu


def _paint(browser, url: str, ready_js: str, chill) -> dict[str, float]:
    """The first navigation (this page's data never read by the server yet,
    the browser's cache of our scripts cold only for the very first page), the
    median of the next ROUNDS - 1, one after :func:`_chill`, and the payload;
    ``cpu``: the server's CPU in that last navigation (less noisy under load
    than the time: the server shares the machine's cores with the browser and
    whatever else runs)."""
    first, size, _ = _navigate(browser, url, ready_js)
    warm = [_navigate(browser, url, ready_js)[0] for _ in range(ROUNDS - 1)]
    chill()
    cold, _, cpu = _navigate(browser, url, ready_js)
    return {"first": first, "warm": statistics.median(warm), "cold": cold, "size": size, "cpu": cpu}


def run(h) -> None:
    names = ["runs table 10k runs", "run page 1M points", "compare 100 runs x 5 x 10k"]
    keys = ["big", "one", "many"]

    def wanted(name: str) -> bool:
        return any(
            h.wanted(f"{n} {what}")
            for n in (name, f"{name} [mlflow ui]")
            for what in ("paint", "payload", "paint, OS cache cold")
        )

    chosen = [(n, k) for n, k in zip(names, keys, strict=True) if wanted(n)]
    if not chosen:
        return
    from autolog.server import ServerSettings, create_app
    from autolog.tracking.stores.sql import SqlStore
    from tests.ui.browser import Browser, UIServer

    with tempfile.TemporaryDirectory(prefix="autolog-bench-ui-") as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        db = f"{tmp}/ui.db"
        store = SqlStore(f"sqlite:///{db}")
        server = browser = None
        try:
            pages = {}
            goals = {"big": "<= 500 ms", "one": "<= 1000 ms", "many": "<= 1000 ms"}
            for _, key in chosen:
                if key == "big":
                    big = store.create_experiment("big")
                    _insert_runs(store, big, RUNS, PARAMS, METRICS, "run")
                    cols = ",".join(
                        [f"params.p{k}" for k in range(5)] + [f"metrics.m{k}" for k in range(5)]
                    )
                    ready = "document.querySelectorAll('#runs-body tr').length === 50"
                    pages[key] = (f"#/runs?e={big}&cols={cols}", ready)
                if key == "one":
                    one = store.create_experiment("million")
                    (long_run,) = _insert_runs(store, one, 1, 5, 0, "long")
                    _log_history(store, [long_run], ["loss"], 1_000_000)
                    pages[key] = (f"#/run/{long_run}", "window.autologUI.charts.loss")
                if key == "many":
                    many = store.create_experiment("compare")
                    compared = _insert_runs(store, many, 100, 5, 0, "cmp")
                    _log_history(store, compared, [f"c{k}" for k in range(5)], 10_000)
                    ready = "Object.keys(window.autologUI.charts).length === 5"
                    pages[key] = (f"#/compare?runs={','.join(compared)}", ready)
            # the application `autolog ui` and `autolog server` serve
            server = UIServer(create_app(ServerSettings(serve_artifacts=False), store))
            browser = Browser()
            ours = {}
            for name, key in chosen:
                path, ready = pages[key]
                ours[key] = _paint(browser, server.url + path, ready, lambda: _chill(store, db))
                got = ours[key]
                print(
                    f"bench_ui: {name}: {got['warm']:.0f} ms ({got['first']:.0f} first,"
                    f" {got['cold']:.0f} OS-cold, server CPU {got['cpu']:.0f} ms), {got['size']} B",
                    file=sys.stderr,
                )
            theirs: dict[str, tuple] = {}
            try:
                # only the pages whose mlflow rows pass the filters (a filter such
                # as "compare 100 runs x 5 x 10k paint" leaves mlflow out)
                peers = {k for n, k in chosen if h.wanted(f"{n} [mlflow ui] paint")}
                theirs = _mlflow_pages(browser, tmp, peers) if peers else {}
            except Exception as exc:  # the peer's failure leaves our rows standing
                print(f"bench_ui: mlflow ui rows left out: {exc}", file=sys.stderr)
            load = os.getloadavg()[0]
            for name, key in chosen:
                got = ours[key]
                peer = theirs.get(f"{name} [mlflow ui]")
                peer_text = ""
                if peer and peer[0]:
                    peer_text = f"mlflow ui {peer[0]:.0f} ms ({peer[0] / got['warm']:.1f}x ours)"
                elif peer:
                    peer_text = f"mlflow ui: not painted in {MLFLOW_TIMEOUT_S} s"
                h.row(
                    f"{name} paint",
                    got["warm"],
                    "ms",
                    goal=goals[key],
                    peer=peer_text,
                    notes=f"median of {ROUNDS - 1} navigations; the first one"
                    f" (server never read this data) {got['first']:.0f} ms; load {load:.1f}",
                )
                h.row(
                    f"{name} paint, OS cache cold",
                    got["cold"],
                    "ms",
                    goal=goals[key],
                    notes="kept answers and pooled connections dropped, the database's"
                    " pages evicted from the OS cache (posix_fadvise)",
                )
                h.row(
                    f"{name} server CPU, OS cache cold",
                    got["cpu"],
                    "ms",
                    notes="the server's CPU time (user + system, all its threads) in that"
                    " navigation: SQL, bucketing, encoding, serving",
                )
                h.row(f"{name} payload", got["size"] / 1024, "KiB", notes="JSON of /ui-api/")
                if peer and peer[0]:
                    h.row(
                        f"{name} [mlflow ui] paint",
                        peer[0],
                        "ms",
                        notes=f"{peer[3]}; first navigation {peer[1]:.0f} ms (its bundle uncached)",
                    )
                    h.row(
                        f"{name} [mlflow ui] payload",
                        peer[2] / 1024,
                        "KiB",
                        notes="its /ajax-api/ answers (encoded)",
                    )
                elif peer:
                    h.row(
                        f"{name} [mlflow ui] paint",
                        float("nan"),
                        "ms",
                        notes=f"not painted within {MLFLOW_TIMEOUT_S} s: {peer[3]}",
                    )
        finally:
            if browser:
                browser.close()
            if server:
                server.close()
            store.close()
            os.chdir(cwd)
