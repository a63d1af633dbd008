"""The official mlflow client (its own venv, a subprocess) runs the seed's whole
sequence against ``autolog server``; what it reads back, and what our store holds."""

from __future__ import annotations

import json
from pathlib import Path

from autolog.server.auth import hash_token
from autolog.tracking.stores.sql import SqlStore
from tests.server.servers import autolog_server, run_mlflow_script

SCRIPT = (Path(__file__).parent / "seed_sequence.py").read_text()


def _check(result: dict, db: Path, artifacts: Path) -> None:
    assert result["status"] == "FINISHED"
    assert result["run_name"] == "parent"
    assert result["artifact_uri"] == f"mlflow-artifacts:/1/{result['parent_id']}/artifacts"
    assert result["params"] == {"lr": "0.01", "depth": "3"}
    assert result["metrics"] == {"loss": 0.25, "acc": 0.9}
    assert result["tags"]["team"] == "vision" and result["tags"]["mlflow.runName"] == "parent"
    assert result["child_parent"] == result["parent_id"]
    assert result["by_tag"] == ["child", "parent"]
    assert result["by_metric"] == ["child", "parent"]
    assert result["history"] == [[0, 1.0], [1, 0.5], [2, 0.25]]
    assert sorted(map(tuple, result["listed"])) == [
        ("plots/a.txt", False, 1),
        ("plots/sub", True, None),
    ]
    assert result["root_listed"] == ["config", "note.txt", "plots"]
    assert result["downloaded"] == [
        "config/params.json",
        "note.txt",
        "plots/a.txt",
        "plots/sub/b.txt",
    ]
    assert result["note"] == "hello" and result["config"] == {"x": 1}
    assert result["sub_b"] == "BB"
    assert set(result["experiments"]) == {"Default", "seed-exp"}
    # what the server wrote: our own store and the artifacts destination agree
    store = SqlStore(f"sqlite:///{db}")
    try:
        run = store.get_run(result["parent_id"])
        assert run.data.params == {"lr": "0.01", "depth": "3"}
        assert [m.value for m in store.get_metric_history(run.info.run_id, "loss")] == [
            1.0,
            0.5,
            0.25,
        ]
    finally:
        store.close()
    files = artifacts / "1" / result["parent_id"] / "artifacts"
    assert (files / "plots/sub/b.txt").read_text() == "BB"


def test_seed_sequence_with_the_official_client(tmp_path):
    db, artifacts = tmp_path / "mlflow.db", tmp_path / "art"
    with autolog_server(
        "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(artifacts)
    ) as url:
        result = run_mlflow_script(SCRIPT, url)
    _check(result, db, artifacts)


def test_seed_sequence_with_a_token_and_auth_on(tmp_path):
    db, artifacts = tmp_path / "mlflow.db", tmp_path / "art"
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"tokens": [hash_token("s3cret-token")]}))
    with autolog_server(
        "--backend-store-uri", f"sqlite:///{db}",
        "--artifacts-destination", str(artifacts),
        "--auth-file", str(auth),
    ) as url:  # fmt: skip
        result = run_mlflow_script(SCRIPT, url, {"MLFLOW_TRACKING_TOKEN": "s3cret-token"})
    assert result["token_env"]
    _check(result, db, artifacts)
