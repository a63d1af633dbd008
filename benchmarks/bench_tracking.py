"""Caller-thread cost of the tracking API and of ``import autolog`` (issue 2 goals).

Rows:
- ``import autolog``: a fresh interpreter that imports it vs one that runs
  ``pass`` (median of interleaved subprocess starts; goal <= +30 ms), and
  ``import mlflow`` the same way when mlflow is installed;
- ``log_metric`` on the caller's thread with the default writer running
  (median of rounds of 10,000 calls; goal <= 5 us; MLflow's SQLite store:
  about 2.2 ms per call);
- ``start_run`` + ``end_run(flush=False)`` (what the patch manager does per
  fit; goal well under 100 us) and ``start_run`` + ``end_run()`` (which drains
  the writer, so it includes the store's create and update of the run).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import autolog


def _python(code: str):
    return lambda: subprocess.run([sys.executable, "-c", code], check=True)


def _import_rows(h) -> None:
    h.compare(
        "import autolog (added to interpreter start)",
        _python("pass"),
        _python("import autolog"),
        repeat=11,
        unit="ms",
        base_label="python -c pass",
        goal="<= +30 ms",
    )
    if importlib.util.find_spec("mlflow") is not None:
        h.compare(
            "import mlflow (peer)",
            _python("pass"),
            _python("import mlflow"),
            repeat=5,
            unit="ms",
            base_label="python -c pass",
        )


def _caller_rows(h, root: Path) -> None:
    autolog.set_tracking_uri(root.as_uri())
    autolog.start_run()  # warm: default experiment read, writer started, caches filled
    autolog.log_metric("warm", 1.0)
    autolog.end_run()

    with autolog.start_run():
        log_metric = autolog.log_metric
        h.time(
            "log_metric (caller thread, default writer)",
            lambda: log_metric("loss", 0.5, step=3),
            repeat=10,
            number=10_000,
            unit="us",
            goal="<= 5 us",
            peer="mlflow 3 sqlite ~2,200 us",
            notes="median of 10 rounds of 10k calls; writer draining concurrently",
        )
        autolog.flush()

    def open_close_no_flush():
        autolog.start_run()
        autolog.end_run(flush=False)

    def open_close():
        autolog.start_run()
        autolog.end_run()

    h.time(
        "start_run + end_run(flush=False)",
        open_close_no_flush,
        repeat=7,
        number=200,
        unit="us",
        goal="well under 100 us",
        notes="the patch manager's per-fit cost",
    )
    autolog.flush()
    h.time(
        "start_run + end_run (drains the writer)",
        open_close,
        repeat=5,
        number=50,
        unit="us",
        notes="includes the file store writing the run",
    )


def run(h) -> None:
    _import_rows(h)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _caller_rows(h, Path(tmp))
        finally:
            autolog.flush()
            from autolog.tracking import fluent

            fluent._reset_for_tests()
