"""autolog.Client: the explicit-id API over the current store."""

from __future__ import annotations

from pathlib import Path

import pytest

import autolog
from autolog import Metric, Param, RunTag
from autolog.errors import ParamOverwriteError, ResourceAlreadyExistsError


@pytest.fixture
def client():
    return autolog.Client()


def test_experiment_lifecycle(client):
    experiment_id = client.create_experiment("Fraud", tags={"team": "risk"})
    with pytest.raises(ResourceAlreadyExistsError):
        client.create_experiment("Fraud")
    assert client.get_experiment(experiment_id).tags == {"team": "risk"}
    assert client.get_experiment_by_name("Fraud").experiment_id == experiment_id
    client.delete_experiment(experiment_id)
    assert "Fraud" not in {e.name for e in client.search_experiments()}
    assert "Fraud" in {e.name for e in client.search_experiments(view_type=autolog.ViewType.ALL)}
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"
    found = client.search_experiments(filter_string="name LIKE 'Fr%'")
    assert [e.name for e in found] == ["Fraud"]


def test_run_by_id_log_batch_and_history_order(client):
    run = client.create_run("0", run_name="explicit", tags={"k": "v"})
    run_id = run.info.run_id
    assert run.info.status == "RUNNING" and run.data.tags["mlflow.runName"] == "explicit"
    client.log_batch(
        run_id,
        metrics=[Metric("acc", 0.7, 200, 2), Metric("acc", 0.5, 100, 1), Metric("acc", 0.6, 50, 1)],
        params=[Param("depth", "3")],
        tags=[RunTag("stage", "dev")],
    )
    client.log_param(run_id, "lr", 0.1)
    client.log_metric(run_id, "loss", 0.3, step=4)
    client.set_tag(run_id, "stage", "prod")
    with pytest.raises(ParamOverwriteError, match="'lr'"):
        client.log_param(run_id, "lr", 0.2)
    history = client.get_metric_history(run_id, "acc")
    assert [(m.step, m.timestamp) for m in history] == [(1, 50), (1, 100), (2, 200)]
    client.set_terminated(run_id, "FAILED")
    got = client.get_run(run_id)
    assert got.info.status == "FAILED" and got.info.end_time is not None
    assert got.data.params == {"depth": "3", "lr": "0.1"}
    assert got.data.metrics == {"acc": 0.7, "loss": 0.3}
    assert got.data.tags["stage"] == "prod" and got.data.tags["k"] == "v"
    client.delete_tag(run_id, "stage")
    assert "stage" not in client.get_run(run_id).data.tags


def test_client_reads_what_the_fluent_api_just_logged(client):
    with autolog.start_run() as run:
        for step in range(100):
            autolog.log_metric("loss", 1 / (step + 1), step=step)
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 100


def test_delete_restore_and_paged_search(client):
    experiment_id = client.create_experiment("paged")
    ids = []
    for i in range(5):
        with autolog.start_run(experiment_id=experiment_id, run_name=f"r{i}") as run:
            autolog.log_metric("i", i)
        ids.append(run.info.run_id)
    client.delete_run(ids[0])
    assert len(client.search_runs([experiment_id])) == 4
    client.restore_run(ids[0])
    first = client.search_runs(experiment_id, order_by=["metrics.i"], max_results=3)
    second = client.search_runs(
        [experiment_id], order_by=["metrics.i"], max_results=3, page_token=first.token
    )
    assert [r.data.metrics["i"] for r in first + second] == [0, 1, 2, 3, 4]
    assert second.token is None


def test_artifacts_by_run_id(client, tmp_path):
    outputs = tmp_path / "output_dir"
    (outputs / "sub").mkdir(parents=True)
    (outputs / "a.txt").write_text("a")
    (outputs / "sub" / "b.txt").write_text("bb")
    run_id = client.create_run("0").info.run_id
    client.log_artifacts(run_id, outputs, artifact_path="outputs")
    client.log_text(run_id, "hi", "notes.txt")
    client.log_dict(run_id, {"x": 1}, "d.json")
    listing = {f.path: (f.is_dir, f.file_size) for f in client.list_artifacts(run_id)}
    assert listing == {
        "outputs": (True, None),
        "notes.txt": (False, 2),
        "d.json": (False, 12),
    }  # {\n  "x": 1\n}
    assert [f.path for f in client.list_artifacts(run_id, "outputs")] == [
        "outputs/a.txt",
        "outputs/sub",
    ]
    local = Path(client.download_artifacts(run_id, "outputs", dst_path=tmp_path / "dl"))
    assert (local / "sub" / "b.txt").read_text() == "bb"


def test_client_with_explicit_uri_is_independent_of_the_fluent_uri(tmp_path):
    other = autolog.Client(tmp_path / "elsewhere")
    other.create_experiment("only_here")
    assert autolog.get_experiment_by_name("only_here") is None
    assert other.tracking_uri == (tmp_path / "elsewhere").as_uri()
