"""Two server processes (one of them with two uvicorn workers) over one
PostgreSQL and one S3 endpoint (moto) are one service: what is written through
one is read through the other, artifacts go up through one and come down
through the other, a page token from one is honoured by the other, and
concurrent log-batch calls to one run through both never deadlock."""

from __future__ import annotations

import http.client
import json
import threading

import pytest

from tests.server.servers import (
    autolog_server,
    call,
    make_bucket,
    moto_server,
    postgres_schema,
    run_mlflow_script,
    s3_env,
)

WRITE = """
import json, tempfile, pathlib, mlflow
mlflow.set_experiment("shared")
with mlflow.start_run(run_name="through-a") as run:
    mlflow.log_params({"lr": "0.1"})
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.set_tag("replica", "a")
    folder = pathlib.Path(tempfile.mkdtemp())
    (folder / "model.txt").write_text("weights" * 1000)
    mlflow.log_artifact(str(folder / "model.txt"), "model")
print(json.dumps({"run_id": run.info.run_id}))
"""

READ = """
import json, os, tempfile, pathlib, mlflow
from mlflow import MlflowClient
client = MlflowClient()
run_id = os.environ["RUN_ID"]
run = client.get_run(run_id)
history = [m.value for m in client.get_metric_history(run_id, "loss")]
found = mlflow.search_runs(experiment_names=["shared"], filter_string="tags.replica = 'a'",
                           output_format="list")
down = pathlib.Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model",
                                                        dst_path=tempfile.mkdtemp()))
print(json.dumps({"params": run.data.params, "history": history,
                  "found": [r.info.run_id for r in found],
                  "artifact": (down / "model.txt").read_text(), "uri": run.info.artifact_uri}))
"""


@pytest.fixture
def postgres_uri():
    with postgres_schema() as uri:
        yield uri


def _log_batches(url: str, run_id: str, worker: int, errors: list) -> None:
    port = int(url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for i in range(20):
            # overlapping keys in both orders: the rows two writers lock are the same
            keys = [f"k{j}" for j in range(30)]
            if worker % 2:
                keys.reverse()
            body = {
                "run_id": run_id,
                "metrics": [{"key": k, "value": i, "timestamp": i, "step": worker} for k in keys],
                "tags": [{"key": k, "value": str(worker)} for k in keys],
                "params": [{"key": k, "value": "same"} for k in keys],
            }
            connection.request("POST", "/api/2.0/mlflow/runs/log-batch", json.dumps(body),
                               {"Content-Type": "application/json"})  # fmt: skip
            response = connection.getresponse()
            raw = response.read()
            if response.status != 200:
                errors.append((response.status, raw[:200]))
    finally:
        connection.close()


@pytest.mark.slow
def test_two_servers_over_one_postgresql_and_one_s3_are_one_service(postgres_uri, tmp_path):
    with moto_server() as endpoint:
        make_bucket(endpoint, "team")
        env = s3_env(endpoint)
        common = ["--backend-store-uri", postgres_uri,
                  "--artifacts-destination", "s3://team/mlflow-artifacts"]  # fmt: skip
        with (
            autolog_server(*common, env=env) as a,
            autolog_server(*common, "--workers", "2", env=env) as b,
        ):
            written = run_mlflow_script(WRITE, a)
            read = run_mlflow_script(READ, b, {"RUN_ID": written["run_id"]})
            assert read["params"] == {"lr": "0.1"}
            assert read["history"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
            assert read["found"] == [written["run_id"]]
            assert read["artifact"] == "weights" * 1000
            assert read["uri"].startswith("mlflow-artifacts:/")
            # a page token from A is honoured by B
            for _ in range(3):
                body = {"experiment_id": "1", "start_time": 1}
                assert call(a, "POST", "/api/2.0/mlflow/runs/create", body)[0] == 200
            search = {"experiment_ids": ["1"], "max_results": 2, "order_by": ["attributes.run_id"]}
            _, _, first = call(a, "POST", "/api/2.0/mlflow/runs/search", search)
            first = json.loads(first)
            _, _, second = call(b, "POST", "/api/2.0/mlflow/runs/search",
                                {**search, "page_token": first["next_page_token"]})  # fmt: skip
            ids = [r["info"]["run_id"] for r in first["runs"] + json.loads(second)["runs"]]
            assert len(ids) == len(set(ids)) == 4 and ids == sorted(ids)
            # concurrent log-batch to one run through both replicas
            errors: list = []
            threads = [
                threading.Thread(target=_log_batches, args=(url, written["run_id"], w, errors))
                for w, url in enumerate([a, b, a, b])
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert errors == []
            _, _, got = call(b, "GET", f"/api/2.0/mlflow/runs/get?run_id={written['run_id']}")
            data = json.loads(got)["run"]["data"]
            assert {p["key"] for p in data["params"]} >= {f"k{j}" for j in range(30)}
            _, _, history = call(a, "GET", "/api/2.0/mlflow/metrics/get-history?"
                                 f"run_id={written['run_id']}&metric_key=k0")  # fmt: skip
            assert len(json.loads(history)["metrics"]) == 4 * 20
