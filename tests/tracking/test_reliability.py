"""Reliability of the tracking core on the default file store (issue 2, Done when):

- a process killed with SIGKILL while logging leaves everything it flushed
  readable, and the store usable;
- 4 processes x 200 runs into one store give 800 complete runs;
- an unwritable store gives a warning and a TrackingWriteError at flush(),
  without hanging and without losing what was logged.

The child processes are real interpreters running the public API.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import autolog
from autolog.errors import TrackingWriteError
from autolog.tracking.entities import RunStatus

CHILD_TIMEOUT_S = 120


def child(code: str, uri: str, **popen) -> subprocess.Popen:
    """A fresh interpreter running ``code`` against the store at ``uri``."""
    env = {**os.environ, "AUTOLOG_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, text=True, **popen
    )


KEEP_LOGGING = """
    import autolog
    with autolog.start_run(run_name="doomed") as run:
        print(run.info.run_id, flush=True)
        autolog.log_params({"lr": "0.1", "depth": 3})
        step = 0
        while True:  # until killed
            for _ in range(500):
                autolog.log_metric("loss", 1.0 / (step + 1), step=step)
                step += 1
            autolog.flush()
            print(step, flush=True)  # everything below `step` is on disk
"""


def test_sigkill_keeps_everything_flushed_and_store_usable(tracking_uri):
    proc = child(KEEP_LOGGING, tracking_uri, stdout=subprocess.PIPE)
    try:
        run_id = proc.stdout.readline().strip()
        flushed = 0
        for _ in range(6):  # let it flush a few times, then kill it mid-stream
            flushed = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=CHILD_TIMEOUT_S)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert flushed >= 3000

    client = autolog.Client()
    run = client.get_run(run_id)
    assert run.info.status == RunStatus.RUNNING  # nobody ended it
    assert run.data.params == {"lr": "0.1", "depth": "3"}
    history = client.get_metric_history(run_id, "loss")
    steps = [point.step for point in history]
    assert len(steps) >= flushed
    assert steps == list(range(len(steps)))  # a prefix, no holes, no duplicates
    assert run.data.metrics["loss"] == history[-1].value

    # the store takes new runs, and the killed run can still be ended
    with autolog.start_run(run_name="after") as after:
        autolog.log_metric("ok", 1.0)
    client.set_terminated(run_id, RunStatus.KILLED)
    assert client.get_run(after.info.run_id).data.metrics == {"ok": 1.0}
    assert client.get_run(run_id).info.status == RunStatus.KILLED
    assert len(client.get_metric_history(run_id, "loss")) == len(steps)


MANY_RUNS = """
    import sys
    import autolog
    worker = int(sys.argv[1])
    autolog.set_experiment("shared")
    for i in range(200):
        with autolog.start_run(run_name=f"w{worker}-{i}"):
            autolog.log_params({"worker": worker, "i": i})
            autolog.set_tag("team", "a")
            for step in range(3):
                autolog.log_metric("m", float(i), step=step)
"""


def test_four_processes_two_hundred_runs_each(tracking_uri):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(MANY_RUNS), str(worker)],
            env={**os.environ, "AUTOLOG_TRACKING_URI": tracking_uri},
        )
        for worker in range(4)
    ]
    for proc in procs:
        assert proc.wait(timeout=CHILD_TIMEOUT_S * 2) == 0

    client = autolog.Client()
    experiments = [e for e in client.search_experiments() if e.name == "shared"]
    assert len(experiments) == 1  # four processes raced to create it
    runs, token = [], None
    while True:
        page = client.search_runs([experiments[0].experiment_id], max_results=300, page_token=token)
        runs += page
        token = page.token
        if token is None:
            break
    assert len(runs) == 800
    names = {run.info.run_name for run in runs}
    assert names == {f"w{w}-{i}" for w in range(4) for i in range(200)}
    for run in runs:
        worker, i = run.info.run_name[1:].split("-")
        assert run.info.status == RunStatus.FINISHED
        assert run.data.params == {"worker": worker, "i": i}
        assert run.data.tags["team"] == "a"
        assert run.data.metrics == {"m": float(i)}
    sample = runs[0]
    assert [p.step for p in client.get_metric_history(sample.info.run_id, "m")] == [0, 1, 2]


def test_store_unwritable_from_the_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # not even root can create a folder below a regular file
    autolog.set_tracking_uri((blocker / "mlruns").as_uri())
    started = time.monotonic()
    run = autolog.start_run()
    autolog.log_metric("m", 1.0)
    warns = pytest.warns(RuntimeWarning, match="could not write")
    with warns, pytest.raises(TrackingWriteError) as excinfo:
        autolog.flush()
    assert "mlruns" in str(excinfo.value)
    with pytest.raises(TrackingWriteError):  # kept, not dropped: raised again
        autolog.flush()
    assert time.monotonic() - started < 30  # no hang
    # once the store is writable again, what was logged arrives
    blocker.unlink()
    autolog.end_run()
    assert autolog.Client().get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_store_becomes_unwritable_mid_run(tracking_uri):
    with autolog.start_run() as run:
        for step in range(10):
            autolog.log_metric("m", float(step), step=step)
        autolog.flush()
        run_dir = Path(autolog.Client().get_run(run.info.run_id).info.artifact_uri[7:]).parent
        log = run_dir / "log.jsonl"
        # a folder where the log was: open() for append fails, for root too
        shutil.move(log, run_dir / "log.saved")
        log.mkdir()
        for step in range(10, 20):
            autolog.log_metric("m", float(step), step=step)
        warns = pytest.warns(RuntimeWarning, match="could not write")
        with warns, pytest.raises(TrackingWriteError):
            autolog.flush()
        log.rmdir()
        shutil.move(run_dir / "log.saved", log)
        autolog.flush()  # the kept points are written now
    history = autolog.Client().get_metric_history(run.info.run_id, "m")
    assert [p.step for p in history] == list(range(20))
