"""Issue 16: what autolog costs each integration's headline workload, broken down.

For each workload (XGBoost / LightGBM ``train`` 50 rounds with an eval set,
scikit-learn ``LogisticRegression`` and a 3x3 ``GridSearchCV``, Keras 5
epochs with validation, Lightning 4 epochs, a plain torch loop), timed in
this process with autolog off and on, interleaved (so the machine's load hits
both alike), and the added time split into named parts:

- ``fit`` row: bare vs autolog, whole call (the goal of the issue);
- ``framework evaluation``: what the framework computes only because a
  callback is installed (XGBoost/LightGBM evaluate the eval sets each round):
  bare training with a do-nothing callback vs without; the ``added - eval``
  row is the fit's added time less that;
- ``training thread (autolog.overhead_ms)``: what the runs themselves report,
  median (the self-overhead metric every autologged run carries);
- ``writer thread``: draining what the fit queued (``flush()`` after it);
- parts on the training thread, each timed alone: opening and closing a run,
  the params, one per-epoch logging call (goal <= 10 us, beside a bare
  ``log_metric`` in the same run), the model (``log_model``: what stays on the
  caller's thread), the artifacts (feature importance, summaries).

``--quick`` (or ``AUTOLOG_BENCH_QUICK=1``) runs fewer rounds. Whole-process
rows (short realistic scripts run as processes, with and without ``import
autolog; autolog.autolog()``) are in ``bench_overhead_scripts.py``.

Run alone: ``.venv/bin/python benchmarks/bench_overhead.py [--quick] [filter ...]``.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

# one BLAS / OpenMP thread: the work of the training arms (and autolog's
# predictions for training metrics) then runs on the caller's thread, where
# the CPU-time rows count it
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

import autolog  # noqa: E402

QUICK = os.environ.get("AUTOLOG_BENCH_QUICK", "") not in ("", "0") or "--quick" in sys.argv
REPEAT = 3 if QUICK else 7
ROUNDS, ROWS, FEATURES = 50, 2000, 20


def _bare(patched):
    """The original callable behind our wrapper (wrapt keeps it as ``__wrapped__``)."""
    return patched.__wrapped__


def _data(rows: int = ROWS, features: int = FEATURES):
    rng = np.random.RandomState(0)
    X = rng.rand(rows, features).astype("float32")
    y = (X[:, 0] + X[:, 1] + 0.5 * rng.rand(rows) > 1.2).astype(int)
    return X, y


class _Runs:
    """The runs the autolog arm made: their self-overhead metrics, and the
    writer's drain after each fit (timed in the arm's untimed set-up)."""

    def __init__(self) -> None:
        self.drains: list[float] = []

    def drain(self) -> None:
        start = time.perf_counter()
        autolog.flush()
        self.drains.append((time.perf_counter() - start) * 1e3)

    def overhead_ms(self) -> list[float]:
        autolog.flush()
        runs = autolog.search_runs(filter_string="metrics.`autolog.overhead_ms` >= 0")
        return [r.data.metrics["autolog.overhead_ms"] for r in runs]


def _fit_rows(
    h,
    name,
    bare,
    logged,
    *,
    goal,
    clock,
    repeat=REPEAT,
    cpu_repeat=None,
    notes="",
    thread_row=False,
    store_row=False,
) -> tuple[float | None, float | None]:
    """The whole-fit rows (wall time, and CPU time: ``clock``, where the goal
    is held), the runs' own overhead and the writer's drain; returns the fit's
    added milliseconds (median autolog - median bare) in wall and CPU time.
    ``thread_row``: also the training thread's CPU (beside a process-CPU
    ``clock``: what the training waits for, without the writer's work, which
    a free core does beside it). ``store_row``: also the process's CPU with
    the writer's drain after the fit included (what the store costs, beside
    a training-thread ``clock``; no verdict: the issue moves that work to the
    writer thread)."""
    runs = _Runs()
    result = h.compare(
        f"{name}: fit",
        bare,
        logged,
        repeat=repeat,
        unit="ms",
        base_label="bare",
        setup=runs.drain,
        notes=(notes + "; " if notes else "")
        + f"wall time, the machine's load included: goal {goal} held on the CPU row",
    )
    cpu = _cpu_rows(
        h,
        f"{name}: fit, {clock}",
        bare,
        logged,
        clock=clock,
        goal=goal,
        repeat=cpu_repeat or repeat,
        setup=runs.drain,
    )
    if thread_row:
        _cpu_rows(
            h,
            f"{name}: fit, training thread CPU",
            bare,
            logged,
            clock="training thread CPU",
            goal=goal,
            repeat=cpu_repeat or repeat,
            setup=runs.drain,
        )
    if store_row:
        _cpu_rows(
            h,
            f"{name}: fit + writer's drain, process CPU",
            lambda: (bare(), autolog.flush()),
            lambda: (logged(), autolog.flush()),
            clock="process CPU",
            goal="what the store costs: the run written",
            repeat=cpu_repeat or repeat,
            setup=runs.drain,
        )
    _own_code_row(h, name, logged, base=cpu[0] if cpu else None, goal=goal)
    added_cpu = cpu[1] - cpu[0] if cpu is not None else None
    if result is None:
        return None, added_cpu
    runs.drain()
    spent = runs.overhead_ms()
    if spent:
        h.row(
            f"{name}: training thread (autolog.overhead_ms)",
            statistics.median(spent),
            "ms",
            notes=f"median over {len(spent)} runs, the metric each run carries",
        )
    h.row(
        f"{name}: writer thread (drain after the fit)",
        statistics.median(runs.drains[1:] or runs.drains),
        "ms",
        notes="flush() after each fit: files and points written in the background",
    )
    return result[1] - result[0], added_cpu


_CLOCKS = {
    "training thread CPU": time.thread_time,
    "process CPU": time.process_time,
}


def _cpu_rows(
    h,
    name,
    bare,
    logged,
    *,
    clock: str,
    goal=None,
    repeat=REPEAT,
    setup=None,
    base_label="bare",
    notes="",
) -> tuple[float, float] | None:
    """``bare`` vs ``logged`` interleaved, in CPU time (``clock``: this thread's,
    for frameworks that train on the caller's thread with one thread; the
    process's, writer thread included, for those with thread pools): on a
    machine shared with other load, CPU time is what a wall time would be on
    a quiet one, without the waits for a core. ``setup`` runs untimed after
    each autolog arm (the writer's drain) and before each bare one."""
    row = name
    if not h.wanted(row):
        return None
    read = _CLOCKS[clock]
    base, other = [], []
    for i in range(repeat):
        arms = ((bare, base), (logged, other))
        for arm, samples in arms if i % 2 == 0 else arms[::-1]:
            if setup is not None:
                setup()
            gc.collect()
            start = read()
            arm()
            samples.append((read() - start) * 1e3)
    if setup is not None:
        setup()
    b = statistics.median(base)
    added = statistics.median(y - x for x, y in zip(base, other))
    o = b + added
    h.row(
        row,
        o,
        "ms",
        goal=goal,
        peer=f"{base_label} {b:.1f} ms; x{o / b:.3f} (+{added:.2f} ms, {100 * added / b:+.1f}%)",
        notes=(notes + "; " if notes else "")
        + f"{repeat} interleaved rounds (which arm runs first alternates): the bare median "
        f"plus the median of the rounds' own differences (medians {statistics.median(other):.1f}"
        f" vs {b:.1f} ms)",
    )
    h.rows[-1].base = b
    return b, o


class _ThreadClock:
    """Within the block, autolog's self-overhead accounting (the patch manager
    and the per-epoch path) reads this thread's CPU time instead of the wall
    clock: the runs' ``autolog.overhead_ms`` then says how much CPU autolog's
    own code took on the training thread, whatever the machine's load."""

    def __enter__(self) -> None:
        from autolog import _calls, training

        self.modules = (_calls, training)
        for module in self.modules:
            module.perf_counter_ns = time.thread_time_ns

    def __exit__(self, *exc) -> None:
        for module in self.modules:
            module.perf_counter_ns = time.perf_counter_ns


def _own_code_row(h, name, logged, *, base, goal, repeat=REPEAT) -> float | None:
    """autolog's own code on the training thread, in thread CPU time: the
    runs' overhead metric with the accounting on the thread's CPU clock."""
    row = f"{name}: autolog's own code, training thread CPU"
    if not h.wanted(row):
        return None
    spent = []
    with _ThreadClock():
        for _ in range(repeat):
            autolog.flush()
            logged()
            run = autolog.last_active_run()
            spent.append(run.data.metrics["autolog.overhead_ms"])
    autolog.flush()
    value = statistics.median(spent)
    percent = f"; {100 * value / base:.2f}% of the bare fit's CPU" if base else ""
    h.row(
        row,
        (base or 0.0) + value,
        "ms",
        goal=goal,
        peer=f"+{value:.2f} ms{percent}",
        notes="the runs' autolog.overhead_ms counted on the thread's CPU clock (the run, "
        "params, datasets, callbacks, model snapshot, summaries), added to the bare fit's "
        f"CPU row; median of {repeat} fits",
    )
    if base:
        h.rows[-1].base = base
    return value


def _thread_us(fn, number: int) -> float:
    """Microseconds of this thread's CPU per call of ``fn``: the training
    thread's own cost, without the writer thread's turns at the interpreter
    lock (it drains the points these loops queue) nor the machine's other load."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.thread_time()
        for _ in range(number):
            fn()
        return (time.thread_time() - start) / number * 1e6
    finally:
        if gc_was_enabled:
            gc.enable()


def _per_call(h, name, fn, *, number=2000) -> None:
    """One per-epoch logging call, inside a run, beside a bare log_metric."""
    if not h.wanted(f"{name}: per-epoch logging, per call"):
        return
    with autolog.start_run():
        bare, samples = [], []
        for _ in range(REPEAT):
            bare.append(_thread_us(lambda: autolog.log_metric("loss", 0.5, step=1), number))
            samples.append(_thread_us(fn, number))
    h.row(
        f"{name}: per-epoch logging, per call",
        statistics.median(samples),
        "us",
        goal="<= 10 us",
        peer=f"bare log_metric {statistics.median(bare):.1f} us in the same run",
        notes="the callback's per-epoch method called directly; thread CPU time",
    )


def _part(h, name, fn, *, number=20, unit="ms", notes="") -> None:
    h.time(name, fn, repeat=REPEAT, number=number, unit=unit, notes=notes)


def _run_parts(h, prefix: str, integration: str, params: dict) -> None:
    """Opening/closing a run with autolog's tags, and logging the fit's params."""
    from autolog import _runs, training
    from autolog._registry import registry

    config = registry.states[integration].integration.config

    def open_close() -> None:
        _runs.training_run(integration, config)
        _runs.end_run()

    _part(h, f"{prefix}: run open + close", open_close, number=10)

    def params_once() -> None:
        with autolog.start_run():
            start = time.perf_counter()
            training.log_training_params(params, None)
            params_once.spent.append((time.perf_counter() - start) * 1e3)

    params_once.spent = []
    if h.wanted(f"{prefix}: params"):
        for _ in range(REPEAT * 5):
            params_once()
        h.row(f"{prefix}: params", statistics.median(params_once.spent), "ms")


def _model_part(h, prefix: str, model, **options) -> None:
    def log() -> None:
        with autolog.start_run():
            start = time.perf_counter()
            autolog.log_model(model, "model", **options)
            log.spent.append((time.perf_counter() - start) * 1e3)

    log.spent = []
    if h.wanted(f"{prefix}: model (log_model, caller's thread)"):
        for _ in range(REPEAT * 2):
            log()
        h.row(
            f"{prefix}: model (log_model, caller's thread)",
            statistics.median(log.spent),
            "ms",
            notes="the snapshot taken on the training thread; files written by the writer",
        )


# -- the workloads ----------------------------------------------------------------------


def _boosting(h) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    X, y = _data()
    dtrain, dvalid = xgb.DMatrix(X[:1600], y[:1600]), xgb.DMatrix(X[1600:], y[1600:])
    params = {"objective": "binary:logistic", "nthread": 1}
    bare_train = _bare(xgb.train)

    class NoOp(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            return False

    def xtrain(fn, **extra):
        return lambda: fn(
            params, dtrain, ROUNDS, evals=[(dvalid, "valid")], verbose_eval=False, **extra
        )

    name = "xgboost.train 50 rounds + eval set + model"
    thread = "training thread CPU"
    _, added = _fit_rows(
        h,
        name,
        xtrain(bare_train),
        xtrain(xgb.train),
        goal="<= +3 ms",
        clock=thread,
        cpu_repeat=3 * REPEAT,
    )
    evaluation = _cpu_rows(
        h,
        f"{name}: framework evaluation (a callback makes it evaluate), training thread CPU",
        xtrain(bare_train),
        xtrain(bare_train, callbacks=[NoOp()]),
        clock=thread,
        repeat=3 * REPEAT,
        base_label="no callback",
    )
    if added is not None and evaluation is not None:
        h.row(
            f"{name}: added - evaluation (CPU rows)",
            added - (evaluation[1] - evaluation[0]),
            "ms",
            notes="the fit's added training-thread CPU less the evaluation XGBoost does for "
            "any callback (both rows above; noisy: the goal is held on the own-code row)",
        )
    _run_parts(h, "xgboost", "xgboost", {**params, "num_boost_round": ROUNDS})
    booster = bare_train(params, dtrain, ROUNDS)
    from autolog.integrations import _boosting
    from autolog.integrations.xgboost import IMPORTANCE_TYPES, XGBoostMetricsCallback

    def importance() -> None:
        with autolog.start_run() as run:
            table = _boosting.importance_table(
                IMPORTANCE_TYPES, lambda kind: booster.get_score(importance_type=kind)
            )
            _boosting.log_feature_importance(run.info.run_id, table, plot=False)

    _part(
        h,
        "xgboost: artifacts (feature importance, all on the caller's thread: before)",
        importance,
        number=5,
    )
    from autolog.integrations.xgboost import XGBoostFlavor, _importances_of_copy

    data = XGBoostFlavor().snapshot(booster).files["model.ubj"]
    _part(
        h,
        "xgboost: feature importance from the snapshot's copy (writer thread)",
        lambda: _importances_of_copy(data),
        number=5,
    )
    _model_part(h, "xgboost", booster)
    evals_log = {"valid": {"logloss": [0.5, 0.4]}, "train": {"logloss": [0.5, 0.4]}}
    callback = XGBoostMetricsCallback(None)
    step = iter(range(10**9))

    def per_round() -> None:
        callback.logger.run_id = autolog.active_run().info.run_id
        callback.after_iteration(booster, next(step), evals_log)

    _per_call(h, "xgboost", per_round)

    # LightGBM: the same rows
    ltrain = lgb.Dataset(X[:1600], y[:1600], free_raw_data=False)
    lvalid = lgb.Dataset(X[1600:], y[1600:], reference=ltrain, free_raw_data=False)
    lparams = {"objective": "binary", "num_threads": 1, "verbose": -1}
    bare_lgb = _bare(lgb.train)

    def ltrain_fn(fn, **extra):
        return lambda: fn(lparams, ltrain, ROUNDS, valid_sets=[lvalid], **extra)

    def noop(env):
        return None

    name = "lightgbm.train 50 rounds + eval set + model"
    _, added = _fit_rows(
        h,
        name,
        ltrain_fn(bare_lgb),
        ltrain_fn(lgb.train),
        goal="<= +3 ms",
        clock=thread,
        cpu_repeat=3 * REPEAT,
    )
    evaluation = _cpu_rows(
        h,
        f"{name}: framework evaluation (valid_sets), training thread CPU",
        lambda: bare_lgb(lparams, ltrain, ROUNDS),
        ltrain_fn(bare_lgb, callbacks=[noop]),
        clock=thread,
        repeat=REPEAT,
        base_label="no eval set",
        notes="LightGBM evaluates valid_sets whenever given; the bare arm of the fit row has "
        "it too, so the fit's added time is compared with it as is",
    )
    if added is not None and evaluation is not None:
        h.row(
            f"{name}: added - evaluation (CPU rows)",
            added,
            "ms",
            notes="LightGBM evaluates valid_sets with or without our callback: nothing to subtract",
        )
    _run_parts(h, "lightgbm", "lightgbm", {**lparams, "num_boost_round": ROUNDS})
    lbooster = bare_lgb(lparams, ltrain, ROUNDS)
    _model_part(h, "lightgbm", lbooster)
    from autolog.integrations.lightgbm import LightGBMMetricsCallback

    class Env:
        iteration = 0
        end_iteration = ROUNDS
        evaluation_result_list = [
            ("valid_0", "binary_logloss", 0.5, False),
            ("training", "binary_logloss", 0.4, False),
        ]

    lcallback = LightGBMMetricsCallback(None)
    env = Env()

    def lper_round() -> None:
        lcallback.logger.run_id = autolog.active_run().info.run_id
        env.iteration += 1
        lcallback(env)

    _per_call(h, "lightgbm", lper_round)


def _sklearn(h) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    X, y = _data()
    model = LogisticRegression(max_iter=200)
    bare_fit = _bare(LogisticRegression.__dict__["fit"])
    _fit_rows(
        h,
        "sklearn LogisticRegression 2000x20 + model",
        lambda: bare_fit(model, X, y),
        lambda: model.fit(X, y),
        goal="<= +3 ms",
        clock="training thread CPU",
        cpu_repeat=5 * REPEAT,
        notes="training metrics (predict + predict_proba on the training data) included",
    )
    grid = {"C": [0.1, 1.0, 10.0]}
    search = GridSearchCV(LogisticRegression(max_iter=200), grid, cv=3)
    from sklearn.model_selection._search import BaseSearchCV

    bare_search = _bare(BaseSearchCV.__dict__["fit"])
    _fit_rows(
        h,
        "sklearn GridSearchCV 3x3 + model",
        lambda: bare_search(search, X, y),
        lambda: search.fit(X, y),
        goal="<= +15 ms",
        clock="training thread CPU",
        repeat=max(3, REPEAT // 2),
    )
    _run_parts(h, "sklearn", "sklearn", model.get_params())
    _model_part(h, "sklearn", model.fit(X, y))

    from autolog.integrations import sklearn_fit

    fitted = bare_fit(LogisticRegression(max_iter=200), X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _part(
            h,
            "sklearn: framework work (training metrics: predict, predict_proba, scores)",
            lambda: sklearn_fit.training_metrics(fitted, X, y, None),
            number=5,
        )


def _keras(h) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    X, y = _data(512, 20)
    X = X.astype("float32")
    y = y.astype("float32")

    def build() -> keras.Model:
        model = keras.Sequential(
            [
                keras.Input((20,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return model

    model = build()
    owner = next(cls for cls in keras.Model.__mro__ if "fit" in cls.__dict__)
    bare_fit = _bare(owner.__dict__["fit"])
    kwargs = {"epochs": 5, "batch_size": 32, "validation_split": 0.2, "verbose": 0}
    _fit_rows(
        h,
        "keras 5 epochs + validation + model",
        lambda: bare_fit(model, X, y, **kwargs),
        lambda: model.fit(X, y, **kwargs),
        goal="<= +3%",
        clock="process CPU",
        repeat=max(3, REPEAT // 2),
        cpu_repeat=REPEAT,
    )
    _run_parts(h, "keras", "keras", {"epochs": 5, "batch_size": 32, "optimizer": "Adam"})
    _model_part(h, "keras", model)
    from autolog.integrations.keras import (
        KerasFlavor,
        _learning_rate,
        _saved_archive,
        _summary_renderer,
    )

    flavor = KerasFlavor()
    _part(
        h, "keras: model snapshot (state copied, caller's thread)", lambda: flavor.snapshot(model)
    )
    snapshot = flavor.snapshot(model)
    _part(
        h,
        "keras: model archive (.keras, writer thread)",
        lambda: snapshot.deferred["model.keras"](),
        number=3,
    )
    _part(
        h,
        "keras: model.save archive (before: all on the caller's thread)",
        lambda: _saved_archive(model),
    )

    _part(
        h,
        "keras: model summary, caller's thread (what may change, taken at on_train_begin)",
        lambda: _summary_renderer(model),
        number=50,
    )
    render = _summary_renderer(model)
    _part(h, "keras: model summary, drawn on the writer thread", render, number=5)
    from autolog.integrations.keras import _callback_class, _RateWatch

    # a plain fit: nothing in it can set the rate, read once when training begins
    callback = _callback_class(False)(None, None, True)
    callback.set_model(model)
    callback.rate = _learning_rate(model)
    # a fit with a callback of the user's: the rate variable is watched (on
    # TensorFlow), read at an epoch's end only after an assignment
    watching = _callback_class(False)(None)
    watching.set_model(model)
    watching._watch = _RateWatch.start(model)  # as on_train_begin does
    # one that assigns it every epoch (a warm-up): one TensorFlow eager read each
    reading = _callback_class(False)(None)
    reading.set_model(model)
    logs = {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7}
    step = iter(range(10**9))

    def per_epoch(ours=callback, values=logs, assigned=None):
        def call() -> None:
            ours.run_id = autolog.active_run().info.run_id
            if assigned is not None and ours._watch is not None:
                ours._watch.saw(assigned)  # what the user's assignment leaves
            ours.on_epoch_end(next(step), values)

        return call

    try:
        _per_call(h, "keras", per_epoch())
        _per_call(
            h,
            "keras (a callback of the user's: the rate watched, not assigned)",
            per_epoch(watching),
        )
        _per_call(
            h,
            "keras (a callback of the user's that assigns the rate each epoch)",
            per_epoch(watching, assigned=keras.ops.convert_to_tensor(0.001)),
        )
        # With a scheduler (ReduceLROnPlateau, LearningRateScheduler) Keras puts the
        # rate in the logs.
        per_epoch_rate_in_logs = per_epoch(reading, {**logs, "learning_rate": 0.001})
        _per_call(h, "keras (learning rate in the logs)", per_epoch_rate_in_logs)
    finally:
        watching.stop_watching()
    if h.wanted("keras: learning-rate read (optimizer.learning_rate)"):
        reads = [_thread_us(lambda: _learning_rate(model), 2000) for _ in range(REPEAT)]
        h.row(
            "keras: learning-rate read (optimizer.learning_rate)",
            statistics.median(reads),
            "us",
            notes="thread CPU; on TensorFlow one eager read of the variable, the floor of "
            "reading it (the private variable read straight measured slower)",
        )


def _lightning(h) -> None:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(1)
    # the bare arm calls the original Trainer.fit: the plain-loop integration
    # would take its optimizer steps for a loop of its own
    autolog.autolog("torch", disable=True)
    autolog.end_run()

    class Small(pl.LightningModule):
        def __init__(self, hidden: int = 16):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(20, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
            )

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    g = torch.Generator().manual_seed(0)
    X = torch.randn(1600, 20, generator=g)
    data = TensorDataset(X, X.sum(dim=1, keepdim=True))
    train, val = DataLoader(data, batch_size=100), DataLoader(data, batch_size=400)
    folder = tempfile.mkdtemp(prefix="bench-lightning-")

    def trainer():
        return pl.Trainer(
            max_epochs=4,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=folder,
        )

    bare_fit = _bare(pl.Trainer.__dict__["fit"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _fit_rows(
            h,
            "lightning 4 epochs + validation + model",
            lambda: bare_fit(trainer(), Small(), train, val),
            lambda: trainer().fit(Small(), train, val),
            goal="<= +3%",
            clock="training thread CPU",  # one torch thread: all of the training
            repeat=max(3, REPEAT // 2),
            cpu_repeat=3 * REPEAT,  # fits of 65 to 130 ms: cheap rounds
            store_row=True,
        )
        linear = TensorDataset(X, X.sum(dim=1, keepdim=True))

        class Linear(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Linear(20, 1)

            def training_step(self, batch, batch_idx):
                x, y = batch
                return torch.nn.functional.mse_loss(self.net(x), y)

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.01)

        loader = DataLoader(linear, batch_size=100)

        def trainer5():
            t = trainer()
            t.fit_loop.max_epochs = 5
            return t

        _fit_rows(
            h,
            "lightning 5 epochs Linear(20,1) batch 100 (bench_peers' row)",
            lambda: bare_fit(trainer5(), Linear(), loader),
            lambda: trainer5().fit(Linear(), loader),
            goal="<= +3%",
            clock="training thread CPU",  # one torch thread: all of the training
            repeat=max(3, REPEAT // 2),
            cpu_repeat=3 * REPEAT,  # fits of 65 to 130 ms: cheap rounds
            store_row=True,
        )
    _model_part(h, "lightning", Small())
    from autolog.integrations.lightning import _log_summary as lightning_summary

    def summary() -> None:
        module = Small()
        start = time.thread_time()
        lightning_summary(module, run_id)
        summary.spent.append((time.thread_time() - start) * 1e3)

    summary.spent = []
    if h.wanted("lightning: model summary (training thread)"):
        with autolog.start_run() as run:
            run_id = run.info.run_id
            for _ in range(REPEAT * 5):
                summary()
        h.row(
            "lightning: model summary (training thread)",
            statistics.median(summary.spent),
            "ms",
            notes="ModelSummary drawn at on_train_start: it reads each layer's mode and "
            "counts, which change during training; thread CPU",
        )
    from autolog import plugin

    metrics = {"train_loss": 0.5, "val_loss": 0.6, "learning_rate": 0.01}
    step = iter(range(10**9))
    _per_call(
        h,
        "lightning",
        lambda: plugin.log_epoch_metrics(metrics, next(step), autolog.active_run().info.run_id),
    )


def _torch_loop(h) -> None:
    import torch

    from autolog._registry import registry

    torch.set_num_threads(1)
    model = torch.nn.Linear(16, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 16), torch.randn(32, 1)
    steps = 500 if QUICK else 2000

    def loop() -> float:
        start = time.thread_time()
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        return (time.thread_time() - start) / steps * 1e6

    name = "plain torch loop, per optimizer step"
    if not h.wanted(name):
        return
    bare, logged = [], []
    for _ in range(REPEAT):
        autolog.autolog("torch", disable=True)
        bare.append(loop())
        autolog.autolog("torch", silent=True, log_models=False)
        logged.append(loop())
    b, o = statistics.median(bare), statistics.median(logged)
    h.row(
        f"{name}: added (loop, interleaved)",
        o - b,
        "us",
        goal="<= 10 us",
        peer=f"bare step {b:.1f} us; x{o / b:.2f}",
        notes=f"thread CPU time, median of {REPEAT} rounds of {steps} steps (Linear 16->1)",
    )
    # our hooks alone, per step: the backward observer and the step hook
    integration = registry.states["torch"].integration
    loss = torch.nn.functional.mse_loss(model(x), y).detach()
    wrapper = torch.autograd.backward

    def nothing(*args, **kwargs):
        return None

    observed = type(wrapper)(nothing, wrapper._self_wrapper)
    number = 5000
    hooks = [
        _thread_us(lambda: observed(loss), number)
        - _thread_us(lambda: nothing(loss), number)
        + _thread_us(lambda: integration._on_optimizer_step(optimizer, (), {}), number)
        for _ in range(REPEAT)
    ]
    h.row(
        f"{name}: our hooks (backward observer + step hook)",
        statistics.median(hooks),
        "us",
        goal="<= 10 us",
        notes="both hooks called directly, thread CPU time: the Python we add to each step",
    )
    autolog.end_run()
    autolog.autolog("torch", disable=True)


def run(h) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-overhead-")
    autolog.set_tracking_uri(str(Path(tmp) / "mlruns"))
    warnings.simplefilter("ignore")
    load = os.getloadavg()[0]
    h.row(
        "machine load (1-minute average) while measuring",
        load,
        "load",
        notes=f"{os.cpu_count()} CPUs: ratios against bare training in the same run hold, "
        "absolute times do not",
    )
    autolog.autolog(silent=True)
    for section in (_boosting, _sklearn, _keras, _lightning):
        names = _SECTION_NAMES[section.__name__]
        # a filter naming another framework skips the section's set-up; a
        # generic one ("per-epoch") runs each section, whose rows check it
        if (
            not h.filters
            or any(n in f or h.wanted(n) for f in h.filters for n in names)
            or not any(
                n in f for f in h.filters for names_ in _SECTION_NAMES.values() for n in names_
            )
        ):
            section(h)
    autolog.autolog(disable=True)
    _torch_loop(h)


_SECTION_NAMES = {
    "_boosting": ("xgboost", "lightgbm"),
    "_sklearn": ("sklearn",),
    "_keras": ("keras",),
    "_lightning": ("lightning",),
}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from run import Harness, table

    harness = Harness([a for a in sys.argv[1:] if not a.startswith("--")])
    harness.module = "overhead"
    try:
        run(harness)
    finally:
        print(table(harness.rows))
