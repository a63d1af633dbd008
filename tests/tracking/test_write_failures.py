"""One write that fails never blocks the others (issue 20, items 1 and 2).

A permanent failure (the store refuses the item) rejects that item only: it is
warned about once, raised once by the next flush(), and every other item, of
its run and of other runs, is written. A transient failure (disk full, lost
connection) holds only its run's items, in order, until a retry succeeds.
The store tests run on every backend of the conformance suite (``store``).
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import autolog
from autolog.errors import InvalidParameterError, TrackingWriteError
from autolog.tracking import writer as writers
from autolog.tracking.entities import Metric, Param, RunTag
from autolog.tracking.stores.file import FileStore
from autolog.tracking.writer import METRIC, PARAM, TAG, BatchingWriter
from tests.tracking.sql_stores import make_postgresql_store, make_sqlite_store

T0 = 1_700_000_000_000


def _points(writer, store, run_id, key, steps):
    for step in steps:
        writer.append((METRIC, store, run_id, Metric(key, float(step), T0 + step, step)))


def _flush_recording(writer, **kwargs):
    """flush(); returns (the TrackingWriteError or None, the warnings' texts)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            writer.flush(**kwargs)
            raised = None
        except TrackingWriteError as error:
            raised = error
    return raised, [str(w.message) for w in caught]


def test_a_rejected_write_of_one_run_lets_another_run_be_written(store, writer):
    bad = store.create_run("0", "alice", T0).info.run_id
    good = store.create_run("0", "bob", T0).info.run_id
    store.log_batch(bad, params=[Param("lr", "0.1")])  # as another process did
    _points(writer, store, bad, "loss", range(50))
    writer.append((PARAM, store, bad, Param("lr", "0.2")))  # refused for good
    _points(writer, store, bad, "loss", range(50, 100))
    _points(writer, store, good, "loss", range(200))
    writer.append((PARAM, store, good, Param("depth", "3")))
    writer.append((TAG, store, good, RunTag("team", "a")))

    raised, warned = _flush_recording(writer)
    assert raised is not None
    assert raised.rejected == [(bad, "param 'lr'", raised.__cause__)]
    assert bad in str(raised) and "param 'lr'" in str(raised) and good not in str(raised)
    rejected = [w for w in warned if "rejected" in w]
    assert len(rejected) == 1 and bad in rejected[0] and "'lr'" in rejected[0]
    again, warned_again = _flush_recording(writer)  # reported once, not forever
    assert again is None and warned_again == []

    run = store.get_run(good)
    assert run.data.params == {"depth": "3"} and run.data.tags["team"] == "a"
    assert [m.step for m in store.get_metric_history(good, "loss")] == list(range(200))
    # the bad run's other items are written too, in order; its param keeps its value
    assert [m.step for m in store.get_metric_history(bad, "loss")] == list(range(100))
    assert store.get_run(bad).data.params == {"lr": "0.1"}


def test_a_flush_for_one_run_raises_only_its_own_rejections(store, writer):
    bad = store.create_run("0", "alice", T0).info.run_id
    good = store.create_run("0", "bob", T0).info.run_id
    store.log_batch(bad, params=[Param("lr", "0.1")])
    writer.append((PARAM, store, bad, Param("lr", "0.2")))
    _points(writer, store, good, "m", range(3))
    raised, _warned = _flush_recording(writer, run_id=good)
    assert raised is None  # end_run of the good run: nothing of its own failed
    raised, _warned = _flush_recording(writer)
    assert raised is not None and bad in str(raised)


@pytest.mark.parametrize(
    ("backend", "bad_item"),
    [
        # beyond SQLite's INTEGER: the driver raises OverflowError
        ("sqlite", (METRIC, Metric("m", 1.0, T0, 2**70), f"metric 'm' (step {2**70})")),
        # PostgreSQL text cannot hold NUL
        ("postgresql", (PARAM, Param("p", "a\x00b"), "param 'p'")),
    ],
)
def test_what_validation_would_refuse_is_found_in_a_big_batch_and_rejected_alone(
    backend, bad_item, tmp_path, writer
):
    store = {"sqlite": make_sqlite_store, "postgresql": make_postgresql_store}[backend](tmp_path)
    try:
        run_id = store.create_run("0", "alice", T0).info.run_id
        other = store.create_run("0", "bob", T0).info.run_id
        kind, payload, what = bad_item
        _points(writer, store, run_id, "loss", range(500))
        writer.append((kind, store, run_id, payload))  # validation is bypassed on purpose
        _points(writer, store, run_id, "loss", range(500, 1000))
        _points(writer, store, other, "loss", range(300))
        raised, warned = _flush_recording(writer)
        assert raised is not None and raised.rejected[0][:2] == (run_id, what)
        assert len([w for w in warned if "rejected" in w]) == 1
        # bisection found the one bad item: every good point of both runs is written
        assert [m.step for m in store.get_metric_history(run_id, "loss")] == list(range(1000))
        assert len(store.get_metric_history(other, "loss")) == 300
    finally:
        store.close()


@pytest.mark.parametrize(
    ("backend", "bad_call"),
    [
        ("sqlite", lambda: autolog.log_metric("m", 1.0, step=2**70)),
        ("postgresql", lambda: autolog.log_param("p", "a\x00b")),
    ],
)
def test_the_issue_cases_are_refused_at_the_call_and_later_runs_are_written(
    backend, bad_call, tmp_path, monkeypatch
):
    store = {"sqlite": make_sqlite_store, "postgresql": make_postgresql_store}[backend](tmp_path)
    try:
        monkeypatch.setenv("AUTOLOG_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
        autolog.set_tracking_uri(store.uri)
        with autolog.start_run() as first:
            autolog.log_metric("kept", 1.0)
            with pytest.raises(InvalidParameterError):
                bad_call()
        with autolog.start_run() as second:
            for step in range(62):
                autolog.log_metric("loss", step, step=step)
        autolog.flush()  # nothing was accepted that the store cannot hold
        assert autolog.get_run(first.info.run_id).data.metrics == {"kept": 1.0}
        assert len(autolog.Client().get_metric_history(second.info.run_id, "loss")) == 62
    finally:
        autolog.tracking.fluent._reset_for_tests()
        store.close()


class FlakyFileStore(FileStore):
    """A real file store whose writes of one run fail like a full disk, on demand."""

    def __init__(self, root):
        super().__init__(root)
        self.failing_run: str | None = None

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        if run_id == self.failing_run:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().log_batch(run_id, metrics, params, tags)


def test_a_transient_failure_holds_only_its_run_and_keeps_its_order(tmp_path, writer):
    store = FlakyFileStore(tmp_path / "store")
    stuck = store.create_run("0", "alice", T0).info.run_id
    fine = store.create_run("0", "bob", T0).info.run_id
    store.failing_run = stuck
    _points(writer, store, stuck, "loss", range(100))
    _points(writer, store, fine, "loss", range(100))
    raised, warned = _flush_recording(writer)
    assert raised is not None and "kept for retry" in str(raised)
    assert stuck in str(raised) and fine not in str(raised)
    assert isinstance(raised.__cause__, OSError)
    assert len([w for w in warned if "could not write" in w]) == 1
    assert len(store.get_metric_history(fine, "loss")) == 100  # not held back
    assert writer.pending == 100 and writer.failing
    # still failing: later points of the stuck run queue behind the held ones
    _points(writer, store, stuck, "loss", range(100, 150))
    _points(writer, store, fine, "loss", range(100, 150))
    raised, _warned = _flush_recording(writer)
    assert raised is not None and "150 items kept for retry" in str(raised)
    assert len(store.get_metric_history(fine, "loss")) == 150
    store.failing_run = None  # space is back
    raised, _warned = _flush_recording(writer)
    assert raised is None and not writer.failing
    assert [m.step for m in store.get_metric_history(stuck, "loss")] == list(range(150))


def test_the_held_run_is_retried_in_the_background(tmp_path):
    store = FlakyFileStore(tmp_path / "store")
    run_id = store.create_run("0", "alice", T0).info.run_id
    store.failing_run = run_id
    writer = BatchingWriter(interval=0.01)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _points(writer, store, run_id, "m", range(10))
            writer.wake()
            for _ in range(200):
                if writer.failing:
                    break
                time.sleep(0.01)
            assert writer.failing
            store.failing_run = None
            for _ in range(500):  # retried on its own, without a flush
                if not writer.failing and not writer.pending:
                    break
                time.sleep(0.01)
        assert len(store.get_metric_history(run_id, "m")) == 10
    finally:
        writer.close(drain=False)


def test_a_rejected_creation_drops_its_run_once_and_spares_the_others(writer, monkeypatch):
    monkeypatch.setattr(writers, "_writer", writer)  # drains only when flushed
    doomed_experiment = autolog.create_experiment("gone-soon")
    run = autolog.start_run(experiment_id=doomed_experiment)  # its creation is queued
    for step in range(100):
        autolog.log_metric("loss", step, step=step)
    # the store then refuses it: another process removed the experiment meanwhile
    shutil.rmtree(autolog.Client().store.root / doomed_experiment)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TrackingWriteError) as raised:
            autolog.end_run()
    assert run.info.run_id in str(raised.value) and "create_run" in str(raised.value)
    assert "later writes of the run dropped" in str(raised.value)
    assert len([w for w in caught if "rejected" in str(w.message)]) == 1
    with autolog.start_run() as later:
        autolog.log_metric("loss", 1.0)
    assert autolog.get_run(later.info.run_id).data.metrics == {"loss": 1.0}


def test_a_run_removed_from_under_the_writer_is_reported_once(writer, monkeypatch):
    monkeypatch.setattr(writers, "_writer", writer)
    with autolog.start_run() as run:
        autolog.flush()  # created
        run_dir = autolog.Client().store.root / "0" / run.info.run_id
        shutil.rmtree(run_dir)  # another process removed it
        autolog.log_params({"a": 1, "b": 2})
        for step in range(100):
            autolog.log_metric("loss", step, step=step)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(TrackingWriteError, match="later writes of the run dropped"):
                autolog.flush()
            autolog.end_run()  # its end is dropped with it, and was reported already
    assert len([w for w in caught if "rejected" in str(w.message)]) == 1


def test_reads_and_other_runs_do_not_raise_for_a_rejected_write(tracking_uri):
    store = autolog.Client().store
    with autolog.start_run() as first:
        autolog.log_param("lr", "0.1")
        autolog.flush()
        store.log_batch(first.info.run_id, params=[Param("depth", "3")])  # another process
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            autolog.log_param("depth", "4")  # refused by the store, not by us
            autolog.search_runs()  # reads never raise for it
            autolog.get_run(first.info.run_id)
            with pytest.raises(TrackingWriteError, match="param 'depth'"):
                autolog.flush()
    with autolog.start_run() as second:  # the next run is written whole, its end raises nothing
        autolog.log_metrics({"a": 1.0, "b": 2.0})
    run = autolog.get_run(second.info.run_id)
    assert run.data.metrics == {"a": 1.0, "b": 2.0} and run.info.status == "FINISHED"
    assert autolog.get_run(first.info.run_id).data.params == {"lr": "0.1", "depth": "3"}


def test_a_run_held_for_retry_does_not_fail_the_end_of_other_runs(tracking_uri, monkeypatch):
    store = autolog.Client().store
    stuck = autolog.start_run()
    autolog.flush()
    original = store.log_batch

    def full_disk_for_stuck(run_id, metrics=(), params=(), tags=()):
        if run_id == stuck.info.run_id:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(run_id, metrics, params, tags)

    monkeypatch.setattr(store, "log_batch", full_disk_for_stuck)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        autolog.log_metric("loss", 1.0)
        autolog.get_run(stuck.info.run_id)  # a read drains (and raises nothing)
        with pytest.raises(TrackingWriteError, match="kept for retry"):
            autolog.end_run(flush=False)  # its own failure: raised, even without a flush
        for name in ("a", "b"):  # the patch manager's per-fit end, then the user's
            autolog.start_run(run_name=name)
            autolog.log_metric("loss", 2.0)
            autolog.end_run(flush=name == "b")  # no error of the stuck run
        with pytest.raises(TrackingWriteError, match=stuck.info.run_id):
            autolog.flush()  # the process-wide flush still says it
    names = {r.info.run_name: r for r in autolog.search_runs()}
    assert names["a"].data.metrics == {"loss": 2.0} and names["b"].info.status == "FINISHED"
    monkeypatch.setattr(store, "log_batch", original)
    autolog.flush()  # written now
    assert autolog.get_run(stuck.info.run_id).data.metrics == {"loss": 1.0}


def test_an_artifact_store_without_credentials_spares_metrics_and_other_runs(
    tracking_uri, monkeypatch
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3_experiment = autolog.create_experiment("on-s3", artifact_location="s3://autolog-nocreds/x")
    local = autolog.create_experiment("local")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autolog.start_run(experiment_id=s3_experiment) as on_s3:
            autolog.log_text("model bytes", "model/model.txt")  # cannot be written, ever
            for step in range(20):
                autolog.log_metric("loss", step, step=step)
            with pytest.raises(TrackingWriteError, match=r"artifact 'model/model\.txt'"):
                autolog.flush()
        with autolog.start_run(experiment_id=local) as later:
            for step in range(20):
                autolog.log_metric("loss", step, step=step)
    refused = [str(w.message) for w in caught if "credentials" in str(w.message)]
    assert len([w for w in refused if "model/model.txt" in w]) == 1  # once, not per retry
    client = autolog.Client()
    assert len(client.get_metric_history(on_s3.info.run_id, "loss")) == 20
    assert client.get_run(on_s3.info.run_id).info.status == "FINISHED"
    assert len(client.get_metric_history(later.info.run_id, "loss")) == 20


EXIT_WITH_LOSSES = """
    import errno, autolog
    from autolog.tracking.entities import Param
    store = autolog.Client().store
    original = store.log_batch

    def full_disk(run_id, metrics=(), params=(), tags=()):
        if metrics:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(run_id, metrics, params, tags)

    run = autolog.start_run()
    autolog.log_param("lr", "0.1")
    autolog.flush()
    store.log_batch(run.info.run_id, params=[Param("depth", "3")])
    autolog.log_param("depth", "4")  # rejected ...
    autolog.get_run(run.info.run_id)  # ... when a read drains it (a read raises nothing)
    store.log_batch = full_disk
    for step in range(62):
        autolog.log_metric("loss", step, step=step)  # held, never written
    print(run.info.run_id, flush=True)
"""


def test_interpreter_exit_says_plainly_what_was_lost(tracking_uri):
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(EXIT_WITH_LOSSES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    run_id = result.stdout.strip()
    assert result.returncode == 0, result.stderr
    lost = result.stderr
    assert "could not be written and is lost" in lost
    assert f"run {run_id}: 62 metric point(s)" in lost
    assert "param 'depth'" in lost and "rejected" in lost


def test_a_lane_held_early_in_a_drain_keeps_its_order_in_later_transactions(tmp_path, writer):
    from autolog.errors import TransientStoreError

    class OnceFlakySqlStore(type(make_sqlite_store(tmp_path / "probe"))):
        fail_once: str | None = None

        def log_batch(self, run_id, metrics=(), params=(), tags=()):
            if run_id == self.fail_once:
                self.fail_once = None  # the next try works: only order can go wrong
                raise TransientStoreError("database is locked")
            super().log_batch(run_id, metrics, params, tags)

    sql = OnceFlakySqlStore(f"sqlite:///{tmp_path}/s.db", artifact_root=str(tmp_path / "a"))
    files = FileStore(tmp_path / "files")
    run_id = sql.create_run("0", "alice", T0).info.run_id
    other = files.create_run("0", "bob", T0).info.run_id
    sql.fail_once = run_id
    _points(writer, sql, run_id, "loss", range(10))  # fails, is held
    _points(writer, files, other, "loss", range(3))  # another store: a new transaction
    writer.submit(sql, lambda: sql.set_experiment_tag("0", "seen", "yes"), run_id)
    _points(writer, sql, run_id, "loss", range(10, 20))  # would work: must wait its turn
    raised, _warned = _flush_recording(writer)
    assert raised is not None and "21 items kept for retry" in str(raised)  # 10 + call + 10
    assert sql.get_metric_history(run_id, "loss") == []  # nothing overtook the held points
    raised, _warned = _flush_recording(writer)
    assert raised is None
    assert [m.step for m in sql.get_metric_history(run_id, "loss")] == list(range(20))
    assert sql.get_experiment("0").tags == {"seen": "yes"}
    sql.close()
