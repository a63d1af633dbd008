"""The REST client (``set_tracking_uri("http://...")``) side by side with the
official mlflow client, both logging to the same ``autolog server`` (SQLite).

Rows, ``[autolog client]`` and ``[mlflow client]`` each:

- log_batch of 10,000 metric points to one run (the store call / ``MlflowClient.log_batch``):
  metric points per second, median of 3 rounds;
- fluent logging: 2,000 ``log_metric`` calls and the flush that writes them
  (mlflow: ``synchronous=False`` and ``flush_async_logging``);
- a run's whole life with nothing logged: ``start_run`` + ``end_run`` (ms).

MLflow runs in its own interpreter (``AUTOLOG_BENCH_MLFLOW_PYTHON``, default
``.venv-mlflow/bin/python``) and reports its own medians; without it only the
autolog rows appear.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_spool import _start_server  # one way to start a benchmark's server (benchmarks/)

REPO = Path(__file__).resolve().parents[1]
MLFLOW_PYTHON = os.environ.get("AUTOLOG_BENCH_MLFLOW_PYTHON") or str(
    REPO / ".venv-mlflow/bin/python"
)
POINTS = 10_000
FLUENT_POINTS = 2_000  # mlflow's asynchronous fluent logging needs ~10 ms a point here
ROUNDS = 3

_MLFLOW_CLIENT = r"""
import json, statistics, sys, time
import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
url, points, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fluent_points = int(sys.argv[4])
mlflow.set_tracking_uri(url)
client = MlflowClient()
run_id = client.create_run("0").info.run_id
batch, fluent, life = [], [], []
for r in range(rounds):
    metrics = [Metric("m", i * 0.5, 1_700_000_000_000 + r, i) for i in range(points)]
    t = time.perf_counter()
    client.log_batch(run_id, metrics=metrics)
    batch.append(time.perf_counter() - t)
for r in range(rounds):
    t = time.perf_counter()
    with mlflow.start_run():
        for i in range(fluent_points):
            mlflow.log_metric("m", i * 0.5, step=i, synchronous=False)
        mlflow.flush_async_logging()
    fluent.append(time.perf_counter() - t)
for r in range(rounds * 4):
    t = time.perf_counter()
    mlflow.start_run(); mlflow.end_run()
    life.append(time.perf_counter() - t)
print(json.dumps([statistics.median(batch), statistics.median(fluent), statistics.median(life)]))
"""


def _autolog_client(url: str) -> tuple[float, float, float]:
    import autolog
    from autolog.tracking.entities import Metric
    from autolog.tracking.stores.rest import RestStore

    store = RestStore(url)
    run_id = store.create_run("0", "bench", 1).info.run_id
    batch = []
    for r in range(ROUNDS):
        metrics = [Metric("m", i * 0.5, 1_700_000_000_000 + r, i) for i in range(POINTS)]
        started = time.perf_counter()
        store.log_batch(run_id, metrics=metrics)
        batch.append(time.perf_counter() - started)
    autolog.set_tracking_uri(url)
    fluent = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        with autolog.start_run():
            for i in range(FLUENT_POINTS):
                autolog.log_metric("m", i * 0.5, step=i)
            autolog.flush()
        fluent.append(time.perf_counter() - started)
    life = []
    for _ in range(ROUNDS * 4):
        started = time.perf_counter()
        autolog.start_run()
        autolog.end_run()
        life.append(time.perf_counter() - started)
    return statistics.median(batch), statistics.median(fluent), statistics.median(life)


def _mlflow_client(url: str) -> tuple[float, float, float] | None:
    if not Path(MLFLOW_PYTHON).exists():
        return None
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [MLFLOW_PYTHON, "-c", _MLFLOW_CLIENT, url, str(POINTS), str(ROUNDS), str(FLUENT_POINTS)],
        capture_output=True, text=True, env=env, timeout=900, check=True,
    )  # fmt: skip
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def run(h) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-rest-") as folder:
        process, url = _start_server(Path(folder))
        try:
            ours = _autolog_client(url)
            peer = _mlflow_client(url)
        finally:
            process.terminate()
            process.wait(30)
    rows = (("log_batch 10,000 points", POINTS), ("fluent 2,000 log_metric + flush", FLUENT_POINTS))
    for index, (name, points) in enumerate(rows):
        peer_text = f"{points / peer[index]:,.0f} points/s" if peer else None
        h.row(f"rest {name} [autolog client]", points / ours[index], "points/s", peer=peer_text)
        if peer:
            h.row(f"rest {name} [mlflow client]", points / peer[index], "points/s")
    peer_text = f"{peer[2] * 1000:.1f} ms" if peer else None
    h.row("rest start_run + end_run [autolog client]", ours[2] * 1000, "ms", peer=peer_text)
    if peer:
        h.row("rest start_run + end_run [mlflow client]", peer[2] * 1000, "ms")
