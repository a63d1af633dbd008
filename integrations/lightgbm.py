"""LightGBM autologging: ``lightgbm.train``, ``lightgbm.cv`` and the scikit-learn API.

::

    import autolog, lightgbm as lgb
    autolog.autolog("lightgbm")
    booster = lgb.train(params, train_set, 50, valid_sets=[valid_set],
                        callbacks=[lgb.early_stopping(5)])
    # or: lgb.LGBMClassifier(n_estimators=50).fit(X, y, eval_set=[(Xv, yv)])

Each call gives one run (the scikit-learn API calls ``train`` inside; that
inner call logs nothing of its own) with:

- params: the booster params, ``num_boost_round`` and the other training
  arguments except the data; for the scikit-learn API its ``get_params()``
  and the ``fit`` settings (``eval_metric``, ``categorical_feature``, ...);
- metrics per iteration, ``<dataset>-<metric>`` as LightGBM names them
  (``valid_0-auc``, ``training-binary_logloss``), step = iteration (0-based);
  in ``cv`` ``valid-<metric>-mean`` / ``valid-<metric>-std`` (LightGBM's own
  result keys are ``"valid <metric>-mean"`` / ``"-stdv"``; ours follow the
  ``<dataset>-<metric>`` rule shared with XGBoost);
- with early stopping: param ``early_stopping_monitor``, the metric that
  stopped the training (LightGBM watches every metric of every validation
  set, or only the first metric with ``first_metric_only``, and stops at the
  first that stops improving: that one is named, not the first listed), and
  ``early_stopping_patience``; metrics ``best_iteration``, the step of that
  metric's best round, ``best_score``, its value there, and
  ``stopped_iteration``, the step of the last round run. Steps count from 0
  as for every boosting metric and as in XGBoost; LightGBM's own
  ``booster.best_iteration`` counts rounds from 1 (what
  ``predict(num_iteration=)`` takes): it is ``best_iteration + 1``;
- ``feature_importance.json`` with the importance types split and gain;
  ``feature_importance.png`` too with ``autolog(log_feature_importance_plot=True)``;
- the model (``log_models``) as LightGBM's text model file, which any
  LightGBM reads; :func:`autolog.load_model` gives back a ``Booster``, or the
  same scikit-learn API class with that booster inside.
"""

from __future__ import annotations

import copy
from pathlib import Path

from autolog import plugin
from autolog.integrations import _boosting
from autolog.plugin import Flavor, ModelSnapshot, guard

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    import types
    from typing import Any

    from autolog.plugin import Call

__all__ = ["LightGBMFlavor", "LightGBMIntegration", "LightGBMMetricsCallback"]

IMPORTANCE_TYPES = ("split", "gain")

_NOT_PARAMS = frozenset({"train_set", "valid_sets", "init_model", "callbacks", "folds", "fpreproc"})
# the settings of the scikit-learn API's fit that are not data
_FIT_SETTINGS = ("eval_names", "eval_metric", "feature_name", "categorical_feature")
# LightGBM's names for the early-stopping patience param
_PATIENCE_ALIASES = (
    "early_stopping_round",
    "early_stopping_rounds",
    "early_stopping",
    "n_iter_no_change",
)
_MODEL_FILE = "model.txt"
_ESTIMATOR_FILE = "estimator.pkl"


class LightGBMMetricsCallback:
    """Logs each round's evaluation results, one ``log_metrics`` call per round.

    A plain callable, as LightGBM's callbacks are; ``order`` 20 runs it before
    LightGBM's early stopping (30), which raises to stop, so the last round is
    logged too.
    """

    def __init__(self, run_id: str | None):
        self.order = 20  # an instance attribute: LightGBM sets a default in __dict__
        self.before_iteration = False
        self.logger = _boosting.IterationMetricsLogger("lightgbm", run_id)
        # The scores LightGBM's early stopping compares, to tell afterwards
        # which metric stopped the training (see _stopping_metric).
        self.scored: tuple[tuple[str, str, bool], ...] = ()  # (dataset, metric, maximize)
        self.values: list[tuple[float, ...]] = []  # per round, in that order
        self.first_iteration = 0
        self.end_iteration = 0

    def __call__(self, env: Any) -> None:
        with guard("lightgbm", "in the per-iteration callback"):
            results = env.evaluation_result_list or ()
            # (dataset, metric, value, higher_is_better[, std in cv]); a named
            # tuple since LightGBM 4.7, a plain tuple before.
            self.logger.log_iteration(
                env.iteration, [(r[0], r[1], r[2], r[4] if len(r) > 4 else None) for r in results]
            )
            if results:
                if not self.values:
                    self.scored = tuple((r[0], r[1], bool(r[3])) for r in results)
                    self.first_iteration = env.iteration
                self.end_iteration = env.end_iteration
                self.values.append(tuple(r[2] for r in results))


class LightGBMFlavor(Flavor):
    """LightGBM models (``Booster`` and the scikit-learn API) as LightGBM's text model.

    A scikit-learn API model also keeps its wrapper (the fitted label encoder,
    class list, params), cloudpickled without the booster, next to the text.
    """

    name = "lightgbm"
    distribution = "lightgbm"
    module = "lightgbm"
    priority = 10  # the scikit-learn API models are sklearn estimators too

    def handles(self, model: Any) -> bool:
        import lightgbm

        return isinstance(model, (lightgbm.Booster, lightgbm.LGBMModel))

    def snapshot(self, model: Any) -> ModelSnapshot:
        import lightgbm

        if isinstance(model, lightgbm.Booster):
            snap = ModelSnapshot({}, {"class": plugin.class_path(model)})
            booster = model
        else:
            booster = model.booster_  # raises when not fitted
            wrapper = copy.copy(model)
            wrapper._Booster = None  # the booster travels as text, not twice
            snap = plugin.pickle_snapshot(wrapper, _ESTIMATOR_FILE)
        snap.metadata["model_file"] = _MODEL_FILE
        if getattr(booster, "train_set", None) is not None:
            # a booster that can train on (keep_training_booster=True): its text now
            snap.files[_MODEL_FILE] = booster.model_to_string().encode("utf-8")
        else:
            # What lightgbm.train returns by default (and the scikit-learn API's
            # booster): reloaded from its own text, its training data freed, it
            # trains no more, so the writer thread writes its text (a few ms
            # for 50 rounds). The rounds to save are read here.
            snap.deferred[_MODEL_FILE] = _model_text(booster, booster.best_iteration)
        return snap

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        import lightgbm

        booster = lightgbm.Booster(model_file=str(Path(path) / metadata["model_file"]))
        if "pickled_file" not in metadata:
            return booster
        model = plugin.load_pickle(path, metadata)  # code from the file: trusted models only
        model._Booster = booster
        return model


def _model_text(booster: Any, num_iteration: Any) -> Any:
    def text() -> bytes:
        return booster.model_to_string(num_iteration=num_iteration).encode("utf-8")

    return text


#: LightGBM's early stopping as configured: (patience, first_metric_only, min_delta)
StoppingRule = "tuple[int, bool, Any]"


def _stopping_rule(params: Any, callbacks: Any) -> StoppingRule | None:
    """The early stopping of a training, from the params (the patience under any
    alias, ``first_metric_only``, ``early_stopping_min_delta``) or an
    ``early_stopping`` callback; None without."""
    params = params or {}
    for alias in _PATIENCE_ALIASES:
        value = params.get(alias)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            first_only = bool(params.get("first_metric_only", False))
            return value, first_only, params.get("early_stopping_min_delta", 0.0)
    for callback in callbacks or ():
        rounds = getattr(callback, "stopping_rounds", None)
        if isinstance(rounds, int) and rounds > 0:
            first_only = bool(getattr(callback, "first_metric_only", False))
            return rounds, first_only, getattr(callback, "min_delta", 0.0)
    return None


def _deltas(min_delta: Any, scored: tuple[tuple[str, str, bool], ...]) -> list[float]:
    """The improvement each score needs, as LightGBM spreads ``min_delta``: one value
    for all, or one per metric (repeated for each dataset)."""
    if not isinstance(min_delta, (list, tuple)):
        return [float(min_delta or 0.0)] * len(scored)
    if len(min_delta) <= 1:
        return [float(min_delta[0]) if min_delta else 0.0] * len(scored)
    metrics = list(dict.fromkeys(metric for _, metric, _ in scored))
    return [float(min_delta[metrics.index(metric) % len(min_delta)]) for _, metric, _ in scored]


def _stopping_metric(
    callback: LightGBMMetricsCallback, rule: StoppingRule, train_name: str
) -> tuple[tuple[str, str, bool], int] | None:
    """The score that ended the training and the iteration of its best round, by
    LightGBM's rule (``lightgbm.early_stopping``): each round it goes through
    the scores in order, skipping the training data (and every metric but the
    first with ``first_metric_only``), and stops at the first that has not
    improved for ``patience`` rounds, or at the last round on the first it
    watches. LightGBM records the best round but not which score chose it."""
    patience, first_only, min_delta = rule
    scored = callback.scored
    deltas = _deltas(min_delta, scored)
    best: list[tuple[float, int] | None] = [None] * len(scored)
    for number, row in enumerate(callback.values):
        iteration = callback.first_iteration + number
        last = iteration == callback.end_iteration - 1
        for i, (value, (dataset, metric, maximize)) in enumerate(zip(row, scored)):
            current = best[i]
            if current is None or (
                value > current[0] + deltas[i] if maximize else value < current[0] - deltas[i]
            ):
                best[i] = current = (value, iteration)
            if (first_only and metric != scored[0][1]) or dataset == train_name:
                continue
            if last or iteration - current[1] >= patience:
                return scored[i], current[1]
    return None


def _early_stopping(
    booster: Any, callback: LightGBMMetricsCallback, rule: StoppingRule | None
) -> dict[str, Any]:
    """The summary when early stopping ran: LightGBM then sets ``best_iteration`` > 0
    (its early stopping also fires at the last round, to record the best one).
    The monitor and its score are left out when our reading of which score
    stopped the training disagrees with the best round LightGBM kept."""
    if not booster.best_iteration:
        return {}
    best_iteration = booster.best_iteration - 1  # LightGBM counts rounds from 1
    train_name = getattr(booster, "_train_data_name", "training")
    stopped = _stopping_metric(callback, rule, train_name) if rule else None
    monitor = score = None
    if stopped is not None and stopped[1] == best_iteration:
        (dataset, metric, _), _ = stopped
        monitor = f"{dataset}-{metric}"
        score = booster.best_score.get(dataset, {}).get(metric)
    return {
        "stopped_iteration": callback.logger.last_iteration,
        "best_iteration": best_iteration,
        "best_score": score,
        "monitor": monitor,
        "patience": rule[0] if rule else None,
    }


def _cv_early_stopping(
    results: Any, callback: LightGBMMetricsCallback, rule: StoppingRule
) -> dict[str, Any]:
    """The same for ``cv``, which evaluates the training folds as "train"
    (eval_train_metric=True) and keeps the rows up to the best round."""
    stopped = _stopping_metric(callback, rule, train_name="train")
    if stopped is None:
        return {}
    (dataset, metric, _), best_iteration = stopped
    column = results[f"{dataset} {metric}-mean"]
    if best_iteration != len(column) - 1:
        return {}
    return {
        "stopped_iteration": callback.logger.last_iteration,
        "best_iteration": best_iteration,
        "best_score": column[-1],
        "monitor": f"{dataset}-{metric}-mean",
        "patience": rule[0],
    }


class LightGBMIntegration(_boosting.BoostingIntegration):
    """Autologging for LightGBM (see the module documentation): the boosting template."""

    name = "lightgbm"
    modules = ("lightgbm",)
    distribution = "lightgbm"
    supported_versions = ">=4.0,<5"
    flavors = (LightGBMFlavor,)
    not_params = _NOT_PARAMS
    importance_types = IMPORTANCE_TYPES
    other_runtimes = ("lightgbm.dask",)

    def estimator_base(self, module: types.ModuleType) -> type:
        return module.LGBMModel

    def new_callback(self, run_id: str | None) -> LightGBMMetricsCallback:
        return LightGBMMetricsCallback(run_id)

    def stopping(self, params: Any, callbacks: Any, rounds: Any) -> StoppingRule | None:
        return _stopping_rule(params, callbacks)

    def fitted(self, model: Any) -> Any:
        return model.booster_

    def importances(self, booster: Any, kind: str) -> Any:
        return dict(zip(booster.feature_name(), booster.feature_importance(importance_type=kind)))

    def fit_params(self, call: Call, model: Any) -> dict[str, Any]:
        params = super().fit_params(call, model)
        for name in _FIT_SETTINGS:
            value = call.argument(name)
            if value is not None and not (isinstance(value, str) and value == "auto"):
                params.setdefault(name, _boosting.describe(value))
        return params

    early_stopping = staticmethod(_early_stopping)  # LightGBM's rule, replayed
    cv_early_stopping = staticmethod(_cv_early_stopping)
