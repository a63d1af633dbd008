"""Artifacts stream through the server in bounded memory: a 96 MiB upload and
download through ``autolog server`` grow its peak RSS by far less than the file."""

from __future__ import annotations

import hashlib
import http.client
import os

from tests.server.servers import autolog_server

SIZE = 96 * 1024 * 1024
BLOCK = 1024 * 1024


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _blocks():
    seed = hashlib.sha256(b"seed").digest()
    for i in range(SIZE // BLOCK):
        yield (hashlib.sha256(seed + i.to_bytes(4, "big")).digest() * (BLOCK // 32))


def test_a_large_artifact_streams_up_and_down(tmp_path):
    destination = tmp_path / "art"
    with autolog_server(
        "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}",
        "--artifacts-destination", str(destination),
    ) as url:  # fmt: skip
        port = int(url.rsplit(":", 1)[1])
        pid = url.process.pid
        before = _peak_rss_mib(pid)
        expected = hashlib.sha256()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        path = "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/big.bin"
        connection.putrequest("PUT", path)
        connection.putheader("Content-Length", str(SIZE))
        connection.putheader("Content-Type", "application/octet-stream")
        connection.endheaders()
        for block in _blocks():
            expected.update(block)
            connection.send(block)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        after_upload = _peak_rss_mib(pid)
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        assert int(response.getheader("Content-Length")) == SIZE
        got = hashlib.sha256()
        while chunk := response.read(BLOCK):
            got.update(chunk)
        connection.close()
        after_download = _peak_rss_mib(pid)
    assert got.hexdigest() == expected.hexdigest()
    assert os.path.getsize(destination / "1/r/artifacts/big.bin") == SIZE
    # the whole file in memory would add 96 MiB (and more, copies); streaming adds a few chunks
    assert after_upload - before < 40, (before, after_upload)
    assert after_download - before < 40, (before, after_download)
    assert not [p for p in (destination / "1/r/artifacts").iterdir() if p.name.endswith(".tmp")]
