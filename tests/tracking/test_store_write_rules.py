"""The store contract's write rules, on every backend (the ``store`` fixture):

- every write is idempotent, so a retried write (the writer's, a REST client's)
  stores nothing twice: an identical metric point is stored once;
- a write to a deleted run is a RunStateError (and restoring it allows writes again).
"""

from __future__ import annotations

import math

import pytest

from autolog.errors import RunStateError
from autolog.tracking.entities import Metric, Param, RunTag

T0 = 1_700_000_000_000


def _run(store) -> str:
    return store.create_run("0", "alice", T0).info.run_id


def test_log_batch_twice_with_the_same_points_gives_one_row_each(store):
    run_id = _run(store)
    points = [
        Metric("loss", 0.5, T0, 0),
        Metric("loss", math.nan, T0, 1),
        Metric("loss", 0.25, T0, 2),
    ]
    for _ in range(2):  # a retry of a write whose first attempt got through
        store.log_batch(
            run_id, metrics=points, params=[Param("lr", "0.1")], tags=[RunTag("k", "v")]
        )
    history = store.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert history[0].value == 0.5 and math.isnan(history[1].value) and history[2].value == 0.25
    run = store.get_run(run_id)
    assert run.data.metrics["loss"] == 0.25 and run.data.params == {"lr": "0.1"}


def test_points_that_differ_in_one_field_are_all_kept(store):
    run_id = _run(store)
    points = [
        Metric("m", 1.0, T0, 0),
        Metric("m", 2.0, T0, 0),  # another value
        Metric("m", 1.0, T0 + 1, 0),  # another timestamp
        Metric("m", 1.0, T0, 1),  # another step
    ]
    store.log_batch(run_id, metrics=points)
    assert len(store.get_metric_history(run_id, "m")) == 4


def test_writes_to_a_deleted_run_are_a_typed_error_until_it_is_restored(store):
    run_id = _run(store)
    store.log_batch(run_id, metrics=[Metric("m", 1.0, T0, 0)], tags=[RunTag("k", "v")])
    store.delete_run(run_id)
    for write in (
        lambda: store.log_batch(run_id, metrics=[Metric("m", 2.0, T0, 1)]),
        lambda: store.log_batch(run_id, params=[Param("lr", "0.1")]),
        lambda: store.log_batch(run_id, tags=[RunTag("k", "w")]),
        lambda: store.update_run_info(run_id, status="FINISHED", end_time=T0 + 5),
        lambda: store.delete_tag(run_id, "k"),
    ):
        with pytest.raises(RunStateError, match=run_id):
            write()
    run = store.get_run(run_id)  # unchanged
    assert run.data.metrics == {"m": 1.0} and run.data.tags["k"] == "v" and not run.data.params
    assert run.info.status == "RUNNING" and run.info.end_time is None
    store.restore_run(run_id)
    store.log_batch(run_id, metrics=[Metric("m", 2.0, T0, 1)])
    assert store.get_run(run_id).data.metrics == {"m": 2.0}
