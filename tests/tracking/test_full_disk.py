"""A real full disk (issue 20, item 2): nothing accepted is lost once space is back.

Each test mounts a small tmpfs (we run as root, here and in CI), fills it, logs,
frees it and checks every point is there. A store operation the writer retries
must finish a write the full disk cut short: ``create_run`` after the run's
folder was made but not its ``meta.json`` completes the run.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import warnings
from pathlib import Path

import pytest

import autolog
from autolog.errors import TrackingWriteError
from autolog.tracking import fluent


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, unmounted (after the stores on it are closed) at the end."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        fluent._reset_for_tests()  # closes the stores that hold files open there
        subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the disk)."""
    filler = disk / "filler"
    chunk = b"\0" * 4096
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, chunk) == len(chunk):
            pass
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_points_logged_while_the_disk_is_full_arrive_once_it_is_freed(
    backend, small_disk, tmp_path, monkeypatch
):
    monkeypatch.setenv("AUTOLOG_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    uri = (small_disk / "mlruns").as_uri() if backend == "file" else f"sqlite:///{small_disk}/r.db"
    autolog.set_tracking_uri(uri)
    autolog.search_runs()  # the store exists (and SQLite's schema) before the disk fills
    filler = fill(small_disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = autolog.start_run(run_name="during-full-disk")
        autolog.log_params({"lr": "0.1", "depth": 3})
        for step in range(500):
            autolog.log_metric("loss", 1.0 / (step + 1), step=step)
        with pytest.raises(TrackingWriteError, match="kept for retry"):
            autolog.end_run()
    assert any("could not write" in str(w.message) for w in caught)
    filler.unlink()  # space is back
    autolog.flush()
    stored = autolog.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED" and stored.info.run_name == "during-full-disk"
    assert stored.data.params == {"lr": "0.1", "depth": "3"}
    history = autolog.Client().get_metric_history(run.info.run_id, "loss")
    assert [p.step for p in history] == list(range(500))  # each point once, in order
    assert len(autolog.search_runs()) == 1


def test_a_model_larger_than_the_free_disk_spares_the_metrics_and_other_runs(small_disk):
    autolog.set_tracking_uri(small_disk / "mlruns")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        big = autolog.start_run()
        fluent.log_bytes(os.urandom(3 * 2**20), "model/model.bin")  # 3 MiB on 2 MiB
        for step in range(100):
            autolog.log_metric("loss", step, step=step)
        with pytest.raises(TrackingWriteError, match=r"artifact 'model/model\.bin'"):
            autolog.end_run()  # the run's end is written; the model is kept for retry
        with autolog.start_run() as later:
            for step in range(100):
                autolog.log_metric("loss", step, step=step)
    assert any("could not write" in str(w.message) for w in caught)
    client = autolog.Client()
    assert client.get_run(big.info.run_id).info.status == "FINISHED"
    assert len(client.get_metric_history(big.info.run_id, "loss")) == 100
    assert len(client.get_metric_history(later.info.run_id, "loss")) == 100
    # the half-written model was removed: the disk is not left full
    leftovers = [p for p in (small_disk / "mlruns").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in leftovers) < 2**20


def test_a_line_cut_short_by_the_full_disk_is_taken_back_and_written_once(small_disk, writer):
    from autolog.tracking.entities import Metric
    from autolog.tracking.stores.file import FileStore
    from autolog.tracking.writer import METRIC

    store = FileStore(small_disk / "mlruns")
    run_id = store.create_run("0", "alice", 0).info.run_id
    store.log_batch(run_id, metrics=[Metric("loss", 0.0, 0, 0)])  # the log's last page in use
    filler = fill(small_disk)
    for step in range(1, 2001):  # one log_batch, one line of ~60 kB: only a part fits
        writer.append((METRIC, store, run_id, Metric("loss", step / 3, step, step)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrackingWriteError, match="kept for retry"):
            writer.flush()
    log = small_disk / "mlruns" / "0" / run_id / "log.jsonl"
    assert log.read_bytes().endswith(b"\n")  # no torn line left behind
    filler.unlink()
    writer.flush()
    assert [m.step for m in store.get_metric_history(run_id, "loss")] == list(range(2001))
    assert all(json.loads(line) for line in log.read_bytes().splitlines())  # every line whole
    store.close()
