"""Replay into a real store: in order, exactly once, past refused records, ids mapped."""

from __future__ import annotations

import math

import pytest

from autolog.errors import TransientStoreError
from autolog.tracking.entities import LifecycleStage, Metric, Param, RunStatus, RunTag
from autolog.tracking.stores.spool import Spool
from autolog.tracking.stores.spool_records import (
    create_run_record,
    delete_tag_record,
    log_batch_record,
    update_run_record,
)
from autolog.tracking.stores.spool_replay import CLIENT_RUN_ID_TAG, IdMap, Replayer
from tests.spool.stores import Outage, sqlite_store

URI = "http://127.0.0.1:5000"
RUN = "0123456789abcdef0123456789abcdef"


def spool_a_run(spool: Spool, points: int = 3_000, run_id: str = RUN) -> list[Metric]:
    """A run's whole life in the spool: created, tagged, params, points in
    records of 100, a tag deleted, finished. Returns the points."""
    spool.append([create_run_record("0", "me", 1_000, [RunTag("team", "a")], "r1", run_id)])
    spool.append(
        [log_batch_record(run_id, params=[Param("lr", "0.1")], tags=[RunTag("gone", "x")])]
    )
    metrics = [Metric("loss", 1.0 / (i + 1), 10_000 + i, i) for i in range(points)]
    metrics[7] = Metric("loss", math.nan, 10_007, 7)
    for start in range(0, points, 100):
        spool.append([log_batch_record(run_id, metrics=metrics[start : start + 100])])
    spool.append([delete_tag_record(run_id, "gone")])
    spool.append([update_run_record(run_id, RunStatus.FINISHED, 99_000, None)])
    spool.close_segment()  # as a process does once it is done writing
    return metrics


def assert_run_stored_once(store, run_id: str, metrics: list[Metric]) -> None:
    runs = store.search_runs(["0"], max_results=100)
    assert [r.info.run_id for r in runs] == [run_id]
    run = runs[0]
    assert run.info.status == RunStatus.FINISHED and run.info.end_time == 99_000
    assert run.info.start_time == 1_000
    assert run.data.params == {"lr": "0.1"}
    assert "gone" not in run.data.tags and run.data.tags["team"] == "a"
    history = store.get_metric_history(run_id, "loss")
    rows = [(m.step, m.timestamp, m.value) for m in history]
    expected = [(m.step, m.timestamp, m.value) for m in metrics]
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):  # row by row, NaN included
        assert got[:2] == want[:2]
        assert got[2] == want[2] or (math.isnan(got[2]) and math.isnan(want[2]))


def test_a_replay_writes_everything_in_order(tmp_path):
    spool, store = Spool(URI), sqlite_store(tmp_path)
    metrics = spool_a_run(spool)
    replayer = Replayer(spool, store)
    for segment in spool.segments():
        replayer.replay_segment(segment)
    assert_run_stored_once(store, RUN, metrics)
    # rows: the run, a param and a tag, the points, a tag deleted, the end
    assert replayer.report.items == 1 + 2 + len(metrics) + 1 + 1
    assert replayer.report.records == 1 + 1 + len(metrics) // 100 + 1 + 1
    assert replayer.report.rejected == 0


@pytest.mark.parametrize("fail_after", [2, 3, 4, 5, 6])
def test_an_interrupted_replay_restarts_where_it_stopped_with_no_duplicates(tmp_path, fail_after):
    spool, store = Spool(URI), sqlite_store(tmp_path)
    metrics = spool_a_run(spool, points=12_000)  # replayed in 3 calls of points
    outage = Outage(store)
    outage.fail_after = fail_after  # the server dies after that many calls
    with pytest.raises(TransientStoreError):
        for segment in spool.segments():
            Replayer(spool, outage).replay_segment(segment)
    (segment,) = spool.segments()
    assert spool.cursor(segment).seq >= 1  # progress was kept
    outage.down, outage.fail_after, outage.calls = False, None, 0
    for segment in spool.segments():
        Replayer(spool, outage).replay_segment(segment)  # the server is back
    assert_run_stored_once(store, RUN, metrics)
    assert spool.segments() == []  # a replayed segment nobody writes to is deleted


def test_a_replay_run_twice_changes_nothing(tmp_path):
    """Even with the cursors lost (the worst case: everything sent again), natural
    idempotency keeps one row per point, param and tag."""
    spool, store = Spool(URI), sqlite_store(tmp_path)
    metrics = spool_a_run(spool)
    (segment,) = spool.segments()
    copy = segment.path.read_bytes()
    Replayer(spool, store).replay_segment(segment)
    segment.path.write_bytes(copy)  # as if the first replay had never been recorded
    Replayer(spool, store).replay_segment(segment)
    assert_run_stored_once(store, RUN, metrics)


def test_refused_records_are_set_aside_with_their_error_and_the_rest_goes_on(tmp_path):
    spool, store = Spool(URI), sqlite_store(tmp_path)
    store.create_run("0", "me", 5, run_id="f" * 32)
    store.log_batch("f" * 32, params=[Param("lr", "0.5")])
    deleted = store.create_run("0", "me", 6).info.run_id
    store.delete_run(deleted)
    good = [Metric("acc", 0.5, 7, 0)]
    # a param overwrite inside a batch that also holds good points and a good param
    spool.append([log_batch_record("f" * 32, good, [Param("lr", "0.9"), Param("bs", "8")])])
    spool.append([log_batch_record(deleted, [Metric("acc", 1.0, 8, 0)])])  # a deleted run
    spool.append([log_batch_record("f" * 32, [Metric("acc", 0.6, 9, 1)])])
    replayer = Replayer(spool, store)
    for segment in spool.segments():
        replayer.replay_segment(segment)
    run = store.get_run("f" * 32)
    assert run.data.params == {"lr": "0.5", "bs": "8"}
    assert [m.value for m in store.get_metric_history("f" * 32, "acc")] == [0.5, 0.6]
    rejected = spool.read_lines("rejected.jsonl")
    assert replayer.report.rejected == len(rejected) == 2
    assert rejected[0]["record"]["p"] == [["lr", "0.9"]]
    assert "ParamOverwriteError" in rejected[0]["error"]
    assert rejected[1]["record"]["run"] == deleted
    assert store.get_run(deleted).info.lifecycle_stage == LifecycleStage.DELETED
    assert store.get_metric_history(deleted, "acc") == []


def test_a_server_that_assigns_ids_gets_the_run_once_and_the_map_is_kept(tmp_path):
    spool, store = Spool(URI), sqlite_store(tmp_path)
    metrics = spool_a_run(spool, points=300)
    server = Outage(store, assigns_run_ids=True)
    server.fail_after = 3  # dies just after creating the run and logging a little
    with pytest.raises(TransientStoreError):
        Replayer(spool, server).replay_segment(spool.segments()[0])
    (server_id,) = [r.info.run_id for r in store.search_runs(["0"])]
    assert server_id != RUN
    assert IdMap(Spool(URI)).get(RUN) == server_id  # persisted for the next process
    server.down, server.fail_after = False, None
    replayer = Replayer(Spool(URI), server)
    replayer.replay_segment(spool.segments()[0])
    assert_run_stored_once(store, server_id, metrics)
    assert store.get_run(server_id).data.tags[CLIENT_RUN_ID_TAG] == RUN


def test_a_lost_id_map_does_not_create_the_run_twice(tmp_path):
    """Killed between the server's answer and the map's write: the run is found
    again by its clientRunId tag."""
    spool, store = Spool(URI), sqlite_store(tmp_path)
    metrics = spool_a_run(spool, points=200)
    server = Outage(store, assigns_run_ids=True)
    (segment,) = spool.segments()
    copy = segment.path.read_bytes()
    Replayer(spool, server).replay_segment(segment)
    (spool.path / "idmap.jsonl").unlink()
    segment.path.write_bytes(copy)
    Replayer(Spool(URI), server).replay_segment(segment)
    (run,) = store.search_runs(["0"])
    assert_run_stored_once(store, run.info.run_id, metrics)


def test_consecutive_batches_are_merged_into_fewer_store_calls(tmp_path):
    spool, store = Spool(URI), sqlite_store(tmp_path)
    metrics = spool_a_run(spool, points=3_000)  # 30 records of 100 points
    counting = Outage(store)
    Replayer(spool, counting).replay_segment(spool.segments()[0])
    assert counting.calls < 10
    assert_run_stored_once(store, RUN, metrics)
