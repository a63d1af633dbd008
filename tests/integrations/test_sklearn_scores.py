"""The training metric values equal sklearn.metrics' on the same data (ties,
weights, string labels, several classes, multi-output regression)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics

from autolog.integrations.sklearn_scores import classifier_scores, regressor_scores


def _proba(rng, n, k):
    raw = np.round(rng.rand(n, k), 1) + 0.01  # rounded: many tied scores
    return raw / raw.sum(axis=1, keepdims=True)


# 20,001 rows: past the length from which BLAS would split a dot product over
# threads; the sums are numpy's (_weighted_sum), and still equal sklearn's
ROWS = [200, 20_001]


@pytest.mark.parametrize("classes", [2, 3, 5])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("rows", ROWS)
def test_classifier_scores_equal_sklearn(classes, weighted, seed, rows):
    rng = np.random.RandomState(seed)
    labels = np.array(["ant", "bee", "cat", "dog", "eel"][:classes])
    y = labels[rng.randint(0, classes, rows)]
    y[:classes] = labels  # every class present, as in training data
    noisy = labels[rng.randint(0, classes, rows)]
    pred = np.where(rng.rand(rows) < 0.6, y, noisy)
    proba = _proba(rng, rows, classes)
    weight = rng.rand(rows) if weighted else None
    got = classifier_scores(y, pred, weight, proba=proba, classes=labels)
    w = {"sample_weight": weight}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero_division warnings of sklearn
        expected = {
            "accuracy_score": metrics.accuracy_score(y, pred, **w),
            "precision_score": metrics.precision_score(y, pred, average="weighted", **w),
            "recall_score": metrics.recall_score(y, pred, average="weighted", **w),
            "f1_score": metrics.f1_score(y, pred, average="weighted", **w),
            "log_loss": metrics.log_loss(y, proba, labels=labels, **w),
            "roc_auc": (
                metrics.roc_auc_score(y == labels[1], proba[:, 1], **w)
                if classes == 2
                else metrics.roc_auc_score(
                    y, proba, multi_class="ovr", average="weighted", labels=labels, **w
                )
            ),
        }
    assert got == pytest.approx(expected, rel=1e-12)


def test_binary_scores_for_pos_label_and_labels_outside_classes():
    y = np.array([0, 0, 1, 1, 1, 0])
    pred = np.array([0, 1, 1, 1, 0, 0])
    got = classifier_scores(y, pred, pos_label=0, classes=np.array([0, 1]))
    assert got["f1_score"] == pytest.approx(metrics.f1_score(y, pred, pos_label=0))
    assert got["precision_score"] == pytest.approx(metrics.precision_score(y, pred, pos_label=0))
    unseen = np.array([0, 2, 1, 1, 1, 0])  # a label classes_ does not hold: sorted out anyway
    got = classifier_scores(y, unseen, classes=np.array([0, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert got["f1_score"] == pytest.approx(metrics.f1_score(y, unseen, average="weighted"))


def test_multi_output_classification_gets_no_scores():
    y = np.array([[0, 1], [1, 0]])
    assert classifier_scores(y, y) == {}


@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("rows", [80, 20_001])
def test_regressor_scores_equal_sklearn(outputs, rows):
    rng = np.random.RandomState(outputs)
    y = rng.rand(rows, outputs).squeeze()
    pred = y + rng.normal(scale=0.3, size=y.shape)
    weight = rng.rand(rows)
    got = regressor_scores(y, pred, weight)
    w = {"sample_weight": weight}
    assert got == pytest.approx(
        {
            "mean_squared_error": metrics.mean_squared_error(y, pred, **w),
            "root_mean_squared_error": metrics.root_mean_squared_error(y, pred, **w),
            "mean_absolute_error": metrics.mean_absolute_error(y, pred, **w),
            "r2_score": metrics.r2_score(y, pred, **w),
        },
        rel=1e-12,
    )


def test_constant_target_r2_follows_sklearn():
    y = np.ones(5)
    assert regressor_scores(y, y)["r2_score"] == metrics.r2_score(y, y) == 1.0
    assert regressor_scores(y, y + 1)["r2_score"] == metrics.r2_score(y, y + 1) == 0.0
