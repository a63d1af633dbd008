"""Processes the server tests start and stop: ``autolog server``, moto, Azurite.

Every process binds 127.0.0.1 on a free port and is stopped (SIGINT first, as
Ctrl-C would) by the context manager that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_python() -> str:
    """The official mlflow's interpreter (a test peer in its own venv)."""
    path = os.environ.get("AUTOLOG_TEST_MLFLOW_PYTHON") or str(REPO / ".venv-mlflow/bin/python")
    if not Path(path).exists():
        pytest.fail(f"mlflow's venv is missing ({path}): run `bash .ci/install-test-peers`")
    return path


def wait_http(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"process exited with {process.returncode}: {out}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGINT (Ctrl-C), then SIGKILL if it does not stop in time; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class Running(str):
    """A started server's base URL; ``.process`` is its process."""

    process: subprocess.Popen


@contextlib.contextmanager
def autolog_server(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[Running]:
    """``autolog server <args>`` on a free port; yields its base URL (``.process``)."""
    port = free_port()
    command = [sys.executable, "-m", "autolog.cli", "server", "--port", str(port), *args]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = Running(f"http://127.0.0.1:{port}")
    url.process = process
    try:
        wait_http(url + "/health", process)
        yield url
    finally:
        stop(process)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 in server mode; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/moto-api/", process)
        yield url
    finally:
        stop(process)


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AUTOLOG_S3_ENDPOINT_URL": endpoint,
    }


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)


AZURITE = REPO / "tests/js/node_modules/.bin/azurite-blob"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@contextlib.contextmanager
def azurite(location: Path) -> Iterator[str]:
    """The Azurite blob emulator; yields a connection string to it."""
    if not AZURITE.exists():
        pytest.fail(f"{AZURITE} is missing: run `bash .ci/install-test-peers`")
    port = free_port()
    process = subprocess.Popen(
        [
            str(AZURITE),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(port),
            "--location", str(location),
            "--skipApiVersionCheck",
            "--loose",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
    try:
        wait_http(endpoint, process)
        yield (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
        )
    finally:
        stop(process, timeout=3)  # it waits for idle keep-alive connections otherwise


def run_mlflow_script(script: str, tracking_uri: str, env: dict[str, str] | None = None) -> dict:
    """Run ``script`` with the official client; it prints one JSON object last."""
    result = subprocess.run(
        [mlflow_python(), "-c", script],
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """``app`` served by uvicorn on a thread of this process; yields its base URL."""
    import threading

    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def call(
    base_url: str,
    method: str,
    path: str,
    body: bytes | dict | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP call (the path is sent exactly as given); status, headers, body."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URI whose tables live in a new schema, dropped afterwards."""
    import uuid

    import psycopg

    from tests.tracking.sql_stores import postgres_schema_uri, postgres_uri

    schema = f"autolog_server_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(postgres_uri(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL unreachable ({exc}): run `bash .ci/start-postgres`")
    try:
        yield postgres_schema_uri(schema)
    finally:
        with psycopg.connect(postgres_uri(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
