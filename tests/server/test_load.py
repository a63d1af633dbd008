"""Load over loopback, bounded: 16 concurrent clients x 50 runs x 200 metric
points (plus params and tags) through log-batch into one server process on
SQLite. No request fails, and the store holds every point exactly once."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from autolog.tracking.stores.sql import SqlStore
from tests.server.servers import autolog_server

CLIENTS, RUNS, POINTS = 16, 50, 200


def _client(port: int, worker: int, out: dict, errors: list) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}

    def post(path: str, body: dict) -> dict:
        connection.request("POST", "/api/2.0/mlflow" + path, json.dumps(body), headers)
        response = connection.getresponse()
        raw = response.read()
        if response.status != 200:
            errors.append((path, response.status, raw[:300]))
            return {}
        return json.loads(raw)

    try:
        for r in range(RUNS):
            run = post(
                "/runs/create",
                {"experiment_id": "1", "start_time": 1, "run_name": f"w{worker}-r{r}"},
            )
            run_id = run["run"]["info"]["run_id"]
            metrics = [
                {
                    "key": f"m{i % 4}",
                    "value": worker * 1e6 + r * 1e3 + i,
                    "timestamp": 1000 + i,
                    "step": i,
                }
                for i in range(POINTS)
            ]
            params = [{"key": "worker", "value": str(worker)}, {"key": "run", "value": str(r)}]
            tags = [{"key": "load", "value": "yes"}]
            post(
                "/runs/log-batch",
                {"run_id": run_id, "metrics": metrics, "params": params, "tags": tags},
            )
            out[run_id] = (worker, r)
    except Exception as exc:  # a dropped connection is an error of the test too
        errors.append(("exception", repr(exc)))
    finally:
        connection.close()


@pytest.mark.slow
def test_sixteen_clients_lose_and_duplicate_nothing(tmp_path):
    db = tmp_path / "load.db"
    with autolog_server("--backend-store-uri", f"sqlite:///{db}", "--no-serve-artifacts") as url:
        port = int(url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port)
        connection.request("POST", "/api/2.0/mlflow/experiments/create", '{"name": "load"}',
                           {"Content-Type": "application/json"})  # fmt: skip
        assert connection.getresponse().status == 200
        connection.close()
        out: dict = {}
        errors: list = []
        threads = [
            threading.Thread(target=_client, args=(port, w, out, errors)) for w in range(CLIENTS)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert time.monotonic() - started < 300
        assert errors == []
    assert len(out) == CLIENTS * RUNS
    store = SqlStore(f"sqlite:///{db}")
    try:
        runs = store.search_runs(["1"], max_results=CLIENTS * RUNS + 10)
        assert len(runs) == CLIENTS * RUNS
        for run in runs:
            worker, r = out[run.info.run_id]
            assert run.data.params == {"worker": str(worker), "run": str(r)}
            assert run.data.tags["load"] == "yes"
            assert run.data.metrics["m3"] == worker * 1e6 + r * 1e3 + POINTS - 1
        # every point of a sample of runs, exactly once, in step order
        for run in runs[:: len(runs) // 20]:
            worker, r = out[run.info.run_id]
            for k in range(4):
                history = store.get_metric_history(run.info.run_id, f"m{k}")
                assert [m.step for m in history] == list(range(k, POINTS, 4))
                assert [m.value for m in history] == [
                    worker * 1e6 + r * 1e3 + i for i in range(k, POINTS, 4)
                ]
        with store._engine.connect() as conn:
            import sqlalchemy as sa

            total = conn.execute(sa.text("SELECT sum(n) FROM metric_blocks")).scalar_one()
        assert total == CLIENTS * RUNS * POINTS
    finally:
        store.close()
