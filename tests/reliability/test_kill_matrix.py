"""The SIGKILL column of the fault matrix: each integration's fit is killed
mid-fit, against each store (the processes: tests/reliability/kill_worker.py).

Each cell asserts: everything flushed before the kill reads back; no run the
killed process left is shown as complete unless it is (a grid search's child
runs that ended before the kill are); ``autolog gc`` ends the rest KILLED
(and ``autolog runs list`` shows them so); the store takes a new run.

The workers run two at a time (CI's two cores), all of them before the first
cell is checked, in one module-scoped fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import autolog
from autolog.cli import main as cli
from tests.reliability.cells import RESULTS, STORES, CellResult
from tests.reliability.ledger import Ledger, complete_runs_are_complete
from tests.reliability.workloads import WORKLOADS

REPO = Path(__file__).resolve().parents[2]
PARALLEL = 2
WORKER_TIMEOUT_S = 300


def _uri(store: str, where: Path, env: dict) -> str:
    if store == "file":
        return (where / "mlruns").as_uri()
    if store == "sqlite":
        return f"sqlite:///{where / 'runs.db'}"
    if store == "postgresql":
        return env["postgresql"]
    return env["rest"].url


@pytest.fixture(scope="module")
def killed(reliability_env, tmp_path_factory, request):
    """Run the workers of the selected cells; returns {(workload, store): (cell, outcome)}."""
    from tests.rest.servers import autolog_server
    from tests.tracking.sql_stores import _admin, postgres_schema_uri, require_postgres

    root = tmp_path_factory.mktemp("killed")
    if "postgresql" not in reliability_env:
        require_postgres()
        schema = f"autolog_rel_{uuid.uuid4().hex[:12]}"
        _admin(f'CREATE SCHEMA "{schema}"')
        reliability_env["postgresql_schema"] = schema
        reliability_env["postgresql"] = postgres_schema_uri(schema)
    if "rest" not in reliability_env:
        reliability_env["rest"] = autolog_server(root).start()
    cells: dict[tuple[str, str], dict] = {}
    pending = []
    selected = {
        item.callspec.params["workload"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_killed_mid_fit"
    }
    for workload in [w for w in WORKLOADS if w in selected]:
        plan = []
        for store in STORES:
            where = root / workload / store
            where.mkdir(parents=True)
            cell = {
                "store": store,
                "uri": _uri(store, where, reliability_env),
                "experiment": f"killed-{workload}-{uuid.uuid4().hex[:8]}",
                "artifact_root": str(where / "artifacts"),
                "spool_dir": str(where / "spool"),
                "ledger": str(where / "ledger.json"),
            }
            cells[workload, store] = cell
            plan.append(cell)
        plan_file = root / workload / "cells.json"
        plan_file.write_text(json.dumps(plan))
        pending.append((workload, plan_file))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("AUTOLOG_TESTING", None)  # the user's view
    outcomes: dict[tuple[str, str], dict] = {}
    running: list[tuple[str, subprocess.Popen, float]] = []
    while pending or running:
        while pending and len(running) < PARALLEL:
            workload, plan_file = pending.pop(0)
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.kill_worker", workload, str(plan_file)],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            running.append((workload, proc, time.monotonic()))
            print(f"worker {workload} started", file=sys.stderr)
        time.sleep(0.05)
        for entry in list(running):
            workload, proc, started = entry
            if proc.poll() is None and time.monotonic() - started < WORKER_TIMEOUT_S:
                continue
            if proc.poll() is None:
                proc.kill()
            out, err = proc.communicate()
            running.remove(entry)
            print(f"worker {workload}: {time.monotonic() - started:.1f} s", file=sys.stderr)
            for line in out.splitlines():
                if line.startswith("{"):
                    report = json.loads(line)
                    outcomes[workload, report["store"]] = {**report, "stderr": err[-3000:]}
            for store in STORES:
                outcomes.setdefault(
                    (workload, store), {"killed": False, "stderr": err[-3000:], "status": None}
                )
    # what each cell's killed process left, read before any cell's `autolog gc`
    # (gc cleans the whole store, and the PostgreSQL and REST stores are shared)
    for key, cell in cells.items():
        if outcomes[key]["killed"]:
            ledger = _ledger(cell["ledger"])
            reader = _reader(cell)
            outcomes[key]["statuses"] = {
                run_id: reader.get_run(run_id).info.status for run_id in ledger.runs
            }
    return {key: (cells[key], outcomes[key]) for key in cells}


def _reader(cell: dict):
    from autolog.tracking.stores import store_for_uri

    os.environ["AUTOLOG_SPOOL_DIR"] = cell["spool_dir"] + "-reader"
    return store_for_uri(cell["uri"])


def _ledger(path: str) -> Ledger:
    data = json.loads(Path(path).read_text())
    ledger = Ledger()
    ledger.runs = data["runs"]
    for name in ("metrics", "params", "tags"):
        target = getattr(ledger, name)
        for run_id, value in data[name].items():
            target[run_id] = [tuple(v) for v in value] if name == "metrics" else value
    for run_id in ledger.runs:
        ledger.tags.setdefault(run_id, {})
    return ledger


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_killed_mid_fit(workload, store, killed, monkeypatch, capsys):
    cell, outcome = killed[workload, store]
    result = CellResult(workload, store, "sigkill-mid-fit")
    RESULTS.append(result)
    assert outcome["killed"], f"the child did not die by SIGKILL: {outcome}"
    monkeypatch.setenv("AUTOLOG_ARTIFACT_ROOT", cell["artifact_root"])
    monkeypatch.setenv("AUTOLOG_SPOOL_DIR", cell["spool_dir"] + "-reader")
    ledger = _ledger(cell["ledger"])
    autolog.set_tracking_uri(cell["uri"])
    store_object = autolog.Client().store
    result.written = ledger.points
    assert ledger.points, "nothing was accepted before the kill: the cell tests nothing"
    result.read_back, missing = ledger.missing(store_object)
    assert not missing, missing[:10]
    assert not complete_runs_are_complete(ledger, store_object)
    left_running = [r for r, status in outcome["statuses"].items() if status == "RUNNING"]
    assert left_running, f"the killed fit's run should be left RUNNING: {outcome['statuses']}"

    capsys.readouterr()
    assert cli(["gc", "--tracking-uri", cell["uri"]]) == 0
    said = capsys.readouterr().out
    for run_id in left_running:
        assert store_object.get_run(run_id).info.status == "KILLED"
        assert run_id in said or store in ("postgresql", "rest")  # shared: maybe an earlier gc
    assert cli(["runs", "list", "--tracking-uri", cell["uri"], "--json"]) == 0
    listed = {r["run_id"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert all(listed[r] == "KILLED" for r in left_running), listed

    with autolog.start_run(run_name="after-the-kill") as run:
        autolog.log_metric("after", 1.0)
    assert autolog.get_run(run.info.run_id).data.metrics == {"after": 1.0}
    result.passed = True
