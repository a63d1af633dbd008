"""Retries of the REST store: a retried request never duplicates a run or a
metric row, transient statuses are retried (``Retry-After`` honoured),
deterministic ones are not, and an unreachable server gives
TransientStoreError within the configured time.

The connection is dropped by :class:`tests.rest.proxy.FaultProxy` *after*
the server answered: the server committed, only the answer is lost.
"""

from __future__ import annotations

import time
import uuid

import pytest

import autolog
from autolog.errors import (
    InvalidParameterError,
    TrackingWriteError,
    TransientStoreError,
)
from autolog.tracking.entities import Metric, Param, RunTag, ViewType
from autolog.tracking.stores.rest import RestStore
from tests.rest.proxy import FaultProxy, Rule
from tests.rest.servers import free_port

T0 = 1_700_000_000_000


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    # the REST store itself with the background writer: the offline spool
    # (issue 13), which takes over failed writes at once, has its own tests
    monkeypatch.setenv("AUTOLOG_SPOOL", "off")
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_BACKOFF_FACTOR", "0.05")
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_BACKOFF_JITTER", "0.05")
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_MAX_RETRIES", "3")


def _points(n: int) -> list[Metric]:
    # two points identical but for their step, two at the same step and time:
    # all distinct rows that must each be stored exactly once
    return [Metric("loss", 1.0 / (i + 1), T0 + i // 2, i // 3) for i in range(n)]


def _experiment(store: RestStore) -> str:
    return store.create_experiment(f"retry-{uuid.uuid4().hex[:8]}")


def test_dropped_log_batch_answer_adds_no_metric_row(any_server):
    direct = RestStore(any_server.url)
    experiment_id = _experiment(direct)
    run_id = direct.create_run(experiment_id, "me", T0).info.run_id
    points = _points(2500)  # three requests: every one of them loses its first answer
    with FaultProxy(any_server.port) as proxy:
        proxy.add(Rule("/runs/log-batch", "drop", times=3))
        RestStore(proxy.url).log_batch(
            run_id, metrics=points, params=[Param("lr", "0.1")], tags=[RunTag("t", "v")]
        )
        assert proxy.dropped["/api/2.0/mlflow/runs/log-batch"] >= 1
        assert proxy.seen["/api/2.0/mlflow/runs/log-batch"] > 3  # dropped ones were resent
    history = direct.get_metric_history(run_id, "loss")
    assert sorted((m.step, m.timestamp, m.value) for m in history) == sorted(
        (m.step, m.timestamp, m.value) for m in points
    )
    run = direct.get_run(run_id)
    assert run.data.params == {"lr": "0.1"} and run.data.tags["t"] == "v"


def test_dropped_create_run_answer_makes_one_run(any_server):
    direct = RestStore(any_server.url)
    experiment_id = _experiment(direct)
    with FaultProxy(any_server.port) as proxy:
        proxy.add(Rule("/runs/create", "drop"))
        run = RestStore(proxy.url).create_run(experiment_id, "me", T0, run_name="once")
        assert proxy.dropped["/api/2.0/mlflow/runs/create"] == 1
    runs = direct.search_runs([experiment_id], run_view_type=ViewType.ALL)
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    assert runs[0].info.run_name == "once"


def test_fluent_logging_through_a_flaky_connection_loses_and_doubles_nothing(any_server):
    with FaultProxy(any_server.port) as proxy:
        for path in ("/runs/create", "/runs/log-batch", "/runs/update"):
            proxy.add(Rule(path, "drop"))
        autolog.set_tracking_uri(proxy.url)
        name = f"flaky-{uuid.uuid4().hex[:8]}"
        experiment_id = autolog.set_experiment(name).experiment_id
        with autolog.start_run(run_name="flaky") as run:
            autolog.log_param("p", 1)
            for step in range(50):
                autolog.log_metric("m", step * 0.5, step=step)
        assert sum(proxy.dropped.values()) == 3
    direct = RestStore(any_server.url)
    runs = direct.search_runs([experiment_id], run_view_type=ViewType.ALL)
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    assert runs[0].info.status == "FINISHED"
    history = direct.get_metric_history(run.info.run_id, "m")
    assert [(m.step, m.value) for m in history] == [(s, s * 0.5) for s in range(50)]


def test_transient_statuses_are_retried_honouring_retry_after(our_server):
    with FaultProxy(our_server.port) as proxy:
        proxy.add(Rule("/experiments/get", "status", status=429, headers="Retry-After: 1\r\n"))
        proxy.add(Rule("/experiments/get", "status", status=503))
        started = time.monotonic()
        assert RestStore(proxy.url).get_experiment("0").name == "Default"
        assert time.monotonic() - started >= 1.0  # waited as Retry-After asked
        assert proxy.seen["/api/2.0/mlflow/experiments/get"] == 1


def test_a_deterministic_error_is_not_retried(our_server):
    direct = RestStore(our_server.url)
    run_id = direct.create_run("0", "me", T0).info.run_id
    direct.log_batch(run_id, params=[Param("p", "1")])
    with FaultProxy(our_server.port) as proxy:
        with pytest.raises(InvalidParameterError, match="p"):
            RestStore(proxy.url).log_batch(run_id, params=[Param("p", "2")])
        assert proxy.seen["/api/2.0/mlflow/runs/log-batch"] == 1
    assert direct.get_run(run_id).data.params == {"p": "1"}


def test_retries_stop_within_the_time_budget(our_server, monkeypatch):
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_MAX_RETRIES", "10")
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_MAX_RETRY_TIME", "1.5")
    with FaultProxy(our_server.port) as proxy:
        proxy.add(
            Rule("/experiments/get", "status", times=100, status=503, headers="Retry-After: 5\r\n")
        )
        started = time.monotonic()
        with pytest.raises(TransientStoreError, match="HTTP 503") as caught:
            RestStore(proxy.url).get_experiment("0")
        assert time.monotonic() - started < 1.5  # a 5 s wait would overrun: gave up at once
        assert caught.value.retry_after == 5


def test_unreachable_server_is_transient_and_loses_nothing(our_server, monkeypatch):
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_MAX_RETRY_TIME", "2")
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(TransientStoreError, match=r"ConnectionRefused|NewConnection"):
        RestStore(f"http://127.0.0.1:{port}").get_experiment("0")
    assert time.monotonic() - started < 5

    # the writer keeps what it could not write, and writes it once the server is back
    with FaultProxy(our_server.port) as proxy:
        autolog.set_tracking_uri(proxy.url)
        with autolog.start_run() as run:
            proxy.add(Rule("/runs/log-batch", "status", times=1000, status=502))
            autolog.log_metric("kept", 1.0)
            with pytest.raises(TrackingWriteError) as caught:
                autolog.flush()
            assert isinstance(caught.value.__cause__, TransientStoreError)
            proxy.rules.clear()
    history = RestStore(our_server.url).get_metric_history(run.info.run_id, "kept")
    assert [m.value for m in history] == [1.0]


def test_one_keep_alive_connection_serves_many_requests(our_server):
    with FaultProxy(our_server.port) as proxy:
        store = RestStore(proxy.url)
        run_id = store.create_run("0", "me", T0).info.run_id
        for step in range(20):
            store.log_batch(run_id, metrics=[Metric("m", 1.0, T0, step)])
            store.get_run(run_id)
        assert proxy.seen["/api/2.0/mlflow/runs/log-batch"] == 20
        assert proxy.connections == 1


def test_single_attempt_fails_fast_for_a_caller_that_keeps_writes(our_server):
    from autolog.tracking.stores.rest_http import single_attempt

    with FaultProxy(our_server.port) as proxy:
        unavailable = Rule("/experiments/get", "status", times=4, status=503)
        proxy.add(unavailable)
        store = RestStore(proxy.url)
        with single_attempt(), pytest.raises(TransientStoreError, match="1 attempt"):
            store.get_experiment("0")
        assert unavailable.times == 3  # tried once, no retry
        assert store.get_experiment("0").name == "Default"  # outside: retried until it passes
        assert unavailable.times == 0
