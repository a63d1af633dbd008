"""The callback the XGBoost integration adds to ``train``/``cv``/``fit``.

A module of its own because it subclasses ``xgboost.callback.TrainingCallback``
(XGBoost checks ``isinstance``), so it imports xgboost: the integration
imports it only once xgboost is imported, and a process that unpickles the
callback (a distributed worker) finds it by this module's name.
"""

from __future__ import annotations

from typing import Any

from xgboost.callback import TrainingCallback

from autolog.integrations._boosting import IterationMetricsLogger, Score
from autolog.patching import guard

__all__ = ["XGBoostMetricsCallback"]


class XGBoostMetricsCallback(TrainingCallback):
    """Logs each round's evaluation scores, one ``log_metrics`` call per round.

    ``evals_log`` is XGBoost's history ``{dataset: {metric: [score, ...]}}``;
    a score is a float in ``train`` and a ``(mean, std)`` pair in ``cv``.
    """

    def __init__(self, run_id: str | None):
        super().__init__()
        self.logger = IterationMetricsLogger("xgboost", run_id)

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        with guard("xgboost", "in the per-iteration callback"):
            self.logger.log_iteration(epoch, _last_scores(evals_log))
        return False  # never ask XGBoost to stop


def _last_scores(evals_log: Any) -> list[Score]:
    scores: list[Score] = []
    for dataset, metrics in evals_log.items():
        for metric, history in metrics.items():
            last = history[-1]
            if isinstance(last, tuple):
                scores.append((dataset, metric, last[0], last[1]))
            else:
                scores.append((dataset, metric, last, None))
    return scores
