"""The spool behind a store, through the fluent API: an outage costs nothing.

The store here is a real SQLite store behind :class:`Outage` (what the REST
store raises when the server is away); the HTTP version of the same runs is in
test_outage.py.
"""

from __future__ import annotations

import time
import warnings

import pytest

import autolog
from autolog.errors import AutologWarning, TrackingWriteError
from autolog.tracking import stores
from autolog.tracking.stores.spool import Spool, SpoolFullError
from autolog.tracking.stores.spool_store import SpooledStore
from tests.spool.stores import Outage, sqlite_store


@pytest.fixture
def offline(tmp_path):
    """(outage switch, the real store behind it, the spooled store the fluent API uses)."""
    real = sqlite_store(tmp_path)
    outage = Outage(real)
    spooled = SpooledStore(outage)
    stores._stores[outage.uri] = spooled
    autolog.set_tracking_uri(outage.uri)
    yield outage, real, spooled
    outage.down = False
    stores._forget_stores()


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def spool_warnings(recwarn) -> list[str]:
    return [str(w.message) for w in recwarn if issubclass(w.category, AutologWarning)]


def test_an_outage_mid_run_loses_nothing_and_duplicates_nothing(offline, recwarn, capfd):
    outage, real, spooled = offline
    timestamps = [1_700_000_000_000 + i for i in range(600)]
    with autolog.start_run() as run:
        autolog.log_param("lr", 0.1)
        for i in range(200):
            autolog.log_metric("loss", i * 0.5, step=i, timestamp=timestamps[i])
        autolog.flush()
        outage.down = True  # the server goes away
        for i in range(200, 400):
            autolog.log_metric("loss", i * 0.5, step=i, timestamp=timestamps[i])
        autolog.set_tag("phase", "offline")
        autolog.flush()  # returns: the data is durable in the spool
        assert spooled.spooling
        assert Spool(spooled.spool.uri).total_bytes(fresh=True) > 0
        for i in range(400, 600):
            autolog.log_metric("loss", i * 0.5, step=i, timestamp=timestamps[i])
        autolog.flush()
        outage.down = False  # back: the background replay drains the spool
        wait_until(lambda: not spooled.spooling)
        autolog.log_metric("loss", 300.0, step=600, timestamp=timestamps[-1] + 1)
    (warning,) = spool_warnings(recwarn)
    assert "cannot be reached" in warning and str(spooled.spool.path) in warning
    assert "the spool has drained" in capfd.readouterr().err
    history = real.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (i, i * 0.5, t) for i, t in enumerate(timestamps)
    ] + [(600, 300.0, timestamps[-1] + 1)]
    stored = real.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"lr": "0.1"} and stored.data.tags["phase"] == "offline"
    assert spooled.spool.segments() == []  # drained: the files are gone


def test_a_run_started_offline_gets_its_id_and_start_time_here(offline, capfd):
    outage, real, spooled = offline
    autolog.set_experiment("churn")  # online: the experiment is remembered
    outage.down = True
    before = int(time.time() * 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autolog.start_run(run_name="offline-run") as run:
            autolog.log_metrics({"a": 1.0, "b": 2.0}, step=0)
            time.sleep(0.5)  # the replay thread tries meanwhile: still one warning
            autolog.log_metric("a", 1.0, step=1)
    after = int(time.time() * 1000)
    spool_warnings = [w for w in caught if issubclass(w.category, AutologWarning)]
    assert len(spool_warnings) == 1, [str(w.message) for w in spool_warnings]
    assert real.search_runs([run.info.experiment_id]) == []  # not there yet
    outage.down = False
    wait_until(lambda: not spooled.spooling)
    stored = real.get_run(run.info.run_id)  # the client's id, kept by the server
    assert before <= stored.info.start_time == run.info.start_time <= after
    assert stored.info.run_name == "offline-run" and stored.info.status == "FINISHED"
    assert stored.data.metrics == {"a": 1.0, "b": 2.0}
    assert [m.step for m in real.get_metric_history(run.info.run_id, "a")] == [0, 1]


def test_a_server_that_assigns_ids_gets_the_offline_run_mapped(tmp_path, capfd):
    real = sqlite_store(tmp_path)
    outage = Outage(real, assigns_run_ids=True)
    spooled = SpooledStore(outage)
    stores._stores[outage.uri] = spooled
    autolog.set_tracking_uri(outage.uri)
    autolog.get_experiment("0")  # remembered while online
    outage.down = True
    with pytest.warns(AutologWarning), autolog.start_run() as run:
        autolog.log_metric("m", 1.0, step=3)
    outage.down = False
    wait_until(lambda: not spooled.spooling)
    (stored,) = real.search_runs(["0"])
    assert stored.info.run_id != run.info.run_id
    assert spooled.ids.get(run.info.run_id) == stored.info.run_id
    assert "mapped" in capfd.readouterr().err
    # the process keeps using its id; the map translates
    assert autolog.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    assert [m.step for m in autolog.Client().get_metric_history(run.info.run_id, "m")] == [3]
    stores._forget_stores()


def test_a_full_spool_keeps_the_data_queued_and_flush_says_why(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("AUTOLOG_SPOOL_MAX_BYTES", "16KB")
    real = sqlite_store(tmp_path)
    outage = Outage(real)
    spooled = SpooledStore(outage)
    stores._stores[outage.uri] = spooled
    autolog.set_tracking_uri(outage.uri)
    with autolog.start_run() as run:
        autolog.flush()
        outage.down = True
        logged = 0
        with pytest.warns(AutologWarning), pytest.raises(TrackingWriteError) as caught:
            while logged < 10_000:  # far more than 16 KB
                for _ in range(50):
                    autolog.log_metric("x", float(logged), step=logged)
                    logged += 1
                autolog.flush()
        assert isinstance(caught.value.__cause__, SpoolFullError)
        assert "AUTOLOG_SPOOL_MAX_BYTES" in str(caught.value)
        assert 8_000 < spooled.spool.total_bytes(fresh=True) <= 16 * 1024
        outage.down = False  # replay makes room; the queued points follow
        wait_until(lambda: not spooled.spooling)
        autolog.flush()
    steps = [m.step for m in real.get_metric_history(run.info.run_id, "x")]
    assert steps == list(range(logged))  # none dropped, none twice
    stores._forget_stores()


def test_spool_off_gives_the_bare_store(monkeypatch, tmp_path):
    from autolog.tracking.stores.spool_store import spooled

    inner = Outage(sqlite_store(tmp_path))
    monkeypatch.setenv("AUTOLOG_SPOOL", "off")
    assert spooled(inner) is inner
    monkeypatch.setenv("AUTOLOG_SPOOL", "")
    assert isinstance(spooled(inner), SpooledStore)
