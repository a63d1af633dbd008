"""What a run's provenance capture costs (issue 18 goals).

Rows:
- ``first run of a process``: ``start_run`` on the training thread in a fresh
  interpreter, default captures vs every capture off (interleaved subprocess
  runs; the difference is what the first run pays: git files, /proc, argv);
- ``first run, writer thread``: the once-per-process work done in the
  background: ``git status`` + ``git diff`` and ``requirements.txt`` from
  ``importlib.metadata`` (training never waits for it);
- ``per run after the first``: ``start_run`` + ``end_run(flush=False)``,
  default captures vs all off, in one process (goal <= 1 ms added; the
  background artifact writes are flushed between rounds, untimed);
- ``system metrics sampler``: CPU time per sample, and the CPU share of one
  core that it takes at the default 10 s interval;
- ``dataset record``: ``record_dataset``'s digest of a small array (whole
  data) and of a large one (sampled rows);
- ``per fit: dataset records``: what the patch manager does for each
  autologged fit on the training thread (the caller's variable names, the
  digests of X and y, the tags queued), for arrays and a data frame, and an
  autologged scikit-learn fit with ``log_datasets`` on vs off.

``python benchmarks/run.py provenance`` runs it all (about a minute);
``python benchmarks/run.py "per fit"`` only the dataset rows.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import autolog
from autolog import provenance

REPO = Path(__file__).resolve().parent.parent
OFF = {
    "git": False,
    "git_diff": False,
    "command": False,
    "machine": False,
    "requirements": False,
    "env_vars": (),
    "datasets": False,
    "system_metrics": False,
}
DEFAULTS = {name: spec[0] for name, spec in provenance.CAPTURES.items()}

_FIRST_RUN = """
import json, sys, time
import autolog
from autolog import provenance
from autolog.tracking.tracking_uri import current_store
if sys.argv[1] == "off":
    provenance.configure(**json.loads(sys.argv[2]))
autolog.set_tracking_uri(sys.argv[3])
store = current_store()
store.get_experiment("0")  # the store's own first-use cost, outside the timing
t0 = time.perf_counter()
run = autolog.start_run()
t1 = time.perf_counter()
autolog.end_run()
print(json.dumps({"ms": (t1 - t0) * 1e3}))
"""

_BACKGROUND = """
import json, sys, time
from pathlib import Path
from autolog.provenance import environment, git
t0 = time.perf_counter()
found = git.find_git_dir(Path(sys.argv[1]))
tree = git.work_tree_state(found[0], True, 1_000_000)
t1 = time.perf_counter()
text = environment.requirements_text()
t2 = time.perf_counter()
print(json.dumps({"git": (t1 - t0) * 1e3, "requirements": (t2 - t1) * 1e3,
                  "dists": text.count("\\n"), "dirty": tree.dirty}))
"""


def _python(code: str, *args: str, cwd: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _first_run_rows(h, tmp: Path) -> None:
    name = "first run of a process: start_run (training thread)"
    if h.wanted(name):
        on, off = [], []
        for i in range(7):
            uri = (tmp / f"first{i}").as_uri()
            off.append(_python(_FIRST_RUN, "off", json.dumps(OFF), uri + "-off", cwd=REPO)["ms"])
            on.append(_python(_FIRST_RUN, "on", "{}", uri + "-on", cwd=REPO)["ms"])
        b, o = statistics.median(off), statistics.median(on)
        h.row(
            name,
            o,
            "ms",
            goal="paid once per process",
            peer=f"captures off {b:.2f} ms; +{o - b:.2f} ms",
            notes="median of 7 fresh interpreters per arm, in this git checkout",
        )
    name = "first run of a process: writer thread (git status+diff, requirements)"
    if h.wanted(name):
        found = [_python(_BACKGROUND, str(REPO), cwd=REPO) for _ in range(5)]
        git_ms = statistics.median(f["git"] for f in found)
        req_ms = statistics.median(f["requirements"] for f in found)
        h.row(
            name,
            git_ms + req_ms,
            "ms",
            goal="off the training thread",
            notes=f"git {git_ms:.1f} ms + requirements {req_ms:.1f} ms "
            f"({found[0]['dists']} distributions); once per process",
        )


def _per_run_rows(h, tmp: Path) -> None:
    autolog.set_tracking_uri((tmp / "runs").as_uri())

    def open_close() -> None:
        autolog.start_run()
        autolog.end_run(flush=False)

    def captures(values: dict) -> None:
        autolog.flush()  # the previous round's background writes, untimed
        provenance.configure(**values)

    for values in (OFF, DEFAULTS):  # warm both: caches filled, first runs paid
        captures(values)
        open_close()
    h.compare(
        "per run after the first: start_run + end_run(flush=False)",
        open_close,
        open_close,
        repeat=9,
        number=100,
        unit="us",
        goal="<= +1000 us (1 ms)",
        base_label="captures off",
        base_setup=lambda: captures(OFF),
        setup=lambda: captures(DEFAULTS),
        notes="training thread; default captures (git, command, machine, requirements, diff)",
    )
    autolog.flush()


def _sampler_rows(h, tmp: Path) -> None:
    name = "system metrics sampler: CPU per sample"
    if not h.wanted(name) and not h.wanted("system metrics sampler: CPU share"):
        return
    from autolog.provenance import system_metrics

    autolog.set_tracking_uri((tmp / "sampler").as_uri())
    provenance.configure(**DEFAULTS)
    interval, seconds = 0.02, 2.0

    def cpu() -> float:
        times = os.times()
        return times.user + times.system

    shares = []
    for _ in range(3):
        with autolog.start_run():
            c0 = cpu()
            time.sleep(seconds)
            idle = cpu() - c0
        provenance.configure(system_metrics=True, system_metrics_interval=interval)
        with autolog.start_run() as run:
            c0 = cpu()
            time.sleep(seconds)
            busy = cpu() - c0
        provenance.configure(system_metrics=False)
        autolog.flush()
        samples = len(autolog.Client().get_metric_history(run.info.run_id, "system/cpu_percent"))
        shares.append(max(busy - idle, 0.0) / max(samples, 1))
    assert not system_metrics.running()
    per_sample = statistics.median(shares)
    h.row(
        name,
        per_sample * 1e6,
        "us",
        notes=f"CPU time of this process per sample incl. the writer's share; "
        f"sampled every {interval} s for {seconds} s, minus an idle run",
    )
    h.row(
        "system metrics sampler: CPU share at the default 10 s interval",
        100 * per_sample / DEFAULTS["system_metrics_interval"],
        "%",
        goal="<= 0.1 % of one core",
        notes="per-sample CPU / interval",
    )


def _dataset_rows(h) -> None:
    import numpy as np

    from autolog.provenance.datasets import dataset_record

    small = np.random.default_rng(0).random((1_000, 8))  # 64 KB: digested whole
    large = np.random.default_rng(0).random((1_000_000, 20))  # 160 MB: a 256-row sample
    h.time(
        "dataset record: 1,000 x 8 float64 (whole data)",
        lambda: dataset_record(small, "X"),
        repeat=7,
        number=200,
        unit="us",
        goal="<= 1000 us (rule 8: a few ms per fit at most)",
    )
    h.time(
        "dataset record: 1,000,000 x 20 float64 (sampled rows)",
        lambda: dataset_record(large, "X"),
        repeat=7,
        number=200,
        unit="us",
        goal="<= 1000 us (rule 8: a few ms per fit at most)",
        notes="the same cost for any number of rows",
    )


def _fit_dataset_rows(h, tmp: Path) -> None:
    import types

    import numpy as np
    import pandas as pd

    from autolog.provenance import datasets

    rng = np.random.default_rng(0)
    X_train = rng.random((100_000, 20))  # 16 MB: a 256-row sample
    y_train = rng.integers(0, 2, 100_000)  # 800 KB: sampled too
    frame = pd.DataFrame(X_train[:, :10], columns=[f"f{i}" for i in range(10)])
    frame["city"] = pd.Series(rng.choice(["a", "b", "c"], 100_000), dtype="category")
    frame["label"] = rng.choice(["yes", "no"], 100_000)  # object column
    autolog.set_tracking_uri((tmp / "datasets").as_uri())
    provenance.configure(**DEFAULTS)
    declared = (("X", "y"), "train")

    def per_fit(X: object, y: object) -> None:
        with autolog.start_run() as run:
            call = types.SimpleNamespace(run_id=run.info.run_id, argument={"X": X, "y": y}.get)

            def record() -> None:
                datasets._records.clear()  # as a new run's first fit: nothing deduplicated
                datasets.record_call_datasets(call, declared)

            return record

    for label, X, y in (
        ("X 100,000 x 20 float64 + y int64", X_train, y_train),
        ("a 100,000 x 12 data frame (float, category, object) + y", frame, y_train),
    ):
        record = per_fit(X, y)
        h.time(
            f"per fit: dataset records, {label}",
            record,
            repeat=7,
            number=100,
            unit="us",
            goal="<= 1000 us",
            notes="training thread: variable names, 2 digests on samples, 4 tags queued",
        )
    autolog.flush()

    from sklearn.linear_model import LinearRegression

    X_fit, y_fit = rng.random((2_000, 5)), rng.random(2_000)
    autolog.autolog("sklearn", log_models=False)
    try:
        h.compare(
            "per fit: autologged LinearRegression().fit(X 2,000 x 5), log_datasets on",
            lambda: LinearRegression().fit(X_fit, y_fit),
            lambda: LinearRegression().fit(X_fit, y_fit),
            repeat=9,
            number=20,
            unit="us",
            goal="<= +1000 us (1 ms)",
            base_label="log_datasets=False",
            base_setup=lambda: autolog.autolog("sklearn", log_models=False, log_datasets=False),
            setup=lambda: autolog.autolog("sklearn", log_models=False),
            notes="end to end: a run per fit; the difference is the dataset records",
        )
    finally:
        autolog.autolog(disable=True)
        autolog.flush()


def run(h) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        _first_run_rows(h, tmp)
        try:
            _per_run_rows(h, tmp)
            _sampler_rows(h, tmp)
            _fit_dataset_rows(h, tmp)
        finally:
            autolog.flush()
            from autolog.tracking import fluent

            fluent._reset_for_tests()
            provenance._reset_for_tests()
    _dataset_rows(h)
