"""Side by side with the peer, MLflow 3.17: the same scenarios, in the same run.

MLflow is never installed in the project's environment (it would move pinned
packages), so the peer runs under its own interpreter, named by the environment
variable ``AUTOLOG_BENCH_MLFLOW_PYTHON`` (or this one, when ``mlflow`` imports
here). Without a peer, this file adds no rows and says so on stderr.

Each scenario group runs ``peer_worker.py`` in a fresh temporary directory
(so a fresh tracking store) under the project's interpreter with autolog and
under the peer's with MLflow, alternating the two for several rounds
(``AUTOLOG_BENCH_PEER_ROUNDS``, default 2; one for ``log_metric`` and SQLite,
which take many samples in-process) so machine noise hits both alike.
Each worker times bare training against the tool's autolog in-process,
interleaved, after one warm-up of each; samples of all rounds are pooled and
the rows show medians. Rows, one per scenario and tool (``[autolog]`` /
``[mlflow]``), with the scenarios and goals of issues 2, 5-9:

- ``import autolog`` / ``import mlflow`` minus ``python -c pass`` (fresh
  interpreters, interleaved, median of 7);
- ``log_metric`` per call on the caller's thread: our default writer (file
  store) vs MLflow's default store (SQLite in 3.17) and its file store
  (opt-in in 3.17: ``MLFLOW_ALLOW_FILE_STORE=true``);
- scikit-learn LogisticRegression on 2,000 x 20 (defaults; ``log_models=False``)
  and GridSearchCV with 3 candidates x 3 folds;
- XGBoost / LightGBM native ``train``, 50 rounds on 2,000 x 20 with an eval set,
  2 threads in every arm;
- Keras: a 5-epoch fit of Dense(32)-Dense(1) on 2,000 x 20, batch 32, model
  saving included (``mlflow.keras.autolog``, MLflow's Keras 3 integration, which
  patches ``keras.Model.fit``; ``mlflow.tensorflow.autolog`` also writes
  TensorBoard summaries and fails without the ``tensorboard`` package), when
  TensorFlow imports under both interpreters;
- Lightning: 5 epochs of a one-layer module (``mlflow.pytorch.autolog``), when
  ``lightning`` imports under both;
- SQLite store: 1,000 runs of 3 params, 5 metrics and 2 tags created with
  ``log_batch`` (ms per run), and the 3-clause search over them.

Every worker runs with ``MLFLOW_DISABLE_TELEMETRY=true`` (no network here) and one
BLAS thread (``OPENBLAS_NUM_THREADS=1``), the same for both tools. The boosting
rows need a quiet machine: 2 OpenMP threads on 2 busy cores stall at random.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

PEER_ENV = "AUTOLOG_BENCH_MLFLOW_PYTHON"
ROUNDS_ENV = "AUTOLOG_BENCH_PEER_ROUNDS"
WORKER = Path(__file__).resolve().parent / "peer_worker.py"
WORKER_TIMEOUT_S = 420
TOOLS = ("autolog", "mlflow")
VERSIONS = ("mlflow", "scikit-learn", "xgboost", "lightgbm", "tensorflow", "tensorflow-cpu",
            "keras", "torch", "lightning", "numpy")  # fmt: skip


class Case(NamedTuple):
    """One scenario: ``key`` names it to the worker, ``title`` to the table."""

    key: str
    title: str
    goal: str = ""
    issue_peer: str = ""  # what the issue measured for MLflow on this machine kind
    notes: str = ""  # asymmetries between the two arms


class Group(NamedTuple):
    """Scenarios measured by one worker process per tool and round."""

    name: str
    cases: tuple[Case, ...]
    needs: tuple[str, ...] = ()  # top-level modules both interpreters must have


FIT_GROUPS = (
    Group("sklearn", (
        Case("defaults", "sklearn LogisticRegression 2,000x20 fit, defaults", "<= +10 ms",
             "issue 5: mlflow +2,090 ms", "mlflow also plots 3 PNGs + estimator.html"),
        Case("models_off", "sklearn LogisticRegression 2,000x20 fit, log_models=False",
             "<= +3 ms", "issue 5: mlflow +289 ms"),
        Case("grid", "sklearn GridSearchCV 3 candidates x 3 folds", "<= +30 ms",
             "issue 5: mlflow +4.7 s"),
    ), needs=("sklearn",)),
    Group("boosting", (
        Case("xgboost", "xgboost.train 50 rounds 2,000x20 + eval set, nthread=2",
             "<= +5% or +15 ms", "issue 6: mlflow ~70 ms bare, +2.2 s"),
        Case("lightgbm", "lightgbm.train 50 rounds 2,000x20 + eval set, num_threads=2",
             "<= +5% or +15 ms", "issue 6: mlflow ~70 ms bare, +2.2 s"),
    ), needs=("sklearn", "xgboost", "lightgbm")),
    Group("keras", (
        Case("fit", "keras 5-epoch fit Dense(32)-Dense(1) 2,000x20 batch 32, model saved",
             "<= +10%", "issue 7: mlflow ~0.65 s bare, +6.3 s",
             "mlflow.keras.autolog"),
    ), needs=("sklearn", "tensorflow", "keras")),
    Group("lightning", (
        Case("fit", "lightning 5-epoch fit, Linear(20,1) module 2,000x20 batch 100", "<= +5%"),
    ), needs=("sklearn", "torch", "lightning")),
)  # fmt: skip
LOG_METRIC = Group(
    "log_metric",
    (
        Case("default", "log_metric per call, caller thread", "<= 5 us",
             "issue 2: mlflow sqlite ~2.2 ms"),
        Case("file", "log_metric per call, caller thread, mlflow file store (opt-in)"),
    ),
)  # fmt: skip
#: runs of the SQLite rows; the worker reads the same variable
SQL_RUNS = int(os.environ.get("AUTOLOG_BENCH_PEER_SQL_RUNS", "1000"))
SQL = Group(
    "sql",
    (
        Case("create",
             f"sqlite {SQL_RUNS:,} runs create_run + log_batch (3 params, 5 metrics, 2 tags)",
             "10x faster than mlflow", "issue 9: mlflow 12.6 ms/run",
             "autolog's Client.create_run adds system tags (user, source, git); "
             "MlflowClient.create_run adds none"),
        Case("search", f"sqlite search 3-clause filter over {SQL_RUNS:,} runs",
             "10x faster than mlflow",
             "issue 9: mlflow 330 ms for 5,000 runs"),
    ),
)  # fmt: skip


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _added(value: float) -> str:
    """A difference with its sign: ``+2.1`` (noise can make it ``-0.4``)."""
    return ("+" if value >= 0 else "-") + _fmt(abs(value))


def _median(samples) -> float:
    return statistics.median(samples) if samples else float("nan")


def peer_python() -> str | None:
    """The interpreter that has MLflow: ``$AUTOLOG_BENCH_MLFLOW_PYTHON``, else this one
    when ``mlflow`` is importable here, else None."""
    configured = os.environ.get(PEER_ENV)
    if configured:
        return configured
    return sys.executable if importlib.util.find_spec("mlflow") is not None else None


def _worker_env() -> dict[str, str]:
    """Our environment minus tracking settings (each worker uses its tool's default
    store in a fresh directory), plus quiet, offline flags for both tools."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AUTOLOG_", "MLFLOW_")) or k.startswith("AUTOLOG_BENCH_")
    }
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", TF_CPP_MIN_LOG_LEVEL="2")
    # 2 BLAS threads on a busy 2-core machine make a 2 ms sklearn fit take 2 or 50 ms
    # at random (both venvs alike); the boosting scenarios set their threads themselves.
    # OpenMP keeps its default (spinning) wait policy, though with nthread=2 on a busy
    # 2-core machine a 45 ms train then takes 0.1-5 s at random: OMP_WAIT_POLICY=PASSIVE
    # steadies it but makes bare XGBoost 4x and LightGBM 10x slower, flattering ratios.
    env.update(OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _probe(python: str) -> dict:
    """Which packages ``python`` can import (without importing them) and their versions."""
    code = (
        "import importlib.metadata as m, importlib.util as u, json, sys\n"
        "def v(d):\n"
        "    try: return m.version(d)\n"
        "    except m.PackageNotFoundError: return None\n"
        "names = ['sklearn', 'xgboost', 'lightgbm', 'tensorflow', 'keras', 'torch', 'lightning',"
        " 'mlflow', 'autolog']\n"
        "print(json.dumps({'modules': {n: u.find_spec(n) is not None for n in names},"
        " 'versions': {d: v(d) for d in sys.argv[1:]}}))"
    )
    done = subprocess.run(
        [python, "-c", code, *VERSIONS], capture_output=True, text=True, env=_worker_env(),
        timeout=60, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def _run_worker(python: str, tool: str, group: Group, keys: list[str]) -> dict:
    """One worker process in a fresh directory; its JSON, or ``{"error": ...}``."""
    with tempfile.TemporaryDirectory(prefix=f"bench-peers-{tool}-") as cwd:
        try:
            done = subprocess.run(
                [python, str(WORKER), tool, group.name, json.dumps(keys)],
                cwd=cwd, env=_worker_env(), capture_output=True, text=True,
                timeout=WORKER_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"error": f"worker timed out after {WORKER_TIMEOUT_S} s"}
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": f"worker failed: {tail[0][:300]}"}


def _rows_of(case: Case) -> list[str]:
    return [f"{case.title} [{tool}]" for tool in TOOLS]


def _measure_group(h, pythons: dict[str, str], group: Group, rounds: int) -> dict:
    """Pooled results per tool and case over ``rounds`` alternating rounds."""
    keys = [c.key for c in group.cases if any(h.wanted(r) for r in _rows_of(c))]
    pooled: dict[str, dict[str, dict]] = {tool: {} for tool in TOOLS}
    if not keys:
        return pooled
    for index in range(rounds):
        order = TOOLS if index % 2 == 0 else TOOLS[::-1]
        for tool in order:
            result = _run_worker(pythons[tool], tool, group, keys)
            for key in keys:
                case = result.get("cases", {}).get(key) or {"error": result.get("error", "?")}
                into = pooled[tool].setdefault(key, {})
                for field, value in case.items():
                    if isinstance(value, list) and field != "artifacts":
                        into.setdefault(field, []).extend(value)
                    else:
                        into[field] = value  # the last round's description / error
    return pooled


def _logged(result: dict) -> str:
    """What the tool recorded for one call, in a few words."""
    logged = result.get("logged")
    if not logged:
        return ""
    params, metrics = logged.get("params", 0), logged.get("metrics", 0)
    text = f"{logged['runs']} run(s) for {logged['calls']} call(s); last: {params} params, "
    text += f"{metrics} metrics"
    if logged.get("children"):
        text += f", {logged['children']} child runs"
    if logged.get("artifacts"):
        text += f", artifacts {'/'.join(logged['artifacts'])}"
    if logged.get("models") is not None:
        text += f", {logged['models']} logged model(s)"
    return text


def _overhead(result: dict) -> tuple[float, float, float]:
    bare, tool = _median(result.get("bare", [])), _median(result.get("tool", []))
    return bare, tool, tool - bare


def _unavailable(tool: str, error: str) -> str:
    if tool == "autolog" and not error.startswith("autolog integration unavailable"):
        return f"autolog integration unavailable: {error}"
    return f"{tool} arm failed: {error}"


def _fit_rows(h, group: Group, pooled: dict) -> None:
    for case in group.cases:
        results = {tool: pooled[tool].get(case.key) for tool in TOOLS}
        if results["autolog"] is None:
            continue  # filtered out
        ours, theirs = _overhead(results["autolog"]), _overhead(results["mlflow"])
        summary = f"autolog {_added(ours[2])} ms / mlflow {_added(theirs[2])} ms"
        for tool, (bare, median, added) in (("autolog", ours), ("mlflow", theirs)):
            result = results[tool]
            counts = len(result.get("tool", [])), len(result.get("bare", []))
            samples = f"n={counts[0]} autologged, {counts[1]} bare"
            if "error" in result:
                notes, peer = _unavailable(tool, result["error"]), ""
            else:
                ratio = median / bare if bare else float("inf")
                peer = f"bare {_fmt(bare)} ms; x{ratio:.2f} ({_added(added)} ms)"
                drain = _median(result.get("drain", []))
                notes = "; ".join(filter(None, (
                    summary if tool == "autolog" else case.issue_peer,
                    f"{samples}, flush after {_fmt(drain)} ms",
                    _logged(result),
                    case.notes if tool == "mlflow" else "",
                )))  # fmt: skip
            h.row(f"{case.title} [{tool}]", median, "ms", case.goal if tool == "autolog" else "",
                  peer, notes)  # fmt: skip


def _import_rows(h, pythons: dict[str, str]) -> None:
    """``import autolog`` / ``import mlflow`` in fresh interpreters, each against its
    own ``python -c pass``; all four commands interleaved, median of 7."""
    titles = {tool: f"import {tool} (fresh interpreter)" for tool in TOOLS}
    if not any(h.wanted(f"{t} [{tool}]") for tool, t in titles.items()):
        return
    commands = {(tool, what): [pythons[tool], "-c", f"import {tool}" if what else "pass"]
                for tool in TOOLS for what in (False, True)}  # fmt: skip
    samples: dict[tuple, list[float]] = {key: [] for key in commands}
    with tempfile.TemporaryDirectory(prefix="bench-peers-import-") as cwd:
        for _ in range(7):
            for key, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, cwd=cwd, env=_worker_env(), check=True,
                               capture_output=True)  # fmt: skip
                samples[key].append((time.perf_counter() - start) * 1e3)
    added = {}
    for tool in TOOLS:
        bare, median = _median(samples[tool, False]), _median(samples[tool, True])
        added[tool] = (bare, median, median - bare)
    for tool, (bare, median, extra) in added.items():
        ours, theirs = _added(added["autolog"][2]), _added(added["mlflow"][2])
        notes = "issue 2: ~1.3 s" if tool == "mlflow" else f"autolog {ours} ms / mlflow {theirs} ms"
        h.row(f"{titles[tool]} [{tool}]", median, "ms", "<= +30 ms" if tool == "autolog" else "",
              f"python -c pass {_fmt(bare)} ms; {_added(extra)} ms", notes)  # fmt: skip


def _log_metric_rows(h, pythons, rounds: int) -> None:
    default, file_case = LOG_METRIC.cases
    if not any(h.wanted(r) for case in LOG_METRIC.cases for r in _rows_of(case)):
        return
    pooled = _measure_group(h, pythons, LOG_METRIC, rounds)
    ours = pooled["autolog"].get("default", {})
    theirs = pooled["mlflow"].get("default", {})
    ours_us, theirs_us = _median(ours.get("tool", [])), _median(theirs.get("tool", []))
    versus = f"mlflow default (sqlite) {_fmt(theirs_us)} us = {theirs_us / ours_us:,.0f}x ours"
    rows = [
        ("autolog", default, "autolog, default writer + file store", ours, versus),
        ("mlflow", default, "mlflow, default store: sqlite", theirs, ""),
        ("mlflow", file_case, "mlflow", pooled["mlflow"].get("file", {}), ""),
    ]
    for tool, case, label, result, peer in rows:
        title = case.title if case is file_case else f"{case.title} [{label}]"
        if "error" in result:
            h.row(title, float("nan"), "us", notes=_unavailable(tool, result["error"]))
            continue
        calls = result.get("calls", 0)
        drain = _fmt(_median(result["drain"]))
        notes = f"5 rounds x {calls:,} calls/worker; flush after {drain} ms; {result.get('uri')}"
        if tool == "mlflow" and case is default:
            notes += f"; {case.issue_peer}"
        h.row(title, _median(result.get("tool", [])), "us",
              case.goal if tool == "autolog" else "", peer, notes)  # fmt: skip


def _sql_rows(h, pythons, rounds: int) -> None:
    pooled = _measure_group(h, pythons, SQL, rounds)
    for case in SQL.cases:
        results = {tool: pooled[tool].get(case.key) for tool in TOOLS}
        if results["autolog"] is None:
            continue
        medians = {tool: _median((results[tool] or {}).get("tool", [])) for tool in TOOLS}
        unit = "ms/run" if case.key == "create" else "ms"
        for tool in TOOLS:
            result = results[tool]
            if "error" in result:
                h.row(f"{case.title} [{tool}]", float("nan"), unit,
                      notes=_unavailable(tool, result["error"]))  # fmt: skip
                continue
            chunks = f"{len(result['tool'])} chunks of 100"
            found = f"found {result['found']} runs" if "found" in result else chunks
            if tool == "autolog":
                speedup = medians["mlflow"] / medians["autolog"]
                peer = f"mlflow {_fmt(medians['mlflow'])} {unit}; autolog x{speedup:.1f} faster"
                notes = "; ".join(filter(None, (found, case.notes)))
                h.row(f"{case.title} [autolog]", medians[tool], unit, case.goal, peer, notes)
            else:
                h.row(f"{case.title} [mlflow]", medians[tool], unit, "", "",
                      f"{found}; {case.issue_peer}")  # fmt: skip


def run(h) -> None:
    peer = peer_python()
    if peer is None:
        print(f"bench_peers: no peer (set {PEER_ENV} to a Python with mlflow): no rows",
              file=sys.stderr)  # fmt: skip
        return
    pythons = {"autolog": sys.executable, "mlflow": peer}
    probes = {tool: _probe(python) for tool, python in pythons.items()}
    versions = {tool: {k: v for k, v in probes[tool]["versions"].items() if v}
                for tool in TOOLS}  # fmt: skip
    print(f"bench_peers: peer {peer}: {versions['mlflow']}", file=sys.stderr)
    differ = {k for k in versions["autolog"] if versions["mlflow"].get(k) != versions["autolog"][k]}
    if differ - {"mlflow"}:
        print(f"bench_peers: versions differ: {sorted(differ)}", file=sys.stderr)
    rounds = max(1, int(os.environ.get(ROUNDS_ENV, "2")))
    _import_rows(h, pythons)
    # These two take many samples in-process (5 rounds of calls, 10 chunks of runs):
    # one worker per tool is enough, and the peer's SQLite arm alone takes ~20 s.
    _log_metric_rows(h, pythons, 1)
    for group in FIT_GROUPS:
        missing = [m for m in group.needs for tool in TOOLS if not probes[tool]["modules"][m]]
        if missing:
            print(f"bench_peers: {group.name} skipped: {sorted(set(missing))} not importable "
                  "under both interpreters", file=sys.stderr)  # fmt: skip
            continue
        _fit_rows(h, group, _measure_group(h, pythons, group, rounds))
    _sql_rows(h, pythons, 1)
