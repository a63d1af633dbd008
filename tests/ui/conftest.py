"""Fixtures of the UI tests: a store with a small, known experiment, the app
serving it on a loopback port, and one real headless Chromium per module."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import struct
import time
import zlib
from pathlib import Path

import pytest

from autolog.tracking.artifacts import repository_for
from autolog.tracking.entities import Metric, Param, RunStatus, RunTag
from autolog.tracking.stores.sql import SqlStore
from tests.ui.browser import Browser, UIServer

XSS_NAME = "<img src=x onerror=alert(1)>"
CSV_ROWS = [["epoch", "loss", "note"], ["1", "0.9", "warm, up"], ["2", "0.5", 'a "quote"']]


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG of one colour (no imaging library needed)."""
    raw = b"".join(b"\x00" + b"\x20\x60\xe0" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


class Data:
    """What the fixture logged, so tests compare the page with it."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        now = int(time.time() * 1000) - 3_600_000
        self.exp = store.create_experiment("vision")
        self.other = store.create_experiment("speech")
        self.live = store.create_experiment("live")  # runs that the live tests log into
        self.runs: dict[str, str] = {}

        def run(name: str, exp: str, params: dict, acc: float, start: int, parent: str = ""):
            tags = [RunTag("mlflow.source.name", "train.py")]
            if parent:
                tags.append(RunTag("mlflow.parentRunId", parent))
            info = store.create_run(exp, "alice", start, tags, run_name=name).info
            metrics = [Metric("acc", acc, start + 10, 0)]
            store.log_batch(info.run_id, metrics, [Param(k, str(v)) for k, v in params.items()], [])
            store.update_run_info(info.run_id, RunStatus.FINISHED, start + 60_000)
            self.runs[name] = info.run_id
            return info.run_id

        grid = run("grid", self.exp, {"model": "cnn"}, 0.8, now)
        for i, lr in enumerate((0.1, 0.01, 0.001)):
            run(f"child-{i}", self.exp, {"model": "cnn", "lr": lr}, 0.5 + i / 10, now + i + 1, grid)
        run("baseline", self.exp, {"model": "linear", "lr": 0.1}, 0.3, now + 100)
        run(XSS_NAME, self.exp, {"model": "x"}, 0.1, now + 200)
        run("speech-1", self.other, {"model": "rnn"}, 0.7, now + 300)
        # a run with a learning curve and artifacts
        self.curve = [(step, math.exp(-step / 40) + 0.01 * (step % 7)) for step in range(0, 300)]
        info = store.create_run(self.exp, "alice", now + 400, run_name="curves").info
        store.log_batch(
            info.run_id,
            [Metric("loss", v, now + 400 + s, s) for s, v in self.curve]
            + [Metric("acc", 0.9, now + 500, 299)],
            [Param("model", "cnn"), Param("lr", "0.05")],
            [RunTag("mlflow.autologging", "sklearn")],
        )
        store.update_run_info(info.run_id, RunStatus.FINISHED, now + 90_000)
        self.runs["curves"] = info.run_id
        # a second learning curve, to compare with the first
        other = store.create_run(self.exp, "alice", now + 450, run_name="curves-b").info
        store.log_batch(
            other.run_id,
            [Metric("loss", 0.8 * v + 0.05, now + 450 + s, s) for s, v in self.curve]
            + [Metric("acc", 0.93, now + 550, 299)],
            [Param("model", "cnn"), Param("lr", "0.01")],
        )
        store.update_run_info(other.run_id, RunStatus.FINISHED, now + 95_000)
        self.runs["curves-b"] = other.run_id
        repo = repository_for(info.artifact_uri)
        self.png = png(37, 23)
        repo.log_bytes(self.png, "plots/confusion.png")
        buffer = io.StringIO()
        csv.writer(buffer).writerows(CSV_ROWS)
        repo.log_bytes(buffer.getvalue().encode(), "data/table.csv")
        repo.log_bytes(
            json.dumps({"flavor": "sklearn", "version": "1.5"}).encode(), "model/model.json"
        )
        repo.log_bytes(b"<script>parent.document.title='owned'</script><p>chart</p>", "plot.html")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    root = tmp_path_factory.mktemp("ui-store")
    cwd = os.getcwd()
    os.chdir(root)  # the store's artifacts go under this folder
    store = SqlStore(f"sqlite:///{root / 'runs.db'}")
    try:
        yield Data(store)
    finally:
        os.chdir(cwd)
        store.close()


def ui_app(store, **settings):
    """The application `autolog ui` and `autolog server` serve (one app), over ``store``."""
    from autolog.server import ServerSettings, create_app

    return create_app(ServerSettings(serve_artifacts=False, **settings), store)


@pytest.fixture(scope="module")
def server(data: Data):
    srv = UIServer(ui_app(data.store))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


@pytest.fixture
def page(browser: Browser, server: UIServer):
    """A fresh tab; the test fails if the page raised or opened a dialog."""
    browser.new_page()
    yield browser
    events = browser.events()
    assert events["dialogs"] == [], events
    assert [e for e in events["errors"] if "favicon" not in e] == [], events


def repo_path() -> Path:
    return Path(__file__).resolve().parents[2]
