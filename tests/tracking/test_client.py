"""autolog.Client: the explicit-id API over the current store.

Its writes go through the background writer: the tests that must see that
(reads flush, ``synchronous=True`` writes) use a writer that drains only when
flushed, so a store that already holds the data proves the flush happened.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import autolog
from autolog import Metric, Param, RunTag
from autolog.errors import (
    ParamOverwriteError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    RunStateError,
    TrackingWriteError,
)
from autolog.tracking import writer as _writers


@pytest.fixture
def client():
    return autolog.Client()


@pytest.fixture
def flush_only_writer(monkeypatch):
    """The process's writer, made to write only when flushed (never on its own)."""
    writer = _writers.BatchingWriter(interval=3600, wake_threshold=10**9)
    monkeypatch.setattr(_writers, "_writer", writer)
    return writer


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
    listing.pop("provenance", None)  # what autolog records of every run (autolog/provenance)
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


def test_client_writes_are_queued_and_reads_see_them(client, flush_only_writer):
    run = client.create_run("0", run_name="queued", tags={"team": "a"})
    run_id = run.info.run_id
    client.log_batch(run_id, metrics=[Metric("acc", 0.5, 10, 1)], params=[Param("depth", 3)])
    client.log_param(run_id, "lr", 0.1)
    client.log_metric(run_id, "acc", 0.8, timestamp=20, step=2)
    client.set_tag(run_id, "stage", "dev")
    client.update_run(run_id, name="renamed")
    info = client.set_terminated(run_id, "KILLED", end_time=30)
    assert (info.status, info.end_time, info.run_name) == ("KILLED", 30, "renamed")
    with pytest.raises(ResourceNotFoundError):  # nothing written yet: all queued
        client.store.get_run(run_id)
    got = client.get_run(run_id)  # a read flushes first
    assert (got.info.status, got.info.end_time, got.info.run_name) == ("KILLED", 30, "renamed")
    assert got.data.params == {"depth": "3", "lr": "0.1"}
    assert got.data.metrics == {"acc": 0.8}
    assert got.data.tags["stage"] == "dev" and got.data.tags["team"] == "a"
    assert got.data.tags["mlflow.runName"] == "renamed"
    client.log_metric(run_id, "acc", 0.9, timestamp=40, step=3)
    assert [m.value for m in client.get_metric_history(run_id, "acc")] == [0.5, 0.8, 0.9]
    client.set_tag(run_id, "stage", "prod")
    found = client.search_runs("0", filter_string="tags.stage = 'prod'")
    assert [r.info.run_id for r in found] == [run_id]


def test_client_on_a_second_uri_writes_to_its_store(client, tmp_path):
    other = autolog.Client(tmp_path / "elsewhere")
    experiment_id = other.create_experiment("only_here")
    there = other.create_run(experiment_id).info.run_id
    here = client.create_run("0").info.run_id
    other.log_batch(there, metrics=[Metric("m", 1.0, 1)], params=[Param("p", "x")])
    client.log_batch(here, metrics=[Metric("m", 2.0, 1)], params=[Param("p", "y")])
    autolog.flush()  # one drain, two stores: each item goes to its own
    assert other.store.get_run(there).data.params == {"p": "x"}
    assert client.store.get_run(here).data.params == {"p": "y"}
    assert other.get_run(there).data.metrics == {"m": 1.0}
    with pytest.raises(ResourceNotFoundError):
        client.get_run(there)
    with pytest.raises(ResourceNotFoundError):
        other.get_run(here)


def test_param_overwrite_in_log_batch_raises_at_the_call_and_writes_nothing(
    client, flush_only_writer
):
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "lr", 0.1)
    queued = flush_only_writer.pending  # the creation (and what it brings along) and lr
    with pytest.raises(ParamOverwriteError, match="'lr'"):
        client.log_batch(
            run_id,
            metrics=[Metric("loss", 0.3, 1)],
            params=[Param("depth", "3"), Param("lr", "0.2")],
            tags=[RunTag("stage", "dev")],
        )
    with pytest.raises(ParamOverwriteError, match="'depth'"):  # within one batch too
        client.log_batch(run_id, params=[Param("depth", "3"), Param("depth", "4")])
    assert flush_only_writer.pending == queued  # the batches queued nothing
    got = client.get_run(run_id)
    assert got.data.params == {"lr": "0.1"}
    assert got.data.metrics == {} and "stage" not in got.data.tags


def test_param_overwrite_of_a_run_made_elsewhere_raises_at_the_call(client):
    # a run this process did not create: its params are read once from the store
    run = client.store.create_run("0", "someone", 1, tags=[], run_name="elsewhere")
    client.store.log_batch(run.info.run_id, params=[Param("lr", "0.1")])
    with pytest.raises(ParamOverwriteError, match="'lr'"):
        client.log_param(run.info.run_id, "lr", 0.2)
    client.log_param(run.info.run_id, "lr", 0.1)  # the same value: a no-op
    assert client.get_run(run.info.run_id).data.params == {"lr": "0.1"}


def test_synchronous_true_has_written_before_returning(client, flush_only_writer):
    run_id = client.create_run("0").info.run_id
    client.set_tag(run_id, "queued", "yes")
    with pytest.raises(ResourceNotFoundError):
        client.store.get_run(run_id)
    client.log_metric(run_id, "acc", 0.5, step=1, synchronous=True)
    stored = client.store.get_run(run_id)
    assert stored.data.metrics == {"acc": 0.5} and stored.data.tags["queued"] == "yes"
    client.log_param(run_id, "lr", 0.1, synchronous=True)
    client.set_tag(run_id, "stage", "dev", synchronous=True)
    client.log_batch(run_id, metrics=[Metric("acc", 0.7, 5, 2)], synchronous=True)
    stored = client.store.get_run(run_id)
    assert stored.data.params == {"lr": "0.1"} and stored.data.tags["stage"] == "dev"
    assert stored.data.metrics == {"acc": 0.7}
    client.set_terminated(run_id, "FAILED", synchronous=True)
    assert client.store.get_run(run_id).info.status == "FAILED"
    created = client.create_run("0", synchronous=True).info.run_id
    assert client.store.get_run(created).info.status == "RUNNING"
    assert flush_only_writer.pending == 0


def test_a_background_write_error_is_raised_by_the_next_flush(client, flush_only_writer):
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "a", 1, synchronous=True)
    # another process logs "b" after this one read the run's params
    client.store.log_batch(run_id, params=[Param("b", "theirs")])
    client.log_param(run_id, "b", "ours")  # passes the local check; the store rejects it
    with pytest.warns(RuntimeWarning, match="rejected"), pytest.raises(TrackingWriteError):
        autolog.flush()
    assert client.get_run(run_id).data.params == {"a": "1", "b": "theirs"}


def test_create_run_checks_the_experiment_once_and_sees_its_deletion(client):
    experiment_id = client.create_experiment("short_lived")
    client.create_run(experiment_id)
    client.delete_experiment(experiment_id)
    with pytest.raises(RunStateError, match="deleted"):
        client.create_run(experiment_id)
    with pytest.raises(ResourceNotFoundError):
        client.create_run("424242")
