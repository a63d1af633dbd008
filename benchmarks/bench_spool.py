"""The offline spool (issue 13): what an outage costs training, and how fast the
spool fills and drains, side by side with a direct (online) run.

Rows:
- step time with the server up vs. down: a training step is 10 metric points
  through ``Client.log_batch`` plus 1 ms of compute; the same steps interleaved
  into a run on a live ``autolog server`` and into a run whose server is down
  (its writes go to the spool). Goal: the median step within 10 %;
- spool append throughput: ``SpooledStore.log_batch`` of 1,000-point batches
  while the server is down (the writer's path: encode, write, fsync), in
  points/s;
- replay throughput: a spool of 200,000 points replayed into ``autolog server``
  (SQLite), beside the same points sent directly with ``RestStore.log_batch``
  (1,000-point batches, what an online run's writer does), in points/s.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPLAY_POINTS = 200_000
BATCH = 1_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-m", "autolog.cli", "server", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
               "--artifacts-destination", str(folder / "artifacts")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("autolog server did not start") from None
            time.sleep(0.2)


def _points(run: int, count: int) -> list:
    from autolog.tracking.entities import Metric

    return [
        Metric(f"m{i % 10}", i * 0.5, 1_700_000_000_000 + run * count + i, i) for i in range(count)
    ]


def _step_rows(h, url: str, dead_url: str) -> None:
    import autolog
    from autolog.tracking.entities import Metric
    from autolog.tracking.stores import store_for_uri

    online, offline = autolog.Client(url), autolog.Client(dead_url)
    # the offline store has seen the experiment before (as a machine that used it)
    store_for_uri(dead_url)._remember(store_for_uri(url).get_experiment("0"))
    runs = {c: c.create_run("0").info.run_id for c in (online, offline)}
    steps = {online: 0, offline: 0}

    def step(client):
        def one() -> None:
            started = time.perf_counter()
            s = steps[client] = steps[client] + 1
            stamp = time.time_ns() // 1_000_000
            client.log_batch(runs[client], [Metric(f"m{k}", s * 0.1, stamp, s) for k in range(10)])
            while time.perf_counter() - started < 0.001:  # the step's compute
                pass

        return one

    h.compare(
        "training step (10 points + 1 ms), server down (spooling) vs up",
        step(online),
        step(offline),
        repeat=7,
        number=1_000,
        unit="ms",
        base_label="server up",
        goal="<= +10%",
        notes="10,000 points/s; median of rounds of 1,000 steps, interleaved",
    )
    autolog.flush()
    assert store_for_uri(dead_url).spooling


def _append_row(h, dead_url: str) -> None:
    from autolog.tracking.stores import store_for_uri

    store = store_for_uri(dead_url)
    assert store.spooling
    batches = [_points(r, BATCH) for r in range(50)]
    run_id = "a" * 32

    def append_all() -> None:
        for batch in batches:
            store.log_batch(run_id, metrics=batch)

    seconds = []
    for _ in range(5):
        started = time.perf_counter()
        append_all()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    h.row(
        "spool append (SpooledStore.log_batch, server down, fsync per batch)",
        len(batches) * BATCH / seconds[len(seconds) // 2],
        "points/s",
        goal=">= 100,000/s",
        notes="1,000-point batches; median of 5 rounds of 50 batches",
    )


def _replay_rows(h, url: str, folder: Path) -> None:
    from autolog.tracking.stores.rest import RestStore
    from autolog.tracking.stores.spool import Spool
    from autolog.tracking.stores.spool_records import create_run_record, log_batch_record
    from autolog.tracking.stores.spool_replay import Replayer

    rest = RestStore(url)
    spool = Spool(url, root=folder / "replay-spool")
    run_id = "b" * 32
    spool.append([create_run_record("0", "bench", 1, [], "replayed", run_id)])
    points = _points(1, REPLAY_POINTS)
    for start in range(0, REPLAY_POINTS, BATCH):
        spool.append([log_batch_record(run_id, metrics=points[start : start + BATCH])])
    spool.close_segment()
    started = time.perf_counter()
    replayer = Replayer(spool, rest)
    for segment in spool.segments():
        replayer.replay_segment(segment)
    replay_rate = REPLAY_POINTS / (time.perf_counter() - started)
    assert replayer.report.items == REPLAY_POINTS + 1

    direct_run = rest.create_run("0", "bench", 2).info.run_id
    direct = _points(2, REPLAY_POINTS)
    started = time.perf_counter()
    for start in range(0, REPLAY_POINTS, BATCH):
        rest.log_batch(direct_run, metrics=direct[start : start + BATCH])
    direct_rate = REPLAY_POINTS / (time.perf_counter() - started)
    h.row(
        "replay of a spool into autolog server (SQLite)",
        replay_rate,
        "points/s",
        peer=f"direct online log_batch {direct_rate:,.0f} points/s",
        notes=f"{REPLAY_POINTS:,} points; ratio to direct {replay_rate / direct_rate:.2f}x",
    )
    h.row("direct online run into autolog server (SQLite)", direct_rate, "points/s")


def run(h) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["AUTOLOG_SPOOL_DIR"] = str(folder / "spool")
        process, url = _start_server(folder)
        dead_url = f"http://127.0.0.1:{_free_port()}"  # nobody listens: an outage
        try:
            _step_rows(h, url, dead_url)
            _append_row(h, dead_url)
            _replay_rows(h, url, folder)
        finally:
            process.terminate()
            process.wait(30)
            from autolog.tracking.stores import _forget_stores

            _forget_stores()
