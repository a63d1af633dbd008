"""What the tracking API calls without importing it: the exit phases (the runs
end before a store finishes) and the run hooks provenance is pushed into."""

from __future__ import annotations

import json
import subprocess
import sys

from autolog.tracking import at_exit


def test_exit_hooks_run_the_runs_phase_before_the_stores_phase_and_survive_a_failing_hook(
    monkeypatch, capsys
):
    monkeypatch.setattr(at_exit, "_hooks", {phase: [] for phase in at_exit.PHASES})
    done = []

    def broken() -> None:
        raise OSError("disk gone")

    def store_a() -> None:
        done.append("store a")

    at_exit.at_exit("stores", store_a)  # registered first, still runs after the runs
    at_exit.at_exit("stores", broken)
    at_exit.at_exit("runs", lambda: done.append("runs"))
    at_exit.at_exit("stores", lambda: done.append("store b"))
    at_exit.cancel(store_a)
    at_exit.at_exit("stores", store_a)
    at_exit._run()
    assert done == ["runs", "store b", "store a"]
    assert "disk gone" in capsys.readouterr().err


def test_a_run_started_through_the_tracking_api_alone_gets_provenance_loaded_at_that_run(
    tmp_path,
):
    script = f"""
import json, sys
from autolog.tracking import fluent
before = "autolog.provenance" in sys.modules
fluent.set_tracking_uri({str(tmp_path / "mlruns")!r})
with fluent.start_run() as run:
    pass
tags = fluent.get_run(run.info.run_id).data.tags
print(json.dumps([before, "autolog.provenance" in sys.modules, sorted(tags)]))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    before, after, tags = json.loads(out.stdout.strip().splitlines()[-1])
    assert (before, after) == (False, True)
    assert {"autolog.source.command", "mlflow.user", "mlflow.source.name"} <= set(tags)
