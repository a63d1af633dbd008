"""scikit-learn autologging: every ``fit`` gives one run with params, metrics and the model.

``autolog.autolog()`` (or ``autolog.autolog("sklearn")``) and then::

    model = LogisticRegression(C=0.5).fit(X_train, y_train)   # one run
    accuracy_score(y_test, model.predict(X_test))              # logged to that run

What each run gets:

- **params**: ``get_params(deep=True)`` as sklearn names them (``clf__C``),
  nested estimators by class name, long values cut (listed in a tag);
- **tags**: ``estimator_name``, ``estimator_class``, and the training data's
  ``dataset_shape`` and ``dataset_dtype``; with them (option ``log_datasets``)
  the record of ``X`` and ``y`` in ``autolog.datasets``, with their digest
  (search ``datasets.digest``; no copy of the data);
- **metrics** (classifiers and regressors, from one ``predict`` and one
  ``predict_proba`` over the training data, ``sample_weight`` honoured):
  ``training_accuracy_score``, ``training_precision_score``,
  ``training_recall_score``, ``training_f1_score`` (weighted; binary for
  ``pos_label``), ``training_log_loss``, ``training_roc_auc``;
  ``training_mean_squared_error``, ``training_root_mean_squared_error``,
  ``training_mean_absolute_error``, ``training_r2_score``; and
  ``training_score`` (``estimator.score``);
- **model** ``model`` (option ``serialization_format``: ``"pickle"``, the
  default, or ``"skops"``), with a signature and, with
  ``log_input_examples=True``, the first rows as input example.

Hyperparameter searches (``GridSearchCV``, ``RandomizedSearchCV``, the
halving ones) give a parent run with ``best_<param>`` params, the
``best_cv_score`` metric, ``cv_results.csv`` and the best estimator as
``model``, plus a child run for each of the best ``max_tuning_runs``
candidates. ``cross_validate`` / ``cross_val_score`` / ``cross_val_predict``
give one run per call with per-fold (steps) and ``_mean`` / ``_std`` scores.
With ``log_post_training_metrics`` (default on), a ``sklearn.metrics``
function or ``estimator.score`` computed on predictions of a model fitted
under autolog is logged to that model's run as ``<metric>_<dataset variable>``
(``accuracy_score_X_test``; repeats get ``-2``, ``-3``). The functions are
patched where users take them from, ``sklearn.metrics`` (and the
cross-validation helpers in ``sklearn.model_selection``): a name bound before
``autolog()`` (``from sklearn.metrics import accuracy_score`` above the call)
keeps the original function, which works as always and logs nothing.
Calls that scikit-learn makes itself (the fits inside ``learning_curve``, the
scoring inside ``permutation_importance``, a ``LabelEncoder`` inside a metric)
are not the user's: they open no runs and log nothing.

XGBoost and LightGBM estimators are sklearn estimators too: while their own
integration is enabled, it owns their runs and this one leaves them alone.

Where the code is: :mod:`.sklearn_fit` (one fit), :mod:`.sklearn_search`
(searches, cross-validation), :mod:`.sklearn_metrics` (post-training
metrics), :mod:`.sklearn_scores` (training metric values).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from autolog import plugin
from autolog.plugin import Flavor, ModelSnapshot, Option, Patcher

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    from typing import Any

    from autolog.integrations.sklearn_metrics import PostTrainingMetrics

__all__ = ["SklearnFlavor", "SklearnIntegration"]

# Packages whose sklearn-API estimators belong to their own integration.
_OWNED_ELSEWHERE = ("xgboost", "lightgbm")
_ROOTS_OF = {"xgboost": "xgboost.sklearn.XGBModel", "lightgbm": "lightgbm.sklearn.LGBMModel"}
_MIXINS = (
    "ClassifierMixin",
    "RegressorMixin",
    "ClusterMixin",
    "TransformerMixin",
    "OutlierMixin",
    "DensityMixin",
    "BiclusterMixin",
)
_SWITCH_FRAMES = (__name__, "wrapt")
# skops loads these packages' types without asking (what a fitted sklearn model holds).
_SKOPS_TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy", "builtins", "collections")


class SklearnFlavor(Flavor):
    """scikit-learn estimators (pipelines and searches included), pickled by
    default or saved with skops (``serialization_format="skops"``), the safer format:
    loading it runs no code outside scikit-learn, numpy and scipy."""

    name = "sklearn"
    distribution = "scikit-learn"
    module = "sklearn"

    def handles(self, model: Any) -> bool:
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator)

    def snapshot(self, model: Any, serialization_format: str = "pickle") -> ModelSnapshot:
        if serialization_format == "pickle":
            snap = plugin.pickle_snapshot(model)
        elif serialization_format == "skops":
            import skops.io

            snap = ModelSnapshot({"model.skops": skops.io.dumps(model)}, {"file": "model.skops"})
        else:
            raise plugin.InvalidParameterError(
                f"serialization_format {serialization_format!r} must be 'pickle' or 'skops'"
            )
        snap.metadata["serialization"] = serialization_format
        return snap

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        if metadata.get("serialization") != "skops":
            return plugin.load_pickle(path, metadata)
        import skops.io

        file = Path(path) / metadata.get("file", "model.skops")
        untrusted = skops.io.get_untrusted_types(file=file)
        foreign = [t for t in untrusted if t.split(".")[0] not in _SKOPS_TRUSTED_PACKAGES]
        if foreign:
            raise plugin.ModelError(
                f"the skops file {file} holds types from outside scikit-learn, numpy and scipy: "
                f"{foreign}; review them, then load it with "
                "skops.io.load(path, trusted=[...])"
            )
        return skops.io.load(file, trusted=untrusted)


class SklearnIntegration(plugin.Integration):
    """Autologging for scikit-learn (see the module documentation).

    State: :attr:`post_training`, what it remembers for post-training metrics
    (fitted estimators, predictions), lives on the instance and is dropped by
    :meth:`unpatch` (``autolog("sklearn", disable=True)``)."""

    name = "sklearn"
    # sklearn.base is imported by `import sklearn`; metrics and model_selection
    # are patched when (and if) they are imported.
    modules = ("sklearn", "sklearn.metrics", "sklearn.model_selection")
    # XGBoost's and LightGBM's estimators, while their own integrations are off
    covers = _OWNED_ELSEWHERE
    distribution = "scikit-learn"
    supported_versions = ">=1.3,<1.11"
    options = {
        "max_tuning_runs": Option(5, int, allow_none=True),
        "log_post_training_metrics": True,
        "serialization_format": Option("pickle", str, choices=("pickle", "skops")),
        "pos_label": Option(None, (int, float, str, bool), allow_none=True),
    }
    flavors = (SklearnFlavor,)

    def __init__(self) -> None:
        super().__init__()
        self._post_training: PostTrainingMetrics | None = None

    @property
    def post_training(self) -> PostTrainingMetrics:
        """Fitted estimators and predictions remembered for post-training metrics."""
        memory = self._post_training
        if memory is None:
            from autolog.integrations.sklearn_metrics import PostTrainingMetrics

            memory = self._post_training = PostTrainingMetrics()
        return memory

    def unpatch(self) -> None:
        self._post_training = None  # forget every remembered fit and prediction

    def patch(self, patcher: Patcher, module: types.ModuleType) -> None:
        name = module.__name__
        if name == "sklearn":
            import sklearn.base as base

            # Methods that estimators inherit from mixins (TransformerMixin.fit_transform,
            # ClassifierMixin.score, LinearClassifierMixin.predict) are wrapped where
            # defined: the mixins are not BaseEstimator subclasses.
            roots = (base.BaseEstimator, *filter(None, (getattr(base, n, None) for n in _MIXINS)))
            for root in roots:
                _wrap_estimator_methods(
                    patcher,
                    root,
                    include=lambda cls, root=root: (
                        _first_root(cls, roots) is root and _not_owned_elsewhere(cls)
                    ),
                    enabled=_called_by_user,
                )
        elif name == "sklearn.metrics":
            from autolog.integrations import sklearn_metrics

            sklearn_metrics.patch_metric_functions(patcher, module, enabled=_called_by_user)
        elif name == "sklearn.model_selection":
            from autolog.integrations import sklearn_search

            sklearn_search.patch_cross_validation(patcher, module, enabled=_called_by_user)
        elif name in _OWNED_ELSEWHERE:  # covers: only while their own integration is off
            root = _import_attribute(_ROOTS_OF[name])
            _wrap_estimator_methods(
                patcher, root, include=lambda cls: True, enabled=_called_by_user
            )


def _wrap_estimator_methods(
    patcher: Patcher, root: type, *, include: Any, enabled: Any = None
) -> None:
    from autolog.integrations import sklearn_fit, sklearn_metrics

    for method in sklearn_fit.FIT_METHODS:
        patcher.wrap_subclasses(root, method, sklearn_fit.on_fit, include=include, enabled=enabled)
    for method in sklearn_metrics.PREDICT_METHODS:
        patcher.wrap_subclasses(
            root, method, sklearn_metrics.on_predict, opens_run=False, include=include,
            enabled=enabled,
        )  # fmt: skip
    patcher.wrap_subclasses(
        root, "score", sklearn_metrics.on_score, opens_run=False, include=include, enabled=enabled
    )


def _called_by_user() -> bool:
    """wrapt's switch for every wrap of ours: on only when the patched function is
    called from outside scikit-learn. sklearn fits, predicts and scores estimators
    inside its own functions (a ``LabelEncoder`` inside a metric, the clones of
    ``learning_curve``, ``permutation_importance`` scoring over and over): those
    calls are sklearn's business, not the user's, and must not open runs or log
    metrics. A call from user code runs the wrapper, whose own nested calls pass
    through anyway."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_SWITCH_FRAMES):
        frame = frame.f_back  # this module's lambdas, pure-Python wrapt
    caller = frame.f_globals.get("__name__", "") if frame is not None else ""
    return caller != "sklearn" and not caller.startswith("sklearn.")


def _first_root(cls: type, roots: tuple[type, ...]) -> type | None:
    """Which root's hook wraps ``cls``: the first in its MRO. That hook runs last
    when the class is created (it calls the other ``__init_subclass__`` first),
    so it wraps what sklearn's own hooks left (``_SetOutputMixin`` replaces
    ``fit_transform`` with a wrapper of its own, after BaseEstimator's hook)."""
    return next((c for c in cls.__mro__ if c in roots), None)


def _not_owned_elsewhere(cls: type) -> bool:
    return not any(
        getattr(c, "__module__", "").partition(".")[0] in _OWNED_ELSEWHERE for c in cls.__mro__
    )


def _import_attribute(path: str) -> Any:
    import importlib

    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)
