"""Post-training metrics: a metric computed on a tracked model's predictions goes to its run.

::

    model = LogisticRegression().fit(X_train, y_train)      # run R
    y_pred = model.predict(X_test)                          # remembered: R, "X_test"
    accuracy_score(y_test, y_pred)                          # metric accuracy_score_X_test on R
    model.score(X_test, y_test)                             # LogisticRegression_score_X_test

How: ``predict`` / ``predict_proba`` of an estimator fitted under autolog
remember, by the id of the returned array (weakly: the entry goes with the
array), the run and the name of the input variable in the caller's frame.
The ``sklearn.metrics`` functions are wrapped (``opens_run=False``: they
never open a run) and log their value when one of their arguments, or the
array a slice of it views, is such a prediction. A second value for the same
key on the same run gets ``-2``, then ``-3``. Everything else about the
metric functions is unchanged; they pickle as before (see
``autolog.patching._pickle_reference``).
"""

from __future__ import annotations

import threading
import types
import weakref
from collections.abc import Callable, Generator
from typing import Any

from autolog import plugin
from autolog.plugin import Call, Patcher

__all__ = [
    "PREDICT_METHODS",
    "PostTrainingMetrics",
    "metric_function_names",
    "on_metric",
    "on_predict",
    "on_score",
    "patch_metric_functions",
]

PREDICT_METHODS = ("predict", "predict_proba")
UNKNOWN_DATASET = "unknown_dataset"
# sklearn.metrics functions that return one number, beyond those named *_score / *_error / *_loss
_METRIC_EXTRAS = frozenset({"matthews_corrcoef", "max_error", "d2_tweedie_score"})
_NOT_METRICS = frozenset({"check_scoring", "get_scorer", "get_scorer_names", "make_scorer"})
_SUFFIXES = ("_score", "_error", "_loss", "_deviance")


def metric_function_names(module: types.ModuleType) -> list[str]:
    """The public functions of ``sklearn.metrics`` that compute one metric value."""
    names = []
    for name in getattr(module, "__all__", ()):
        if name in _NOT_METRICS or not isinstance(getattr(module, name, None), types.FunctionType):
            continue
        if name.endswith(_SUFFIXES) or name in _METRIC_EXTRAS:
            names.append(name)
    return names


def patch_metric_functions(
    patcher: Patcher, module: types.ModuleType, *, enabled: Callable[[], bool] | None = None
) -> None:
    """Wrap the metric functions where users take them from: ``sklearn.metrics``.

    A name bound before that (``from sklearn.metrics import accuracy_score``
    before ``autolog()``) keeps the original function, which logs nothing."""
    for name in metric_function_names(module):
        patcher.wrap(module, name, on_metric, opens_run=False, enabled=enabled)


# -- what is tracked ----------------------------------------------------------------


class PostTrainingMetrics:
    """What the integration remembers between a fit and a metric call: fitted
    estimators (weakly) -> run id, predictions (weakly, by id) -> (run id,
    dataset name), and how often each key was logged per run. One per
    :class:`~autolog.integrations.sklearn.SklearnIntegration` instance,
    dropped when it is disabled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fitted: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self.predictions: dict[int, tuple[weakref.ref, str, str]] = {}
        self.key_counts: dict[tuple[str, str], int] = {}

    def remember_fitted(self, estimator: Any, run_id: str | None) -> None:
        """Make ``estimator``'s later predictions count for post-training metrics of ``run_id``."""
        if run_id is None:
            return
        try:
            with self.lock:
                self.fitted[estimator] = run_id
        except TypeError:  # an estimator class that is unhashable or has no weakref slot
            pass

    def remember_prediction(self, prediction: Any, run_id: str | None, X: Any) -> None:
        """Remember that ``prediction`` came from the model of ``run_id`` applied to ``X``
        (named as the variable that holds ``X`` in the caller's frame)."""
        if run_id is None:
            return
        key = id(prediction)
        predictions = self.predictions
        try:
            ref = weakref.ref(prediction, lambda _, key=key: predictions.pop(key, None))
        except TypeError:  # lists, tuples: no weak reference, not tracked
            return
        predictions[key] = (ref, run_id, _variable_name(X))

    def run_of(self, estimator: Any) -> str | None:
        """The run ``estimator`` was fitted in under autolog, if any."""
        try:
            return self.fitted.get(estimator)
        except TypeError:  # unhashable, or no weak reference possible
            return None

    def source(self, value: Any) -> tuple[str, str] | None:
        """``(run id, dataset name)`` when ``value`` (or the array it views) is a prediction."""
        for candidate in (value, getattr(value, "base", None)):
            entry = self.predictions.get(id(candidate)) if candidate is not None else None
            if entry is not None and entry[0]() is candidate:
                return entry[1], entry[2]
        return None

    def log(self, run_id: str, key: str, value: Any) -> None:
        """Log one metric value; a repeated key on a run gets ``-2``, ``-3``..."""
        if getattr(value, "ndim", 0) != 0:  # per-output arrays, reports: not one number
            return
        number = plugin.numeric(value)
        if number is None:
            return
        with self.lock:
            count = self.key_counts[(run_id, key)] = self.key_counts.get((run_id, key), 0) + 1
        plugin.log_metric(key if count == 1 else f"{key}-{count}", number, run_id=run_id)


def _variable_name(value: Any) -> str:
    """The caller's name for ``value`` (a local of the first frame outside
    autolog, else a global of its module: a notebook's ``def evaluate():
    accuracy_score(y_test, model.predict(X_test))``), else ``unknown_dataset``."""
    return plugin.variable_name(value, UNKNOWN_DATASET)


# -- handlers (opens_run=False: they log to the model's run, never open one) ------


def on_predict(call: Call) -> Generator[None, Any, None]:
    """``predict`` / ``predict_proba``: remember where the returned array came from."""
    prediction = yield
    if not call.config.log_post_training_metrics:
        return
    memory = call.integration.post_training
    run_id = memory.run_of(call.instance)
    if run_id is not None:
        X = call.args[0] if call.args else next(iter(call.kwargs.values()), None)
        memory.remember_prediction(prediction, run_id, X)


def on_metric(call: Call) -> Generator[None, Any, None]:
    """A ``sklearn.metrics`` function: log its value if it scored a tracked prediction."""
    value = yield
    memory = call.integration.post_training
    if not call.config.log_post_training_metrics or not memory.predictions:
        return
    for argument in (*call.args, *call.kwargs.values()):
        found = memory.source(argument)
        if found is not None:
            run_id, dataset = found
            memory.log(run_id, f"{call.wrapped.__name__}_{dataset}", value)
            return


def on_score(call: Call) -> Generator[None, Any, None]:
    """``estimator.score(X, y)`` of a tracked estimator: ``<Class>_score_<dataset>``."""
    value = yield
    if not call.config.log_post_training_metrics:
        return
    estimator = call.instance
    memory = call.integration.post_training
    run_id = memory.run_of(estimator)
    if run_id is not None:
        X = call.args[0] if call.args else call.kwargs.get("X")
        memory.log(run_id, f"{type(estimator).__name__}_score_{_variable_name(X)}", value)
