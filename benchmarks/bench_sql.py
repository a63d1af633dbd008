"""SQL store throughput: creating runs, and a 3-clause search over 1,000 and
10,000 of them, side by side with MLflow's own SQL store in the same run.

Each run has 3 params, 5 metrics and 2 tags. Creating them, three ways:

- straight on the store: ``create_run`` then one ``log_batch``, each its own
  transaction (two commits per run), timed over the first 1,000 runs (MLflow
  the same, with its ``SqlAlchemyStore``); the rest of each size is written in
  bulk, untimed (autolog: ``store.batch()``; MLflow: its ORM in one session);
- through the fluent API, the product's real write path: ``start_run``,
  ``log_params``, ``log_metrics``, ``set_tags``, ``end_run(flush=False)``, and
  one ``flush()`` at the end, all timed. The background writer writes a drain
  of runs in one ``store.batch()`` (one transaction per up to 1,000 store
  operations), so commits are few;
- through ``Client.create_run`` + ``Client.log_batch``, which queue on the
  same background writer (MLflow's client writes at once instead), with one
  ``flush()`` at the end, all timed.

Durability is the servers' default: SQLite in WAL mode with
``synchronous=NORMAL`` (the store's setting), PostgreSQL with
``synchronous_commit=on``, so every commit waits for the WAL flush to disk.

The search is ``metrics.m1 > 0.5 and params.model = 'rf' and tags.team = 'a'``
(about 4% of the runs match) and returns the matching runs with all their
data: one statement filters, orders and pages, one more reads the page's
params, tags and latest metrics (``benchmarks/README.md`` has its ``EXPLAIN``;
``AUTOLOG_BENCH_SQL_EXPLAIN=1`` prints it). Goal (issue 16): at least 10x
MLflow at each size, on SQLite and on PostgreSQL; the ratio rows say.

MLflow runs under its own interpreter (``AUTOLOG_BENCH_MLFLOW_PYTHON``, default
``.venv-mlflow/bin/python``; PostgreSQL rows need ``psycopg`` there too); this
file is its worker (``--mlflow-worker``, standard library and mlflow only).
``AUTOLOG_BENCH_SQL_SIZES`` (default ``1000,10000``; ``1000`` is the quick run)
sets the sizes. PostgreSQL rows use ``AUTOLOG_TEST_POSTGRES_URI`` (default: the
server that ``.ci/start-postgres`` starts), in throwaway schemas; they are left
out when the server is unreachable.

The search is timed side by side in time, not one tool after the other: MLflow's
worker stays up beside this process, and each round gives each tool a slot of
the same time (0.2 s, at least three searches), autolog's searches back to
back, then MLflow's, on the same number of runs (at least 5 rounds, up to 15
while the size's rounds take under 4 s). Each tool's figure is the median of
all its searches, and the ratio row also gives the rounds' own ratios (of the
rounds' medians): on a
shared machine whose load moves by several times within a minute, a ratio of
two figures taken minutes apart says more about the load than about the tools.
The machine's load is printed on stderr with them.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MLFLOW_PYTHON = os.environ.get("AUTOLOG_BENCH_MLFLOW_PYTHON") or str(
    REPO / ".venv-mlflow/bin/python"
)
SIZES = [int(n) for n in os.environ.get("AUTOLOG_BENCH_SQL_SIZES", "1000,10000").split(",")]
TIMED_CREATES = 1000
FLUENT_RUNS = 2000
FILTER = "metrics.m1 > 0.5 and params.model = 'rf' and tags.team = 'a'"
CREATE_GOAL = "<= 1.26 ms (10x mlflow)"
# A round of the side-by-side search: each tool's searches back to back for a slot
# of the same time (at least SEARCH_BLOCK of them), autolog's slot, then MLflow's
SEARCH_BLOCK = 3
SEARCH_SLOT_S = 0.2
SEARCH_ROUNDS = (5, 15)  # least and most rounds of a size's side-by-side search
SEARCH_BUDGET_S = 4.0  # more rounds than the least only while the size's rounds took less
DEFAULT_POSTGRES_URI = "postgresql://autolog:autolog@127.0.0.1:5432/autolog_test"


def _run_values(rng: random.Random, i: int):
    params = {"model": rng.choice(["rf", "xgb", "lr"]), "depth": str(i % 12), "lr": "0.1"}
    metrics = {f"m{k}": rng.random() for k in range(1, 6)}
    tags = {"team": rng.choice("abcd"), "stage": "bench"}
    return params, metrics, tags


def _timed_ms(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def _slot_ms(fn) -> tuple[list[float], object]:
    """``fn()`` back to back for SEARCH_SLOT_S, at least SEARCH_BLOCK times: each
    call's milliseconds, and the last answer."""
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < SEARCH_BLOCK or time.perf_counter() - start < SEARCH_SLOT_S:
        ms, result = _timed_ms(fn)
        samples.append(ms)
    return samples, result


# -- autolog ---------------------------------------------------------------------------
class _AutologFill:
    """Runs written into one autolog SqlStore, ``grow_to`` at a time."""

    def __init__(self, store):
        self.store = store
        self.experiment = store.create_experiment("bench")
        self.rng = random.Random(42)
        self.now = int(time.time() * 1000)
        self.count = 0

    def _one(self, i: int) -> None:
        from autolog.tracking.entities import Metric, Param, RunTag

        params, metrics, tags = _run_values(self.rng, i)
        run_id = self.store.create_run(self.experiment, "bench", self.now + i).info.run_id
        self.store.log_batch(
            run_id,
            metrics=[Metric(k, v, self.now + i) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )

    def timed(self, count: int) -> float:
        """Create ``count`` runs, one transaction per call; ms per run."""
        start = time.perf_counter()
        for i in range(self.count, self.count + count):
            self._one(i)
        self.count += count
        return (time.perf_counter() - start) * 1000 / count

    def grow_to(self, total: int) -> None:
        while self.count < total:
            with self.store.batch():
                end = min(total, self.count + 500)
                for i in range(self.count, end):
                    self._one(i)
            self.count = end


def _explain(store, experiment_id: str) -> str:
    """The plan of the search's statement, as the backend prints it."""
    from autolog.tracking.entities import ViewType
    from autolog.tracking.stores.sql_search import search_statement

    sql, parameters = search_statement(
        store._engine.dialect,
        (int(experiment_id),),
        tuple(ViewType.stages(1)),
        FILTER,
        (),
        10_001,
        0,
    )
    with store._engine.connect() as conn:
        if store.dialect == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters).all()
            return "\n".join(row[3] for row in rows)
        rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", parameters).all()
        return "\n".join(row[0] for row in rows)


def _fill_fluent(uri: str) -> float:
    """Create FLUENT_RUNS runs through the fluent API; ms per run, flush included."""
    import autolog

    autolog.set_tracking_uri(uri)
    autolog.set_experiment(f"bench-fluent-{uuid.uuid4().hex[:8]}")
    rng = random.Random(42)
    start = time.perf_counter()
    for i in range(FLUENT_RUNS):
        params, metrics, tags = _run_values(rng, i)
        autolog.start_run()
        autolog.log_params(params)
        autolog.log_metrics(metrics)
        autolog.set_tags(tags)
        autolog.end_run(flush=False)
    autolog.flush()
    return (time.perf_counter() - start) * 1000 / FLUENT_RUNS


def _fill_client(uri: str) -> float:
    """Create FLUENT_RUNS runs with Client.create_run + Client.log_batch; ms per run."""
    import autolog
    from autolog.tracking.entities import Metric, Param, RunTag

    client = autolog.Client(uri)
    experiment_id = client.create_experiment(f"bench-client-{uuid.uuid4().hex[:8]}")
    rng = random.Random(42)
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for i in range(FLUENT_RUNS):
        params, metrics, tags = _run_values(rng, i)
        run_id = client.create_run(experiment_id).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now + i) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
    autolog.flush()  # the Client queues its writes: time them written, as the fluent row does
    return (time.perf_counter() - start) * 1000 / FLUENT_RUNS


def _measure_api(h, label: str, uri: str) -> None:
    """The fluent and the Client rows for the store at ``uri``."""
    for name, fill, notes in (
        ("fluent API", _fill_fluent, "start_run, log_*, end_run(flush=False); flush at end"),
        ("Client", _fill_client, "Client.create_run + Client.log_batch; flush at end"),
    ):
        row = f"{label} create run via {name}"
        if h.wanted(row):
            h.row(row, fill(uri), "ms", goal=CREATE_GOAL, notes=f"{FLUENT_RUNS:,} runs; {notes}")


# -- MLflow, in its own interpreter -----------------------------------------------------
_REPLY = "bench_sql-reply "  # the worker's answers on stdout (anything else there is MLflow's)


def _mlflow_worker(uri: str, root: str) -> None:
    """The MLflow side (run by MLflow's interpreter): one JSON command a line on
    stdin (create, grow, search), one answer a line on stdout."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(uri, root)
    experiment = store.create_experiment("bench")
    rng = random.Random(42)
    now = int(time.time() * 1000)
    made = 0  # runs in MLflow's store

    def create(count: int) -> dict:
        nonlocal made
        start = time.perf_counter()
        for i in range(made, made + count):
            params, metrics, tags = _run_values(rng, i)
            run_id = store.create_run(experiment, "bench", now + i, [], "").info.run_id
            store.log_batch(
                run_id,
                metrics=[Metric(k, v, now + i, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
        made += count
        return {"ms": (time.perf_counter() - start) * 1000 / count}

    def grow(size: int) -> dict:
        nonlocal made
        with store.ManagedSessionMaker() as session:  # the rest in bulk, untimed
            for i in range(made, size):
                params, metrics, tags = _run_values(rng, i)
                run_id = uuid.uuid4().hex
                session.add(
                    SqlRun(run_uuid=run_id, name=f"r{i}", source_type="LOCAL", source_name="",
                           entry_point_name="", user_id="bench", status="RUNNING",
                           start_time=now + i, source_version="", lifecycle_stage="active",
                           artifact_uri=f"{root}/{run_id}", experiment_id=int(experiment))
                )  # fmt: skip
                for k, v in metrics.items():
                    point = {"key": k, "value": v, "timestamp": now + i, "step": 0}
                    session.add(SqlMetric(run_uuid=run_id, is_nan=False, **point))
                    session.add(SqlLatestMetric(run_uuid=run_id, is_nan=False, **point))
                session.add_all(
                    SqlParam(run_uuid=run_id, key=k, value=v) for k, v in params.items()
                )
                session.add_all(SqlTag(run_uuid=run_id, key=k, value=v) for k, v in tags.items())
                if i % 1000 == 999:
                    session.flush()
        made = max(made, size)
        if uri.startswith("postgresql"):
            with store.ManagedSessionMaker() as session:
                session.connection().exec_driver_sql("ANALYZE")
        return {}

    def search(size: int, slot: bool = False) -> dict:
        def one():
            return store.search_runs([experiment], FILTER, 1, max_results=size)

        samples, found = _slot_ms(one) if slot else ([_timed_ms(one)[0]], one())
        return {"ms": samples, "found": len(found)}

    commands = {"create": create, "grow": grow, "search": search}
    for line in sys.stdin:
        op, arguments = json.loads(line)
        print(_REPLY + json.dumps(commands[op](**arguments)), flush=True)


class _MlflowWorker:
    """MLflow's worker process, kept up for a backend's rows."""

    def __init__(self, label: str, uri: str, root: Path) -> None:
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": ""}
        # its stderr in a file, read when it fails: a pipe nobody reads can fill up
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by close())
        self._process = subprocess.Popen(
            [MLFLOW_PYTHON, __file__, "--mlflow-worker", uri, root.as_uri()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors, text=True, env=env,
        )  # fmt: skip
        self.label = label

    @classmethod
    def start(cls, label: str, uri: str, root: Path) -> _MlflowWorker | None:
        """The worker, or None when there is no MLflow interpreter."""
        if not Path(MLFLOW_PYTHON).exists():
            print(f"bench_sql: no mlflow at {MLFLOW_PYTHON}: autolog rows only", file=sys.stderr)
            return None
        return cls(label, uri, root)

    def ask(self, op: str, **arguments) -> dict:
        """The worker's answer to one command (RuntimeError with its stderr if it died)."""
        self._process.stdin.write(json.dumps([op, arguments]) + "\n")
        self._process.stdin.flush()
        for line in self._process.stdout:
            if line.startswith(_REPLY):
                return json.loads(line[len(_REPLY) :])
        self._errors.seek(0)
        raise RuntimeError(f"mlflow {self.label} worker failed:\n{self._errors.read()[-800:]}")

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=60)
        self._errors.close()


def _ratio_rows(h, label: str, autolog_ms: dict, mlflow_ms: dict, rounds_of: dict) -> None:
    if "create" in autolog_ms and "create" in mlflow_ms:
        h.row(
            f"{label} create run + log_batch, mlflow / autolog",
            mlflow_ms["create"] / autolog_ms["create"],
            "x",
            goal=">= 10x",
            peer=f"mlflow {mlflow_ms['create']:.1f} ms, autolog {autolog_ms['create']:.2f} ms",
        )
    for size in SIZES:
        if size in autolog_ms and size in mlflow_ms:
            ratios = sorted(rounds_of[size])
            h.row(
                f"{label} 3-clause search {size:,} runs, mlflow / autolog",
                mlflow_ms[size] / autolog_ms[size],
                "x",
                goal=">= 10x",
                peer=f"mlflow {mlflow_ms[size]:.1f} ms, autolog {autolog_ms[size]:.2f} ms",
                notes=f"rounds' own ratios: median {statistics.median(ratios):.1f}x, "
                f"{ratios[0]:.1f}x to {ratios[-1]:.1f}x",
            )


def _side_by_side(h, label: str, store, mlflow: _MlflowWorker | None) -> None:
    """The create rows and, per size, the search rows of both tools, their
    searches taken in alternating rounds; then the ratio rows."""
    fill = _AutologFill(store)
    timed = min(TIMED_CREATES, max(SIZES))
    ours: dict = {"create": fill.timed(timed)}
    h.row(
        f"{label} create run + log_batch [autolog]",
        ours["create"],
        "ms",
        notes=f"first {fill.count:,} runs, two transactions each",
    )
    theirs: dict = {}
    if mlflow is not None:
        theirs["create"] = mlflow.ask("create", count=timed)["ms"]
        h.row(
            f"{label} create run + log_batch [mlflow]",
            theirs["create"],
            "ms",
            notes=f"first {timed:,} runs; SqlAlchemyStore",
        )
    rounds_of: dict = {}
    for size in SIZES:
        fill.grow_to(size)
        if store.dialect == "postgresql":
            # the planner's statistics, as autovacuum keeps them after a bulk load
            with store._engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        if mlflow is not None:
            mlflow.ask("grow", size=size)

        def search(size=size):
            return store.search_runs([fill.experiment], FILTER, max_results=size)

        search()  # warm: the statement is compiled once per distinct search
        if mlflow is not None:
            mlflow.ask("search", size=size)
        mine, peer, found, peer_found, ratios, rounds = [], [], [], None, [], 0
        start = time.perf_counter()
        least, most = SEARCH_ROUNDS
        while rounds < most and (rounds < least or time.perf_counter() - start < SEARCH_BUDGET_S):
            block, found = _slot_ms(search)
            mine += block
            rounds += 1
            if mlflow is not None:
                answer = mlflow.ask("search", size=size, slot=True)
                peer += answer["ms"]
                peer_found = answer["found"]
                ratios.append(statistics.median(answer["ms"]) / statistics.median(block))
        ours[size] = statistics.median(mine)
        h.row(
            f"{label} 3-clause search {size:,} runs [autolog]",
            ours[size],
            "ms",
            notes=f"{len(found)} runs returned with their data; {len(mine)} searches",
        )
        if peer:
            theirs[size], rounds_of[size] = statistics.median(peer), ratios
            h.row(
                f"{label} 3-clause search {size:,} runs [mlflow]",
                theirs[size],
                "ms",
                notes=f"{peer_found} runs returned with their data; {len(peer)} searches",
            )
        print(
            f"bench_sql: {label} {size:,} runs: {rounds} rounds, {len(mine)} autolog and "
            f"{len(peer)} MLflow searches, load {os.getloadavg()[0]:.1f}",
            file=sys.stderr,
        )
        if os.environ.get("AUTOLOG_BENCH_SQL_EXPLAIN"):
            print(
                f"-- {label}, {size:,} runs:\n{_explain(store, fill.experiment)}", file=sys.stderr
            )
    _ratio_rows(h, label, ours, theirs, rounds_of)


# -- backends ----------------------------------------------------------------------------
def _bench_sqlite(h, folder: Path) -> None:
    from autolog.tracking.stores.sql import ARTIFACT_ROOT_ENV, SqlStore

    # the fluent API and the Client open their stores from the URI alone
    os.environ[ARTIFACT_ROOT_ENV] = str(folder / "art")
    store = SqlStore(f"sqlite:///{folder / 'bench.db'}", artifact_root=str(folder / "art"))
    mlflow = _MlflowWorker.start("sqlite", f"sqlite:///{folder / 'mlflow.db'}", folder / "ml-art")
    try:
        _side_by_side(h, "sqlite", store, mlflow)
    finally:
        store.close()
        if mlflow is not None:
            mlflow.close()
    _measure_api(h, "sqlite", f"sqlite:///{folder / 'api.db'}")


def _postgres_schema_uri(base: str, schema: str, driver: str = "postgresql") -> str:
    import sqlalchemy as sa

    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.set(drivername=driver).render_as_string(hide_password=False)


def _bench_postgresql(h, folder: Path) -> None:
    import psycopg

    from autolog.tracking.stores.sql import SqlStore

    base = os.environ.get("AUTOLOG_TEST_POSTGRES_URI", DEFAULT_POSTGRES_URI)
    schemas = [f"autolog_bench_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            for schema in schemas:
                conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        print(f"bench_sql: PostgreSQL rows left out ({exc})", file=sys.stderr)
        return
    try:
        uri = _postgres_schema_uri(base, schemas[0])
        store = SqlStore(uri, artifact_root=str(folder / "art"))
        theirs = _postgres_schema_uri(base, schemas[1], "postgresql+psycopg")
        mlflow = _MlflowWorker.start("postgresql", theirs, folder / "ml-art")
        try:
            _side_by_side(h, "postgresql", store, mlflow)
        finally:
            store.close()
            if mlflow is not None:
                mlflow.close()
        _measure_api(h, "postgresql", uri)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def run(h) -> None:
    print(f"bench_sql: load {os.getloadavg()[0]:.1f} at start", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        if any(h.wanted(f"sqlite {part}") for part in ("create", "3-clause")):
            _bench_sqlite(h, Path(tmp))
        if any(h.wanted(f"postgresql {part}") for part in ("create", "3-clause")):
            _bench_postgresql(h, Path(tmp))
    print(f"bench_sql: load {os.getloadavg()[0]:.1f} at end", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--mlflow-worker"]:
        _mlflow_worker(sys.argv[2], sys.argv[3])
    else:  # this file alone: python benchmarks/bench_sql.py [filters]
        sys.path.insert(0, str(REPO / "benchmarks"))
        from run import Harness, table

        harness = Harness(sys.argv[1:])
        harness.module = "sql"
        run(harness)
        print(table(harness.rows))
