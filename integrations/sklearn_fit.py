"""What one scikit-learn ``fit`` logs: params, tags, training metrics, model.

Imported by :mod:`autolog.integrations.sklearn` when scikit-learn is imported
(never before: it imports numpy and sklearn at module level). The handler
:func:`on_fit` runs for the outermost ``fit`` / ``fit_transform`` /
``fit_predict`` of a thread; searches are handed to :mod:`.sklearn_search`.

Cost matters more than anywhere else (a small ``fit`` takes 1 to 2 ms): the
data is never copied and digested once (the patch manager's dataset record),
metrics come from one prediction (:mod:`.sklearn_scores`), params are
stringified without sklearn's pretty-printer, and the model's bytes are
written by the background writer.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Generator
from typing import Any

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier, is_regressor

from autolog import plugin
from autolog.integrations.sklearn_scores import classifier_scores, regressor_scores
from autolog.plugin import Call

__all__ = [
    "FIT_METHODS",
    "dataset_tags",
    "estimator_params",
    "fit_data",
    "log_estimator",
    "log_fitted",
    "on_fit",
    "training_metrics",
]

FIT_METHODS = ("fit", "fit_transform", "fit_predict")


@plugin.datasets_from("X", "y")
def on_fit(call: Call) -> Generator[None, Any, None]:
    """The handler of ``fit`` / ``fit_transform`` / ``fit_predict``."""
    from autolog.integrations import sklearn_search

    estimator = call.instance
    if sklearn_search.is_search(estimator):
        yield from sklearn_search.on_search_fit(call)
        return
    X, y, weight = fit_data(call)
    log_estimator(call, estimator, X)
    result = yield
    log_fitted(call, estimator, X, y, weight)
    if call.wrapped.__name__ == "fit_predict" and call.config.log_post_training_metrics:
        # cluster labels are predictions too: adjusted_rand_score(y, labels) is logged
        call.integration.post_training.remember_prediction(result, call.run_id, X)


def fit_data(call: Call) -> tuple[Any, Any, Any]:
    """``(X, y, sample_weight)`` of a fit call, by position or keyword."""
    args, kwargs = call.args, call.kwargs
    X = (
        args[0]
        if args
        else next((kwargs[k] for k in ("X", "x", "raw_documents") if k in kwargs), None)
    )
    y = args[1] if len(args) > 1 else kwargs.get("y", kwargs.get("Y"))
    return X, y, call.argument("sample_weight")


def log_estimator(call: Call, estimator: Any, X: Any) -> None:
    """Before the fit: params, the estimator tags and the data's shape."""
    plugin.log_params(estimator_params(estimator), call.run_id)
    tags = {
        "estimator_name": type(estimator).__name__,
        "estimator_class": plugin.class_path(estimator),
    }
    if call.config.log_datasets and X is not None:
        tags.update(dataset_tags(X))
    plugin.set_tags(tags, run_id=call.run_id)


def log_fitted(
    call: Call, estimator: Any, X: Any, y: Any, weight: Any, *, model: Any = None
) -> None:
    """After the fit: training metrics, the model (``model``, default the
    estimator) and the estimator's run for post-training metrics."""
    metrics, prediction = training_metrics(estimator, X, y, weight, call.config.pos_label)
    if metrics:
        plugin.log_metrics(metrics, run_id=call.run_id)
    if call.config.log_models:
        log_estimator_model(call, estimator if model is None else model, X, prediction)
    if call.config.log_post_training_metrics:
        call.integration.post_training.remember_fitted(estimator, call.run_id)


# -- params ---------------------------------------------------------------------


def estimator_params(estimator: Any) -> dict[str, Any]:
    """``get_params(deep=True)``, with nested estimators by class name: sklearn's
    repr would cost milliseconds per pipeline, and their params are logged anyway."""
    return {
        key: _describe(value, top=True) for key, value in estimator.get_params(deep=True).items()
    }


def _describe(value: Any, top: bool = False, depth: int = 0) -> Any:
    if isinstance(value, BaseEstimator):
        return type(value).__name__
    if isinstance(value, types.FunctionType):
        return f"{value.__module__}.{value.__qualname__}"  # not "<function f at 0x...>"
    if isinstance(value, (list, tuple)) and depth < 4:
        items = ", ".join(_describe(item, depth=depth + 1) for item in value)
        if isinstance(value, list):
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    return value if top else repr(value)


# -- dataset shape ----------------------------------------------------------------


def dataset_tags(X: Any) -> dict[str, str]:
    """``dataset_shape`` and ``dataset_dtype`` of the training data: free to
    read, and what a search by tag finds a run by. Its digest is the dataset
    record's (``autolog.datasets``, made once per fit for every integration,
    searched with ``datasets.digest``): no second hash of the rows here."""
    shape = getattr(X, "shape", None)
    if shape is None:
        try:
            shape = (len(X),)
        except TypeError:
            return {}
    if getattr(X, "columns", None) is not None and hasattr(X, "dtypes"):  # a data frame
        dtype = ",".join(sorted({str(d) for d in X.dtypes}))
    else:
        dtype = str(getattr(X, "dtype", type(X).__name__))
    return {"dataset_shape": "x".join(str(int(d)) for d in shape), "dataset_dtype": dtype}


# -- training metrics -----------------------------------------------------------


def training_metrics(
    estimator: Any, X: Any, y: Any, weight: Any, pos_label: Any = None
) -> tuple[dict[str, float], Any]:
    """``({"training_<metric>": value}, prediction)`` for a fitted classifier or
    regressor (one ``predict``, one ``predict_proba``: the one inside ``predict`` where it
    makes one, :func:`_predict_with_proba`); ``({}, None)`` otherwise."""
    if X is None or y is None:
        return {}, None
    if is_classifier(estimator):
        prediction, proba = _predict_with_proba(estimator, X)
        scores = classifier_scores(
            y, prediction, weight, proba=proba, classes=getattr(estimator, "classes_", None),
            pos_label=pos_label,
        )  # fmt: skip
        reused = "accuracy_score" if _scores_like(estimator, ClassifierMixin, weight) else None
    elif is_regressor(estimator):
        prediction = estimator.predict(X)
        scores = regressor_scores(y, prediction, weight)
        reused = "r2_score" if _scores_like(estimator, RegressorMixin, weight) else None
    else:
        return {}, None
    if reused in scores:  # estimator.score would predict again to compute the same number
        scores["score"] = scores[reused]
    else:
        extra = {} if weight is None else {"sample_weight": weight}
        value = plugin.numeric(estimator.score(X, y, **extra))
        if value is not None:
            scores["score"] = value
    return {f"training_{key}": value for key, value in scores.items()}, prediction


def _predict_with_proba(estimator: Any, X: Any) -> tuple[Any, Any]:
    """``(estimator.predict(X), estimator.predict_proba(X))``, the probabilities
    computed once where ``predict`` derives its answer from ``self.predict_proba(X)``
    (forests, bagging, calibrated and soft-voting classifiers): that call's result is
    kept instead of running it a second time (a 200-tree forest: 22 ms of 45). Its
    value is the one a second call would return; anything else, or a model that
    takes no instance attribute, gets the second call as before."""
    found: list[Any] = []
    real = getattr(estimator, "predict_proba", None)
    watched = real is not None and _watch_proba(estimator, X, real, found)
    try:
        prediction = estimator.predict(X)
    finally:
        if watched:
            _unwatch_proba(estimator)
    if found:
        return prediction, found[0]
    return prediction, _predict_proba(estimator, X)


def _watch_proba(estimator: Any, X: Any, real: Any, found: list[Any]) -> bool:
    """Shadow ``estimator.predict_proba`` with an instance attribute that calls the
    real method and keeps the result of a call with ``X`` itself, from this thread
    (another thread predicting with the same model meanwhile is only passed on)."""
    import threading

    thread = threading.get_ident()

    def predict_proba(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if (
            not found
            and len(args) == 1
            and args[0] is X
            and not kwargs
            and threading.get_ident() == thread
        ):
            # a copy: predict may change the array it was given in place
            found.append(result.copy() if hasattr(result, "copy") else result)
        return result

    predict_proba._autolog_watch = True  # type: ignore[attr-defined]
    namespace = getattr(estimator, "__dict__", None)
    if not isinstance(namespace, dict) or "predict_proba" in namespace:
        return False  # __slots__, or the user's own instance attribute: left alone
    try:
        namespace["predict_proba"] = predict_proba
    except Exception:
        return False
    return True


def _unwatch_proba(estimator: Any) -> None:
    namespace = estimator.__dict__
    if getattr(namespace.get("predict_proba"), "_autolog_watch", False):
        del namespace["predict_proba"]


def _predict_proba(estimator: Any, X: Any) -> Any:
    if not hasattr(estimator, "predict_proba"):  # e.g. SVC(probability=False)
        return None
    try:
        return estimator.predict_proba(X)
    except (AttributeError, NotImplementedError, ValueError):
        return None  # estimators that expose it but cannot (e.g. hinge-loss SGD)


def _scores_like(estimator: Any, mixin: type, weight: Any = None) -> bool:
    """Whether ``estimator.score`` is ``mixin.score`` (accuracy / R² of ``predict``),
    looking through a Pipeline to its final step, as Pipeline.score does, and
    through a refit search without ``scoring`` to its ``best_estimator_``, as
    BaseSearchCV.score does (whose ``predict`` is the best estimator's: the grid
    search of a pipeline predicted all its training rows a second time for the
    same accuracy). A search with ``sample_weight`` is asked, as before."""
    import inspect

    if weight is None and _scored_by_best_estimator(estimator, inspect):
        estimator = estimator.best_estimator_
    while hasattr(estimator, "steps") and hasattr(estimator, "_final_estimator"):
        estimator = estimator._final_estimator
    return inspect.getattr_static(type(estimator), "score", None) is mixin.__dict__.get("score")


def _scored_by_best_estimator(search: Any, inspect: Any) -> bool:
    """``search.score(X, y)`` is ``search.best_estimator_.score(X, y)``: a
    BaseSearchCV (its own ``score``) refit on one metric with ``scoring=None``."""
    from autolog.integrations.sklearn_search import is_search

    if not is_search(search):
        return False
    base = sys.modules["sklearn.model_selection._search"].BaseSearchCV
    return (
        inspect.getattr_static(type(search), "score", None) is base.__dict__.get("score")
        and getattr(search, "scoring", "") is None
        and getattr(search, "refit", None) is True
        and not getattr(search, "multimetric_", True)
        and hasattr(search, "best_estimator_")
    )


# -- model ----------------------------------------------------------------------


def log_estimator_model(call: Call, model: Any, X: Any, prediction: Any) -> None:
    """``log_model(model, "model")`` with a signature (dtype and shape only: cheap)
    and, with ``log_input_examples``, the first rows as input example."""
    signature = None
    if X is not None and (hasattr(X, "dtype") or hasattr(X, "dtypes")):
        try:
            signature = plugin.infer_signature(X, prediction)
        except plugin.InvalidParameterError:
            signature = None
    example = _head(X) if call.config.log_input_examples and X is not None else None
    options: dict[str, Any] = {}
    if call.config.serialization_format != "pickle":
        options = {"flavor": "sklearn", "serialization_format": call.config.serialization_format}
    plugin.log_model(
        model, "model", input_example=example, signature=signature, run_id=call.run_id, **options
    )


def _head(X: Any, rows: int = 5) -> Any:
    if hasattr(X, "iloc"):
        return X.iloc[:rows]
    if hasattr(X, "toarray"):
        return X[:rows].toarray()
    return X[:rows]
