"""The side-by-side benchmark's machinery: no peer gives no rows; the worker's
autolog arm measures real runs in a fresh store and reports what it logged.

No timing is asserted (rule: performance lives in ``benchmarks/``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _worker(tmp_path: Path, group: str, cases: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCH_DIR / "peer_worker.py"), "autolog", group, json.dumps(cases)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_without_a_peer_no_rows_and_a_note(monkeypatch, capsys):
    if importlib.util.find_spec("mlflow") is not None:
        pytest.fail("mlflow must not be installed in the project environment")
    harness = _load("run").Harness([])
    monkeypatch.delenv("AUTOLOG_BENCH_MLFLOW_PYTHON", raising=False)
    _load("bench_peers").run(harness)
    assert harness.rows == []
    assert "AUTOLOG_BENCH_MLFLOW_PYTHON" in capsys.readouterr().err


def test_worker_sklearn_models_off_logs_one_run_per_autologged_call(tmp_path):
    result = _worker(tmp_path, "sklearn", ["models_off"])["cases"]["models_off"]
    assert "error" not in result, result
    assert len(result["bare"]) >= len(result["tool"]) >= 1
    logged = result["logged"]
    assert logged["runs"] == logged["calls"] == len(result["tool"]) + 1  # + the warm-up
    assert logged["params"] > 0 and logged["metrics"] > 0
    assert "model" not in logged["artifacts"]
    assert (tmp_path / "mlruns").is_dir()  # the default store, in the worker's fresh cwd


def test_worker_log_metric_uses_the_default_store_of_its_cwd(tmp_path):
    result = _worker(tmp_path, "log_metric", ["default"])["cases"]["default"]
    assert result["uri"] == "file://./mlruns"
    assert len(result["tool"]) == 5 and result["calls"] >= 20


def test_a_broken_group_is_reported_in_the_json_not_a_crash(tmp_path):
    broken = _worker(tmp_path, "sklearn", ["no_such_case"])
    assert broken["error"].startswith("KeyError"), broken


def test_a_failed_autolog_arm_becomes_a_row_note_not_a_crash():
    peers = _load("bench_peers")
    harness = _load("run").Harness([])
    group = peers.FIT_GROUPS[0]
    case = group.cases[0]
    mlflow_result = {"bare": [3.0, 5.0], "tool": [2000.0, 2100.0], "drain": [0.3]}
    pooled = {
        "autolog": {case.key: {"error": "ImportError: no module named x"}},
        "mlflow": {case.key: mlflow_result},
    }
    peers._fit_rows(harness, group, pooled)
    ours, theirs = harness.rows
    assert ours.benchmark == f"{case.title} [autolog]"
    assert ours.notes == "autolog integration unavailable: ImportError: no module named x"
    assert theirs.median == 2050.0 and "+2,046 ms" in theirs.peer
