"""Artifact repositories: local folders and fsspec URLs behave the same."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from autolog.errors import InvalidParameterError, ResourceNotFoundError
from autolog.tracking.artifacts import (
    FsspecArtifactRepository,
    LocalArtifactRepository,
    clean_artifact_path,
    repository_for,
)
from autolog.tracking.entities import FileInfo


@pytest.fixture(params=["file-uri", "plain-path", "fsspec-memory"])
def repo(request, tmp_path):
    if request.param == "file-uri":
        return repository_for((tmp_path / "artifacts").as_uri())
    if request.param == "plain-path":
        return repository_for(str(tmp_path / "artifacts"))
    pytest.importorskip("fsspec")  # optional dependency: only this backend needs it
    return repository_for(f"memory://autolog-tests/{uuid.uuid4().hex}/artifacts")


@pytest.fixture
def local_files(tmp_path):
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "sub" / "b.bin").write_bytes(b"bbb")
    return source


def test_repository_kinds(tmp_path):
    assert isinstance(repository_for(tmp_path.as_uri()), LocalArtifactRepository)
    assert isinstance(repository_for(str(tmp_path)), LocalArtifactRepository)
    pytest.importorskip("fsspec")
    assert isinstance(repository_for("memory://x/y"), FsspecArtifactRepository)


def test_log_artifact_and_list(repo, local_files):
    repo.log_artifact(local_files / "a.txt")
    repo.log_artifact(local_files / "a.txt", artifact_path="deeper/folder")
    assert repo.list_artifacts() == [
        FileInfo("a.txt", False, 1),
        FileInfo("deeper", True, None),
    ]
    assert repo.list_artifacts("deeper") == [FileInfo("deeper/folder", True, None)]
    assert repo.list_artifacts("deeper/folder") == [FileInfo("deeper/folder/a.txt", False, 1)]
    assert repo.list_artifacts("absent") == []


def test_log_artifacts_folder_and_download(repo, local_files, tmp_path):
    repo.log_artifacts(local_files, artifact_path="data")
    assert [f.path for f in repo.list_artifacts("data")] == ["data/a.txt", "data/sub"]
    folder = Path(repo.download_artifacts("data", tmp_path / "out"))
    assert folder == tmp_path / "out" / "data"
    assert (folder / "a.txt").read_text() == "a"
    assert (folder / "sub" / "b.bin").read_bytes() == b"bbb"
    one_file = Path(repo.download_artifacts("data/sub/b.bin", tmp_path / "one"))
    assert one_file.read_bytes() == b"bbb" and one_file.is_file()
    everything = Path(repo.download_artifacts(""))  # a fresh temporary folder
    assert (everything / "data" / "sub" / "b.bin").read_bytes() == b"bbb"
    with pytest.raises(ResourceNotFoundError, match="nothing-here"):
        repo.download_artifacts("nothing-here")


def test_log_bytes_replaces_whole_file(repo, tmp_path):
    repo.log_bytes(b"first", "notes/n.txt")
    repo.log_bytes(b"second", "notes/n.txt")
    assert repo.list_artifacts("notes") == [FileInfo("notes/n.txt", False, 6)]
    assert Path(repo.download_artifacts("notes/n.txt", tmp_path)).read_bytes() == b"second"


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "..", "C:/x"])
def test_paths_cannot_escape(repo, local_files, bad):
    with pytest.raises(InvalidParameterError) as excinfo:
        repo.log_bytes(b"x", bad)
    assert bad in str(excinfo.value)
    with pytest.raises(InvalidParameterError):
        repo.log_artifact(local_files / "a.txt", artifact_path=bad)
    with pytest.raises(InvalidParameterError):
        repo.list_artifacts(bad)
    with pytest.raises(InvalidParameterError):
        repo.download_artifacts(bad)
    assert repo.list_artifacts() == []


def test_clean_artifact_path():
    assert clean_artifact_path(None) == ""
    assert clean_artifact_path("a//b/./c") == "a/b/c"
    assert clean_artifact_path("a\\b") == "a/b"
    assert clean_artifact_path("a/../b") == "b"


def test_a_name_over_200_bytes_of_utf8_is_refused_at_the_call_and_nothing_written(repo, tmp_path):
    fits = "é" * 100  # 200 bytes: kept
    repo.log_bytes(b"x", f"deep/{fits}")
    assert [f.path for f in repo.list_artifacts("deep")] == [f"deep/{fits}"]
    for name in ("é" * 101, "a" * 201):  # 202 and 201 bytes, though 101 and 201 characters
        with pytest.raises(InvalidParameterError, match="over 200"):
            repo.log_bytes(b"x", f"notes/{name}/a.txt")
        with pytest.raises(InvalidParameterError, match="over 200"):
            repo.log_bytes(b"x", name)
    assert [f.path for f in repo.list_artifacts()] == ["deep"]


def test_missing_local_sources(repo, tmp_path):
    with pytest.raises(InvalidParameterError, match="not a file"):
        repo.log_artifact(tmp_path / "missing.txt")
    with pytest.raises(InvalidParameterError, match="not a folder"):
        repo.log_artifacts(tmp_path / "missing-dir")
