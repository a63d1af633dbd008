"""One measurement process of ``bench_peers.py``: a scenario group under one tool.

Usage (run by ``bench_peers.py`` in a fresh temporary working directory)::

    python peer_worker.py autolog|mlflow GROUP '["case", ...]'

It prints one JSON object on stdout: ``{"cases": {case: {...}}}`` with, per
case, ``bare`` / ``tool`` samples in ms (interleaved: one bare call, then one
autologged call, after one warm-up of each), ``drain`` (the untimed flush that
follows each autologged call, timed on its own), ``logged`` (what the tool
recorded for the last call, so the rows can show both tools logged comparable
things) or ``error``. The same file runs under the project interpreter
(``autolog``) and under the peer's (``mlflow``), so it imports neither at
module level, and nothing but the standard library.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
import warnings

PARENT_TAG = "mlflow.parentRunId"
ROWS, FEATURES, VALID_ROWS = 2000, 20, 500
ROUNDS = 50  # boosting rounds
EPOCHS = 5
LIGHTNING_BATCH = 100  # 20 steps an epoch: Lightning costs ~ms a step on its own
# MLflow takes ~15 ms a run to create: 1,000 by default keeps the file short
SQL_RUNS = int(os.environ.get("AUTOLOG_BENCH_PEER_SQL_RUNS", "1000"))
SQL_CHUNK = 100
SEARCH = "metrics.m1 > 0.5 and params.model = 'rf' and tags.team = 'a'"


def _timed_ms(fn) -> float:
    """Wall time of one ``fn()`` call in ms, GC off (as the harness does)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    finally:
        gc.enable()


def _time_training(train, prepare) -> float:
    """``train(prepare())`` in ms, the preparation untimed."""
    prepared = prepare()
    return _timed_ms(lambda: train(prepared))


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


class AutologTool:
    """Our side: ``autolog.autolog(<integration>)`` with its defaults."""

    name = "autolog"

    def __init__(self) -> None:
        import autolog

        self.api = autolog

    def enable(self, integration: str, **options) -> None:
        from autolog.integration import ACTIVE, WAITING, status

        self.api.autolog(integration, silent=True, **options)
        state = {row.name: row for row in status()}.get(integration)
        if state is None or state.state not in (ACTIVE, WAITING):
            reason = "not registered" if state is None else f"{state.state}: {state.reason}"
            raise RuntimeError(f"autolog integration unavailable: {reason}")

    def disable(self, integration: str) -> None:
        self.api.autolog(integration, disable=True)

    def drain(self) -> None:
        self.api.flush()

    def client(self, uri: str | None = None):
        return self.api.Client(uri)

    def entities(self):
        return self.api.Metric, self.api.Param, self.api.RunTag

    def logged_models(self, experiment_ids, run_id: str) -> int | None:
        return None  # our models are run artifacts (listed with the artifacts)


class MlflowTool:
    """The peer: ``mlflow.<flavor>.autolog()`` with its defaults."""

    name = "mlflow"
    FLAVORS = {
        "sklearn": "sklearn",
        "xgboost": "xgboost",
        "lightgbm": "lightgbm",
        "keras": "keras",  # Keras 3 native; mlflow.tensorflow.autolog needs TensorBoard
        "lightning": "pytorch",
    }

    def __init__(self) -> None:
        import mlflow

        self.api = mlflow

    def _flavor(self, integration: str):
        import importlib

        return importlib.import_module(f"mlflow.{self.FLAVORS[integration]}")

    def enable(self, integration: str, **options) -> None:
        self._flavor(integration).autolog(silent=True, **options)

    def disable(self, integration: str) -> None:
        self._flavor(integration).autolog(disable=True)

    def drain(self) -> None:
        self.api.flush_async_logging()

    def client(self, uri: str | None = None):
        return self.api.MlflowClient(uri)

    def entities(self):
        from mlflow.entities import Metric, Param, RunTag

        return Metric, Param, RunTag

    def logged_models(self, experiment_ids, run_id: str) -> int | None:
        # MLflow 3 keeps models as LoggedModels beside the run, not in its artifacts.
        found = self.api.search_logged_models(experiment_ids=experiment_ids, output_format="list")
        return sum(1 for model in found if model.source_run_id == run_id)


def _top_level_runs(tool):
    client = tool.client()
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return client, ids, []
    runs = client.search_runs(ids, max_results=1000)
    return client, ids, [r for r in runs if PARENT_TAG not in r.data.tags]


def _describe(tool, before: int, calls: int) -> dict:
    """What the tool recorded for the last autologged call (untimed)."""
    client, ids, runs = _top_level_runs(tool)
    runs.sort(key=lambda r: r.info.start_time)
    if len(runs) <= before:
        return {"runs": 0, "calls": calls}
    last = runs[-1]
    children = client.search_runs(ids, filter_string=f"tags.`{PARENT_TAG}` = '{last.info.run_id}'")
    return {
        "runs": len(runs) - before,
        "calls": calls,
        "params": len(last.data.params),
        "metrics": len(last.data.metrics),
        "children": len(children),
        "artifacts": sorted(f.path for f in client.list_artifacts(last.info.run_id)),
        "models": tool.logged_models(ids, last.info.run_id),
    }


def _bare_samples(train, prepare, most: int = 3, budget_s: float = 0.3) -> list[float]:
    """Up to ``most`` bare calls in a row (at least one, ``budget_s`` at most): bare
    calls are cheap beside the peer's autologged ones, and a single sample after
    one of those is easily disturbed by the work it leaves behind."""
    samples = [_time_training(train, prepare)]
    while len(samples) < most and sum(samples) < budget_s * 1e3:
        samples.append(_time_training(train, prepare))
    return samples


_WARMED: set[str] = set()  # integrations whose one-time costs this process has paid


def bare_vs_tool(tool, integration, train, options=None, *, prepare=None, budget_s=3.0,
                 min_samples=1, max_samples=7) -> dict:  # fmt: skip
    """Interleaved samples of ``train(prepare())`` bare (see :func:`_bare_samples`) and
    with the tool's autolog on.

    The first case of an integration in this process starts with one untimed call
    of each arm (lazy imports, first-call caches). Toggling autolog on and off is
    outside the timed calls. Stops after ``max_samples`` pairs, or after
    ``min_samples`` once ``budget_s`` is spent (the peer's arm takes seconds a call).
    """
    options = options or {}
    prepare = prepare or (lambda: None)
    _, _, existing = _top_level_runs(tool)
    calls = 0
    bare, tooled, drain = [], [], []
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if integration not in _WARMED:
            tool.disable(integration)
            _time_training(train, prepare)
            tool.enable(integration, **options)
            _time_training(train, prepare)
            tool.drain()
            calls += 1
            _WARMED.add(integration)
        while len(tooled) < max_samples and (
            len(tooled) < min_samples or time.perf_counter() - start < budget_s
        ):
            tool.disable(integration)
            bare.extend(_bare_samples(train, prepare))
            tool.enable(integration, **options)
            tooled.append(_time_training(train, prepare))
            drain.append(_timed_ms(tool.drain))
        tool.disable(integration)
    logged = _describe(tool, len(existing), calls + len(tooled))
    if not logged["runs"]:
        first = next((str(w.message) for w in caught), "no warning")
        raise RuntimeError(f"{tool.name} logged no run ({first})"[:300])
    return {"bare": bare, "tool": tooled, "drain": drain, "logged": logged}


def _classification(rows: int = ROWS):
    from sklearn.datasets import make_classification

    return make_classification(n_samples=rows, n_features=FEATURES, random_state=0)


def sklearn_group(tool, cases):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    X, y = _classification()

    def fit(_):
        LogisticRegression().fit(X, y)

    def grid(_):
        GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)

    plans = {
        "defaults": (fit, {}),
        "models_off": (fit, {"log_models": False}),
        "grid": (grid, {}),
    }
    for case in cases:
        train, options = plans[case]
        yield case, lambda t=train, o=options: bare_vs_tool(tool, "sklearn", t, o)


def _split():
    X, y = _classification(ROWS + VALID_ROWS)
    return X[:ROWS], y[:ROWS], X[ROWS:], y[ROWS:]


def boosting_group(tool, cases):
    X, y, Xv, yv = _split()
    for case in cases:
        if case == "xgboost":
            import xgboost as xgb

            dtrain, dvalid = xgb.DMatrix(X, y), xgb.DMatrix(Xv, yv)
            params = {"objective": "binary:logistic", "nthread": 2}

            def train(_, xgb=xgb, dtrain=dtrain, dvalid=dvalid, params=params):
                xgb.train(params, dtrain, ROUNDS, evals=[(dvalid, "valid")], verbose_eval=False)

        else:
            import lightgbm as lgb

            params = {"objective": "binary", "num_threads": 2, "verbose": -1}
            dtrain = lgb.Dataset(X, y, free_raw_data=False)
            dvalid = lgb.Dataset(Xv, yv, reference=dtrain, free_raw_data=False)

            def train(_, lgb=lgb, dtrain=dtrain, dvalid=dvalid, params=params):
                lgb.train(params, dtrain, ROUNDS, valid_sets=[dvalid])

        yield case, lambda c=case, t=train: bare_vs_tool(tool, c, t)


def keras_group(tool, cases):
    import keras

    X, y = _classification()

    def build():
        model = keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return model

    def fit(model):
        model.fit(X, y, epochs=EPOCHS, batch_size=32, verbose=0)

    for case in cases:
        yield case, lambda: bare_vs_tool(tool, "keras", fit, prepare=build, budget_s=4.0)


def lightning_group(tool, cases):
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    X, y = _classification()
    data = TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))

    class TinyModule(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(FEATURES, 1)

        def training_step(self, batch, _index):
            inputs, target = batch
            logits = self.layer(inputs).squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(_):
        trainer = pl.Trainer(
            max_epochs=EPOCHS,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=os.getcwd(),
        )
        trainer.fit(TinyModule(), DataLoader(data, batch_size=LIGHTNING_BATCH))

    for case in cases:
        yield case, lambda: bare_vs_tool(tool, "lightning", fit, budget_s=4.0)


def _per_call_us(log, calls: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        for step in range(calls):
            log("loss", 0.5, step=step)
        return (time.perf_counter() - start) / calls * 1e6
    finally:
        gc.enable()


def log_metric_group(tool, cases):
    """Per-call cost of the fluent ``log_metric`` on the caller's thread."""
    for case in cases:
        if case == "file":  # MLflow 3.17 refuses its file store unless opted in
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            tool.api.set_tracking_uri("file://" + os.path.abspath("mlruns-file"))
        # "default": no URI set, the tool's default store in the fresh cwd

        def measure(case=case):
            uri = tool.api.get_tracking_uri()
            with tool.api.start_run():
                _per_call_us(tool.api.log_metric, 20)  # warm: store opened, caches filled
                tool.drain()
                probe_us = _per_call_us(tool.api.log_metric, 20)
                calls = max(20, min(20_000, int(0.2e6 / max(probe_us, 0.01))))
                samples = [_per_call_us(tool.api.log_metric, calls) for _ in range(5)]
                drain_ms = _timed_ms(tool.drain)
            shown = str(uri).replace(os.getcwd(), ".")  # the temp dir says nothing
            return {"tool": samples, "calls": calls, "drain": [drain_ms], "uri": shown}

        yield case, measure


def _log_run(client, entities, experiment_id: str, i: int) -> None:
    Metric, Param, RunTag = entities
    run_id = client.create_run(experiment_id).info.run_id
    stamp = 1_700_000_000_000 + i
    client.log_batch(
        run_id,
        metrics=[Metric("m1", (i * 7919 % 1000) / 1000, stamp, 0)]
        + [Metric(f"m{k}", i * k / 1000, stamp, 0) for k in range(2, 6)],
        params=[Param("model", ("rf", "gbm", "lr")[i % 3]), Param("depth", str(i % 7)),
                Param("lr", str(0.01 * (i % 5 + 1)))],
        tags=[RunTag("team", ("a", "b")[i % 2]), RunTag("owner", f"user{i % 5}")],
    )  # fmt: skip


def sql_group(tool, cases):
    """Runs created with ``log_batch`` on SQLite, then the 3-clause search over them."""
    client = tool.client("sqlite:///" + os.path.abspath("store.db"))
    entities = tool.entities()
    warm = client.create_experiment("warm-up")  # schema created, statements cached
    for i in range(20):
        _log_run(client, entities, warm, i)
    experiment_id = client.create_experiment("bench")
    per_run_ms = []
    for chunk in range(SQL_RUNS // SQL_CHUNK):
        first = chunk * SQL_CHUNK

        def log_chunk(first=first):
            for i in range(first, first + SQL_CHUNK):
                _log_run(client, entities, experiment_id, i)
            tool.drain()  # autolog's Client queues its writes: time them written

        per_run_ms.append(_timed_ms(log_chunk) / SQL_CHUNK)
    found = []

    def search():
        found[:] = client.search_runs([experiment_id], SEARCH, max_results=SQL_RUNS)

    search()
    search_ms = [_timed_ms(search) for _ in range(5)]
    results = {"create": {"tool": per_run_ms}, "search": {"tool": search_ms, "found": len(found)}}
    for case in cases:
        yield case, lambda case=case: results[case]


GROUPS = {
    "log_metric": log_metric_group,
    "sklearn": sklearn_group,
    "boosting": boosting_group,
    "keras": keras_group,
    "lightning": lightning_group,
    "sql": sql_group,
}


def main() -> None:
    tool_name, group, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    # Frameworks print to fd 1 (C code too): keep it for our JSON only.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    results: dict = {"cases": {}}
    try:
        tool = AutologTool() if tool_name == "autolog" else MlflowTool()
        for case, measure in GROUPS[group](tool, cases):
            try:
                results["cases"][case] = measure()
            except Exception as exc:  # one failed case must not hide the others
                traceback.print_exc()
                results["cases"][case] = {"error": _error(exc)}
    except Exception as exc:
        traceback.print_exc()
        results["error"] = _error(exc)
    out.write(json.dumps(results))
    out.flush()


if __name__ == "__main__":
    main()
