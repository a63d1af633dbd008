"""Writes to a deleted run are a typed error (issue 20, item 12): at the call when
this process deleted it, from the store (raised by flush) when another did."""

from __future__ import annotations

import warnings

import pytest

import autolog
from autolog.errors import RunStateError, TrackingWriteError
from autolog.tracking.entities import LifecycleStage, Metric, RunTag


def test_fluent_and_client_writes_to_a_run_deleted_here_raise_at_the_call(tmp_path):
    local_file = tmp_path / "notes.txt"
    local_file.write_text("hi")
    client = autolog.Client()
    with autolog.start_run() as run:
        run_id = run.info.run_id
        autolog.log_metric("m", 1.0)
        client.delete_run(run_id)
        writes = [
            lambda: autolog.log_metric("m", 2.0, step=1),
            lambda: autolog.log_metrics({"a": 1.0}),
            lambda: autolog.log_param("lr", 0.1),
            lambda: autolog.set_tag("k", "v"),
            lambda: autolog.delete_tag("mlflow.user"),
            lambda: autolog.log_text("x", "notes/x.txt"),
            lambda: autolog.log_artifact(local_file),
            lambda: client.log_metric(run_id, "m", 3.0),
            lambda: client.log_param(run_id, "lr", 0.1),
            lambda: client.set_tag(run_id, "k", "v"),
            lambda: client.log_batch(run_id, metrics=[Metric("m", 1.0, 0, 5)]),
            lambda: client.set_terminated(run_id),
            lambda: client.log_text(run_id, "x", "notes/x.txt"),
            lambda: client.log_artifact(run_id, local_file),
        ]
        for write in writes:
            with pytest.raises(RunStateError, match=run_id):
                write()
    # leaving the block ends the run locally; the deleted run is left as it was
    stored = client.get_run(run_id)
    assert stored.info.lifecycle_stage == LifecycleStage.DELETED
    assert stored.data.metrics == {"m": 1.0} and "k" not in stored.data.tags
    assert not {"notes", "notes.txt"} & {f.path for f in client.list_artifacts(run_id)}
    client.restore_run(run_id)
    client.log_metric(run_id, "m", 2.0, step=1, synchronous=True)
    assert client.get_run(run_id).data.metrics == {"m": 2.0}


def test_a_run_deleted_by_another_process_is_refused_by_the_store():
    run = autolog.start_run()
    autolog.log_metric("m", 1.0)
    autolog.flush()
    autolog.Client().store.delete_run(run.info.run_id)  # as another process would
    autolog.set_tag("late", "yes")  # accepted here: this process does not know
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TrackingWriteError, match=r"tag 'late'.*is deleted") as raised:
            autolog.flush()
        assert isinstance(raised.value.__cause__, RunStateError)
        with pytest.raises(TrackingWriteError, match=r"update_run_info.*is deleted"):
            autolog.end_run()
    assert len([w for w in caught if "rejected" in str(w.message)]) == 2
    stored = autolog.Client().get_run(run.info.run_id)
    assert "late" not in stored.data.tags and stored.info.status == "RUNNING"


def test_the_client_refuses_a_batch_for_a_deleted_run_before_queueing_anything():
    client = autolog.Client()
    run = client.create_run("0", synchronous=True)
    client.delete_run(run.info.run_id)
    with pytest.raises(RunStateError):
        client.log_batch(run.info.run_id, tags=[RunTag("k", "v")])
    client.restore_run(run.info.run_id)
    client.log_batch(run.info.run_id, tags=[RunTag("k", "v")], synchronous=True)
    assert client.get_run(run.info.run_id).data.tags["k"] == "v"
