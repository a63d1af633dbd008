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
- with early stopping: ``best_iteration`` as LightGBM reports it (1-based: the
  number of iterations to keep, what ``predict(num_iteration=)`` takes),
  ``best_score`` (first metric of the first validation set at that
  iteration), ``stopped_iteration`` (the step of the last iteration run),
  params ``early_stopping_monitor`` / ``early_stopping_patience``;
- ``feature_importance.json`` with the importance types split and gain;
  ``feature_importance.png`` too with ``autolog(log_feature_importance_plot=True)``;
- the model (``log_models``) as LightGBM's text model file, which any
  LightGBM reads; :func:`autolog.load_model` gives back a ``Booster``, or the
  same scikit-learn API class with that booster inside.
"""

from __future__ import annotations

import copy
from pathlib import Path

from autolog import training
from autolog.integration import Integration
from autolog.integrations import _boosting
from autolog.models import Flavor, ModelSnapshot, load_pickle, pickle_snapshot
from autolog.patching import TYPE_CHECKING, guard

if TYPE_CHECKING:  # typing stays out of autolog()'s import cost
    import types
    from typing import Any

    from autolog.patching import Call, Patcher

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

    def __call__(self, env: Any) -> None:
        with guard("lightgbm", "in the per-iteration callback"):
            results = env.evaluation_result_list or ()
            # (dataset, metric, value, higher_is_better[, std in cv]); a named
            # tuple since LightGBM 4.7, a plain tuple before.
            self.logger.log_iteration(
                env.iteration, [(r[0], r[1], r[2], r[4] if len(r) > 4 else None) for r in results]
            )


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
            snap = ModelSnapshot({}, {"class": training.class_path(model)})
            booster = model
        else:
            booster = model.booster_  # raises when not fitted
            wrapper = copy.copy(model)
            wrapper._Booster = None  # the booster travels as text, not twice
            snap = pickle_snapshot(wrapper, _ESTIMATOR_FILE)
        snap.files[_MODEL_FILE] = booster.model_to_string().encode("utf-8")
        snap.metadata["model_file"] = _MODEL_FILE
        return snap

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        import lightgbm

        booster = lightgbm.Booster(model_file=str(Path(path) / metadata["model_file"]))
        if "pickled_file" not in metadata:
            return booster
        model = load_pickle(path, metadata)  # code from the file: trusted models only
        model._Booster = booster
        return model


class LightGBMIntegration(Integration):
    """Autologging for LightGBM (see the module documentation)."""

    name = "lightgbm"
    modules = ("lightgbm",)
    distribution = "lightgbm"
    supported_versions = ">=4.0,<5"
    options = {"log_feature_importance_plot": False}
    flavors = (LightGBMFlavor,)

    def patch(self, patcher: Patcher, module: types.ModuleType) -> None:
        # Users call the package attributes; the scikit-learn API calls
        # lightgbm.engine.train directly, inside its own patched fit.
        patcher.wrap(module, "train", self.on_train)
        patcher.wrap(module, "cv", self.on_cv)
        patcher.wrap_subclasses(
            module.LGBMModel,
            "fit",
            self.on_fit,
            include=lambda cls: not cls.__module__.startswith("lightgbm.dask"),
        )

    def on_train(self, call: Call) -> Any:
        arguments = call.arguments()
        training.log_training_params(
            _boosting.training_arguments(arguments, _NOT_PARAMS), call.run_id
        )
        callback = self._inject_callback(call, arguments["callbacks"])
        booster = yield
        patience = _patience(arguments["params"], arguments["callbacks"])
        _log_early_stopping(call.run_id, booster, callback.logger, patience)
        self._log_booster(call, booster)
        _boosting.log_model(call, booster)

    def on_cv(self, call: Call) -> Any:
        arguments = call.arguments()
        training.log_training_params(
            _boosting.training_arguments(arguments, _NOT_PARAMS), call.run_id
        )
        callback = self._inject_callback(call, arguments["callbacks"])
        results = yield
        patience = _patience(arguments["params"], arguments["callbacks"])
        keys = [k for k in callback.logger.last_keys if k.endswith("-mean")]
        if patience and keys:
            # cv keeps the rows up to the best iteration (1-based: their number).
            monitor = next((k for k in keys if not k.startswith("train-")), keys[0])
            column = results[monitor.replace("-", " ", 1)]
            training.log_early_stopping(
                call.run_id,
                stopped_iteration=callback.logger.last_iteration,
                best_iteration=len(column),
                best_score=column[-1],
                monitor=monitor,
                patience=patience,
            )

    def on_fit(self, call: Call) -> Any:
        model = call.instance
        params = {k: _boosting.describe(v) for k, v in model.get_params().items()}
        for name in _FIT_SETTINGS:
            value = call.argument(name)
            if value is not None and not (isinstance(value, str) and value == "auto"):
                params.setdefault(name, _boosting.describe(value))
        training.log_training_params(params, call.run_id)
        example = _boosting.input_example(call, call.argument("X"))
        user_callbacks = call.argument("callbacks")
        callback = self._inject_callback(call, user_callbacks)
        yield
        booster = model.booster_
        patience = _patience(model.get_params(), user_callbacks)
        _log_early_stopping(call.run_id, booster, callback.logger, patience)
        self._log_booster(call, booster)
        _boosting.log_model(call, model, example)

    def _inject_callback(self, call: Call, user_callbacks: Any) -> LightGBMMetricsCallback:
        callback = LightGBMMetricsCallback(call.run_id)
        call.set_argument("callbacks", training.copy_callbacks(user_callbacks, callback))
        return callback

    def _log_booster(self, call: Call, booster: Any) -> None:
        names = booster.feature_name()
        importances = _boosting.importance_table(
            IMPORTANCE_TYPES,
            lambda kind: dict(zip(names, booster.feature_importance(importance_type=kind))),
        )
        _boosting.log_feature_importance(
            call.run_id, importances, plot=call.config.log_feature_importance_plot
        )


def _patience(params: Any, callbacks: Any) -> int | None:
    """The early-stopping patience, from a param alias or an ``early_stopping`` callback."""
    for alias in _PATIENCE_ALIASES:
        value = (params or {}).get(alias)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    for callback in callbacks or ():
        rounds = getattr(callback, "stopping_rounds", None)
        if isinstance(rounds, int) and rounds > 0:
            return rounds
    return None


def _log_early_stopping(
    run_id: str | None, booster: Any, logger: _boosting.IterationMetricsLogger, patience: Any
) -> None:
    """The summary when early stopping ran: LightGBM then sets ``best_iteration`` > 0
    (its early stopping also fires at the last round, to record the best one)."""
    if not booster.best_iteration:
        return
    train_name = getattr(booster, "_train_data_name", "training")
    best = [
        (f"{dataset}-{metric}", value)
        for dataset, metrics in booster.best_score.items()
        if dataset != train_name
        for metric, value in metrics.items()
    ]
    monitor, score = best[0] if best else (None, None)
    training.log_early_stopping(
        run_id,
        stopped_iteration=logger.last_iteration,
        best_iteration=booster.best_iteration,
        best_score=score,
        monitor=monitor,
        patience=patience,
    )
