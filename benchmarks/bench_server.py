"""The tracking server side by side with ``mlflow server``, same backend (SQLite),
same run, same plain HTTP client (keep-alive ``http.client``, bodies encoded
before timing).

Rows, ``[autolog]`` and ``[mlflow]`` each (goals of issue 12):

- log-batch ingest: metric points per second into one server process, 4
  concurrent clients each sending 1,000-metric batches to its own run (60 each
  to autolog, 2 each to MLflow, which takes seconds per batch);
- p50 / p99 latency of one 500-metric log-batch and of one create-run (one client);
- search-runs over 10,000 runs (3 params, 3 metrics, 2 tags each) at 20 concurrent
  clients: p50 / p99 of a 3-clause filter, ordered by a metric, 100 runs a page;
  autolog serves a repeated search from its answers while the database's change
  stamp says nothing was committed (``autolog/server/runs.py``), so it has a
  second row where every call is a distinct search (nothing served again);
  MLflow keeps no answers, its one row is comparable to both;
- server RSS (the process tree's peak, sampled every 20 ms) during a 2 GB
  artifact upload through the proxy (``AUTOLOG_BENCH_SERVER_UPLOAD_MB``).

The ingest row's notes give the server's CPU time per point (the process tree's
user + system time over the run): what one core can take, whatever the load.

MLflow runs under its own interpreter (``AUTOLOG_BENCH_MLFLOW_PYTHON``, default
``.venv-mlflow/bin/python``); without it only the autolog rows appear. The 10,000
runs are written straight into each tool's database before its server starts
(autolog: ``SqlStore.batch()``; MLflow: its own ORM models in one session).
``AUTOLOG_BENCH_SERVER_RUNS`` changes the count.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_spool import _free_port  # one free-port helper for the benchmarks' servers

REPO = Path(__file__).resolve().parents[1]
MLFLOW_PYTHON = os.environ.get("AUTOLOG_BENCH_MLFLOW_PYTHON") or str(
    REPO / ".venv-mlflow/bin/python"
)
RUNS = int(os.environ.get("AUTOLOG_BENCH_SERVER_RUNS", "10000"))
UPLOAD_MB = int(os.environ.get("AUTOLOG_BENCH_SERVER_UPLOAD_MB", "2048"))
A = "/api/2.0/mlflow"
FILTER = "metrics.m0 > 0.5 AND params.p0 = 'a' AND tags.t0 = 'x'"

_MLFLOW_FILL = r"""
import random, sys, time, uuid
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag)
uri, root, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqlAlchemyStore(uri, root)
exp = store.create_experiment("bench")
rng = random.Random(0)
with store.ManagedSessionMaker() as session:
    for i in range(runs):
        rid = uuid.uuid4().hex
        session.add(SqlRun(run_uuid=rid, name=f"r{i}", source_type="LOCAL", source_name="b",
                           entry_point_name="", user_id="u", status="FINISHED", start_time=i,
                           end_time=i + 1, source_version="", lifecycle_stage="active",
                           artifact_uri=f"{root}/{exp}/{rid}/artifacts", experiment_id=int(exp)))
        for k in range(3):
            session.add(SqlParam(run_uuid=rid, key=f"p{k}", value=rng.choice("abc")))
            v = rng.random()
            session.add(SqlMetric(run_uuid=rid, key=f"m{k}", value=v, timestamp=i, step=0,
                                  is_nan=False))
            session.add(SqlLatestMetric(run_uuid=rid, key=f"m{k}", value=v, timestamp=i, step=0,
                                        is_nan=False))
        for k in range(2):
            session.add(SqlTag(run_uuid=rid, key=f"t{k}", value=rng.choice("xyz")))
        if i % 1000 == 999:
            session.flush()
print(exp)
"""


def _fill_autolog(db: Path, root: Path) -> str:
    from autolog.tracking.entities import Metric, Param, RunTag
    from autolog.tracking.stores.sql import SqlStore

    store = SqlStore(f"sqlite:///{db}", artifact_root=str(root))
    exp = store.create_experiment("bench")
    rng = random.Random(0)
    for start in range(0, RUNS, 500):
        with store.batch():
            for i in range(start, min(start + 500, RUNS)):
                run = store.create_run(exp, "u", i, run_name=f"r{i}")
                store.log_batch(
                    run.info.run_id,
                    metrics=[Metric(f"m{k}", rng.random(), i) for k in range(3)],
                    params=[Param(f"p{k}", rng.choice("abc")) for k in range(3)],
                    tags=[RunTag(f"t{k}", rng.choice("xyz")) for k in range(2)],
                )
                store.update_run_info(run.info.run_id, "FINISHED", i + 1)
    store.close()
    return exp


class Server:
    """One tool's server process over a fresh SQLite database with RUNS runs."""

    def __init__(self, tool: str, folder: Path):
        self.tool = tool
        db, art = folder / f"{tool}.db", folder / f"{tool}-artifacts"
        port = _free_port()
        self.port = port
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        if tool == "autolog":
            self.experiment = _fill_autolog(db, art)
            command = [sys.executable, "-m", "autolog.cli", "server", "--port", str(port),
                       "--backend-store-uri", f"sqlite:///{db}",
                       "--artifacts-destination", str(art)]  # fmt: skip
        else:
            done = subprocess.run(
                [MLFLOW_PYTHON, "-c", _MLFLOW_FILL, f"sqlite:///{db}", "mlflow-artifacts:",
                 str(RUNS)],
                capture_output=True, text=True, env=env, timeout=900, check=True,
            )  # fmt: skip
            self.experiment = done.stdout.strip().splitlines()[-1]
            command = [MLFLOW_PYTHON, "-m", "mlflow", "server", "--port", str(port),
                       "--host", "127.0.0.1", "--workers", "1",
                       "--backend-store-uri", f"sqlite:///{db}",
                       "--artifacts-destination", str(art)]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _ = self.call("GET", "/health")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{tool} server did not start")
            time.sleep(0.2)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)

    def call(self, method, path, body=None, connection=None) -> tuple[int, bytes]:
        own = connection is None
        connection = connection or self.connect()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            if own:
                connection.close()

    def new_run(self, connection=None) -> str:
        body = json.dumps({"experiment_id": self.experiment, "start_time": 1})
        status, raw = self.call("POST", A + "/runs/create", body, connection)
        assert status == 200, raw
        return json.loads(raw)["run"]["info"]["run_id"]

    def tree_rss_mib(self) -> float:
        """RSS of the server process and its descendants."""
        pids, total = [self.process.pid], 0
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                children.setdefault(ppid, []).append(int(entry))
        seen = set()
        while pids:
            pid = pids.pop()
            if pid in seen:
                continue
            seen.add(pid)
            pids.extend(children.get(pid, []))
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        return total / 1024

    def tree_cpu_s(self) -> float:
        """User + system CPU seconds of the server process and its descendants."""
        ticks = os.sysconf("SC_CLK_TCK")
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        total, pids, seen = 0, [self.process.pid], set()
        while pids:
            pid = pids.pop()
            if pid in seen or pid not in stats:
                continue
            seen.add(pid)
            total += stats[pid][1]
            pids.extend(child for child, (ppid, _) in stats.items() if ppid == pid)
        return total / ticks

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _batch_body(run_id: str, n: int, seq: int) -> bytes:
    metrics = [{"key": f"k{i % 10}", "value": i * 0.5, "timestamp": 1000 + seq, "step": seq * n + i}
               for i in range(n)]  # fmt: skip
    return json.dumps({"run_id": run_id, "metrics": metrics}).encode()


def _ingest(server: Server, batches: int, clients: int = 4) -> tuple[float, float]:
    """Metric points per second, ``clients`` threads of ``batches`` 1,000-metric
    batches; and the server's CPU microseconds per point."""
    bodies = []
    for _ in range(clients):
        run_id = server.new_run()
        bodies.append([_batch_body(run_id, 1000, s) for s in range(batches)])
    errors = []

    def client(mine):
        connection = server.connect()
        for body in mine:
            status, raw = server.call("POST", A + "/runs/log-batch", body, connection)
            if status != 200:
                errors.append(raw)
        connection.close()

    threads = [threading.Thread(target=client, args=(b,)) for b in bodies]
    cpu = server.tree_cpu_s()
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = server.tree_cpu_s() - cpu
    if errors:
        raise RuntimeError(f"{server.tool}: {len(errors)} failed batches: {errors[0][:200]}")
    points = clients * batches * 1000
    return points / elapsed, cpu / points * 1e6


def _latencies(server: Server, make, count: int) -> tuple[float, float]:
    """p50, p99 in ms of ``count`` sequential calls (bodies made before timing)."""
    connection = server.connect()
    calls = [make(i) for i in range(count)]
    samples = []
    for path, body in calls:
        start = time.perf_counter()
        status, raw = server.call("POST", path, body, connection)
        samples.append((time.perf_counter() - start) * 1000)
        assert status == 200, raw[:200]
    connection.close()
    return _pct(samples, 50), _pct(samples, 99)


def _pct(samples: list[float], p: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _search(
    server: Server, clients: int = 20, each: int = 10, distinct: bool = False
) -> tuple[float, float, str]:
    """p50, p99 in ms of the search at ``clients`` concurrent clients, and a note
    (runs a page; failed calls, which are timed too). ``distinct``: every call
    a search of its own (the metric bound moves by 1e-9), none served again."""

    def body_of(n: int) -> str:
        where = FILTER.replace("> 0.5", f"> {0.5 + n * 1e-9!r}") if distinct else FILTER
        return json.dumps({"experiment_ids": [server.experiment], "filter": where,
                           "max_results": 100, "order_by": ["metrics.m0 DESC"]})  # fmt: skip

    body = body_of(0)
    samples, found, failed = [], [], []
    numbers = iter(range(1, clients * each + 1))

    def client():
        connection = server.connect()
        for _ in range(each):
            body = body_of(next(numbers))
            start = time.perf_counter()
            status, raw = server.call("POST", A + "/runs/search", body, connection)
            samples.append((time.perf_counter() - start) * 1000)
            if status == 200:
                found.append(len(json.loads(raw).get("runs", [])))
            else:
                failed.append(f"{status} {raw[:120]!r}")
        connection.close()

    server.call("POST", A + "/runs/search", body)  # warm-up
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    note = f"{found[0] if found else 0} runs a page"
    if failed:
        note += f"; {len(failed)} of {len(samples)} calls failed: {failed[0]}"
    return _pct(samples, 50), _pct(samples, 99), note


def _upload_rss(server: Server, megabytes: int) -> tuple[float, float]:
    """(baseline RSS, peak RSS) in MiB of the server tree during one upload."""
    run_id = server.new_run()
    baseline = server.tree_rss_mib()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], server.tree_rss_mib())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    block = os.urandom(1 << 20)
    connection = server.connect()
    try:
        path = f"/api/2.0/mlflow-artifacts/artifacts/{server.experiment}/{run_id}/artifacts/big.bin"
        connection.putrequest("PUT", path)
        connection.putheader("Content-Length", str(megabytes << 20))
        connection.putheader("Content-Type", "application/octet-stream")
        connection.endheaders()
        for _ in range(megabytes):
            connection.send(block)
        response = connection.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = "connection lost"
    finally:
        done.set()
        sampler.join()
        connection.close()
    if status != 200:
        raise RuntimeError(f"{server.tool}: upload answered {status}")
    return baseline, peak[0]


def _measure(h, server: Server) -> dict:
    tag = f"[{server.tool}]"
    fast = server.tool == "autolog"
    out = {}
    name = f"log-batch ingest, 4 clients x 1,000-metric batches, sqlite {tag}"
    if h.wanted(name):
        out["ingest"], cpu_us = _ingest(server, 60 if fast else 2)
        h.row(
            name,
            out["ingest"],
            "points/s",
            ">= 100,000/s and >= 10x mlflow",
            notes=f"server CPU {cpu_us:.2f} us/point ({1e6 / cpu_us:,.0f} points per CPU-second); "
            f"load {os.getloadavg()[0]:.1f}",
        )
    name = f"log-batch of 500 metrics p50 {tag}"
    if h.wanted(name):
        run_id = server.new_run()
        p50, p99 = _latencies(
            server, lambda i: (A + "/runs/log-batch", _batch_body(run_id, 500, i)),
            200 if fast else 40,
        )  # fmt: skip
        h.row(name, p50, "ms", peer=f"p99 {p99:.3g} ms")
    name = f"create-run p50 {tag}"
    if h.wanted(name):
        body = json.dumps({"experiment_id": server.experiment, "start_time": 1,
                           "tags": [{"key": "mlflow.user", "value": "u"}]})  # fmt: skip
        p50, p99 = _latencies(server, lambda i: (A + "/runs/create", body), 300 if fast else 60)
        h.row(name, p50, "ms", peer=f"p99 {p99:.3g} ms")
    name = f"search-runs over {RUNS:,} runs, 20 concurrent clients, p50 {tag}"
    if h.wanted(name):
        p50, p99, note = _search(server, each=10 if fast else 3)
        note += "; repeated search served again while nothing is committed" if fast else ""
        h.row(name, p50, "ms", "<= 50 ms", f"p99 {p99:.3g} ms", f"{FILTER}; {note}")
    name = f"search-runs over {RUNS:,} runs, 20 concurrent clients, every call distinct, p50 {tag}"
    if fast and h.wanted(name):
        p50, p99, note = _search(server, each=5, distinct=True)
        h.row(name, p50, "ms", "", f"p99 {p99:.3g} ms", f"nothing served again; {note}")
    name = f"server RSS peak during a {UPLOAD_MB:,} MB artifact upload {tag}"
    if h.wanted(name):
        try:
            baseline, peak = _upload_rss(server, UPLOAD_MB)
        except RuntimeError as error:
            h.row(name, float("nan"), "MiB", "< 200 MiB", notes=str(error))
        else:
            h.row(name, peak, "MiB", "< 200 MiB", f"idle {baseline:.0f} MiB")
    return out


def run(h) -> None:
    tools = ["autolog"]
    if Path(MLFLOW_PYTHON).exists():
        tools.append("mlflow")
    else:
        print(f"bench_server: no mlflow at {MLFLOW_PYTHON}: autolog rows only", file=sys.stderr)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as folder:
        for tool in tools:
            server = Server(tool, Path(folder))
            try:
                results[tool] = _measure(h, server)
            finally:
                server.stop()
    print(f"bench_server: load {os.getloadavg()[0]:.1f} at end", file=sys.stderr)
    if "ingest" in results.get("autolog", {}) and "ingest" in results.get("mlflow", {}):
        ratio = results["autolog"]["ingest"] / results["mlflow"]["ingest"]
        h.row("log-batch ingest, autolog / mlflow", ratio, "x", ">= 10x")


if __name__ == "__main__":  # this file alone: python benchmarks/bench_server.py [filters]
    sys.path.insert(0, str(REPO / "benchmarks"))
    from run import Harness, table

    harness = Harness(sys.argv[1:])
    harness.module = "server"
    run(harness)
    print(table(harness.rows))
