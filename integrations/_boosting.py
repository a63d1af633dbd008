"""What the XGBoost and LightGBM integrations share.

Both libraries train boosters round by round, report ``(dataset, metric)``
scores after each round, stop early on a validation metric and rank features
by several importance types. The rules for turning that into params, metric
keys and artifacts live here once (STYLE.md: no copy-paste across
integrations); each integration only knows where its framework keeps them.

Naming, the same for both frameworks:

- per-iteration metric ``<dataset>-<metric>`` (``validation_0-logloss``,
  ``valid_0-auc``), step = the iteration (0-based, as the callbacks count);
- in ``cv``: ``<dataset>-<metric>-mean`` and ``<dataset>-<metric>-std``;
- artifact ``feature_importance.json``: ``{importance_type: {feature: value}}``,
  and ``feature_importance.png`` when the option ``log_feature_importance_plot``
  is on (matplotlib; it costs more than all the rest together).

:class:`BoostingIntegration` is the template of both integrations: ``train``,
``cv`` and the scikit-learn API's ``fit`` are handled here once; each
integration fills in the hooks with where its framework keeps things.

Nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence

from autolog import plugin

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    from typing import Any, ClassVar

__all__ = [
    "FEATURE_IMPORTANCE_FILE",
    "BoostingIntegration",
    "FEATURE_IMPORTANCE_PLOT",
    "IterationMetricsLogger",
    "booster_params",
    "describe",
    "importance_table",
    "input_example",
    "log_feature_importance",
    "log_model",
    "log_evaluation_history",
    "training_arguments",
]

FEATURE_IMPORTANCE_FILE = "feature_importance.json"
FEATURE_IMPORTANCE_PLOT = "feature_importance.png"
_PLOTTED_FEATURES = 20
_INPUT_EXAMPLE_ROWS = 5

#: one score of one round: (dataset, metric, value, standard deviation or None)
Score = "tuple[str, str, Any, Any]"


# -- params ------------------------------------------------------------------


def booster_params(params: Any) -> dict[str, Any]:
    """Booster params as a dict. XGBoost also takes a list of pairs, where a
    repeated key (``eval_metric``) means several values: they become a list."""
    if params is None:
        return {}
    if isinstance(params, Mapping):
        return dict(params)
    merged: dict[str, Any] = {}
    for key, value in params:
        if key in merged:
            previous = merged[key]
            merged[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            merged[key] = value
    return merged


def describe(value: Any) -> Any:
    """A param value that reads well: functions and callable objects (custom
    objectives, metrics, callbacks) by name instead of ``<function f at 0x...>``."""
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if callable(value) and not isinstance(value, type):
        return getattr(value, "__name__", None) or type(value).__name__
    return value


def training_arguments(
    arguments: Mapping[str, Any], not_params: frozenset[str], params_argument: str = "params"
) -> dict[str, Any]:
    """The params of one ``train``/``cv`` call: the booster params at top level,
    then every other argument except ``not_params`` (the data, the model to
    continue from, the callbacks) and those left at None (not used). A training
    argument whose name is also a booster param is left out: the booster param
    is what configured the booster."""
    out = {str(k): describe(v) for k, v in booster_params(arguments.get(params_argument)).items()}
    for name, value in arguments.items():
        if name == params_argument or name in not_params or name in out or value is None:
            continue
        out[name] = describe(value)
    return out


# -- per-iteration metrics ------------------------------------------------------


class IterationMetricsLogger:
    """The state and logging rule of our per-iteration callbacks.

    Holds only picklable values (the run id, counters), because the frameworks
    pickle callbacks (distributed training, ``copy.deepcopy`` of estimators).
    Each round's scores become ONE ``log_metrics`` call.
    """

    def __init__(self, integration: str, run_id: str | None):
        self.integration = integration
        self.run_id = run_id
        #: the last iteration seen (the step of the last metrics logged)
        self.last_iteration: int | None = None
        #: the metric keys of the last iteration, in the framework's order
        self.last_keys: tuple[str, ...] = ()

    def log_iteration(self, iteration: int, scores: Iterable[Score]) -> None:
        metrics: dict[str, Any] = {}
        for dataset, metric, value, std in scores:
            key = f"{dataset}-{metric}"
            if std is None:
                metrics[key] = value
            else:
                metrics[f"{key}-mean"] = value
                metrics[f"{key}-std"] = std
        self.last_iteration = iteration
        if metrics:
            self.last_keys = tuple(metrics)
            plugin.log_epoch_metrics(metrics, iteration, self.run_id)


def log_evaluation_history(history: Mapping[str, Mapping[str, Sequence[Any]]], run_id: str) -> None:
    """Log a finished ``{dataset: {metric: [value per iteration]}}`` history (the
    ``evals_result()`` of both libraries), one enqueue per iteration: for the
    rare models that take no callback (XGBoost's random forests)."""
    rounds = max((len(v) for metrics in history.values() for v in metrics.values()), default=0)
    logger = IterationMetricsLogger("", run_id)
    for i in range(rounds):
        logger.log_iteration(
            i,
            (
                (dataset, metric, values[i], None)
                for dataset, metrics in history.items()
                for metric, values in metrics.items()
                if i < len(values)
            ),
        )


# -- after training --------------------------------------------------------------


def log_feature_importance(
    run_id: str,
    importances: Mapping[str, Mapping[str, float]] | Callable[[], Any],
    *,
    plot: bool,
) -> None:
    """``feature_importance.json`` (every importance type), and a bar chart per
    type when ``plot`` (matplotlib, imported only then).

    ``importances`` is the table, or a function of no arguments that returns
    it from a copy of the model (never the live one), called by the writer
    thread: either way the JSON encoding and the chart are made there, so
    the training thread pays only for what must be read from the model."""
    if callable(importances):
        table = _Once(importances)
    else:
        if not any(importances.values()):
            return  # no tree split on anything (e.g. zero rounds): nothing to rank
        table = _Once(lambda: importances)
    plugin.log_bytes(lambda: _importance_json(table()), FEATURE_IMPORTANCE_FILE, run_id=run_id)
    if plot:
        plugin.log_bytes(lambda: _importance_png(table()), FEATURE_IMPORTANCE_PLOT, run_id=run_id)


class _Once:
    """A function of no arguments, called once (the writer may retry a write)."""

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._value: Any = None

    def __call__(self) -> Any:
        if self._value is None:
            self._value = self._make()
        return self._value


def _importance_json(importances: Mapping[str, Mapping[str, float]]) -> bytes:
    import json

    table = {kind: dict(values) for kind, values in importances.items()}
    return json.dumps(table, indent=2).encode("utf-8")


def _importance_png(importances: Mapping[str, Mapping[str, float]]) -> bytes:
    import io

    buffer = io.BytesIO()
    _importance_figure(importances).savefig(buffer, format="png")
    return buffer.getvalue()


def _importance_figure(importances: Mapping[str, Mapping[str, float]]) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display needed (servers, CI)
    from matplotlib.figure import Figure  # a Figure, not pyplot: no global state

    kinds = [k for k, v in importances.items() if v]
    figure = Figure(figsize=(6, 0.3 * _PLOTTED_FEATURES * len(kinds) + 1), tight_layout=True)
    for index, kind in enumerate(kinds, start=1):
        top = sorted(importances[kind].items(), key=lambda item: item[1])[-_PLOTTED_FEATURES:]
        axes = figure.add_subplot(len(kinds), 1, index)
        axes.barh([name for name, _ in top], [value for _, value in top])
        axes.set_title(f"feature importance ({kind})")
    return figure


def log_model(call: Any, model: Any, example: Any = None, snapshot: Any = None) -> None:
    """The trained model, in its native format, when ``log_models`` is on;
    ``snapshot``: ``(flavor class, ModelSnapshot)`` already taken of it."""
    if call.config.log_models:
        if snapshot is None:
            plugin.log_model(model, "model", input_example=example, run_id=call.run_id)
        else:
            flavor, taken = snapshot
            plugin.log_model(
                model,
                "model",
                input_example=example,
                run_id=call.run_id,
                flavor=flavor,
                snapshot=taken,
            )


def input_example(call: Any, data: Any) -> Any:
    """The first rows of the training data when ``log_input_examples`` is on, else None."""
    if not call.config.log_input_examples or data is None:
        return None
    rows = getattr(data, "iloc", data)  # pandas by position, numpy and lists by slice
    return rows[:_INPUT_EXAMPLE_ROWS]


def importance_table(
    kinds: Iterable[str], scores_of: Callable[[str], Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """``{kind: {feature: float}}`` from a framework's per-kind importance query."""
    return {kind: {str(f): float(v) for f, v in scores_of(kind).items()} for kind in kinds}


# -- the template of both integrations ---------------------------------------------


class BoostingIntegration(plugin.Integration):
    """``train``, ``cv`` and the scikit-learn API's ``fit``, one run each: what
    XGBoost and LightGBM share. A subclass sets the class attributes and fills
    in the hooks; ``stopping`` is whatever its :meth:`stopping` returns (the
    early-stopping settings of one training), handed back to the summaries."""

    options = {"log_feature_importance_plot": plugin.Option(False, bool)}
    #: arguments of train()/cv() that are data, outputs or objects, not settings
    not_params: ClassVar[frozenset[str]] = frozenset()
    #: the importance types in feature_importance.json
    importance_types: ClassVar[tuple[str, ...]] = ()
    #: modules of estimators whose fit runs elsewhere (dask, spark): not wrapped
    other_runtimes: ClassVar[tuple[str, ...]] = ()

    def patch(self, patcher: plugin.Patcher, module: Any) -> None:
        # Users call the package attributes (xgboost.train re-exports
        # xgboost.training.train); the scikit-learn API calls the inner train
        # directly, inside its own patched fit.
        patcher.wrap(module, "train", self.on_train)
        patcher.wrap(module, "cv", self.on_cv)
        patcher.wrap_subclasses(
            self.estimator_base(module),
            "fit",
            self.on_fit,
            include=lambda cls: not cls.__module__.startswith(self.other_runtimes),
        )

    # -- the hooks ------------------------------------------------------------------

    def estimator_base(self, module: Any) -> type:
        """The scikit-learn API's base class (``XGBModel``, ``LGBMModel``)."""
        raise NotImplementedError

    def new_callback(self, run_id: str | None) -> Any:
        """Our per-iteration callback; its ``logger`` is an IterationMetricsLogger."""
        raise NotImplementedError

    def stopping(self, params: Any, callbacks: Any, rounds: Any) -> Any:
        """The early-stopping settings of a training (None: none), from its
        params, callbacks and ``early_stopping_rounds`` argument."""
        raise NotImplementedError

    def early_stopping(self, booster: Any, callback: Any, stopping: Any) -> dict[str, Any]:
        """:func:`plugin.log_early_stopping` keywords when early stopping ran, else {}."""
        raise NotImplementedError

    def cv_early_stopping(self, results: Any, callback: Any, stopping: Any) -> dict[str, Any]:
        """The same for ``cv`` (with early stopping configured), from its result table."""
        raise NotImplementedError

    def importances(self, booster: Any, kind: str) -> Mapping[str, float]:
        """``{feature: value}`` of one importance type."""
        raise NotImplementedError

    def model_snapshot(self, call: plugin.Call, model: Any, booster: Any) -> Any:
        """``(flavor class, ModelSnapshot)`` of the trained model, taken on the
        training thread for :meth:`importance_table` to share (None: none)."""
        return None

    def importance_table(self, booster: Any, snapshot: Any) -> Any:
        """The importance table, or a function that makes it on the writer
        thread from ``snapshot`` (what :meth:`model_snapshot` took), never from
        the live booster; None when there is nothing to rank."""
        return importance_table(self.importance_types, lambda kind: self.importances(booster, kind))

    def fitted(self, model: Any) -> Any:
        """The booster of a fitted scikit-learn API model."""
        raise NotImplementedError

    def fit_params(self, call: plugin.Call, model: Any) -> dict[str, Any]:
        """The params of a scikit-learn API fit: ``get_params()``, readable."""
        return {k: describe(v) for k, v in model.get_params().items()}

    def add_fit_callback(self, call: plugin.Call, model: Any, callback: Any) -> Any:
        """Add ``callback`` to this fit; returns what undoes it after the fit, or None."""
        call.set_argument("callbacks", plugin.copy_callbacks(call.argument("callbacks"), callback))
        return None

    def after_fit(self, call: plugin.Call, model: Any) -> None:
        """Anything to log once a scikit-learn API fit returned."""

    # -- the handlers -----------------------------------------------------------------

    @plugin.datasets_from("dtrain", "train_set")  # xgboost / lightgbm
    def on_train(self, call: plugin.Call) -> Generator[None, Any, None]:
        callback, stopping = self._start(call)
        booster = yield
        self._finish(call, booster, booster, callback, stopping)

    @plugin.datasets_from("dtrain", "train_set")
    def on_cv(self, call: plugin.Call) -> Generator[None, Any, None]:
        callback, stopping = self._start(call)
        results = yield
        if stopping and callback.logger.last_keys:
            summary = self.cv_early_stopping(results, callback, stopping)
            if summary:
                plugin.log_early_stopping(call.run_id, **summary)

    @plugin.datasets_from("X", "y")
    def on_fit(self, call: plugin.Call) -> Generator[None, Any, None]:
        model = call.instance
        plugin.log_params(self.fit_params(call, model), call.run_id)
        example = input_example(call, call.argument("X"))
        stopping = self.stopping(model.get_params(), call.argument("callbacks"), None)
        callback = self.new_callback(call.run_id)
        undo = self.add_fit_callback(call, model, callback)
        try:
            yield
        finally:
            if undo is not None:
                undo()
        self.after_fit(call, model)
        self._finish(call, self.fitted(model), model, callback, stopping, example)

    def _start(self, call: plugin.Call) -> tuple[Any, Any]:
        """Params and our callback for ``train`` / ``cv``; the training's stopping."""
        arguments = call.arguments()
        plugin.log_params(training_arguments(arguments, self.not_params), call.run_id)
        callback = self.new_callback(call.run_id)
        call.set_argument("callbacks", plugin.copy_callbacks(arguments["callbacks"], callback))
        rounds = arguments.get("early_stopping_rounds")
        return callback, self.stopping(arguments.get("params"), arguments["callbacks"], rounds)

    def _finish(
        self,
        call: plugin.Call,
        booster: Any,
        model: Any,
        callback: Any,
        stopping: Any,
        example: Any = None,
    ) -> None:
        summary = self.early_stopping(booster, callback, stopping)
        if summary:
            plugin.log_early_stopping(call.run_id, **summary)
        snapshot = self.model_snapshot(call, model, booster)
        importances = self.importance_table(booster, snapshot)
        if importances is not None:
            log_feature_importance(
                call.run_id, importances, plot=call.config.log_feature_importance_plot
            )
        log_model(call, model, example, snapshot)
