"""Artifact stores through fsspec, for real: S3 against moto in server mode,
Azure Blob against Azurite, both started here on 127.0.0.1; GCS and HDFS URL
routing. The same repository methods the server's proxy streams through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autolog.errors import InvalidParameterError, ResourceNotFoundError, StoreError
from autolog.tracking.artifacts import FsspecArtifactRepository, repository_for
from tests.server.servers import azurite, call, make_bucket, moto_server, s3_env, serving


@pytest.fixture(scope="module")
def moto():
    with moto_server() as endpoint:
        make_bucket(endpoint, "bucket")
        yield endpoint


@pytest.fixture
def s3(moto, monkeypatch):
    for key, value in s3_env(moto).items():
        monkeypatch.setenv(key, value)
    return moto


@pytest.fixture
def azure(tmp_path, monkeypatch):
    with azurite(tmp_path / "azurite") as connection_string:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string)
        import fsspec

        fsspec.filesystem("az", skip_instance_cache=True).mkdir("container")
        yield connection_string


def _exercise(repository, tmp_path) -> None:
    """Every method of the contract, streaming included, on one repository."""
    (tmp_path / "up/sub").mkdir(parents=True)
    (tmp_path / "up/a.txt").write_text("A")
    (tmp_path / "up/sub/b.txt").write_text("BB")
    (tmp_path / "one.txt").write_text("one")
    repository.log_artifact(tmp_path / "one.txt")
    repository.log_artifacts(tmp_path / "up", "folder")
    repository.log_bytes(b'{"x": 1}', "config/c.json")
    assert [(f.path, f.is_dir) for f in repository.list_artifacts()] == [
        ("config", True),
        ("folder", True),
        ("one.txt", False),
    ]
    assert [(f.path, f.file_size) for f in repository.list_artifacts("folder")] == [
        ("folder/a.txt", 1),
        ("folder/sub", None),
    ]
    local = repository.download_artifacts("folder", tmp_path / "down")
    assert Path(local, "sub/b.txt").read_text() == "BB"
    # streamed: 20 MiB in 1 MiB writes (more than one part of the multipart upload)
    block = bytes(range(256)) * 4096
    with repository.open_write("big/blob.bin") as stream:
        for _ in range(20):
            stream.write(block)
    info = repository.file_info("big/blob.bin")
    assert info is not None and info.file_size == 20 * len(block) and not info.is_dir
    with repository.open_read("big/blob.bin") as stream:
        assert stream.read(len(block)) == block
        total = len(block) + sum(len(c) for c in iter(lambda: stream.read(1 << 20), b""))
    assert total == 20 * len(block)
    # a write that fails leaves nothing behind
    with pytest.raises(RuntimeError), repository.open_write("broken.bin") as stream:
        stream.write(b"half")
        raise RuntimeError("client went away")
    assert repository.file_info("broken.bin") is None
    repository.delete_artifacts("big")
    assert repository.file_info("big/blob.bin") is None
    with pytest.raises(ResourceNotFoundError):
        repository.open_read("big/blob.bin")


def test_s3_for_real_against_moto(s3, tmp_path):
    repository = repository_for("s3://bucket/runs/1/abc/artifacts")
    assert isinstance(repository, FsspecArtifactRepository)
    assert repository.fs.protocol[0] in ("s3", "s3a")
    _exercise(repository, tmp_path)


def test_azure_blob_for_real_against_azurite(azure, tmp_path):
    repository = repository_for("az://container/runs/1/abc/artifacts")
    assert isinstance(repository, FsspecArtifactRepository)
    _exercise(repository, tmp_path)
    # abfs:// is the same driver
    assert repository_for("abfs://container/runs/1/abc/artifacts").list_artifacts("config")


def test_the_server_proxies_into_s3(s3, tmp_path):
    from autolog.server import ServerSettings, create_app

    settings = ServerSettings(
        backend_store_uri=f"sqlite:///{tmp_path / 'db.sqlite'}",
        artifacts_destination="s3://bucket/proxied",
    )
    with serving(create_app(settings)) as url:
        ar = "/api/2.0/mlflow-artifacts/artifacts"
        assert call(url, "PUT", f"{ar}/1/r/artifacts/d/x.txt", b"hello")[0] == 200
        assert call(url, "GET", f"{ar}/1/r/artifacts/d/x.txt")[2] == b"hello"
        listing = json.loads(call(url, "GET", f"{ar}?path=1/r/artifacts")[2])
        assert listing == {"files": [{"path": "d", "is_dir": True}]}
        listing = json.loads(call(url, "GET", f"{ar}?path=1/r/artifacts/d")[2])
        assert listing == {"files": [{"path": "x.txt", "is_dir": False, "file_size": 5}]}
        assert json.loads(call(url, "GET", f"{ar}?path=1/r/artifacts/d/x.txt")[2]) == {}
        assert call(url, "GET", f"{ar}/1/r/artifacts/nope.txt")[0] == 404
        assert call(url, "DELETE", f"{ar}/1/r/artifacts/d/x.txt")[0] == 200
        assert call(url, "GET", f"{ar}/1/r/artifacts/d/x.txt")[0] == 404
    assert repository_for("s3://bucket/proxied").file_info("1/r/artifacts/d/x.txt") is None


def test_the_s3_endpoint_option_and_its_aliases(monkeypatch):
    from autolog.tracking.artifacts import storage_options

    for name in ("AUTOLOG_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv("AUTOLOG_S3_ENDPOINT_URL", raising=False)
        monkeypatch.setenv(name, f"http://{name.lower()}:9000")
        assert storage_options("s3://b/x")["endpoint_url"] == f"http://{name.lower()}:9000"
        monkeypatch.delenv(name)
    assert "endpoint_url" not in storage_options("gs://b/x")
    monkeypatch.setenv("AUTOLOG_ARTIFACT_STORAGE_OPTIONS", '{"anon": true}')
    assert storage_options("az://c/x")["anon"] is True
    monkeypatch.setenv("AUTOLOG_ARTIFACT_STORAGE_OPTIONS", "[1]")
    with pytest.raises(ValueError, match="JSON object"):
        storage_options("az://c/x")


def test_gcs_and_hdfs_route_through_fsspec(monkeypatch):
    monkeypatch.setenv("AUTOLOG_ARTIFACT_STORAGE_OPTIONS", '{"token": "anon"}')
    repository = repository_for("gs://bucket/mlflow/1/abc/artifacts")
    assert isinstance(repository, FsspecArtifactRepository)
    assert "gs" in repository.fs.protocol and repository.root == "bucket/mlflow/1/abc/artifacts"
    monkeypatch.delenv("AUTOLOG_ARTIFACT_STORAGE_OPTIONS")
    import fsspec

    assert fsspec.get_filesystem_class("hdfs").__name__ == "HadoopFileSystem"
    try:
        repository = repository_for("hdfs://namenode:8020/mlflow")
    except StoreError as error:  # no pyarrow / libhdfs here: the error says what is missing
        assert "hdfs" in str(error) and "namenode" in str(error)
    else:
        assert repository.root.endswith("mlflow")
    with pytest.raises(InvalidParameterError, match="nosuchscheme"):  # bad input, not a fault
        repository_for("nosuchscheme://x/y")
