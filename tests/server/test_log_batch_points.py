"""log-batch's metric points as the server reads them off the wire (straight
into rows: ``wire.metric_rows_from_wire``): every value form round-trips, and a
batch with one bad point is refused whole with a typed error, writing nothing."""

from __future__ import annotations

import contextlib
import math

import pytest

from autolog.server import ServerSettings, create_app
from autolog.tracking.stores.sql import SqlStore
from autolog.tracking.wire import MetricRows, metric_rows_from_wire
from tests.server.servers import call, postgres_schema, serving
from tests.server.test_api import A, strict

BACKENDS = ["sqlite", "file", "postgresql"]


@pytest.fixture(params=BACKENDS)
def api(request, tmp_path):
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            uri = stack.enter_context(postgres_schema())  # a throwaway schema
        elif request.param == "sqlite":
            uri = f"sqlite:///{tmp_path / 'db.sqlite'}"
        else:
            uri = str(tmp_path / "mlruns")
        art = str(tmp_path / "art")
        url = stack.enter_context(
            serving(create_app(ServerSettings(backend_store_uri=uri, artifacts_destination=art)))
        )

        def request_(method: str, path: str, body: dict | None = None, status: int = 200):
            got, _, raw = call(url, method, A + path, body)
            assert got == status, (method, path, got, raw)
            return strict(raw) if raw else {}

        yield request_


def _history(api, run_id: str, key: str) -> list[dict]:
    return api("GET", f"/metrics/get-history?run_id={run_id}&metric_key={key}").get("metrics", [])


def _new_run(api) -> str:
    body = {"experiment_id": "0", "start_time": 1000}
    return api("POST", "/runs/create", body)["run"]["info"]["run_id"]


def test_every_value_form_round_trips(api):
    run_id = _new_run(api)
    values = [0.5, 3, -(2**62), 10**308, "NaN", "Infinity", "-Infinity", "-0.25", -0.0]
    metrics = [
        {"key": "m", "value": v, "timestamp": 2**63 - 1 if i == 0 else i, "step": i - 3}
        for i, v in enumerate(values)
    ]
    metrics.append({"key": "m", "value": 1.0, "timestamp": 5})  # step omitted: 0
    metrics.append({"key": "n", "value": 2.0, "timestamp": "7", "step": "-9"})  # int64 as text
    api("POST", "/runs/log-batch", {"run_id": run_id, "metrics": metrics})
    history = _history(api, run_id, "m")
    assert [m["value"] for m in history] == [
        0.5, 3.0, float(-(2**62)), 1e308, 1.0, "NaN", "Infinity", "-Infinity", -0.25, -0.0,
    ]  # fmt: skip
    assert history[0]["timestamp"] == 2**63 - 1 and history[0]["step"] == -3
    assert _history(api, run_id, "n") == [{"key": "n", "value": 2.0, "timestamp": 7, "step": -9}]
    latest = api("GET", f"/runs/get?run_id={run_id}")["run"]["data"]["metrics"]
    assert {m["key"]: m["value"] for m in latest} == {"m": -0.0, "n": 2.0}


@pytest.mark.parametrize(
    "bad",
    [
        {"key": "m", "value": 1.0, "timestamp": 1, "step": 2**63},
        {"key": "m", "value": 1.0, "timestamp": -(2**63) - 1},
        {"key": "m", "value": 2**1024, "timestamp": 1},
        {"key": "m", "value": True, "timestamp": 1},
        {"key": "m", "value": None, "timestamp": 1},
        {"key": "m", "value": "many", "timestamp": 1},
        {"key": "m", "value": 1.0},
        {"key": "m", "value": 1.0, "timestamp": 1.5},
        {"key": "m", "value": 1.0, "timestamp": 1, "step": "x"},
        {"value": 1.0, "timestamp": 1},
        {"key": "../up", "value": 1.0, "timestamp": 1},
        ["m", 1.0, 1],
    ],
)
def test_a_bad_point_refuses_the_whole_batch_and_writes_nothing(api, bad):
    run_id = _new_run(api)
    good = {"key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    body = {"run_id": run_id, "metrics": [good, bad], "params": [{"key": "p", "value": "1"}]}
    error = api("POST", "/runs/log-batch", body, status=400)
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Traceback" not in error["message"]
    assert _history(api, run_id, "m") == []
    data = api("GET", f"/runs/get?run_id={run_id}")["run"]["data"]
    assert "metrics" not in data and "params" not in data


def test_rows_read_as_metrics_to_any_store(tmp_path):
    """What a store that does not know rows sees: Metrics, NaN as NaN; a SQL
    store writes the rows of its own run as they are, another run's as Metrics."""
    rows = metric_rows_from_wire("r1", [
        {"key": "a", "value": "NaN", "timestamp": 3, "step": 1},
        {"key": "b", "value": 2.5, "timestamp": 4},
    ])  # fmt: skip
    assert isinstance(rows, MetricRows) and len(rows) == 2 and rows.distinct_keys() == {"a", "b"}
    first, second = list(rows)
    assert first.key == "a" and math.isnan(first.value) and (first.timestamp, first.step) == (3, 1)
    assert (second.key, second.value, second.timestamp, second.step) == ("b", 2.5, 4, 0)
    assert [m.key for m in rows[1:]] == ["b"] and rows[-1].value == 2.5
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        other = store.create_run("0", "u", 1).info.run_id
        store.log_batch(other, metrics=rows)  # rows made for "r1": read as Metrics
        assert [(m.step, m.timestamp) for m in store.get_metric_history(other, "a")] == [(1, 3)]
        assert math.isnan(store.get_metric_history(other, "a")[0].value)
        assert store.get_run(other).data.metrics["b"] == 2.5
    finally:
        store.close()
