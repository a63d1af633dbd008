"""The reliability matrix (issue 17) as rows: cells run and passed, points
written and read back, and how long the matrix takes.

``benchmarks/run.py reliability`` runs ``tests/reliability/test_matrix.py``
and ``test_kill_matrix.py`` (every fault x integration x store it applies to)
in a pytest subprocess that writes its totals as JSON
(``AUTOLOG_RELIABILITY_REPORT``), and turns them into rows. ``--quick`` style
runs: ``AUTOLOG_RELIABILITY_SELECT`` is passed to pytest's ``-k`` (e.g.
``toyml`` for the cells of the example plugin only).

Goals: every cell passes; no point lost; the matrix within 10 minutes on CI's
two cores (the wall time here is inflated by whatever else loads the machine:
the row's notes give the load average).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = ["tests/reliability/test_matrix.py", "tests/reliability/test_kill_matrix.py"]


def run(h) -> None:
    if not h.wanted("matrix"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "report.json")
        env = {**os.environ, "AUTOLOG_RELIABILITY_REPORT": str(report)}
        select = os.environ.get("AUTOLOG_RELIABILITY_SELECT")
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FILES]
        if select:
            argv += ["-k", select]
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if not report.exists():
            print(done.stdout[-5000:], done.stderr[-5000:], file=sys.stderr)
            raise RuntimeError(f"the matrix wrote no report (pytest exit {done.returncode})")
        totals = json.loads(report.read_text())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    total = totals["total"]
    failed = ", ".join(totals["failed"][:5])
    h.row(
        "matrix: cells passed",
        total["passed"],
        "cells",
        goal=f">= {total['run']}",
        notes=f"of {total['run']} run" + (f"; failed: {failed}" if failed else ""),
    )
    h.row(
        "matrix: points lost",
        total["written"] - total["read_back"],
        "points",
        goal="<= 0",
        notes=f"{total['written']} written, {total['read_back']} read back",
    )
    for fault, row in totals["faults"].items():
        h.row(
            f"matrix: {fault}",
            row["passed"],
            "cells",
            goal=f">= {row['run']}",
            notes=f"{row['written']} points written, {row['read_back']} read back",
        )
    h.row(
        "matrix: wall time",
        seconds,
        "s",
        goal="<= 600 s",
        notes=f"load average {load:.1f} on {os.cpu_count()} cores while it ran",
    )
