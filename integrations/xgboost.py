"""XGBoost autologging: ``xgboost.train``, ``xgboost.cv`` and the scikit-learn API.

::

    import autolog, xgboost as xgb
    autolog.autolog("xgboost")
    booster = xgb.train(params, dtrain, 50, evals=[(dvalid, "valid")],
                        early_stopping_rounds=5)
    # or: xgb.XGBClassifier(n_estimators=50).fit(X, y, eval_set=[(Xv, yv)])

Each call gives one run (the scikit-learn API calls ``train`` inside; that
inner call logs nothing of its own) with:

- params: the booster params, ``num_boost_round``, ``early_stopping_rounds``
  and the other training arguments except the data; for the scikit-learn API
  its ``get_params()``;
- metrics per iteration, ``<dataset>-<metric>`` as XGBoost names them
  (``valid-logloss``, ``validation_0-logloss``), step = iteration; in ``cv``
  ``test-logloss-mean`` / ``test-logloss-std`` (the keys of ``cv``'s result);
- with early stopping: ``best_iteration``, ``best_score`` (as the booster
  reports them, 0-based) and ``stopped_iteration`` (the last iteration run),
  params ``early_stopping_monitor`` / ``early_stopping_patience``;
- ``feature_importance.json`` with the importance types weight, gain, cover,
  total_gain and total_cover; ``feature_importance.png`` too with
  ``autolog(log_feature_importance_plot=True)``;
- the model (``log_models``) in XGBoost's own UBJSON format, which any
  XGBoost reads; :func:`autolog.load_model` gives back a ``Booster``, or an
  instance of the same scikit-learn API class.

Our callback goes into a copy of the user's callbacks: for the scikit-learn
API, whose callbacks are an estimator attribute, the attribute holds that copy
only while ``fit`` runs and is then restored to the user's own object.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

from autolog import plugin
from autolog.integrations import _boosting
from autolog.plugin import Flavor, ModelSnapshot, guarded

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    import types
    from typing import Any

    from autolog.plugin import Call

__all__ = ["XGBoostFlavor", "XGBoostIntegration", "XGBoostMetricsCallback"]  # noqa: F822

IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")

# Arguments of train()/cv() that are data, outputs or objects, not settings.
_NOT_PARAMS = frozenset(
    {"dtrain", "evals", "evals_result", "xgb_model", "callbacks", "folds", "fpreproc"}
)
# Estimators whose fit runs elsewhere (a dask or spark cluster) or that
# refuse callbacks are logged only as far as they allow.
_OTHER_RUNTIMES = ("xgboost.dask", "xgboost.spark")


class XGBoostFlavor(Flavor):
    """XGBoost models (``Booster`` and the scikit-learn API) in XGBoost's own format.

    Option: ``model_format="ubj"`` (default, compact) or ``"json"`` (readable).
    """

    name = "xgboost"
    distribution = "xgboost"
    module = "xgboost"
    priority = 10  # the scikit-learn API models are sklearn estimators too

    def handles(self, model: Any) -> bool:
        import xgboost

        return isinstance(model, (xgboost.Booster, xgboost.XGBModel))

    def snapshot(self, model: Any, model_format: str = "ubj") -> ModelSnapshot:
        import xgboost

        if model_format not in ("ubj", "json"):
            raise plugin.InvalidParameterError(
                f"xgboost model_format must be 'ubj' or 'json', got {model_format!r}"
            )
        file_name = f"model.{model_format}"
        if isinstance(model, xgboost.XGBModel):
            data = _sklearn_model_bytes(model, model_format)
        else:
            data = bytes(model.save_raw(raw_format=model_format))
        return ModelSnapshot(
            {file_name: data},
            {
                "model_file": file_name,
                "format": model_format,
                "class": _class_ref(type(model)),
                "xgboost_class": _class_ref(_xgboost_base(type(model))),
            },
        )

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        import xgboost

        file = str(Path(path) / metadata["model_file"])
        cls = _model_class(metadata)
        if issubclass(cls, xgboost.Booster):
            return xgboost.Booster(model_file=file)
        model = cls()
        model.load_model(file)
        return model


def _sklearn_model_bytes(model: Any, model_format: str) -> bytes:
    """What ``XGBModel.save_model`` writes, as bytes without a file: the booster
    carries the estimator type for the duration of the save, as there."""
    import json

    booster = model.get_booster()
    booster.set_attr(scikit_learn=json.dumps({"_estimator_type": model._get_type()}))
    try:
        return bytes(booster.save_raw(raw_format=model_format))
    finally:
        booster.set_attr(scikit_learn=None)


def _xgboost_base(cls: type) -> type:
    """The first class of XGBoost's own in the MRO (for subclasses defined by the user)."""
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] == "xgboost":
            return klass
    return cls


def _class_ref(cls: type) -> list[str]:
    return [cls.__module__, cls.__qualname__]


def _import_class(ref: list[str]) -> Any:
    obj: Any = importlib.import_module(ref[0])
    for attr in ref[1].split("."):
        obj = getattr(obj, attr)
    return obj


def _model_class(metadata: dict[str, Any]) -> type:
    import xgboost

    try:
        cls = _import_class(metadata["class"])
    except (ImportError, AttributeError) as exc:
        # A subclass defined in the training script: XGBoost's class it
        # extends loads the same booster.
        cls = _import_class(metadata["xgboost_class"])
        warnings.warn(
            f"cannot import the model class {'.'.join(metadata['class'])} ({exc}); "
            f"loading it as {'.'.join(metadata['xgboost_class'])}",
            stacklevel=4,
        )
    if not (isinstance(cls, type) and issubclass(cls, (xgboost.Booster, xgboost.XGBModel))):
        raise plugin.ModelError(f"{'.'.join(metadata['class'])} is not an XGBoost model class")
    return cls


def _early_stopping(booster: Any, callback: Any, patience: Any) -> dict[str, Any]:
    """The summary when early stopping ran (XGBoost then stores ``best_iteration``
    on the booster, whether through ``early_stopping_rounds`` or a callback)."""
    logger = callback.logger
    best_iteration = booster.attr("best_iteration")  # attributes are strings
    if best_iteration is None:
        return {}
    # XGBoost's EarlyStopping watches the last metric of the last dataset.
    return {
        "stopped_iteration": logger.last_iteration,
        "best_iteration": int(best_iteration),
        "best_score": float(booster.attr("best_score")),
        "monitor": logger.last_keys[-1] if logger.last_keys else None,
        "patience": patience,
    }


def _cv_early_stopping(results: Any, callback: Any, patience: Any) -> dict[str, Any]:
    """cv keeps the rows up to the best round (0-based: rows - 1)."""
    logger = callback.logger
    monitor = next(k for k in reversed(logger.last_keys) if k.endswith("-mean"))
    column = list(results[monitor])
    return {
        "stopped_iteration": logger.last_iteration,
        "best_iteration": len(column) - 1,
        "best_score": column[-1],
        "monitor": monitor,
        "patience": patience,
    }


def _model_snapshot(call: Call, model: Any, booster: Any) -> Any:
    """The booster's bytes, taken once, on the training thread (the user may
    train it on): the model logged and the feature importances share them."""
    if booster.num_boosted_rounds() == 0 and not call.config.log_models:
        return None
    return XGBoostFlavor, XGBoostFlavor().snapshot(model)


def _importance_table(booster: Any, snapshot: Any) -> Any:
    """The importances, made on the writer thread from a copy of the snapshot."""
    if snapshot is None or booster.num_boosted_rounds() == 0:
        return None  # no tree: nothing to rank
    taken = snapshot[1]
    data = taken.files[taken.metadata["model_file"]]
    return lambda: _importances_of_copy(data)


def _importances_of_copy(data: bytes) -> dict[str, dict[str, float]]:
    """Every importance type XGBoost defines for the booster saved as ``data``,
    from a copy loaded from those bytes (on the writer thread); gblinear
    defines only ``weight``."""
    import xgboost

    copy = xgboost.Booster(model_file=bytearray(data))
    table = {}
    for kind in IMPORTANCE_TYPES:
        try:
            scores = copy.get_score(importance_type=kind)
        except xgboost.core.XGBoostError:
            continue  # a type this booster does not define
        table[kind] = {str(f): float(v) for f, v in scores.items()}
    return table


class XGBoostIntegration(_boosting.BoostingIntegration):
    """Autologging for XGBoost (see the module documentation): the boosting template."""

    name = "xgboost"
    modules = ("xgboost",)
    distribution = "xgboost"
    supported_versions = ">=2.0,<4"
    flavors = (XGBoostFlavor,)
    not_params = _NOT_PARAMS
    importance_types = IMPORTANCE_TYPES
    other_runtimes = _OTHER_RUNTIMES

    def estimator_base(self, module: types.ModuleType) -> type:
        return module.XGBModel

    def new_callback(self, run_id: str | None) -> Any:
        return _classes.get("XGBoostMetricsCallback")(run_id)

    def stopping(self, params: Any, callbacks: Any, rounds: Any) -> Any:
        return rounds if rounds is not None else (params or {}).get("early_stopping_rounds")

    def fitted(self, model: Any) -> Any:
        return model.get_booster()

    def importances(self, booster: Any, kind: str) -> Any:
        return booster.get_score(importance_type=kind)

    def add_fit_callback(self, call: Call, model: Any, callback: Any) -> Any:
        # The scikit-learn API's callbacks are an estimator attribute: it holds
        # our copy for this fit only. Random forests reject any callback.
        if _is_random_forest(model):
            return None
        user_callbacks = model.callbacks
        model.callbacks = plugin.copy_callbacks(user_callbacks, callback)
        return lambda: setattr(model, "callbacks", user_callbacks)

    def after_fit(self, call: Call, model: Any) -> None:
        if _is_random_forest(model):  # no callback ran: log their history now
            _boosting.log_evaluation_history(model.evals_result() or {}, call.run_id)

    early_stopping = staticmethod(_early_stopping)
    cv_early_stopping = staticmethod(_cv_early_stopping)
    model_snapshot = staticmethod(_model_snapshot)
    importance_table = staticmethod(_importance_table)


def _is_random_forest(model: Any) -> bool:
    import xgboost

    return isinstance(model, (xgboost.XGBRFClassifier, xgboost.XGBRFRegressor))


# -- the callback we add -------------------------------------------------------------
#
# It subclasses xgboost.callback.TrainingCallback (XGBoost checks isinstance),
# so it is defined on first use, as a module attribute that a process
# unpickling it (a distributed worker) finds by reference.

_classes = plugin.FrameworkClasses(__name__)
__getattr__ = _classes.module_getattr


def _build_callback() -> type:
    from xgboost.callback import TrainingCallback

    class XGBoostMetricsCallback(TrainingCallback):
        """Logs each round's evaluation scores, one ``log_metrics`` call per round.

        ``evals_log`` is XGBoost's history ``{dataset: {metric: [score, ...]}}``;
        a score is a float in ``train`` and a ``(mean, std)`` pair in ``cv``.
        """

        def __init__(self, run_id: str | None):
            super().__init__()
            self.logger = _boosting.IterationMetricsLogger("xgboost", run_id)

        @guarded("xgboost", "in the per-iteration callback", default=False)
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            self.logger.log_iteration(epoch, _last_scores(evals_log))
            return False  # never ask XGBoost to stop

    return XGBoostMetricsCallback


_classes.define("XGBoostMetricsCallback", _build_callback)


def _new_callback(run_id: str | None) -> Any:
    return _classes.get("XGBoostMetricsCallback")(run_id)


def _last_scores(evals_log: Any) -> list[Any]:
    scores = []
    for dataset, metrics in evals_log.items():
        for metric, history in metrics.items():
            last = history[-1]
            if isinstance(last, tuple):
                scores.append((dataset, metric, last[0], last[1]))
            else:
                scores.append((dataset, metric, last, None))
    return scores
