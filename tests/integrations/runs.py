"""Reading back what an autologged training call stored: shared by every
integration's tests."""

from __future__ import annotations

import json
from typing import Any

import autolog


def only_run() -> Any:
    """The one run of the default experiment (fails when there are more or none)."""
    runs = autolog.Client().search_runs(["0"])
    assert len(runs) == 1, f"expected one run, got {len(runs)}"
    return runs[0]


def framework_metrics(run: Any) -> dict[str, float]:
    """The run's latest metrics without autolog's own (``autolog.overhead_ms``, ...)."""
    return {k: v for k, v in run.data.metrics.items() if not k.startswith("autolog.")}


def history(run: Any, key: str) -> list[tuple[int, float]]:
    """(step, value) of every point of metric ``key`` of a run (or run id)."""
    run_id = run if isinstance(run, str) else run.info.run_id
    return [(m.step, m.value) for m in autolog.Client().get_metric_history(run_id, key)]


def artifact_names(run: Any, path: str | None = None) -> set[str]:
    return {f.path for f in autolog.Client().list_artifacts(run.info.run_id, path)}


def artifact_json(run: Any, path: str) -> Any:
    with open(autolog.Client().download_artifacts(run.info.run_id, path)) as file:
        return json.load(file)
