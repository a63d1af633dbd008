"""``store.batch()``: one transaction for many calls on the SQL stores, a no-op
on the file store; and the background writer that uses it."""

from __future__ import annotations

from contextlib import nullcontext as _no_error

import pytest

from autolog.errors import (
    ParamOverwriteError,
    ResourceNotFoundError,
    StoreError,
    TrackingWriteError,
)
from autolog.tracking.entities import Metric, Param, RunStatus, RunTag
from autolog.tracking.writer import METRIC, PARAM, BatchingWriter

T0 = 1_700_000_000_000


def _runs_of(store) -> set[str]:
    return {r.info.run_id for r in store.search_runs(["0"], max_results=1000)}


def test_calls_in_a_batch_are_all_written_and_read_back_inside_it(store):
    with store.batch():
        run_id = store.create_run("0", "me", T0, tags=[RunTag("team", "a")]).info.run_id
        store.log_batch(run_id, metrics=[Metric("acc", 0.5, T0, 0)], params=[Param("lr", "0.1")])
        store.log_batch(run_id, metrics=[Metric("acc", 0.7, T0 + 1, 1)], tags=[RunTag("x", "y")])
        info = store.update_run_info(run_id, status=RunStatus.FINISHED, end_time=T0 + 5)
        assert (info.status, info.end_time, info.start_time) == ("FINISHED", T0 + 5, T0)
        # a read inside the batch sees the batch's own writes
        assert store.get_run(run_id).data.metrics == {"acc": 0.7}
    run = store.get_run(run_id)
    assert run.info.status == RunStatus.FINISHED
    assert run.data.params == {"lr": "0.1"}
    assert run.data.tags == {"team": "a", "x": "y"}
    assert [m.value for m in store.get_metric_history(run_id, "acc")] == [0.5, 0.7]


def test_a_failing_call_rolls_back_the_batch_on_sql_stores(store):
    before = store.create_run("0", "me", T0).info.run_id
    store.log_batch(before, params=[Param("lr", "0.1")])
    with store.batch() as atomic:
        pass
    with pytest.raises(ParamOverwriteError), store.batch():
        created = store.create_run("0", "me", T0 + 1).info.run_id
        store.log_batch(before, metrics=[Metric("acc", 0.9, T0)])
        store.log_batch(before, params=[Param("lr", "0.2")])  # params are immutable
    if atomic:  # SQL: nothing of the batch was written
        assert _runs_of(store) == {before}
        assert store.get_run(before).data.metrics == {}
    else:  # file store: no transaction, the calls before the failure stay written
        assert _runs_of(store) == {before, created}
        assert store.get_run(before).data.metrics == {"acc": 0.9}
    assert store.get_run(before).data.params == {"lr": "0.1"}


def test_a_caught_error_still_fails_the_sql_batch(store):
    run_id = store.create_run("0", "me", T0).info.run_id
    with store.batch() as atomic:
        pass
    outcome = pytest.raises(StoreError, match="rolled back") if atomic else _no_error()
    with outcome, store.batch():
        store.log_batch(run_id, tags=[RunTag("kept", "yes")])
        with pytest.raises(ResourceNotFoundError):
            store.log_batch("f" * 32, tags=[RunTag("a", "b")])
    # SQL: the batch never commits after a failed call; file: each call stands alone
    assert store.get_run(run_id).data.tags == ({} if atomic else {"kept": "yes"})


def test_nested_batches_join_the_outer_one(store):
    with store.batch():
        with store.batch():
            run_id = store.create_run("0", "me", T0).info.run_id
        store.log_batch(run_id, metrics=[Metric("m", 1.0, T0)])
    assert store.get_run(run_id).data.metrics == {"m": 1.0}


def test_the_writer_keeps_every_item_when_a_batch_fails(store):
    """A rejected write inside a drain: the SQL batch rolls back, the writer
    writes the operations one by one, drops only the offending one and raises."""
    writer = BatchingWriter(interval=60, wake_threshold=10**9)
    try:
        good = store.create_run("0", "me", T0).info.run_id
        store.log_batch(good, params=[Param("lr", "0.1")])
        other = store.create_run("0", "me", T0).info.run_id
        for step in range(3):
            writer.append((METRIC, store, good, Metric("loss", float(step), T0 + step, step)))
        writer.submit(store, lambda: store.update_run_info(good, status=RunStatus.FINISHED))
        writer.append((PARAM, store, other, Param("lr", "0.1")))
        writer.append((PARAM, store, good, Param("lr", "0.5")))  # rejected: immutable
        with pytest.warns(RuntimeWarning, match="rejected"), pytest.raises(TrackingWriteError):
            writer.flush()
        assert writer.pending == 0 and not writer.failing
        assert [m.value for m in store.get_metric_history(good, "loss")] == [0.0, 1.0, 2.0]
        assert store.get_run(good).info.status == RunStatus.FINISHED
        assert store.get_run(good).data.params == {"lr": "0.1"}
        assert store.get_run(other).data.params == {"lr": "0.1"}
    finally:
        writer.discard()
        writer.close(drain=False)
