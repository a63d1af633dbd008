"""`autolog ui` serves the UI over a store; the server's auth covers the UI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

from autolog.server.auth import hash_token
from autolog.tracking.stores.file import FileStore
from tests.ui.browser import UIServer, free_port
from tests.ui.conftest import ui_app


def fetch(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_autolog_ui_serves_the_quickstarts_store(tmp_path):
    store = FileStore(tmp_path / "mlruns")
    exp = store.create_experiment("quickstart")
    store.create_run(exp, "me", 1_700_000_000_000, run_name="first")
    store.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "autolog.cli", "ui", "--port", str(port)],
        cwd=tmp_path,  # the default store: ./mlruns, as after the quickstart
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == f"autolog ui: open http://127.0.0.1:{port}/ in a browser"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, page = fetch(f"http://127.0.0.1:{port}/")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        assert status == 200 and b"ui-static/app.js" in page
        status, body = fetch(f"http://127.0.0.1:{port}/ui-api/experiments")
        rows = {e["name"]: e["runs"] for e in json.loads(body)["experiments"]}
        assert rows == {"quickstart": 1, "Default": 0}
        # the REST API of the same application
        status, body = fetch(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=quickstart"
        )
        assert status == 200 and json.loads(body)["experiment"]["experiment_id"] == exp
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_servers_auth_covers_the_ui(tmp_path):
    store = FileStore(tmp_path / "mlruns")
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"tokens": [hash_token("s3cret")]}))
    server = UIServer(ui_app(store, auth_file=str(auth)))
    try:
        for path in ("", "ui-api/experiments", "ui-static/app.js"):
            status, body = fetch(server.url + path)
            assert status == 401, path
            assert b"quickstart" not in body
        status, _ = fetch(server.url + "ui-api/experiments", {"Authorization": "Bearer s3cret"})
        assert status == 200
    finally:
        server.close()
        store.close()
