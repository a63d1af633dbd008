"""Hyperparameter searches and cross-validation helpers: one run per user call.

A search (``GridSearchCV``, ``RandomizedSearchCV``, ``HalvingGridSearchCV``,
``HalvingRandomSearchCV``) gives a parent run with the search's params,
``best_<param>`` params, the ``best_cv_score`` metric, the ``cv_results_``
table as ``cv_results.csv``, training metrics and the best estimator as
``model``; and one child run (tag ``mlflow.parentRunId``) for each of the
``max_tuning_runs`` best candidates by rank (None: all), with the
candidate's params and its ``mean_*`` / ``std_*`` / ``rank_*`` columns as
metrics (test scores, fit and score times). The candidate fits themselves,
nested in the search's ``fit`` (or in joblib workers), log nothing.

``cross_validate`` / ``cross_val_score`` give per-fold values (metric steps
0, 1, ...) and ``<key>_mean`` / ``<key>_std``; ``cross_val_predict`` the
training metrics of its out-of-fold predictions, prefixed ``cv_``.
"""

from __future__ import annotations

import csv
import io
import sys
import types
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from autolog import plugin
from autolog.integrations import sklearn_fit
from autolog.plugin import Call, Patcher

__all__ = [
    "CROSS_VALIDATION_FUNCTIONS",
    "cv_results_csv",
    "is_search",
    "on_cross_validation",
    "on_search_fit",
    "patch_cross_validation",
]

CROSS_VALIDATION_FUNCTIONS = ("cross_validate", "cross_val_score", "cross_val_predict")
# arguments of the helpers that say how the estimator was evaluated
_EVALUATION_ARGUMENTS = ("cv", "scoring", "method")


def is_search(estimator: Any) -> bool:
    """Whether ``estimator`` is a hyperparameter search (a ``BaseSearchCV``)."""
    module = sys.modules.get("sklearn.model_selection._search")
    return module is not None and isinstance(estimator, module.BaseSearchCV)


def patch_cross_validation(
    patcher: Patcher, module: types.ModuleType, *, enabled: Callable[[], bool] | None = None
) -> None:
    """Wrap the helpers where users import them from: ``sklearn.model_selection``."""
    for name in CROSS_VALIDATION_FUNCTIONS:
        if hasattr(module, name):
            patcher.wrap(module, name, on_cross_validation, enabled=enabled)


# -- searches -----------------------------------------------------------------------


def on_search_fit(call: Call) -> Generator[None, Any, None]:
    """The parent run of a search's ``fit`` (see the module documentation)."""
    search = call.instance
    X, y, weight = sklearn_fit.fit_data(call)
    sklearn_fit.log_estimator(call, search, X)
    yield
    run_id = call.run_id
    best_params = getattr(search, "best_params_", None) or {}
    plugin.log_params(
        {f"best_{k}": sklearn_fit._describe(v, top=True) for k, v in best_params.items()}, run_id
    )
    best_score = plugin.numeric(getattr(search, "best_score_", None))
    if best_score is not None:
        plugin.log_metric("best_cv_score", best_score, run_id=run_id)
    results = getattr(search, "cv_results_", None)
    if results:
        plugin.log_text(cv_results_csv(results), "cv_results.csv", run_id=run_id)
        _log_candidates(call, search, results)
    best = getattr(search, "best_estimator_", None)
    if best is not None:  # refit: the search predicts with it
        sklearn_fit.log_fitted(call, search, X, y, weight, model=best)
        if call.config.log_post_training_metrics:
            call.integration.post_training.remember_fitted(best, run_id)


def cv_results_csv(results: dict[str, Any]) -> str:
    """``cv_results_`` as CSV text: one row per candidate, masked cells empty."""
    columns = list(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    count = len(results[columns[0]]) if columns else 0
    cells = [[_cell(results[c], i) for c in columns] for i in range(count)]
    writer.writerows(cells)
    return buffer.getvalue()


def _cell(column: Any, index: int) -> Any:
    if np.ma.isMaskedArray(column) and np.ma.getmaskarray(column)[index]:
        return ""
    value = column[index]
    if isinstance(value, dict):  # the "params" column
        return repr({k: sklearn_fit._describe(v, top=True) for k, v in value.items()})
    return sklearn_fit._describe(value, top=True) if not isinstance(value, np.generic) else value


def _rank_column(search: Any, results: dict[str, Any]) -> str | None:
    refit = getattr(search, "refit", True)
    for key in (f"rank_test_{refit}" if isinstance(refit, str) else None, "rank_test_score"):
        if key in results:
            return key
    return next((k for k in results if k.startswith("rank_test_")), None)


def _log_candidates(call: Call, search: Any, results: dict[str, Any]) -> None:
    """One child run per best candidate, in rank order."""
    rank = _rank_column(search, results)
    max_runs = call.config.max_tuning_runs
    if rank is None or call.run_id is None:
        return
    order = np.argsort(np.asarray(results[rank]), kind="stable")
    if max_runs is not None:
        order = order[: max(int(max_runs), 0)]
    metric_columns = [k for k in results if k.startswith(("mean_", "std_", "rank_"))]
    for index in order:
        params = {
            k: sklearn_fit._describe(v, top=True) for k, v in results["params"][index].items()
        }
        metrics = {}
        for column in metric_columns:
            value = plugin.numeric(results[column][index])
            if value is not None:
                metrics[column] = value
        # the one run policy (tags, extra_tags); ended without waiting for the
        # writer: the user's fit is not done yet
        with plugin.child_run(call) as child_id:
            plugin.log_params(params, child_id)
            if metrics:
                plugin.log_metrics(metrics, run_id=child_id)


# -- cross-validation helpers ----------------------------------------------------------


@plugin.datasets_from("X", "y")
def on_cross_validation(call: Call) -> Generator[None, Any, None]:
    """``cross_validate`` / ``cross_val_score`` / ``cross_val_predict``: one run per call."""
    estimator = call.argument("estimator")
    X, y = call.argument("X"), call.argument("y")
    sklearn_fit.log_estimator(call, estimator, X)
    settings = {
        f"cross_validation_{name}": call.argument(name)
        for name in _EVALUATION_ARGUMENTS
        if call.argument(name) is not None
    }
    plugin.log_params(
        {k: sklearn_fit._describe(v, top=True) for k, v in settings.items()}, call.run_id
    )
    result = yield
    name = call.wrapped.__name__
    if name == "cross_val_predict":
        _log_out_of_fold_scores(call, estimator, y, result)
    elif name == "cross_val_score":
        _log_per_fold({"test_score": result}, call.run_id)
    else:
        _log_per_fold(result, call.run_id)


def _log_per_fold(results: dict[str, Any], run_id: str | None) -> None:
    summary: dict[str, float] = {}
    folds: list[dict[str, float]] = []
    for key, values in results.items():
        array = np.asarray(values) if isinstance(values, (list, np.ndarray)) else None
        if array is None or array.ndim != 1 or array.dtype.kind not in "biuf":
            continue  # "estimator", "indices": not scores
        for fold, value in enumerate(array.tolist()):
            if fold == len(folds):
                folds.append({})
            folds[fold][key] = value
        summary[f"{key}_mean"] = float(array.mean())
        summary[f"{key}_std"] = float(array.std())
    for fold, values in enumerate(folds):
        plugin.log_metrics(values, step=fold, run_id=run_id)
    if summary:
        plugin.log_metrics(summary, run_id=run_id)


def _log_out_of_fold_scores(call: Call, estimator: Any, y: Any, prediction: Any) -> None:
    from sklearn.base import is_classifier, is_regressor

    from autolog.integrations.sklearn_scores import classifier_scores, regressor_scores

    if y is None or call.argument("method") not in (None, "predict"):
        return
    weight = (call.argument("params") or {}).get("sample_weight")
    if is_classifier(estimator):
        scores = classifier_scores(y, prediction, weight, pos_label=call.config.pos_label)
    elif is_regressor(estimator):
        scores = regressor_scores(y, prediction, weight)
    else:
        return
    if scores:
        plugin.log_metrics({f"cv_{k}": v for k, v in scores.items()}, run_id=call.run_id)
