"""Training metrics of a fitted scikit-learn estimator, computed from one prediction.

``classifier_scores`` / ``regressor_scores`` give the values that
``sklearn.metrics`` would (accuracy, weighted precision / recall / F1, log
loss, ROC AUC; MSE, RMSE, MAE, R²), computed with numpy from ONE
``predict`` (and one ``predict_proba``) over the training data. Why not call
``sklearn.metrics``: its functions validate their inputs on every call, and
the seven of them cost about 5 ms per fit, three times a small model's whole
``fit``; these cost a few hundred microseconds. ``tests/integrations`` checks
every value against ``sklearn.metrics`` on the same data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["classifier_scores", "regressor_scores"]


def _weights(sample_weight: Any, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    return np.asarray(sample_weight, dtype=float).reshape(n)


def _weighted_sum(weight: np.ndarray, values: np.ndarray) -> Any:
    """``weight @ values`` (per column of a 2-D ``values``) with numpy's own sum,
    not BLAS: OpenBLAS splits a dot product of more than 10,000 elements over its
    threads, and waking them costs milliseconds on a busy machine (10 to 20 ms for
    the ROC AUC of 20,000 rows on two loaded cores, where the sum takes 0.05 ms).
    sklearn's metrics sum with numpy too (``np.average``, ``np.trapezoid``)."""
    if values.ndim == 1:
        return np.multiply(weight, values).sum()
    return np.multiply(weight[:, None], values).sum(axis=0)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division)."""
    out = np.zeros_like(numerator, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def classifier_scores(
    y_true: Any,
    y_pred: Any,
    sample_weight: Any = None,
    *,
    proba: Any = None,
    classes: Any = None,
    pos_label: Any = None,
) -> dict[str, float]:
    """``accuracy_score``, ``precision_score``, ``recall_score``, ``f1_score``
    (weighted over labels; binary for ``pos_label`` when given and the target
    has at most two labels), and from ``proba`` (columns in ``classes`` order)
    ``log_loss`` and ``roc_auc`` (binary; one-vs-rest weighted by support for
    several classes). Multi-output targets get none."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.shape != y_true.shape or y_true.size == 0:
        return {}
    weight = _weights(sample_weight, y_true.size)
    labels, true_codes, pred_codes = _encode(y_true, y_pred, classes)
    n = labels.size
    confusion = np.bincount(true_codes * n + pred_codes, weights=weight, minlength=n * n)
    confusion = confusion.reshape(n, n)
    hits = np.diag(confusion)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision, recall = _ratio(hits, predicted), _ratio(hits, actual)
    f1 = _ratio(2 * hits, predicted + actual)
    if pos_label is not None and n <= 2 and pos_label in labels:
        at = int(np.searchsorted(labels, pos_label))
        averaged = {
            "precision_score": precision[at],
            "recall_score": recall[at],
            "f1_score": f1[at],
        }
    else:
        support = actual / actual.sum() if actual.sum() else np.zeros(n)
        averaged = {
            "precision_score": float(precision @ support),
            "recall_score": float(recall @ support),
            "f1_score": float(f1 @ support),
        }
    scores = {"accuracy_score": float(hits.sum() / weight.sum()), **averaged}
    if proba is not None and classes is not None:
        scores.update(_probability_scores(y_true, np.asarray(proba), np.asarray(classes), weight))
    return {key: float(value) for key, value in scores.items()}


def _encode(y_true: np.ndarray, y_pred: np.ndarray, classes: Any) -> tuple[np.ndarray, ...]:
    """Sorted labels and both targets as indices into them. The estimator's
    ``classes_`` when they hold every label (a binary search, faster than
    sorting both targets); labels of neither target only add zero-weight rows."""
    if classes is not None:
        labels = np.asarray(classes)
        try:
            codes = [np.searchsorted(labels, y) for y in (y_true, y_pred)]
            if all(
                c.max(initial=0) < labels.size and np.array_equal(labels[c], y)
                for c, y in zip(codes, (y_true, y_pred))
            ):
                return labels, codes[0], codes[1]
        except TypeError:  # labels that do not compare with classes_
            pass
    labels, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    return labels, codes[: y_true.size], codes[y_true.size :]


def _probability_scores(
    y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray, weight: np.ndarray
) -> dict[str, float]:
    if proba.ndim != 2 or proba.shape != (y_true.size, classes.size) or classes.size < 2:
        return {}
    at = np.searchsorted(classes, y_true)
    if np.any(at >= classes.size) or np.any(classes[np.minimum(at, classes.size - 1)] != y_true):
        return {}  # a label the estimator does not know: no column to read
    proba = proba.astype(float, copy=False)
    eps = np.finfo(proba.dtype).eps
    picked = np.clip(proba[np.arange(y_true.size), at], eps, 1 - eps)
    scores = {"log_loss": float(-_weighted_sum(weight, np.log(picked)) / weight.sum())}
    if classes.size == 2:
        auc = _binary_auc(at == 1, proba[:, 1], weight)
    else:
        aucs, supports = [], []
        for column in range(classes.size):
            positive = at == column
            aucs.append(_binary_auc(positive, proba[:, column], weight))
            supports.append(weight[positive].sum())
        valid = ~np.isnan(aucs)
        total = np.sum(np.asarray(supports)[valid])
        auc = (
            float(np.asarray(aucs)[valid] @ np.asarray(supports)[valid] / total) if total else None
        )
    if auc is not None and not np.isnan(auc):
        scores["roc_auc"] = auc
    return scores


def _binary_auc(positive: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float:
    """Area under the ROC curve (ties as sklearn's roc_curve: trapezoids); NaN if one class."""
    # Any sort will do: points are taken at the end of each run of equal scores.
    order = np.argsort(score)[::-1]
    score = score[order]
    ends = np.append(np.flatnonzero(np.diff(score)), score.size - 1)  # last index per threshold
    weight = weight[order]
    true_pos = np.cumsum(weight * positive[order])[ends]
    false_pos = np.cumsum(weight)[ends] - true_pos
    if true_pos[-1] <= 0 or false_pos[-1] <= 0:
        return float("nan")
    tpr = np.concatenate(([0.0], true_pos / true_pos[-1]))
    fpr = np.concatenate(([0.0], false_pos / false_pos[-1]))
    return float(_weighted_sum(np.diff(fpr), tpr[1:] + tpr[:-1]) / 2)


def regressor_scores(y_true: Any, y_pred: Any, sample_weight: Any = None) -> dict[str, float]:
    """``mean_squared_error``, ``root_mean_squared_error``, ``mean_absolute_error``
    and ``r2_score``, averaged uniformly over outputs as sklearn does by default."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.shape != y_pred.shape or y_true.size == 0:
        return {}
    weight = _weights(sample_weight, y_true.shape[0])
    total = weight.sum()
    error = y_true - y_pred
    residual = _weighted_sum(weight, error**2)
    mse = residual / total
    mae = _weighted_sum(weight, np.abs(error)) / total
    mean = _weighted_sum(weight, y_true) / total
    spread = _weighted_sum(weight, (y_true - mean) ** 2)
    # sklearn's force_finite: a constant target scores 1 when predicted exactly, else 0
    r2 = np.where(spread != 0, 1 - _ratio(residual, spread), np.where(residual == 0, 1.0, 0.0))
    return {
        "mean_squared_error": float(mse.mean()),
        "root_mean_squared_error": float(np.sqrt(mse).mean()),
        "mean_absolute_error": float(mae.mean()),
        "r2_score": float(r2.mean()),
    }
