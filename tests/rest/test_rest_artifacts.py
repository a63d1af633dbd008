"""Proxied artifacts (``mlflow-artifacts:`` URIs) through a tracking server:
the URI forms, the streaming methods, bounded memory for a large file, and
the run's own server chosen even when the current tracking URI is another."""

from __future__ import annotations

import os
import tracemalloc
import uuid
from pathlib import Path

import pytest

import autolog
from autolog.errors import InvalidParameterError, ResourceNotFoundError
from autolog.tracking.artifacts import repository_for
from autolog.tracking.stores.rest import RestStore
from autolog.tracking.stores.rest_artifacts import HttpArtifactRepository


def _run_root(server) -> str:
    run = RestStore(server.url).create_run("0", "me", 1_700_000_000_000)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    return run.info.artifact_uri


def test_uri_forms_reach_the_same_files(our_server):
    uri = _run_root(our_server)
    plain = repository_for(uri, our_server.url)  # the proxy (behind the spool's wrapper)
    plain.log_bytes(b"same", "x/f.txt")
    path = uri.removeprefix("mlflow-artifacts:")
    with_host = repository_for(f"mlflow-artifacts://127.0.0.1:{our_server.port}{path}", "http://h")
    as_url = repository_for(
        f"{our_server.url}/api/2.0/mlflow-artifacts/artifacts{path}", "file:///elsewhere"
    )
    for repository in (with_host, as_url):
        assert [f.path for f in repository.list_artifacts("x")] == ["x/f.txt"]
        with repository.open_read("x/f.txt") as stream:
            assert stream.read() == b"same"


def test_bad_uris_are_typed_errors(our_server):
    with pytest.raises(InvalidParameterError, match="not http"):
        HttpArtifactRepository("mlflow-artifacts:/0/r/artifacts", "file:///tmp/runs")
    with pytest.raises(InvalidParameterError, match="mlflow-artifacts/artifacts"):
        HttpArtifactRepository("https://u:pw@host/some/bucket")
    repository = HttpArtifactRepository(_run_root(our_server), our_server.url)
    with pytest.raises(InvalidParameterError, match=r"escapes|relative"):
        repository.log_bytes(b"x", "../outside.txt")


def test_streaming_methods(our_server):
    repository = repository_for(_run_root(our_server), our_server.url)
    with repository.open_write("deep/w.bin") as stream:
        for _ in range(3):
            stream.write(b"\x00\x01" * 1000)
    info = repository.file_info("deep/w.bin")
    assert (info.path, info.is_dir, info.file_size) == ("deep/w.bin", False, 6000)
    assert repository.file_info("deep").is_dir
    assert repository.file_info("deep/absent") is None
    with pytest.raises(ResourceNotFoundError):
        repository.open_read("deep/absent")
    with pytest.raises(RuntimeError), repository.open_write("deep/never.bin") as stream:
        stream.write(b"half")
        raise RuntimeError("the writer failed")
    assert repository.file_info("deep/never.bin") is None  # nothing half-written arrived
    repository.delete_artifacts("deep/w.bin")
    assert repository.file_info("deep/w.bin") is None
    with pytest.raises(ResourceNotFoundError):
        repository.delete_artifacts("deep/w.bin")


def test_a_large_file_goes_up_and_down_in_bounded_memory(our_server, tmp_path):
    size = 96 * 1024 * 1024
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        block = os.urandom(1024 * 1024)
        for _ in range(size // len(block)):
            out.write(block)
    repository = repository_for(_run_root(our_server), our_server.url)
    tracemalloc.start()
    try:
        repository.log_artifact(big, "large")
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        copy = Path(repository.download_artifacts("large/big.bin", tmp_path / "down"))
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert copy.stat().st_size == size
    with big.open("rb") as a, copy.open("rb") as b:
        while chunk := a.read(1 << 20):
            assert chunk == b.read(1 << 20)
    assert upload_peak < 16 * 1024 * 1024, upload_peak
    assert download_peak < 16 * 1024 * 1024, download_peak


def test_client_of_another_server_finds_its_artifacts(our_server, tmp_path):
    autolog.set_tracking_uri(our_server.url)
    with autolog.start_run(run_name=f"a-{uuid.uuid4().hex[:6]}") as run:
        autolog.log_text("over http", "t/x.txt")
    autolog.set_tracking_uri(tmp_path / "local-runs")  # now the current store is a file store
    client = autolog.Client(tracking_uri=our_server.url)
    assert [f.path for f in client.list_artifacts(run.info.run_id, "t")] == ["t/x.txt"]
    out = client.download_artifacts(run.info.run_id, "t/x.txt", tmp_path / "d")
    assert Path(out).read_text() == "over http"
