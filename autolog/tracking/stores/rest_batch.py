"""How one ``log_batch`` is split into requests the server accepts.

The limits a tracking server enforces per ``runs/log-batch`` request (MLflow's
``mlflow/utils/validation.py``, and ours): at most 1000 metrics, 100 params,
100 tags and 1000 items in all. The split is the official client's, so both
clients send the same requests: params and tags in groups of 100, zipped
together; each request is filled up with metrics to 1000 items; the metrics
left over go in requests of 1000. Order is kept within each kind.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import zip_longest
from typing import TypeVar

from autolog.tracking.entities import Metric, Param, RunTag

__all__ = ["MAX_ITEMS", "MAX_METRICS", "MAX_PARAMS", "MAX_TAGS", "split_batch"]

MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_ITEMS = 1000

T = TypeVar("T")


def _groups(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _last_per_key(tags: Sequence[RunTag]) -> list[RunTag]:
    """One tag per key, the last value: what applying them in order leaves."""
    last = {tag.key: tag for tag in tags}
    return list(last.values())


def _without_repeats(params: Sequence[Param]) -> list[Param]:
    """Each (key, value) once: the server rejects a key repeated in one request,
    and the same value again is a no-op. A key with two values stays twice, so
    that the server refuses the change."""
    return list(dict.fromkeys(params))


def split_batch(
    metrics: Sequence[Metric], params: Sequence[Param], tags: Sequence[RunTag]
) -> Iterator[tuple[Sequence[Metric], Sequence[Param], Sequence[RunTag]]]:
    """The ``(metrics, params, tags)`` of each request, in sending order."""
    metrics = list(metrics)
    start = 0
    for param_group, tag_group in zip_longest(
        _groups(_without_repeats(params), MAX_PARAMS), _groups(_last_per_key(tags), MAX_TAGS)
    ):
        param_group, tag_group = param_group or (), tag_group or ()
        room = min(MAX_ITEMS - len(param_group) - len(tag_group), MAX_METRICS)
        yield metrics[start : start + room], param_group, tag_group
        start += room
    for group in _groups(metrics[start:], MAX_METRICS):
        yield group, (), ()
