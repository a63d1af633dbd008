"""Done when: a training process SIGKILLed while the server is down leaves its
spool to ``autolog sync``, which delivers everything that process had flushed;
a second sync changes nothing. A replay whose server is killed midway finishes
on the next ``autolog sync`` with no duplicate (checked row by row). A process
that exits with the server down keeps its spool and says so in one line.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap

from tests.rest.servers import autolog_server
from tests.spool.training import wait_until

T0 = 1_700_000_000_000

_TRAINING = textwrap.dedent(
    """
    import sys, time
    import autolog
    url, offline_points, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    autolog.set_tracking_uri(url)
    T0 = 1_700_000_000_000
    run = autolog.start_run(run_name="killed")
    autolog.log_param("lr", "0.1")
    step = 0
    def log(n):
        global step
        for _ in range(n):
            autolog.log_metric("loss", step * 0.5, step=step, timestamp=T0 + step)
            step += 1
    log(1000)
    autolog.flush()
    print("run", run.info.run_id, flush=True)
    sys.stdin.readline()  # the test stops the server now
    log(offline_points)
    autolog.flush()  # durable in the spool
    print("flushed", step - 1, flush=True)
    if mode == "kill":
        log(5000)  # logged, maybe not yet spooled when the kill comes
        print("waiting", flush=True)
        time.sleep(600)
    """
)

_CLI = "import sys; from autolog.cli import main; sys.exit(main())"


def start_training(url: str, offline_points: int, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _TRAINING, url, str(offline_points), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def autolog_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args], capture_output=True, text=True, timeout=timeout
    )


def all_rows(db, run_id: str) -> list[tuple]:
    """Every metric row of the run as stored, in storage order."""
    from autolog.tracking.stores.sql_blocks import logged

    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return logged(connection, run_id)  # SQLite's blocks (schema v5), in logging order
    finally:
        connection.close()


def expected_rows(last_step: int) -> list[tuple]:
    return [("loss", s, T0 + s, s * 0.5) for s in range(last_step + 1)]


def run_until_offline(server, points: int, mode: str) -> tuple[subprocess.Popen, str, int]:
    """Start the training process, stop the server under it, and let it log
    ``points`` more; returns (process, run id, last flushed step)."""
    training = start_training(server.url, points, mode)
    kind, run_id = training.stdout.readline().split()
    assert kind == "run", training.stderr.read()
    server.stop()
    training.stdin.write("go\n")
    training.stdin.flush()
    kind, last = training.stdout.readline().split()
    assert kind == "flushed", training.stderr.read()
    return training, run_id, int(last)


def test_sync_delivers_what_a_killed_process_flushed_and_a_second_sync_adds_nothing(tmp_path):
    server = autolog_server(tmp_path).start()
    db = tmp_path / "server.db"
    try:
        training, run_id, flushed = run_until_offline(server, 20_000, "kill")
        assert training.stdout.readline().strip() == "waiting"
        training.send_signal(signal.SIGKILL)
        training.wait(30)
        for stream in (training.stdout, training.stderr, training.stdin):
            stream.close()

        dry = autolog_cli("sync", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert server.url in dry.stdout and run_id in dry.stdout and "ended" in dry.stdout
        status = autolog_cli("status")
        assert "oldest waiting since" in status.stdout, status.stdout

        server.start()
        first = autolog_cli("sync")
        assert first.returncode == 0, first.stderr
        rows = all_rows(db, run_id)
        assert rows[: flushed + 1] == expected_rows(flushed)  # all it flushed, in order
        assert rows == expected_rows(len(rows) - 1)  # and nothing twice

        second = autolog_cli("sync")
        assert second.returncode == 0, second.stderr
        assert "nothing waits" in second.stdout and "replayed" not in second.stdout
        assert all_rows(db, run_id) == rows
        assert "spool: empty" in autolog_cli("status").stdout
    finally:
        server.stop()


def test_an_interrupted_sync_finishes_next_time_with_no_duplicates(tmp_path):
    server = autolog_server(tmp_path).start()
    db = tmp_path / "server.db"
    try:
        training, run_id, flushed = run_until_offline(server, 300_000, "exit")
        _out, err = training.communicate(timeout=120)
        assert training.returncode == 0
        exit_lines = [line for line in err.splitlines() if "autolog sync" in line]
        assert len(exit_lines) == 1 and "still unreachable" in exit_lines[0], err

        server.start()
        sync = subprocess.Popen(
            [sys.executable, "-c", _CLI, "sync"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        wait_until(lambda: len(all_rows(db, run_id)) > 1000, timeout=120, what="replay to start")
        server.process.send_signal(signal.SIGKILL)  # the server dies mid-replay
        server.process.wait(10)
        server.stop()
        _out, sync_err = sync.communicate(timeout=120)
        partial = len(all_rows(db, run_id))
        assert sync.returncode == 2, sync_err
        assert b"run `autolog sync` again" in sync_err
        assert partial < flushed + 1

        server.start()
        again = autolog_cli("sync")
        assert again.returncode == 0, again.stderr
        rows = all_rows(db, run_id)
        assert rows == expected_rows(flushed)  # row by row: each point once, in order
    finally:
        server.stop()
