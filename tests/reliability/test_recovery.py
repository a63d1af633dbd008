"""Recovery of what a crash left (issue 17, item 3), on every store:

- runs left RUNNING by a killed process are ended KILLED by ``autolog gc``
  (process liveness on this host), and ``autolog runs list`` shows them so;
  live processes' runs and runs of other hosts are left alone;
- temporary files of interrupted artifact writes are removed by ``autolog gc``
  (stores whose artifacts are on this machine);
- a torn last line of a file-store log is ignored on read and repaired on the
  next append, also when the process appending had appended before;
- ``autolog doctor`` reads every run, metric and model and reports what fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

import autolog
from autolog.cli import main as cli
from autolog.tracking.doctor import examine
from autolog.tracking.entities import Metric, RunTag
from autolog.tracking.gc import collect, process_alive, process_tag
from tests.reliability.test_concurrency import finished, python
from tests.reliability.test_concurrency import store as store


def test_the_process_tag_tells_live_dead_and_reused_pids_apart():
    assert process_alive(process_tag()) is True
    host = socket.gethostname()
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert process_alive(f"{host}:{proc.pid}:1") is False  # gone
    assert process_alive(f"{host}:{os.getpid()}:1") is False  # our pid, another start time
    assert process_alive(f"elsewhere:{os.getpid()}:1") is None  # another host: cannot tell
    assert process_alive("not a tag") is None


INTERRUPTED_ARTIFACT = """
import os, signal
with autolog.start_run(run_name="interrupted") as run:
    print(run.info.run_id, flush=True)
    autolog.log_text("kept", "notes/kept.txt")
    autolog.flush()
    def die(*args, **kwargs):  # killed between writing the temporary file and renaming it
        os.kill(os.getpid(), signal.SIGKILL)
    os.replace = die
    autolog.log_text("x" * 100_000, "notes/big.txt")
    autolog.flush()
"""


@pytest.mark.parametrize("store", ["file", "sqlite", "postgresql"], indirect=True)
def test_gc_removes_temporary_files_of_interrupted_artifact_writes(store, tmp_path, capsys):
    _kind, uri, _experiment = store
    proc = python(INTERRUPTED_ARTIFACT, store, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    code, out, err = finished(proc)
    assert code == -signal.SIGKILL, err[-2000:]
    run = autolog.Client().get_run(out.split()[0])
    root = Path(run.info.artifact_uri.removeprefix("file://"))
    leftovers = [p for p in root.rglob(".*.tmp")]
    assert leftovers, sorted(root.rglob("*"))
    ours = root / "notes" / f".mine.txt.{os.getpid()}.1.tmp"  # a live process's: kept
    ours.write_text("being written")

    capsys.readouterr()
    assert cli(["gc", "--tracking-uri", uri]) == 0
    said = capsys.readouterr().out
    assert all(str(p) in said for p in leftovers), said
    assert not any(p.exists() for p in leftovers)
    assert ours.exists()
    assert (root / "notes" / "kept.txt").read_text() == "kept"


def test_a_torn_last_line_is_skipped_and_ended_by_the_next_append(tmp_path):
    from autolog.tracking.stores.file import FileStore

    store = FileStore(tmp_path / "mlruns")
    run_id = store.create_run("0", "me", 0).info.run_id
    store.log_batch(run_id, metrics=[Metric("loss", 1.0, 1, 0)])
    log = tmp_path / "mlruns" / "0" / run_id / "log.jsonl"
    with log.open("ab") as f:  # another process, killed in the middle of its line
        f.write(b'{"m":{"loss":{"value":[9.0],"st')
    assert [m.step for m in store.get_metric_history(run_id, "loss")] == [0]
    assert FileStore(tmp_path / "mlruns").get_run(run_id).data.metrics == {"loss": 1.0}
    found = examine(store)
    assert found.ok and any("torn last line" in n for n in found.notes), found.lines()

    # this store appended before: its next line must still start a line of its own
    store.log_batch(run_id, metrics=[Metric("loss", 2.0, 2, 1)], tags=[RunTag("k", "v")])
    assert [m.step for m in store.get_metric_history(run_id, "loss")] == [0, 1]
    fresh = FileStore(tmp_path / "mlruns")
    assert fresh.get_run(run_id).data.metrics == {"loss": 2.0}
    assert fresh.get_run(run_id).data.tags["k"] == "v"
    assert log.read_bytes().endswith(b"\n")
    lines = log.read_bytes().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["t"] == [["k", "v"]]
    found = examine(fresh)
    assert found.ok and any("torn line 2" in n for n in found.notes), found.lines()


def _a_model(run_id: str) -> None:
    autolog.log_dict({"weights": [1, 2, 3]}, "model/weights.json", run_id=run_id)
    metadata = {"format_version": 1, "flavor": "test", "files": ["weights.json"]}
    autolog.log_dict(metadata, "model/model.json", run_id=run_id)


def test_doctor_reports_a_healthy_store_and_what_is_broken(store, capsys):
    kind, uri, _experiment = store
    with autolog.start_run() as healthy:
        autolog.log_metric("loss", 0.5, step=0)
        autolog.log_metric("loss", 0.25, step=1)
        autolog.log_param("lr", 0.1)
        _a_model(healthy.info.run_id)
    autolog.flush()
    capsys.readouterr()
    assert cli(["doctor", "--tracking-uri", uri]) == 0
    said = capsys.readouterr().out
    assert "no problems found" in said
    shared = kind in ("postgresql", "rest")  # the store holds other tests' runs too
    killed = collect(autolog.Client(uri).store, dry_run=True).killed
    # (run id, experiment id, name, why): in a shared store, runs that other
    # tests' killed processes left RUNNING are gc's to end, none of this test's
    assert not [run for run in killed if not shared or run[1] == healthy.info.experiment_id]
    found = examine(autolog.Client(uri).store)
    assert found.runs >= 1 and found.metric_points >= 2
    if kind == "rest":
        return  # its artifacts are the server's: not walked from here
    assert found.model_files >= 2 if shared else found.model_files == 2
    root = Path(autolog.get_run(healthy.info.run_id).info.artifact_uri.removeprefix("file://"))
    (root / "model" / "weights.json").unlink()  # a model file lost
    with pytest.raises(SystemExit) as exit_info:
        cli(["doctor", "--tracking-uri", uri])
    assert exit_info.value.code == 1
    said = capsys.readouterr().out
    assert "file 'weights.json' is missing" in said and healthy.info.run_id in said
    assert shared or "1 problem(s) found" in said
    if kind == "file":  # a run whose document cannot be read
        meta = root.parent / "meta.json"
        meta.write_text("{not json")
        with pytest.raises(SystemExit):
            cli(["doctor", "--tracking-uri", uri])
        assert healthy.info.run_id in capsys.readouterr().out


def test_a_sqlite_store_on_a_read_only_path_is_a_typed_error(tmp_path):
    """Opening SQLite connects (WAL): on a read-only folder that is a
    TransientStoreError naming the store, not sqlite3's own error."""
    from autolog.errors import TransientStoreError
    from autolog.tracking import fluent
    from tests.reliability.faults import SmallDisk

    disk = SmallDisk(tmp_path / "disk", "1m")
    try:
        autolog.set_tracking_uri(f"sqlite:///{disk.path / 'runs.db'}")
        autolog.search_runs()  # the database exists
        fluent._reset_for_tests()  # its connections closed: the remount needs that
        disk.read_only()
        autolog.set_tracking_uri(f"sqlite:///{disk.path / 'runs.db'}")
        with pytest.raises(TransientStoreError, match=r"runs\.db.*cannot open"):
            autolog.start_run()
    finally:
        disk.heal()
        fluent._reset_for_tests()
        disk.unmount()
