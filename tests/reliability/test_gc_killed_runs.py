"""``autolog gc`` ends the runs a killed process left RUNNING KILLED (issue 17,
item 3), on every store, and ``autolog runs list`` shows them so; a live
process's runs and runs of other hosts are left alone."""

from __future__ import annotations

import signal
import subprocess

import autolog
from autolog.cli import main as cli
from autolog.tracking.entities import RunStatus
from autolog.tracking.gc import PROCESS_TAG
from tests.reliability.test_concurrency import finished, python
from tests.reliability.test_concurrency import store as store

KILLED_MID_RUN = """
import os, signal
with autolog.start_run(run_name="doomed") as run:
    print(run.info.run_id, flush=True)
    for step in range(100):
        autolog.log_metric("loss", 1.0 / (step + 1), step=step)
    autolog.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_gc_ends_runs_of_killed_processes_killed(store, capsys):
    _kind, uri, _experiment = store
    proc = python(KILLED_MID_RUN, store, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    code, out, err = finished(proc)
    assert code == -signal.SIGKILL, err[-2000:]
    dead = out.split()[0]
    client = autolog.Client()
    live = client.create_run(client.get_experiment_by_name(store[2]).experiment_id)
    elsewhere = client.create_run(
        live.info.experiment_id, tags={PROCESS_TAG: "another-host:4242:1"}
    )
    autolog.flush()
    assert client.get_run(dead).info.status == RunStatus.RUNNING

    capsys.readouterr()
    assert cli(["gc", "--dry-run", "--tracking-uri", uri]) == 0
    said = capsys.readouterr().out
    assert dead in said and "1 run(s) to end KILLED" in said
    assert client.get_run(dead).info.status == RunStatus.RUNNING  # dry run: unchanged

    assert cli(["gc", "--tracking-uri", uri]) == 0
    said = capsys.readouterr().out
    assert "1 run(s) ended KILLED" in said
    stored = client.get_run(dead)
    assert stored.info.status == RunStatus.KILLED and stored.info.end_time is not None
    assert len(client.get_metric_history(dead, "loss")) == 100  # nothing of it is lost
    assert client.get_run(live.info.run_id).info.status == RunStatus.RUNNING  # alive: us
    assert client.get_run(elsewhere.info.run_id).info.status == RunStatus.RUNNING

    assert cli(["runs", "list", "--tracking-uri", uri, "--experiment", store[2]]) == 0
    table = capsys.readouterr().out
    assert any(dead in line and "KILLED" in line for line in table.splitlines())
    assert cli(["gc", "--tracking-uri", uri]) == 0  # again: nothing left to do
    assert "0 run(s) ended KILLED" in capsys.readouterr().out
