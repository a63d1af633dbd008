"""The fluent API: runs and their states, nesting, resuming, system tags, URIs, artifacts."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest

import autolog
from autolog.errors import ResourceNotFoundError, RunStateError, StoreError
from autolog.provenance.git import git_commit
from autolog.tracking.stores import store_for_uri


def _status(run_id: str) -> str:
    return autolog.get_run(run_id).info.status


def test_context_manager_ends_finished_failed_or_killed_and_propagates():
    with autolog.start_run() as ok:
        pass
    error = ValueError("user bug")
    with pytest.raises(ValueError) as raised, autolog.start_run() as failed:
        raise error
    assert raised.value is error
    with pytest.raises(KeyboardInterrupt), autolog.start_run() as killed:
        raise KeyboardInterrupt
    assert [_status(r.info.run_id) for r in (ok, failed, killed)] == [
        "FINISHED",
        "FAILED",
        "KILLED",
    ]
    assert autolog.active_run() is None


def test_nested_runs_point_to_parent_and_second_top_level_run_is_an_error():
    with autolog.start_run(run_name="hyperparameter_tuning") as parent:
        with autolog.start_run(run_name="lr_0.1", nested=True) as child:
            assert autolog.active_run().info.run_id == child.info.run_id
        assert autolog.active_run().info.run_id == parent.info.run_id
        with pytest.raises(RunStateError, match="nested=True"):
            autolog.start_run()
    tags = autolog.get_run(child.info.run_id).data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id
    assert "mlflow.parentRunId" not in autolog.get_run(parent.info.run_id).data.tags


def test_resuming_a_run_sets_it_running_and_keeps_its_data():
    with autolog.start_run(run_name="first") as run:
        autolog.log_metric("m", 1.0, step=0)
    with autolog.start_run(run_id=run.info.run_id) as resumed:
        assert _status(run.info.run_id) == "RUNNING"
        autolog.log_metric("m", 2.0, step=1)
    assert resumed.info.run_id == run.info.run_id
    again = autolog.get_run(run.info.run_id)
    assert again.info.status == "FINISHED" and again.info.run_name == "first"
    assert [m.value for m in autolog.Client().get_metric_history(run.info.run_id, "m")] == [1, 2]


def test_resuming_an_unknown_run_raises():
    with pytest.raises(ResourceNotFoundError):
        autolog.start_run(run_id="0" * 32)
    assert autolog.active_run() is None


def test_logging_without_active_run_starts_one_and_end_run_ends_it():
    autolog.log_metric("auto", 1.0)
    run = autolog.active_run()
    assert run is not None
    autolog.end_run()
    assert autolog.active_run() is None
    assert autolog.last_active_run().info.run_id == run.info.run_id
    assert autolog.get_run(run.info.run_id).data.metrics == {"auto": 1.0}


def test_end_run_without_flush_still_lands():
    run = autolog.start_run()
    autolog.log_param("p", 1)
    autolog.end_run(flush=False)
    got = autolog.get_run(run.info.run_id)  # reads flush first
    assert got.info.status == "FINISHED" and got.data.params == {"p": "1"}


def test_active_run_info_is_local_and_data_reads_the_store():
    with autolog.start_run(run_name="named", tags={"team": "ml"}, description="notes") as run:
        assert run.info.status == "RUNNING" and run.info.run_name == "named"
        assert re.fullmatch(r"[0-9a-f]{32}", run.info.run_id)
        autolog.log_metric("acc", 0.9)
        data = run.data
        assert data.metrics == {"acc": 0.9}
        assert data.tags["team"] == "ml" and data.tags["mlflow.note.content"] == "notes"
        assert isinstance(run, autolog.Run)
    assert run.info.status == "FINISHED" and run.info.end_time >= run.info.start_time


def test_system_tags_and_generated_run_name():
    with autolog.start_run() as run:
        pass
    tags = autolog.get_run(run.info.run_id).data.tags
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", run.info.run_name)
    assert tags["mlflow.runName"] == run.info.run_name
    assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL"
    assert "mlflow.source.name" in tags


def _fake_repo(root: Path, head: str) -> Path:
    git = root / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text(head)
    return git


def test_git_commit_read_from_loose_ref_packed_refs_detached_and_worktree(tmp_path):
    sha1, sha2, sha3 = "a" * 40, "b" * 40, "c" * 40
    loose = tmp_path / "loose"
    git = _fake_repo(loose, "ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(sha1 + "\n")
    (loose / "src" / "pkg").mkdir(parents=True)
    assert git_commit(loose / "src" / "pkg") == sha1

    packed = tmp_path / "packed"
    git = _fake_repo(packed, "ref: refs/heads/dev\n")
    (git / "packed-refs").write_text(
        f"# pack-refs\n{sha3} refs/heads/main\n{sha2} refs/heads/dev\n"
    )
    assert git_commit(packed) == sha2

    detached = tmp_path / "detached"
    _fake_repo(detached, sha3 + "\n")
    assert git_commit(detached) == sha3

    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {loose / '.git'}\n")
    assert git_commit(worktree) == sha1

    unborn = tmp_path / "unborn"
    _fake_repo(unborn, "ref: refs/heads/main\n")  # no commit yet
    assert git_commit(unborn) is None
    assert git_commit(tmp_path / "nowhere") is None


def test_tracking_uri_forms(tmp_path, tracking_uri, monkeypatch):
    assert autolog.get_tracking_uri() == tracking_uri
    autolog.set_tracking_uri("file:./relative_runs")
    assert autolog.get_tracking_uri() == (tmp_path / "relative_runs").as_uri()
    autolog.set_tracking_uri(tmp_path / "plain")
    with autolog.start_run() as run:
        pass
    assert (tmp_path / "plain" / "0" / run.info.run_id).is_dir()
    monkeypatch.delenv("AUTOLOG_TRACKING_URI")
    autolog.set_tracking_uri(tracking_uri)
    autolog.tracking.fluent._reset_for_tests()
    assert autolog.get_tracking_uri() == (tmp_path / "mlruns").as_uri()  # the ./mlruns default


def test_store_for_uri_caches_and_rejects_unknown_schemes(tracking_uri):
    assert store_for_uri(tracking_uri) is store_for_uri(tracking_uri)
    with pytest.raises(StoreError, match="unsupported tracking URI 'ftp://me:\\*\\*\\*@host/x'"):
        store_for_uri("ftp://me:hunter2@host/x")


def test_experiments_set_get_create_and_tag(monkeypatch):
    assert autolog.get_experiment_by_name("Churn") is None
    experiment = autolog.set_experiment("Churn")
    assert autolog.set_experiment("Churn").experiment_id == experiment.experiment_id
    autolog.set_experiment_tag("team", "growth")
    assert autolog.get_experiment(experiment.experiment_id).tags == {"team": "growth"}
    with autolog.start_run() as run:
        pass
    assert run.info.experiment_id == experiment.experiment_id
    other = autolog.create_experiment("Other", tags={"k": "v"})
    with autolog.start_run(experiment_id=other) as in_other:
        pass
    assert in_other.info.experiment_id == other
    assert {e.name for e in autolog.search_experiments()} >= {"Default", "Churn", "Other"}


def test_experiment_from_environment(monkeypatch):
    monkeypatch.setenv("AUTOLOG_EXPERIMENT_NAME", "from_env")
    with autolog.start_run() as run:
        pass
    assert autolog.get_experiment(run.info.experiment_id).name == "from_env"


def test_run_id_keyword_logs_from_another_thread():
    with autolog.start_run() as run:

        def callback():  # an injected training callback: no active run on its thread
            autolog.log_metric("epoch_loss", 0.5, step=1, run_id=run.info.run_id)
            autolog.log_params({"optimizer": "adam"}, run_id=run.info.run_id)
            autolog.set_tags({"cb": "yes"}, run_id=run.info.run_id)

        thread = threading.Thread(target=callback)
        thread.start()
        thread.join()
        assert autolog.active_run().info.run_id == run.info.run_id
    data = autolog.get_run(run.info.run_id).data
    assert data.metrics == {"epoch_loss": 0.5} and data.params == {"optimizer": "adam"}
    assert data.tags["cb"] == "yes"


def test_delete_tag():
    with autolog.start_run() as run:
        autolog.set_tag("temporary", "x")
        autolog.delete_tag("temporary")
        with pytest.raises(ResourceNotFoundError):
            autolog.delete_tag("never_set")
    assert "temporary" not in autolog.get_run(run.info.run_id).data.tags


def test_text_dict_yaml_image_and_figures_become_artifacts(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    import yaml
    from PIL import Image

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [4, 5, 6])
    with autolog.start_run() as run:
        autolog.log_text("hello", "notes/hello.txt")
        autolog.log_dict({"a": [1, 2]}, "config.json")
        autolog.log_dict({"a": [1, 2]}, "config.yaml")
        autolog.log_figure(fig, "plots/line.png")
        autolog.log_figure(fig, "plots/line.svg")
        autolog.log_figure(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), "plots/line.html")
        autolog.log_image(np.zeros((4, 5, 3), dtype=np.uint8), "images/black.png")
        autolog.log_image(np.full((4, 5), 0.5), "images/grey.png")
        autolog.log_image(Image.new("RGB", (3, 2), "red"), "images/red.png")
    plt.close(fig)
    client = autolog.Client()
    local = Path(client.download_artifacts(run.info.run_id, "", dst_path=tmp_path / "dl"))
    assert (local / "notes" / "hello.txt").read_text() == "hello"
    assert (local / "config.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert yaml.safe_load((local / "config.yaml").read_text()) == {"a": [1, 2]}
    assert (local / "plots" / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (local / "plots" / "line.svg").read_bytes()
    assert "plotly" in (local / "plots" / "line.html").read_text()
    assert Image.open(local / "images" / "grey.png").getpixel((0, 0)) == 128
    assert Image.open(local / "images" / "red.png").getpixel((0, 0)) == (255, 0, 0)
    assert Image.open(local / "images" / "black.png").size == (5, 4)


def test_log_image_and_figure_reject_what_they_cannot_encode():
    with autolog.start_run():
        with pytest.raises(autolog.InvalidParameterError, match="in \\[0, 1\\]"):
            autolog.log_image(np.full((2, 2), 3.0), "x.png")
        with pytest.raises(autolog.InvalidParameterError, match="shape"):
            autolog.log_image(np.zeros((2, 2, 5)), "x.png")
        with pytest.raises(autolog.InvalidParameterError, match="unsupported figure"):
            autolog.log_figure(object(), "x.png")


def test_log_artifact_copies_at_call_time(tmp_path):
    source = tmp_path / "feature_importance.png"
    source.write_bytes(b"png bytes")
    with autolog.start_run() as run:
        autolog.log_artifact(source)
        source.unlink()  # the user may delete it right away
    paths = [f.path for f in autolog.Client().list_artifacts(run.info.run_id)]
    assert [p for p in paths if p != "provenance"] == ["feature_importance.png"]


def test_search_runs_as_list_and_pandas():
    autolog.set_experiment("search")
    for name, value in (("a", 1.0), ("b", 2.0)):
        with autolog.start_run(run_name=name):
            autolog.log_metric("score", value)
            autolog.log_param("name", name)
    runs = autolog.search_runs(filter_string="metrics.score > 1.5")
    assert [r.info.run_name for r in runs] == ["b"]
    frame = autolog.search_runs(order_by=["metrics.score DESC"], output_format="pandas")
    assert list(frame["params.name"]) == ["b", "a"] and list(frame["metrics.score"]) == [2.0, 1.0]
