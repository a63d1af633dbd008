"""``autolog sync`` draws a progress bar on a terminal, and only there."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap

from tests.rest.servers import autolog_server

_SPOOL = textwrap.dedent(
    """
    import sys, uuid
    from autolog.tracking.entities import Metric
    from autolog.tracking.stores.spool import Spool
    from autolog.tracking.stores.spool_records import create_run_record, log_batch_record
    spool = Spool(sys.argv[1])
    run_id = uuid.uuid4().hex
    spool.append([create_run_record("0", "me", 1, [], "spooled", run_id)])
    for b in range(int(sys.argv[2])):
        points = [Metric("m", float(i), 1_000 + b * 1000 + i, b * 1000 + i) for i in range(1000)]
        spool.append([log_batch_record(run_id, metrics=points)])
    print(run_id)
    """
)
_CLI = "import sys; from autolog.cli import main; sys.exit(main())"


def spool_for(url: str, batches: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _SPOOL, url, str(batches)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def sync_on_a_terminal() -> tuple[int, str]:
    """Run ``autolog sync`` with its stderr on a pseudo-terminal; returns what it drew."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _CLI, "sync"], stdout=subprocess.DEVNULL, stderr=slave
        )
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            drawn += chunk
        return process.wait(120), drawn.decode(errors="replace")
    finally:
        os.close(master)


def test_sync_draws_a_progress_bar_on_a_terminal_only(tmp_path):
    server = autolog_server(tmp_path).start()
    try:
        spool_for(server.url, 40)
        status, drawn = sync_on_a_terminal()
        assert status == 0, drawn
        assert "\r  [" in drawn and "rows" in drawn and "%" in drawn

        spool_for(server.url, 40)
        piped = subprocess.run(
            [sys.executable, "-c", _CLI, "sync"], capture_output=True, text=True, timeout=120
        )
        assert piped.returncode == 0, piped.stderr
        assert "\r" not in piped.stderr and "[#" not in piped.stderr
        assert "40,001 row(s) replayed" in piped.stdout
    finally:
        server.stop()
