"""Entities as the JSON of MLflow's tracking REST API 2.0, and back.

One encoding for both directions: the tracking server (``autolog.server``)
answers with these dicts and the REST store (``autolog.tracking.stores.rest``)
reads them back. The rules are those the official client depends on
(``shared/reference/mlflow-rest-api.md`` §2 and §6):

- experiment ids are JSON strings; a run's info carries ``run_id`` and ``run_uuid``;
- NaN and ±infinity are the quoted strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"`` (bare ``NaN`` tokens, what ``json.dumps`` writes, are
  rejected by the official client);
- int64 fields (timestamps, steps) are JSON numbers; numeric strings are
  accepted on the way in, non-integral numbers are not;
- enums (run status) by name; lifecycle stages as ``"active"`` / ``"deleted"``;
- empty lists and unset fields are left out.

>>> run_to_wire(run)["info"]["experiment_id"]
'1'
>>> float_from_wire("NaN", "value")
nan
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from autolog.errors import InvalidParameterError
from autolog.tracking.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    Run,
    RunData,
    RunInfo,
    RunStatus,
)
from autolog.tracking.validation import INT64_MAX, INT64_MIN

__all__ = [
    "dumps",
    "experiment_from_wire",
    "experiment_to_wire",
    "float_from_wire",
    "float_to_wire",
    "int_from_wire",
    "key_values_from_wire",
    "key_values_to_wire",
    "MetricRows",
    "metric_from_wire",
    "metric_rows_from_wire",
    "metric_to_wire",
    "run_from_wire",
    "run_info_from_wire",
    "run_info_to_wire",
    "run_to_wire",
    "status_from_wire",
]

_INF = math.inf
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": _INF, "-Infinity": -_INF, "inf": _INF, "-inf": -_INF}
# the proto enum RunStatus by number (the server accepts ints as well as names)
_STATUS_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


# -- scalars ---------------------------------------------------------------------------
def float_to_wire(value: float) -> float | str:
    """A double as proto-JSON: a number, or "NaN" / "Infinity" / "-Infinity"."""
    if value != value:
        return "NaN"
    if value == _INF:
        return "Infinity"
    if value == -_INF:
        return "-Infinity"
    return value


def float_from_wire(value: Any, field: str) -> float:
    """A proto-JSON double (number, numeric string, "NaN", "Infinity", "-Infinity").

    None, booleans and other strings raise InvalidParameterError naming ``field``."""
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:  # beyond the largest double (about 1.8e308)
            raise InvalidParameterError(
                f"Invalid value for field {field!r}: an integer beyond a double's range"
            ) from None
    if isinstance(value, str):
        word = _FLOAT_WORDS.get(value)
        if word is not None:
            return word
        try:
            return float(value)
        except ValueError:
            pass
    raise InvalidParameterError(f"Invalid value {value!r} for field {field!r}: expected a number")


def int_from_wire(value: Any, field: str, default: int | None = None) -> int | None:
    """An int64 field: a JSON integer or a numeric string (``"7"``); None gives ``default``.

    Non-integral numbers, numbers outside int64, booleans and other strings
    raise InvalidParameterError."""
    if value is None:
        return default
    number = None
    if type(value) is int:
        number = value
    elif type(value) is float and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            number = int(text)
    if number is None:
        raise InvalidParameterError(
            f"Invalid value {value!r} for field {field!r}: expected an integer"
        )
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidParameterError(
            f"Invalid value {number} for field {field!r}: outside the 64-bit integer range"
        )
    return number


def status_from_wire(value: Any) -> str | None:
    """A run status by name or proto number; None for an unknown one (as the
    official server's parser drops unknown enum names)."""
    if type(value) is int:
        return _STATUS_NUMBERS.get(value)
    if isinstance(value, str):
        if value in RunStatus.ALL:
            return value
        if value.isdigit():
            return _STATUS_NUMBERS.get(int(value))
    return None


def key_values_to_wire(mapping: Mapping[str, str]) -> list[dict[str, str]]:
    """``{"k": "v"}`` as ``[{"key": "k", "value": "v"}]`` (tags, params)."""
    return [{"key": k, "value": v} for k, v in mapping.items()]


def key_values_from_wire(items: Any, field: str) -> dict[str, str]:
    """``[{"key", "value"}]`` as a dict; a malformed entry raises InvalidParameterError."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise InvalidParameterError(f"Invalid {field!r}: expected a list of {{key, value}}")
    result: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise InvalidParameterError(f"Invalid entry {item!r} in {field!r}: expected a key")
        value = item.get("value", "")
        result[item["key"]] = value if isinstance(value, str) else str(value)
    return result


# -- entities ----------------------------------------------------------------------------
def metric_to_wire(metric: Metric) -> dict[str, Any]:
    return {
        "key": metric.key,
        "value": float_to_wire(metric.value),
        "timestamp": metric.timestamp,
        "step": metric.step,
    }


def _point_from_wire(item: Any) -> tuple[str, float, int, int]:
    """``(key, value, timestamp, step)`` of a wire metric; ``key``, ``value`` and
    ``timestamp`` are required, step and timestamp are int64. Anything else
    raises InvalidParameterError (keys are not validated here)."""
    if type(item) is dict:  # the common case, checked cheaply: a batch has 1,000 of these
        key, value, timestamp = item.get("key"), item.get("value"), item.get("timestamp")
        step = item.get("step", 0)
        if (
            type(key) is str
            and type(value) is float
            and type(timestamp) is int
            and type(step) is int
            and INT64_MIN <= timestamp <= INT64_MAX
            and INT64_MIN <= step <= INT64_MAX
        ):
            return key, value, timestamp, step
    if not isinstance(item, dict):
        raise InvalidParameterError(f"Invalid metric {item!r}: expected an object")
    key = item.get("key")
    if not isinstance(key, str):
        raise InvalidParameterError(f"Invalid metric {item!r}: missing 'key'")
    timestamp = int_from_wire(item.get("timestamp"), f"timestamp of metric {key!r}")
    if timestamp is None:
        raise InvalidParameterError(f"Missing value for field 'timestamp' of metric {key!r}")
    value = float_from_wire(item.get("value"), f"value of metric {key!r}")
    step = int_from_wire(item.get("step"), f"step of metric {key!r}", 0)
    return key, value, timestamp, step  # type: ignore[return-value]


def metric_from_wire(item: Any) -> Metric:
    """A Metric from its wire dict (see :func:`metric_rows_from_wire` for a batch's)."""
    key, value, timestamp, step = _point_from_wire(item)
    return Metric(key, value, timestamp, step)


def _metric_of(row: tuple) -> Metric:
    return Metric(row[1], math.nan if row[3] else row[2], row[5], row[4])


class MetricRows(Sequence[Metric]):
    """One run's metric points as the rows ``(run_id, key, value, is_nan, step,
    timestamp)`` (a NaN's value is None), in logging order: the SQL stores'
    metric rows (``sql_write.MetricRow``), which they write as they are; to
    any other store a sequence of :class:`Metric` like any other. What the
    server's log-batch makes of 1,000 wire points without 1,000 Metrics."""

    __slots__ = ("rows", "run_id")

    def __init__(self, run_id: str, rows: list[tuple]):
        self.run_id = run_id
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [_metric_of(row) for row in self.rows[index]]
        return _metric_of(self.rows[index])

    def __iter__(self) -> Iterator[Metric]:
        return map(_metric_of, self.rows)

    def distinct_keys(self) -> set[str]:
        return {row[1] for row in self.rows}


def metric_rows_from_wire(run_id: str, items: Iterable[Any]) -> MetricRows:
    """The wire metrics of one run as :class:`MetricRows`, each point checked as
    :func:`metric_from_wire` checks it; the first bad one raises
    InvalidParameterError."""
    rows = [
        (run_id, key, value, False, step, timestamp)
        if value == value
        else (run_id, key, None, True, step, timestamp)  # NaN
        for key, value, timestamp, step in map(_point_from_wire, items)
    ]
    return MetricRows(run_id, rows)


def experiment_to_wire(experiment: Experiment) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "experiment_id": str(experiment.experiment_id),
        "name": experiment.name,
        "artifact_location": experiment.artifact_location,
        "lifecycle_stage": experiment.lifecycle_stage,
    }
    if experiment.creation_time is not None:
        wire["creation_time"] = experiment.creation_time
    if experiment.last_update_time is not None:
        wire["last_update_time"] = experiment.last_update_time
    if experiment.tags:
        wire["tags"] = key_values_to_wire(experiment.tags)
    return wire


def experiment_from_wire(wire: Mapping[str, Any]) -> Experiment:
    return Experiment(
        experiment_id=str(wire.get("experiment_id", "")),
        name=wire.get("name", ""),
        artifact_location=wire.get("artifact_location", ""),
        lifecycle_stage=wire.get("lifecycle_stage", LifecycleStage.ACTIVE),
        tags=key_values_from_wire(wire.get("tags"), "tags"),
        creation_time=int_from_wire(wire.get("creation_time"), "creation_time"),
        last_update_time=int_from_wire(wire.get("last_update_time"), "last_update_time"),
    )


def run_info_to_wire(info: RunInfo) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "run_id": info.run_id,
        "run_uuid": info.run_id,
        "run_name": info.run_name,
        "experiment_id": str(info.experiment_id),
        "user_id": info.user_id,
        "status": info.status,
        "start_time": info.start_time,
        "artifact_uri": info.artifact_uri,
        "lifecycle_stage": info.lifecycle_stage,
    }
    if info.end_time is not None:  # 0 too: autolog's stores keep it as given
        wire["end_time"] = info.end_time
    return wire


def run_info_from_wire(wire: Mapping[str, Any]) -> RunInfo:
    run_id = wire.get("run_id") or wire.get("run_uuid") or ""
    return RunInfo(
        run_id=run_id,
        experiment_id=str(wire.get("experiment_id", "")),
        run_name=wire.get("run_name", ""),
        user_id=wire.get("user_id", ""),
        status=status_from_wire(wire.get("status", RunStatus.RUNNING)) or RunStatus.RUNNING,
        start_time=int_from_wire(wire.get("start_time"), "start_time", 0),
        end_time=int_from_wire(wire.get("end_time"), "end_time"),
        artifact_uri=wire.get("artifact_uri", ""),
        lifecycle_stage=wire.get("lifecycle_stage", LifecycleStage.ACTIVE),
    )


def run_to_wire(run: Run) -> dict[str, Any]:
    """The ``Run`` message. ``data.metrics`` holds the latest value per key (the
    entity keeps no step or timestamp for it, so those are left out)."""
    data: dict[str, Any] = {}
    if run.data.metrics:
        data["metrics"] = [
            {"key": k, "value": float_to_wire(v)} for k, v in run.data.metrics.items()
        ]
    if run.data.params:
        data["params"] = key_values_to_wire(run.data.params)
    if run.data.tags:
        data["tags"] = key_values_to_wire(run.data.tags)
    return {"info": run_info_to_wire(run.info), "data": data, "inputs": {}, "outputs": {}}


def run_from_wire(wire: Mapping[str, Any]) -> Run:
    data = wire.get("data") or {}
    metrics = {
        m["key"]: float_from_wire(m.get("value"), f"value of metric {m.get('key')!r}")
        for m in data.get("metrics") or ()
    }
    return Run(
        run_info_from_wire(wire.get("info") or {}),
        RunData(
            params=key_values_from_wire(data.get("params"), "params"),
            metrics=metrics,
            tags=key_values_from_wire(data.get("tags"), "tags"),
        ),
    )


def dumps(message: Mapping[str, Any] | Iterable[Any]) -> bytes:
    """Compact UTF-8 JSON; a bare NaN or infinity (a float not encoded above) is an error."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()
