"""The background writer: order, batching, failures, bounded queue, fork, exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

import autolog
from autolog.errors import ParamOverwriteError, TrackingWriteError
from autolog.tracking import writer as writers
from autolog.tracking.entities import Metric, Param
from autolog.tracking.stores.file import FileStore
from autolog.tracking.writer import METRIC, PARAM, BatchingWriter


class BreakableStore(FileStore):
    """A real file store whose writes fail on demand, like a full disk; counts batches."""

    def __init__(self, root):
        super().__init__(root)
        self.broken = False
        self.batches = 0
        self.delay = 0.0

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        if self.broken:
            raise OSError(28, "No space left on device")
        time.sleep(self.delay)
        self.batches += 1
        super().log_batch(run_id, metrics, params, tags)


@pytest.fixture
def store(tmp_path):
    return BreakableStore(tmp_path / "store")


def _new_run(store):
    return store.create_run("0", "me", start_time=0).info.run_id


def _metric(writer, store, run_id, key, value, step):
    writer.append((METRIC, store, run_id, Metric(key, float(value), 1000 + step, step)))


def test_interleaved_runs_keep_their_order_in_few_batches(store, writer):
    run_a, run_b = _new_run(store), _new_run(store)
    for step in range(300):
        _metric(writer, store, run_a, "loss", step, step)
        _metric(writer, store, run_b, "loss", -step, step)
    writer.append((PARAM, store, run_a, Param("lr", "0.1")))
    writer.flush()
    assert [m.value for m in store.get_metric_history(run_a, "loss")] == list(range(300))
    assert [m.value for m in store.get_metric_history(run_b, "loss")] == [-s for s in range(300)]
    assert store.get_run(run_a).data.params == {"lr": "0.1"}
    assert store.batches == 2  # one log_batch per run, not one per point


def test_calls_run_in_queue_order_between_batches(store, writer):
    run_id = _new_run(store)
    seen = []
    _metric(writer, store, run_id, "m", 1, 0)
    writer.submit(store, lambda: seen.append(len(store.get_metric_history(run_id, "m"))))
    _metric(writer, store, run_id, "m", 2, 1)
    writer.flush()
    assert seen == [1]  # the call saw the point before it and not the one after


def test_store_failure_warns_once_raises_at_flush_and_loses_nothing(store, writer):
    run_id = _new_run(store)
    store.broken = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(50):
            _metric(writer, store, run_id, "loss", step, step)
        with pytest.raises(TrackingWriteError) as raised:
            writer.flush()
        with pytest.raises(TrackingWriteError):
            writer.flush()  # still broken: raised again, items still kept
    assert isinstance(raised.value.__cause__, OSError)
    assert len([w for w in caught if "could not write" in str(w.message)]) == 1
    assert writer.pending == 50 and writer.failing
    store.broken = False
    writer.flush()
    assert [m.value for m in store.get_metric_history(run_id, "loss")] == list(range(50))
    assert not writer.failing


def test_background_failure_is_raised_by_end_run(tracking_uri, monkeypatch):
    run = autolog.start_run()
    autolog.log_metric("before", 1.0)
    autolog.flush()
    store = autolog.Client().store
    original = store.log_batch

    def failing_log_batch(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store, "log_batch", failing_log_batch)
    autolog.log_metric("lost?", 2.0)
    with pytest.warns(RuntimeWarning, match="could not write"), pytest.raises(TrackingWriteError):
        autolog.end_run()
    monkeypatch.setattr(store, "log_batch", original)
    autolog.flush()  # the retry now succeeds: nothing was dropped
    assert autolog.get_run(run.info.run_id).data.metrics == {"before": 1.0, "lost?": 2.0}


def test_full_queue_blocks_producer_until_writer_makes_room(store):
    writer = BatchingWriter(max_queue=20, wake_threshold=10, interval=0.01)
    run_id = _new_run(store)
    store.delay = 0.005
    try:
        for step in range(200):
            _metric(writer, store, run_id, "m", step, step)
            assert writer.pending <= 20
        writer.flush()
    finally:
        writer.close(drain=False)
    assert len(store.get_metric_history(run_id, "m")) == 200


def test_full_queue_with_failing_store_raises_instead_of_hanging(store):
    writer = BatchingWriter(max_queue=5, wake_threshold=10**9, interval=0.01)
    run_id = _new_run(store)
    store.broken = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for step in range(5):
                _metric(writer, store, run_id, "m", step, step)
            with pytest.raises(TrackingWriteError, match="queue is full"):
                for step in range(5, 100):
                    _metric(writer, store, run_id, "m", step, step)
    finally:
        writer.discard()
        writer.close(drain=False)


def test_rejected_item_is_reported_and_the_rest_of_the_batch_written(store, writer):
    run_id = _new_run(store)
    store.log_batch(run_id, params=[Param("lr", "0.1")])  # as if another process logged it
    writer.append((PARAM, store, run_id, Param("lr", "0.2")))
    _metric(writer, store, run_id, "kept", 1, 0)
    with pytest.warns(RuntimeWarning), pytest.raises(TrackingWriteError) as raised:
        writer.flush()
    assert isinstance(raised.value.__cause__, ParamOverwriteError)
    assert store.get_run(run_id).data.metrics == {"kept": 1.0}
    writer.flush()  # reported once, not forever


def test_a_rejected_call_with_a_huge_name_is_reported_in_a_short_line(store, writer):
    """An artifact name of thousands of characters is named by its start only."""
    run_id = _new_run(store)
    name = "k" * 5000

    def refuse():
        raise ValueError("refused")

    writer.submit(store, refuse, run_id, what=f"artifact {name!r}")
    with pytest.warns(RuntimeWarning) as caught, pytest.raises(TrackingWriteError):
        writer.flush()
    message = str(caught[0].message)
    assert "artifact 'kkkk" in message and "refused" in message
    assert len(message) < 400


def test_synchronous_log_is_in_the_store_on_return(tracking_uri):
    with autolog.start_run() as run:
        autolog.log_metric("now", 3.0, synchronous=True)
        store = autolog.Client().store
        assert [m.value for m in store.get_metric_history(run.info.run_id, "now")] == [3.0]


def test_producer_threads_lose_nothing(tracking_uri):
    with autolog.start_run() as run:

        def produce(name):
            for step in range(2000):
                autolog.log_metric(name, step, step=step, run_id=run.info.run_id)

        threads = [threading.Thread(target=produce, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    client = autolog.Client()
    for i in range(4):
        assert [m.step for m in client.get_metric_history(run.info.run_id, f"t{i}")] == list(
            range(2000)
        )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_forked_child_gets_its_own_writer(tracking_uri):
    with autolog.start_run() as run:
        autolog.log_metric("parent", 1.0)
        parent_writer = writers.get_writer()
        pid = os.fork()
        if pid == 0:  # the child: fresh writer, none of the parent's items
            code = 1
            try:
                child_writer = writers.get_writer()
                if child_writer is not parent_writer and child_writer.pending == 0:
                    autolog.log_metric("child", 2.0, run_id=run.info.run_id)
                    autolog.flush()
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    history = autolog.Client().get_metric_history(run.info.run_id, "parent")
    assert len(history) == 1  # written by the parent only, not twice
    assert autolog.get_run(run.info.run_id).data.metrics == {"parent": 1.0, "child": 2.0}


def test_interpreter_exit_drains_and_ends_active_run(tracking_uri, tmp_path):
    script = textwrap.dedent(
        """
        import autolog
        run = autolog.start_run()
        for step in range(1000):
            autolog.log_metric("loss", step, step=step)
        print(run.info.run_id)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    run_id = result.stdout.strip()
    run = autolog.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(autolog.Client().get_metric_history(run_id, "loss")) == 1000


# -- while a training call is in progress ------------------------------------------


def _wait_until_written(writer, timeout=10.0):
    deadline = time.monotonic() + timeout
    while writer.pending and time.monotonic() < deadline:
        time.sleep(0.005)
    with writer._drain_lock:  # the drain that took the items has written them
        return writer.pending == 0


@pytest.fixture
def training():
    """One training call in progress for the test's duration (ended if the test did not)."""
    from autolog.tracking import training_calls

    training_calls.began()
    state = {"open": True}

    def end():
        state["open"] = False
        training_calls.ended()

    yield end
    if state["open"]:
        training_calls.ended()


def test_a_training_call_in_progress_holds_the_drains_back_until_it_ends(store, training):
    writer = BatchingWriter(interval=0.01)  # drains every 10 ms when no training runs
    writers_before = writers._writer
    writers._writer = writer  # the one the end of the training wakes
    try:
        run_id = _new_run(store)
        time.sleep(0.05)  # the writer now sleeps again since a drain during the training
        _metric(writer, store, run_id, "loss", 0.5, 0)
        time.sleep(0.3)  # 30 of its intervals, well below TRAINING_INTERVAL
        assert writers.TRAINING_INTERVAL >= 0.5
        assert writer.pending == 1  # not written beside the training
        training()
        assert _wait_until_written(writer)
    finally:
        writers._writer = writers_before
        writer.close(drain=False)
    assert [m.value for m in store.get_metric_history(run_id, "loss")] == [0.5]


def test_the_end_of_the_last_training_call_wakes_a_sleeping_writer(store, training):
    writer = BatchingWriter(interval=3600)  # would not drain on its own within the test
    writers_before = writers._writer
    writers._writer = writer
    try:
        run_id = _new_run(store)
        _metric(writer, store, run_id, "loss", 0.5, 0)
        training()
        assert _wait_until_written(writer)
    finally:
        writers._writer = writers_before
        writer.close(drain=False)


def test_a_full_wake_threshold_still_drains_during_a_training_call(store, training):
    writer = BatchingWriter(interval=3600, wake_threshold=50)
    try:
        run_id = _new_run(store)
        for step in range(50):
            _metric(writer, store, run_id, "loss", step, step)
        assert _wait_until_written(writer)  # long trainings do not pile up points
    finally:
        writer.close(drain=False)
    assert len(store.get_metric_history(run_id, "loss")) == 50


def test_training_calls_are_counted_across_nesting_and_threads():
    from autolog.tracking import training_calls

    woken = []
    before = training_calls.on_idle
    training_calls.on_idle = lambda: woken.append(training_calls.in_progress)
    try:
        training_calls.began()
        thread = threading.Thread(target=lambda: (training_calls.began(), training_calls.ended()))
        thread.start()
        thread.join()
        assert woken == []  # another call is still in progress
        training_calls.ended()
        assert woken == [0]
    finally:
        training_calls.on_idle = before
