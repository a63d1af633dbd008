"""The seed's whole logging sequence with autolog's client over HTTP, against
a real ``mlflow server`` and against ``autolog server``.

Each step's result is read back through the server (another client
instance, or the official wire) and compared with what was logged.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import autolog
from autolog.tracking.stores.rest import RestStore


def _folder(root: Path) -> Path:
    folder = root / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.txt").write_text("beta " * 1000)
    (folder / "dir with space").mkdir()
    (folder / "dir with space" / "my file+x%.txt").write_text("odd name")
    return folder


def test_seed_sequence(any_server, tmp_path):
    # autolog server takes the client's run ids, mlflow server picks its own
    real_mlflow = "mlflow" in any_server.argv
    assert RestStore(any_server.url).assigns_run_ids is real_mlflow
    autolog.set_tracking_uri(any_server.url)
    name = f"seed-{uuid.uuid4().hex[:8]}"
    experiment = autolog.set_experiment(name)
    assert experiment.name == name and experiment.lifecycle_stage == "active"
    note = tmp_path / "note.txt"
    note.write_text("hello")
    folder = _folder(tmp_path)
    with autolog.start_run(run_name="random_forest_v1") as run:
        autolog.log_params({"n_estimators": 100, "max_depth": 10})
        for epoch, loss in enumerate([0.9, 0.5, 0.3]):
            autolog.log_metric("train_loss", loss, step=epoch)
        autolog.log_metric("weird", float("nan"))
        autolog.set_tag("model_type", "Random Forest")
        autolog.log_artifact(str(note))
        autolog.log_artifacts(str(folder), artifact_path="data")
        autolog.log_dict({"features": ["a", "b"], "k": 3}, "config/setup.json")
        with autolog.start_run(run_name="child", nested=True) as child:
            autolog.log_metric("train_loss", 0.7, step=0)
    run_id = run.info.run_id

    # the run, read back from the server by a fresh store (no cache of this process)
    fresh = RestStore(any_server.url)
    stored = fresh.get_run(run_id)
    assert stored.info.status == "FINISHED" and stored.info.end_time >= stored.info.start_time
    assert stored.info.run_name == "random_forest_v1"
    assert stored.info.artifact_uri == run.info.artifact_uri
    assert stored.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert stored.data.params == {"n_estimators": "100", "max_depth": "10"}
    assert stored.data.metrics["train_loss"] == 0.3
    assert stored.data.metrics["weird"] != stored.data.metrics["weird"]  # NaN came back NaN
    assert stored.data.tags["model_type"] == "Random Forest"
    kid = fresh.get_run(child.info.run_id)
    assert kid.data.tags["mlflow.parentRunId"] == run_id
    assert kid.info.experiment_id == experiment.experiment_id

    # search by tag, and by metric with order_by
    by_tag = autolog.search_runs(filter_string="tags.model_type = 'Random Forest'")
    assert [r.info.run_id for r in by_tag] == [run_id]
    ordered = autolog.search_runs(
        filter_string="metrics.train_loss < 1", order_by=["metrics.train_loss ASC"]
    )
    assert [r.info.run_id for r in ordered] == [run_id, child.info.run_id]
    descending = autolog.search_runs(order_by=["metrics.train_loss DESC"])
    assert [r.info.run_id for r in descending] == [child.info.run_id, run_id]

    client = autolog.Client()
    history = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.3)]

    # artifacts: listing with a path, download of everything
    assert [(f.path, f.is_dir) for f in client.list_artifacts(run_id, "data")] == [
        ("data/a.txt", False),
        ("data/dir with space", True),
        ("data/sub", True),
    ]
    assert [f.file_size for f in client.list_artifacts(run_id, "data/sub")] == [5000]
    listed = [f.path for f in client.list_artifacts(run_id) if f.path != "provenance"]
    assert listed == ["config", "data", "note.txt"]
    assert client.list_artifacts(run_id, "absent") == []
    out = Path(client.download_artifacts(run_id, "", tmp_path / "down"))
    assert (out / "note.txt").read_text() == "hello"
    for source in folder.rglob("*"):
        if source.is_file():
            copy = out / "data" / source.relative_to(folder)
            assert copy.read_bytes() == source.read_bytes()
    assert json.loads((out / "config" / "setup.json").read_text()) == {
        "features": ["a", "b"],
        "k": 3,
    }
    one = Path(client.download_artifacts(run_id, "data/sub/b.txt", tmp_path / "one"))
    assert one.read_text() == "beta " * 1000

    names = [e.name for e in autolog.search_experiments()]
    assert name in names and "Default" in names
    assert autolog.search_experiments(filter_string=f"name = '{name}'")[0].name == name


def test_missing_artifact_is_not_found(any_server, tmp_path):
    from autolog.errors import ResourceNotFoundError

    autolog.set_tracking_uri(any_server.url)
    with autolog.start_run() as run:
        autolog.log_text("x", "there.txt")
    with pytest.raises(ResourceNotFoundError, match=r"absent\.txt"):
        autolog.Client().download_artifacts(run.info.run_id, "absent.txt", tmp_path)
