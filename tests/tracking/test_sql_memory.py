"""An in-memory SQLite store (``sqlite:///:memory:``, or a URI with
``mode=memory``) is one database for every thread of the process: what one
thread writes, another reads, and threads writing at once all land in it
(``sql_engine``'s one-connection pool); nothing is written to disk."""

from __future__ import annotations

import threading

import pytest

import autolog
from autolog.tracking.entities import Metric, Param
from autolog.tracking.stores.sql import SqlStore

MEMORY_URIS = [
    "sqlite:///:memory:",
    "sqlite:///file:autolog-test?mode=memory&cache=shared&uri=true",
]


@pytest.fixture(params=MEMORY_URIS)
def memory_store(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a file named after the URI would land
    store = SqlStore(request.param, artifact_root=str(tmp_path / "art"))
    yield store
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database file


def test_a_memory_uri_logs_through_the_fluent_api(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = MEMORY_URIS[-1]
    autolog.set_tracking_uri(uri)  # the conftest's fixture resets it after the test
    with autolog.start_run() as run:
        autolog.log_metric("m", 1.0)
    autolog.flush()
    assert autolog.Client(uri).get_run(run.info.run_id).data.metrics == {"m": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["mlartifacts"]  # the artifact root only


def _in_thread(fn):
    """``fn()``'s answer, called on a thread of its own (its error re-raised here)."""
    answer: dict = {}

    def target():
        try:
            answer["value"] = fn()
        except BaseException as exc:
            answer["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the thread is still running"
    if "error" in answer:
        raise answer["error"]
    return answer["value"]


def test_what_one_thread_writes_another_reads(memory_store):
    experiment_id = _in_thread(lambda: memory_store.create_experiment("made-on-a-thread"))
    assert memory_store.get_experiment(experiment_id).name == "made-on-a-thread"
    run_id = memory_store.create_run(experiment_id, "u", 1).info.run_id
    memory_store.log_batch(run_id, params=[Param("p", "v")])
    seen = _in_thread(lambda: memory_store.get_run(run_id))
    assert seen.data.params == {"p": "v"}
    found = _in_thread(lambda: memory_store.search_runs([experiment_id], "params.p = 'v'"))
    assert [run.info.run_id for run in found] == [run_id]


def test_threads_writing_at_once_write_one_database(memory_store):
    experiment_id = memory_store.create_experiment("shared")
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(25):
                run_id = memory_store.create_run(experiment_id, "u", i).info.run_id
                with memory_store.batch():  # a transaction held across calls
                    memory_store.log_batch(run_id, metrics=[Metric("m", i, 1, 0)])
                    memory_store.log_batch(run_id, params=[Param("w", str(number))])
                memory_store.search_runs([experiment_id], "metrics.m >= 0", max_results=5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    runs = memory_store.search_runs([experiment_id], max_results=1000)
    assert len(runs) == 100
    assert sorted(run.data.params["w"] for run in runs) == sorted([str(n) for n in range(4)] * 25)


def test_a_connection_taken_twice_by_one_thread_is_free_for_the_others_after(memory_store):
    outer = memory_store._engine.raw_connection()
    inner = memory_store._engine.raw_connection()  # the holder takes it again: no wait
    inner.close()
    outer.close()  # SQLAlchemy's second return of its one record: skipped
    experiment_id = memory_store.create_experiment("after-a-nested-use")
    assert _in_thread(lambda: memory_store.get_experiment(experiment_id).name) == (
        "after-a-nested-use"
    )
