"""SQL store throughput: creating 10,000 runs and a 3-clause search over them.

Each run has 3 params, 5 metrics and 2 tags. Three ways to create them:

- straight on the store: ``create_run`` then one ``log_batch``, each its own
  transaction (two commits per run);
- through the fluent API, the product's real write path: ``start_run``,
  ``log_params``, ``log_metrics``, ``set_tags``, ``end_run(flush=False)``, and
  one ``flush()`` at the end, all timed. The background writer writes a drain
  of runs in one ``store.batch()`` (one transaction per up to 1,000 store
  operations), so commits are few;
- through ``Client.create_run`` + ``Client.log_batch``, which queue on the
  same background writer (MLflow's client writes at once instead), with one
  ``flush()`` at the end, all timed: commits are few, as for the fluent API.

Durability is the servers' default: SQLite in WAL mode with
``synchronous=NORMAL`` (the store's setting), PostgreSQL with
``synchronous_commit=on``, so every commit waits for the WAL flush to disk.
Turning that off (``SET synchronous_commit = off``: a crash may lose the last
commits, never corrupt) would take the two-commits-per-run rows on PostgreSQL
to roughly the SQLite numbers; the benchmark leaves it on.

The search is
``metrics.m1 > 0.5 and params.model = 'rf' and tags.team = 'a'`` (about 4% of
the runs match) and returns the matching runs with all their data.

Peer numbers (issue 9): MLflow 3.17's SQLite store takes 12.6 ms per run to
create with ``log_batch`` and 330 ms to search 5,000 runs; the goal is 10x
faster. When ``mlflow`` is importable the same rows are measured for it.

PostgreSQL rows use ``AUTOLOG_TEST_POSTGRES_URI`` (default: the server that
``.ci/start-postgres`` starts), in a throwaway schema; they are left out when
the server is unreachable.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

RUNS = 10_000
FILTER = "metrics.m1 > 0.5 and params.model = 'rf' and tags.team = 'a'"
CREATE_GOAL = "<= 1.26 ms (10x mlflow)"
SEARCH_GOAL = "<= 33 ms (10x mlflow per 5k)"
MLFLOW_CREATE = "mlflow sqlite 12.6 ms"
MLFLOW_SEARCH = "mlflow sqlite 330 ms / 5k runs"
DEFAULT_POSTGRES_URI = "postgresql://autolog:autolog@127.0.0.1:5432/autolog_test"


def _run_values(rng: random.Random, i: int):
    params = {"model": rng.choice(["rf", "xgb", "lr"]), "depth": str(i % 12), "lr": "0.1"}
    metrics = {f"m{k}": rng.random() for k in range(1, 6)}
    tags = {"team": rng.choice("abcd"), "stage": "bench"}
    return params, metrics, tags


def _fill(store, experiment_id: str) -> float:
    """Create RUNS runs; milliseconds per run (create_run + log_batch)."""
    from autolog.tracking.entities import Metric, Param, RunTag

    rng = random.Random(42)
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for i in range(RUNS):
        params, metrics, tags = _run_values(rng, i)
        run_id = store.create_run(experiment_id, "bench", now + i).info.run_id
        store.log_batch(
            run_id,
            metrics=[Metric(k, v, now + i) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
    return (time.perf_counter() - start) * 1000 / RUNS


def _fill_fluent(uri: str) -> float:
    """Create RUNS runs through the fluent API; milliseconds per run, flush included."""
    import autolog

    autolog.set_tracking_uri(uri)
    autolog.set_experiment(f"bench-fluent-{uuid.uuid4().hex[:8]}")
    rng = random.Random(42)
    start = time.perf_counter()
    for i in range(RUNS):
        params, metrics, tags = _run_values(rng, i)
        autolog.start_run()
        autolog.log_params(params)
        autolog.log_metrics(metrics)
        autolog.set_tags(tags)
        autolog.end_run(flush=False)
    autolog.flush()
    return (time.perf_counter() - start) * 1000 / RUNS


def _fill_client(uri: str) -> float:
    """Create RUNS runs with Client.create_run + Client.log_batch; ms per run."""
    import autolog
    from autolog.tracking.entities import Metric, Param, RunTag

    client = autolog.Client(uri)
    experiment_id = client.create_experiment(f"bench-client-{uuid.uuid4().hex[:8]}")
    rng = random.Random(42)
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for i in range(RUNS):
        params, metrics, tags = _run_values(rng, i)
        run_id = client.create_run(experiment_id).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now + i) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
    autolog.flush()  # the Client queues its writes: time them written, as the fluent row does
    return (time.perf_counter() - start) * 1000 / RUNS


def _measure_api(h, label: str, uri: str) -> None:
    """The fluent and the Client rows for the store at ``uri``."""
    for name, fill, notes in (
        ("fluent API", _fill_fluent, "start_run, log_*, end_run(flush=False); flush at end"),
        ("Client", _fill_client, "Client.create_run + Client.log_batch; flush at end"),
    ):
        row = f"{label} create run via {name}"
        if h.wanted(row):
            h.row(row, fill(uri), "ms", goal=CREATE_GOAL, peer=MLFLOW_CREATE, notes=notes)


def _measure(h, label: str, store) -> None:
    create_row, search_row = f"{label} create run + log_batch", f"{label} 3-clause search 10k runs"
    if not (h.wanted(create_row) or h.wanted(search_row)):
        return
    experiment_id = store.create_experiment("bench")
    per_run = _fill(store, experiment_id)
    h.row(create_row, per_run, "ms", goal=CREATE_GOAL, peer=MLFLOW_CREATE, notes=f"{RUNS:,} runs")
    if label == "postgresql":
        # The planner's statistics, as autovacuum keeps them within a minute of
        # a bulk load; without them a fresh table is planned as holding one row
        # (nested loops, ~3x slower) until autovacuum's next pass.
        with store._engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    found = len(store.search_runs([experiment_id], FILTER, max_results=RUNS))
    h.time(
        search_row,
        lambda: store.search_runs([experiment_id], FILTER, max_results=RUNS),
        repeat=5,
        unit="ms",
        goal=SEARCH_GOAL,
        peer=MLFLOW_SEARCH,
        notes=f"{found} runs returned with their data"
        + ("; after ANALYZE" if label == "postgresql" else ""),
    )


def _postgres_schema_uri(base: str, schema: str) -> str:
    import sqlalchemy as sa

    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def _bench_postgresql(h) -> None:
    import psycopg

    from autolog.tracking.stores.sql import SqlStore

    base = os.environ.get("AUTOLOG_TEST_POSTGRES_URI", DEFAULT_POSTGRES_URI)
    schema = f"autolog_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        print(f"bench_sql: PostgreSQL rows left out ({exc})", file=sys.stderr)
        return
    uri = _postgres_schema_uri(base, schema)
    store = SqlStore(uri, artifact_root=tempfile.gettempdir())
    try:
        _measure(h, "postgresql", store)
        _measure_api(h, "postgresql", uri)
    finally:
        store.close()
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _bench_mlflow(h, folder: Path) -> None:
    """The same rows for MLflow's SQLite store, when mlflow is installed."""
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except ImportError:
        return
    store = SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "mlflow-artifacts"))
    experiment_id = store.create_experiment("bench")
    rng = random.Random(42)
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for i in range(RUNS):
        params, metrics, tags = _run_values(rng, i)
        run_id = store.create_run(experiment_id, "bench", now + i, [], "").info.run_id
        store.log_batch(
            run_id,
            metrics=[Metric(k, v, now + i, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
    per_run = (time.perf_counter() - start) * 1000 / RUNS
    h.row("mlflow sqlite create run + log_batch", per_run, "ms", notes=f"{RUNS:,} runs")
    h.time(
        "mlflow sqlite 3-clause search 10k runs",
        lambda: store.search_runs([experiment_id], FILTER, 1, max_results=RUNS),
        repeat=5,
        unit="ms",
    )


def run(h) -> None:
    from autolog.tracking.stores.sql import ARTIFACT_ROOT_ENV, SqlStore

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # the fluent API and the Client open their stores from the URI alone
        os.environ[ARTIFACT_ROOT_ENV] = str(folder / "art")
        store = SqlStore(f"sqlite:///{folder / 'bench.db'}", artifact_root=str(folder / "art"))
        try:
            _measure(h, "sqlite", store)
        finally:
            store.close()
        _measure_api(h, "sqlite", f"sqlite:///{folder / 'api.db'}")
        _bench_postgresql(h)
        _bench_mlflow(h, folder)
