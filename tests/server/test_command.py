"""``autolog server`` itself: what it prints, its defaults, Ctrl-C, the stores it opens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from autolog.server import ServerSettings, create_app
from autolog.server.command import add_parser
from tests.server.servers import call, free_port, postgres_schema, serving, wait_http


def test_defaults_are_the_seeds_and_bind_loopback():
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["server"])
    assert (args.host, args.port, args.backend_store_uri) == ("127.0.0.1", 5000, "./mlruns")
    assert args.serve_artifacts is True and args.auth_file is None and args.workers == 1
    args = parser.parse_args(
        [
            "server",
            "--backend-store-uri",
            "sqlite:///mlflow.db",
            "--default-artifact-root",
            "s3://my-bucket/mlflow-artifacts",
            "--host",
            "0.0.0.0",
            "--port",
            "5000",
            "--no-serve-artifacts",
        ]
    )
    assert args.default_artifact_root == "s3://my-bucket/mlflow-artifacts"
    assert args.host == "0.0.0.0" and args.serve_artifacts is False


def test_it_prints_its_address_and_masked_stores_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    with postgres_schema() as uri:
        assert "autolog:autolog@" in uri
        process = subprocess.Popen(
            [sys.executable, "-m", "autolog.cli", "server", "--port", str(port),
             "--backend-store-uri", uri, "--artifacts-destination", str(tmp_path / "a")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{port}/health", process)
        finally:
            process.send_signal(signal.SIGINT)
            out, _ = process.communicate(timeout=20)
    assert process.returncode == 0, out
    assert f"listening on http://127.0.0.1:{port}" in out
    assert "autolog:***@127.0.0.1" in out and "autolog:autolog@" not in out
    assert str(tmp_path / "a") in out
    assert "Traceback" not in out and "stopped" in out


def test_a_file_store_backend_hands_out_proxied_artifact_uris(tmp_path):
    settings = ServerSettings(
        backend_store_uri=str(tmp_path / "mlruns"), artifacts_destination=str(tmp_path / "art")
    )
    with serving(create_app(settings)) as url:
        _, _, body = call(url, "POST", "/api/2.0/mlflow/experiments/create", {"name": "e"})
        exp = json.loads(body)["experiment_id"]
        _, _, body = call(url, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": exp})
        info = json.loads(body)["run"]["info"]
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp}/{info['run_id']}/artifacts"


def test_a_default_artifact_root_is_handed_to_clients_as_is(tmp_path):
    settings = ServerSettings(
        backend_store_uri=f"sqlite:///{tmp_path / 'db.sqlite'}",
        default_artifact_root="s3://my-bucket/mlflow-artifacts",
    )
    with serving(create_app(settings)) as url:
        _, _, body = call(url, "POST", "/api/2.0/mlflow/experiments/create", {"name": "e"})
        exp = json.loads(body)["experiment_id"]
        _, _, body = call(url, "GET", f"/api/2.0/mlflow/experiments/get?experiment_id={exp}")
    assert json.loads(body)["experiment"]["artifact_location"] == (
        f"s3://my-bucket/mlflow-artifacts/{exp}"
    )


def test_the_connection_budget_is_the_sql_pool(tmp_path, monkeypatch):
    from autolog.server.stores import open_store

    monkeypatch.delenv("AUTOLOG_SQL_POOL_SIZE", raising=False)
    monkeypatch.delenv("AUTOLOG_SQL_MAX_OVERFLOW", raising=False)
    store = open_store(
        ServerSettings(backend_store_uri=f"sqlite:///{tmp_path / 'db.sqlite'}", db_connections=3)
    )
    try:
        pool = store._engine.pool
        assert pool.size() == 3 and pool._max_overflow == 0
        assert "AUTOLOG_SQL_POOL_SIZE" not in os.environ  # this process's other stores: as before
    finally:
        store.close()
