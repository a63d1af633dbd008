"""Concurrency at scale (issue 17, item 2), on every store: threads and
processes logging at once, a run resumed by two processes, fork after
logging, exit with a full queue, a daemon thread logging at exit.

The processes are real interpreters running the public API; each test uses
an experiment of its own, so the shared PostgreSQL schema and REST server
need no wiping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

import autolog
from autolog.tracking.entities import RunStatus

STORES = ["file", "sqlite", "postgresql", "rest"]
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


@pytest.fixture(params=STORES)
def store(request, tmp_path, monkeypatch, reliability_env):
    """(kind, uri) of a store every process of the test can reach."""
    kind = request.param
    monkeypatch.setenv("AUTOLOG_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("AUTOLOG_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    if kind == "file":
        uri = (tmp_path / "mlruns").as_uri()
    elif kind == "sqlite":
        uri = f"sqlite:///{tmp_path / 'runs.db'}"
    elif kind == "postgresql":
        uri = _postgres(reliability_env)
    else:
        uri = _rest(reliability_env).url
    autolog.set_tracking_uri(uri)
    name = f"concurrency-{uuid.uuid4().hex[:10]}"
    autolog.set_experiment(name)
    return kind, uri, name


def _postgres(env: dict) -> str:
    if "postgresql" not in env:
        from tests.tracking.sql_stores import _admin, postgres_schema_uri, require_postgres

        require_postgres()
        schema = f"autolog_rel_{uuid.uuid4().hex[:12]}"
        _admin(f'CREATE SCHEMA "{schema}"')
        env["postgresql_schema"] = schema
        env["postgresql"] = postgres_schema_uri(schema)
    return env["postgresql"]


def _rest(env: dict):
    if "rest" not in env:
        import tempfile

        from tests.rest.servers import autolog_server

        env["rest"] = autolog_server(Path(tempfile.mkdtemp(prefix="autolog-rest-"))).start()
    return env["rest"]


def python(code: str, store: tuple, *args: str, **popen) -> subprocess.Popen:
    """A fresh interpreter running ``code`` against the store, in the test's experiment."""
    _kind, uri, experiment = store
    env = {
        **os.environ,
        "AUTOLOG_TRACKING_URI": uri,
        "AUTOLOG_TEST_EXPERIMENT": experiment,
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }
    prelude = "import os, autolog\nautolog.set_experiment(os.environ['AUTOLOG_TEST_EXPERIMENT'])\n"
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args], env=env, text=True, **popen
    )


def finished(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, out or "", err or ""


def all_runs(store: tuple) -> list:
    client = autolog.Client()
    experiment_id = client.get_experiment_by_name(store[2]).experiment_id
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs += page
        token = page.token
        if not token:
            return runs


def test_eight_threads_log_eight_runs_each(store):
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(8):
                with autolog.start_run(run_name=f"t{w}-{i}"):
                    autolog.log_params({"w": w, "i": i})
                    for step in range(20):
                        autolog.log_metric("loss", w + i + step / 100, step=step)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S)
    assert not errors
    autolog.flush()
    runs = all_runs(store)
    assert sorted(r.info.run_name for r in runs) == sorted(
        f"t{w}-{i}" for w in range(8) for i in range(8)
    )
    client = autolog.Client()
    for run in runs:
        w, i = (int(x) for x in run.info.run_name[1:].split("-"))
        assert run.info.status == RunStatus.FINISHED
        assert run.data.params == {"w": str(w), "i": str(i)}
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [(p.step, p.value) for p in history] == [(s, w + i + s / 100) for s in range(20)]


MANY_RUNS = """
import sys
worker = int(sys.argv[1])
for i in range(250):
    with autolog.start_run(run_name=f"w{worker}-{i}"):
        autolog.log_param("i", i)
        autolog.log_metrics({"a": float(i), "b": float(worker)}, step=0)
"""


@pytest.mark.parametrize("store", ["file", "sqlite", "postgresql"], indirect=True)
def test_eight_processes_two_hundred_fifty_runs_each(store):
    procs = [python(MANY_RUNS, store, str(w), stderr=subprocess.PIPE) for w in range(8)]
    for proc in procs:
        code, _out, err = finished(proc)
        assert code == 0, err[-3000:]
    runs = all_runs(store)
    assert len(runs) == 2000
    assert {r.info.run_name for r in runs} == {f"w{w}-{i}" for w in range(8) for i in range(250)}
    for run in runs:
        w, i = (int(x) for x in run.info.run_name[1:].split("-"))
        assert run.info.status == RunStatus.FINISHED
        assert run.data.params == {"i": str(i)}
        assert run.data.metrics == {"a": float(i), "b": float(w)}


RESUME = """
import sys
run_id, worker = sys.argv[1], int(sys.argv[2])
with autolog.start_run(run_id=run_id):
    autolog.log_param(f"p{worker}", worker)
    autolog.log_param("shared", "same")  # the same value from both: a no-op
    for step in range(300):
        autolog.log_metric(f"m{worker}", float(step), step=step)
        autolog.log_metric("both", float(worker), step=step)
"""


def test_two_processes_resume_the_same_run(store):
    with autolog.start_run(run_name="shared") as run:
        autolog.log_param("origin", "parent")
    run_id = run.info.run_id
    procs = [python(RESUME, store, run_id, str(w), stderr=subprocess.PIPE) for w in (1, 2)]
    for proc in procs:
        code, _out, err = finished(proc)
        assert code == 0, err[-3000:]
    client = autolog.Client()
    stored = client.get_run(run_id)
    assert stored.info.status == RunStatus.FINISHED
    assert stored.data.params == {"origin": "parent", "p1": "1", "p2": "2", "shared": "same"}
    for worker in (1, 2):
        history = client.get_metric_history(run_id, f"m{worker}")
        assert [p.step for p in history] == list(range(300))
    both = client.get_metric_history(run_id, "both")
    assert sorted((p.step, p.value) for p in both) == sorted(
        (s, float(w)) for s in range(300) for w in (1, 2)
    )


FORK = """
import os
with autolog.start_run(run_name="parent") as run:
    for step in range(500):
        autolog.log_metric("m", float(step), step=step)  # queued, not flushed
    pid = os.fork()
    if pid == 0:  # the child: its own writer, none of the parent's items
        autolog.log_metric("from_child", 1.0)  # a child may log into its parent's run
        with autolog.start_run(run_name="child", nested=True):
            autolog.log_metric("c", 1.0)
        autolog.flush()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    for step in range(500, 600):
        autolog.log_metric("m", float(step), step=step)
print(run.info.run_id)
"""


def test_fork_after_logging_gives_the_child_its_own_writer(store):
    code, out, err = finished(python(FORK, store, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    assert code == 0, err[-3000:]
    run_id = out.split()[-1]
    client = autolog.Client()
    history = client.get_metric_history(run_id, "m")
    assert [p.step for p in history] == list(range(600))  # once each: not duplicated
    runs = {r.info.run_name: r for r in all_runs(store)}
    assert set(runs) == {"parent", "child"}
    assert runs["child"].data.metrics == {"c": 1.0}
    assert len(client.get_metric_history(run_id, "from_child")) == 1
    assert runs["parent"].info.status == runs["child"].info.status == RunStatus.FINISHED


FULL_QUEUE = """
from autolog.tracking import writer
writer._writer = writer.BatchingWriter(max_queue=2_000)  # a small queue: it fills
run = autolog.start_run(run_name="full")
for step in range(20_000):
    autolog.log_metric("m", float(step), step=step)
print(run.info.run_id)
# no end_run, no flush: interpreter exit drains the queue and ends the run
"""


def test_exit_with_a_full_queue_drains_it(store):
    proc = python(FULL_QUEUE, store, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    code, out, err = finished(proc)
    assert code == 0, err[-3000:]
    assert "lost" not in err, err[-3000:]
    run_id = out.split()[-1]
    client = autolog.Client()
    assert client.get_run(run_id).info.status == RunStatus.FINISHED
    assert [p.step for p in client.get_metric_history(run_id, "m")] == list(range(20_000))


DAEMON = """
import threading, time
run = autolog.start_run(run_name="daemon")
print(run.info.run_id, flush=True)
def log_forever():
    step = 0
    while True:
        autolog.log_metric("m", float(step), step=step, run_id=run.info.run_id)
        step += 1
        if step % 100 == 0:
            time.sleep(0.001)
threading.Thread(target=log_forever, daemon=True).start()
time.sleep(0.5)
# exit while the daemon still logs
"""


def test_a_daemon_thread_still_logging_at_exit(store):
    proc = python(DAEMON, store, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    code, out, err = finished(proc)  # exits: the drain at exit does not wait for the daemon
    assert code == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    run_id = out.split()[0]
    client = autolog.Client()
    assert client.get_run(run_id).info.status == RunStatus.FINISHED
    steps = [p.step for p in client.get_metric_history(run_id, "m")]
    assert steps and steps == list(range(len(steps)))  # a prefix: no hole, no duplicate
