"""CatBoost autologging: ``CatBoost.fit`` and the scikit-learn-style classes.

::

    import autolog
    from catboost import CatBoostClassifier
    autolog.autolog("catboost")
    model = CatBoostClassifier(iterations=200, eval_metric="AUC")
    model.fit(X, y, eval_set=(X_valid, y_valid), early_stopping_rounds=20)

Each fit (``CatBoost``, ``CatBoostClassifier``, ``CatBoostRegressor``,
``CatBoostRanker``, and ``catboost.train``, which fits a ``CatBoost``) gives
one run with:

- **params**: the model's ``get_params()`` (what you set), the fit's settings
  (``early_stopping_rounds``, ``use_best_model``, ``cat_features``, ...; not
  the data), and after the fit the values CatBoost chose for the essentials you
  left out (``learning_rate``, which it picks from the data, ``iterations``,
  ``depth``, ``loss_function``, ``eval_metric``, ``random_seed``);
- **metrics per iteration** of every evaluated dataset, ``<dataset>-<metric>``
  as CatBoost names them (``learn-Logloss``, ``validation-AUC``,
  ``validation_1-RMSE`` with several eval sets), step = iteration (0-based;
  with ``metric_period`` only the iterations CatBoost evaluated), logged
  when the fit returns, from ``get_evals_result()`` (see *live metrics*);
- with an eval set: ``best_iteration`` and ``best_score`` (of the eval metric
  on the last eval set, the one CatBoost's overfitting detector and
  ``use_best_model`` watch), ``stopped_iteration`` (the last iteration run),
  params ``early_stopping_monitor`` and, when one is set,
  ``early_stopping_patience``;
- ``feature_importance.json``: ``{"PredictionValuesChange": {feature: value}}``;
- the model (``log_models``) in CatBoost's native ``.cbm`` format, which any
  CatBoost reads; :func:`autolog.load_model` gives back an instance of the
  same class.

**Live metrics.** By default the per-iteration metrics are logged when
``fit`` returns: any Python callback makes CatBoost build its whole metric
history anew for the callback at every iteration, a cost that grows with the
square of the iterations (+25 % on 1,000 iterations of 2,000 x 20 rows,
whatever the callback does). ``autolog.autolog("catboost",
live_metrics=True)`` logs each iteration as it ends instead, through our
callback (in a copy of your ``callbacks``): to watch a long training, or
keep the iterations of one that is interrupted. CatBoost takes no Python
callback on GPU (``task_type="GPU"``): there the metrics are always logged
after the fit.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from autolog import plugin
from autolog.plugin import Flavor, ModelSnapshot

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    import types
    from collections.abc import Generator, Mapping
    from typing import Any

    from autolog.plugin import Call

__all__ = ["CatBoostFlavor", "CatBoostIntegration", "CatBoostMetricsCallback"]

FEATURE_IMPORTANCE_FILE = "feature_importance.json"
IMPORTANCE_TYPE = "PredictionValuesChange"
_MODEL_FILE = "model.cbm"
# fit arguments that are data, outputs or objects, not settings
_NOT_PARAMS = frozenset(
    {
        "X",
        "y",
        "pairs",
        "graph",
        "sample_weight",
        "group_id",
        "group_weight",
        "subgroup_id",
        "pairs_weight",
        "baseline",
        "eval_set",
        "init_model",
        "callbacks",
        "log_cout",
        "log_cerr",
        "column_description",
        "plot_file",
        "snapshot_file",
    }
)
# what CatBoost chooses when you do not: logged after the fit
_RESOLVED = ("iterations", "learning_rate", "depth", "loss_function", "eval_metric", "random_seed")
_PATIENCE = ("early_stopping_rounds", "od_wait")
_MAX_LIST = 50  # a longer list of settings (cat_features of a wide table) is cut by log_params


class CatBoostMetricsCallback:
    """Logs each iteration's new evaluation values, one ``log_metrics`` call.

    CatBoost calls ``after_iteration(info)`` with ``info.iteration`` counting
    from 1 and ``info.metrics`` holding the whole history so far
    (``{dataset: {metric: [value, ...]}}``); with ``metric_period`` a metric's
    list grows only on the iterations it was evaluated, so only keys whose list
    grew are logged. Holds picklable state only (CatBoost may copy callbacks).
    """

    def __init__(self, run_id: str | None):
        self.run_id = run_id
        #: history length per metric key seen so far
        self.lengths: dict[str, int] = {}
        #: the step of the last iteration run (0-based)
        self.last_iteration: int | None = None

    def after_iteration(self, info: Any) -> bool:
        with plugin.guard("catboost", "in the per-iteration callback"):
            step = info.iteration - 1
            self.last_iteration = step
            metrics = {}
            lengths = self.lengths
            for dataset, values in info.metrics.items():
                for metric, history in values.items():
                    key = f"{dataset}-{metric}"
                    size = len(history)
                    if size and lengths.get(key) != size:
                        lengths[key] = size
                        metrics[key] = history[-1]
            if metrics:
                plugin.log_epoch_metrics(metrics, step, self.run_id)
        return True  # never ask CatBoost to stop


class CatBoostFlavor(Flavor):
    """CatBoost models (``CatBoost`` and the scikit-learn-style classes) in CatBoost's
    native ``.cbm`` format."""

    name = "catboost"
    distribution = "catboost"
    module = "catboost"

    def handles(self, model: Any) -> bool:
        import catboost

        return isinstance(model, catboost.CatBoost)

    def snapshot(self, model: Any) -> ModelSnapshot:
        data = plugin.saved_bytes(lambda path: model.save_model(str(path), format="cbm"), "m.cbm")
        return ModelSnapshot(
            {_MODEL_FILE: data},
            {
                "model_file": _MODEL_FILE,
                "format": "cbm",
                "class": plugin.class_path(model),
                "catboost_class": plugin.class_path(_catboost_base(type(model))),
            },
        )

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        import catboost

        cls = _import_class(metadata.get("class", ""))
        if not (isinstance(cls, type) and issubclass(cls, catboost.CatBoost)):
            # a subclass defined in the training script: CatBoost's own class loads it
            cls = _import_class(metadata.get("catboost_class", "")) or catboost.CatBoost
        model = cls()
        model.load_model(str(Path(path) / metadata["model_file"]), format="cbm")
        return model


def _catboost_base(cls: type) -> type:
    """The first class of CatBoost's own in the MRO (for subclasses of the user's)."""
    return next((k for k in cls.__mro__ if k.__module__.split(".")[0] == "catboost"), cls)


def _import_class(path: str) -> Any:
    module_name, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return None


class CatBoostIntegration(plugin.Integration):
    """Autologging for CatBoost (see the module documentation)."""

    name = "catboost"
    modules = ("catboost",)
    distribution = "catboost"
    supported_versions = ">=1.2,<2"
    options = {
        "live_metrics": plugin.Option(
            False, bool, doc="log each iteration's metrics as it ends (a callback)"
        )
    }
    flavors = (CatBoostFlavor,)

    def patch(self, patcher: plugin.Patcher, module: types.ModuleType) -> None:
        # CatBoostClassifier.fit and the others override CatBoost.fit and call
        # the same internal _fit: each is wrapped, nested calls pass through.
        patcher.wrap_subclasses(module.CatBoost, "fit", self.on_fit)

    @plugin.datasets_from("X", "y")
    def on_fit(self, call: Call) -> Generator[None, Any, None]:
        model = call.instance
        run_id = call.run_id
        user_params = model.get_params()
        plugin.log_params({**user_params, **_fit_settings(call)}, run_id)
        callback = None
        gpu = str(user_params.get("task_type", "CPU")).upper() == "GPU"
        if call.config.live_metrics and not gpu:
            callback = CatBoostMetricsCallback(run_id)
            callbacks = plugin.copy_callbacks(call.argument("callbacks"), callback)
            call.set_argument("callbacks", callbacks)
        yield
        all_params = model.get_all_params()
        resolved = {k: all_params[k] for k in _RESOLVED if k not in user_params and k in all_params}
        plugin.log_params(resolved, run_id)
        stopped = callback.last_iteration if callback is not None else None
        if callback is None:
            period = call.argument("metric_period") or user_params.get("metric_period") or 1
            history = model.get_evals_result()
            stopped = _log_history(history, int(period), all_params, run_id)
        _log_best(call, model, all_params, stopped)
        _log_feature_importance(model, run_id)
        if call.config.log_models:
            plugin.log_model(model, "model", run_id=run_id)


def _fit_settings(call: Call) -> dict[str, Any]:
    settings = {}
    for name, value in call.arguments().items():
        if name in _NOT_PARAMS or name == "self" or value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = list(value[:_MAX_LIST]) + (["..."] if len(value) > _MAX_LIST else [])
        elif not isinstance(value, (bool, int, float, str)):
            continue  # an object (a Pool, a stream): no setting
        settings[name] = value
    return settings


def _log_history(
    history: Mapping[str, Mapping[str, Any]],
    period: int,
    all_params: Mapping[str, Any],
    run_id: str | None,
) -> int | None:
    """A finished ``{dataset: {metric: [values]}}`` history, one enqueue per
    iteration evaluated, at the steps the callback would have logged; returns
    the last iteration run (None without a history)."""
    ran = _iterations_run(history, period, all_params)
    if ran is None:
        return None
    by_step: dict[int, dict[str, Any]] = {}
    for dataset, metrics in history.items():
        for metric, series in metrics.items():
            key = f"{dataset}-{metric}"
            for step, value in zip(_evaluated_iterations(len(series), period, ran), series):
                by_step.setdefault(step, {})[key] = value
    for step in sorted(by_step):
        plugin.log_epoch_metrics(by_step[step], step, run_id)
    return ran - 1


def _iterations_run(
    history: Mapping[str, Mapping[str, Any]], period: int, all_params: Mapping[str, Any]
) -> int | None:
    """How many iterations the fit ran. A metric is evaluated at every
    iteration unless ``metric_period`` says otherwise, and the eval metric on
    the eval sets always while the overfitting detector watches (``od_type``
    set): then the longest history is the count; else every iteration ran."""
    longest = max((len(v) for metrics in history.values() for v in metrics.values()), default=0)
    if not longest:
        return None
    watched = "od_type" in all_params and any(name != "learn" for name in history)
    if period <= 1 or watched:
        return longest
    return max(longest, int(all_params.get("iterations") or 0))


def _evaluated_iterations(length: int, period: int, ran: int) -> list[int]:
    """The iterations (0-based) of a metric history of ``length`` values out of
    ``ran`` iterations: all of them, or every ``period``-th, plus the last
    iteration when CatBoost evaluated it too (a training that ran to its end)."""
    if length >= ran:
        return list(range(ran))
    steps = list(range(0, ran, period))[:length]
    if length == len(steps) + 1:
        steps.append(ran - 1)
    return steps


def _log_best(call: Call, model: Any, all_params: Mapping[str, Any], stopped: int | None) -> None:
    best_iteration = model.get_best_iteration()
    if best_iteration is None:
        return  # no eval set: nothing was watched
    best_scores = model.get_best_score()
    datasets = [name for name in best_scores if name != "learn"]
    eval_metric = str(all_params.get("eval_metric", ""))
    monitor = best_score = None
    if datasets:
        watched = best_scores[datasets[-1]]
        # CatBoost reports a metric with options by its bare name ("Quantile:alpha=0.5")
        name = eval_metric if eval_metric in watched else eval_metric.split(":")[0]
        if name in watched:
            monitor, best_score = f"{datasets[-1]}-{name}", watched[name]
    patience = next(
        (
            value
            for value in (call.argument("early_stopping_rounds"), *map(model.get_param, _PATIENCE))
            if value is not None
        ),
        None,
    )
    plugin.log_early_stopping(
        call.run_id,
        stopped_iteration=stopped,
        best_iteration=best_iteration,
        best_score=best_score,
        monitor=monitor,
        patience=patience,
    )


def _log_feature_importance(model: Any, run_id: str | None) -> None:
    try:
        values = model.get_feature_importance(type=IMPORTANCE_TYPE)
    except Exception:  # CatBoost cannot rank this model's features without data
        return
    names = model.feature_names_ or [str(i) for i in range(len(values))]
    table = {str(name): float(value) for name, value in zip(names, values)}
    if any(table.values()):
        plugin.log_dict({IMPORTANCE_TYPE: table}, FEATURE_IMPORTANCE_FILE, run_id=run_id)
