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


def test_a_folder_removed_behind_the_repositorys_back_is_made_again(tmp_path):
    import shutil

    repo = LocalArtifactRepository(str(tmp_path / "run" / "artifacts"))
    repo.log_bytes(b"1", "model/a.bin")  # the repository now knows model/ exists
    shutil.rmtree(tmp_path / "run")  # removed by someone else, root and all
    repo.log_bytes(b"2", "model/b.bin")
    assert (tmp_path / "run" / "artifacts" / "model" / "b.bin").read_bytes() == b"2"
    assert [f.path for f in repo.list_artifacts("model")] == ["model/b.bin"]


def test_a_new_folder_under_a_known_one_removed_behind_its_back_is_made_with_it(tmp_path):
    import shutil

    repo = LocalArtifactRepository(str(tmp_path / "artifacts"))
    repo.log_bytes(b"r", "provenance/requirements.txt")  # the root is known now
    shutil.rmtree(tmp_path / "artifacts")
    repo.log_bytes(b"m", "model/model.pt")  # model/ is new, its parent gone
    assert (tmp_path / "artifacts" / "model" / "model.pt").read_bytes() == b"m"


def test_a_known_folder_costs_no_mkdir_and_parents_are_made_top_down(tmp_path, monkeypatch):
    import os

    made = []
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        made.append(os.path.relpath(path, tmp_path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    repo = LocalArtifactRepository(str(tmp_path / "artifacts"))
    repo.log_bytes(b"r", "provenance/requirements.txt")
    repo.log_bytes(b"s", "summary.txt")
    repo.log_bytes(b"m", "model/model.pt")
    repo.log_bytes(b"j", "model/model.json")
    repo.log_bytes(b"j2", "model/model.json")
    assert made == ["artifacts", "artifacts/provenance", "artifacts/model"]  # none failed
    assert (tmp_path / "artifacts" / "model" / "model.json").read_bytes() == b"j2"


def test_a_file_where_a_folder_is_or_a_folder_where_a_file_is_is_refused(tmp_path):
    """Refused (InvalidParameterError), not an OSError the writer would retry forever."""
    repo = LocalArtifactRepository(str(tmp_path / "artifacts"))
    repo.log_bytes(b"x", "model")
    with pytest.raises(InvalidParameterError, match="a folder on its path is a file"):
        repo.log_bytes(b"y", "model/model.pt")
    assert (tmp_path / "artifacts" / "model").read_bytes() == b"x"
    repo.log_bytes(b"z", "notes/a.txt")
    with pytest.raises(InvalidParameterError, match="a folder has that path"):
        repo.log_bytes(b"w", "notes")
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == ["model", "notes"]
    assert (tmp_path / "artifacts" / "notes" / "a.txt").read_bytes() == b"z"


def test_a_write_that_fails_leaves_no_temporary_file_and_the_old_file(tmp_path, monkeypatch):
    import os

    repo = LocalArtifactRepository(str(tmp_path / "artifacts"))
    repo.log_bytes(b"old", "model/model.pt")

    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space"):
        repo.log_bytes(b"new", "model/model.pt")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "artifacts" / "model").iterdir()) == ["model.pt"]
    assert (tmp_path / "artifacts" / "model" / "model.pt").read_bytes() == b"old"
    with pytest.raises(TypeError):  # not bytes: refused before a file is made
        repo.log_bytes("text", "model/other.txt")
    assert sorted(p.name for p in (tmp_path / "artifacts" / "model").iterdir()) == ["model.pt"]


def _write_and_get_killed(root: str) -> None:
    """In a child process: start writing a 4 MiB artifact over an older one and be
    SIGKILLed after the first part of it reached the temporary file."""
    import os
    import signal

    real_write = os.write

    def write_half_then_die(fd, data):
        real_write(fd, bytes(memoryview(data)[: len(data) // 2]))
        os.kill(os.getpid(), signal.SIGKILL)

    os.write = write_half_then_die
    LocalArtifactRepository(root).log_bytes(b"n" * 2**22, "model/model.pt")


def test_a_process_killed_mid_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    import multiprocessing
    import signal

    root = str(tmp_path / "artifacts")
    LocalArtifactRepository(root).log_bytes(b"old", "model/model.pt")
    child = multiprocessing.get_context("fork").Process(target=_write_and_get_killed, args=(root,))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    model = tmp_path / "artifacts" / "model"
    assert (model / "model.pt").read_bytes() == b"old"  # never half of the new one
    leftovers = [p.name for p in model.iterdir() if p.name != "model.pt"]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")  # the torn temporary file
    reader = LocalArtifactRepository(root)
    assert [f.path for f in reader.list_artifacts("model")] == ["model/model.pt"]  # not listed


def test_a_forked_child_names_its_temporary_files_with_its_own_pid(tmp_path):
    import multiprocessing
    import os

    from autolog.tracking.artifact_repository import temporary_name

    assert f".{os.getpid()}." in temporary_name(str(tmp_path), "f")
    queue = multiprocessing.get_context("fork").SimpleQueue()
    child = multiprocessing.get_context("fork").Process(
        target=lambda: queue.put((os.getpid(), temporary_name(str(tmp_path), "f")))
    )
    child.start()
    pid, name = queue.get()
    child.join(60)
    assert pid != os.getpid() and f".{pid}." in name


def test_a_folder_deleted_through_the_repository_is_made_again_by_the_next_write(repo):
    repo.log_bytes(b"1", "model/a.bin")
    repo.delete_artifacts("model")
    repo.log_bytes(b"2", "model/b.bin")
    assert [f.path for f in repo.list_artifacts("model")] == ["model/b.bin"]


def _copy_and_get_killed(root: str, source: str, folder: bool) -> None:
    """In a child process: copy a file (or a folder) into the artifacts and be
    SIGKILLed once half of the file is copied."""
    import os
    import shutil
    import signal

    def copy_half_then_die(src, dst, **kwargs):
        with open(src, "rb") as f, open(dst, "wb") as out:
            out.write(f.read(os.path.getsize(src) // 2))
        os.kill(os.getpid(), signal.SIGKILL)

    shutil.copyfile = copy_half_then_die
    repo = LocalArtifactRepository(root)
    if folder:
        repo.log_artifacts(source, "data")
    else:
        repo.log_artifact(source, "data")


@pytest.mark.parametrize("folder", [False, True], ids=["log_artifact", "log_artifacts"])
def test_a_copy_killed_halfway_leaves_no_partial_file_under_its_name(tmp_path, folder):
    import multiprocessing
    import signal

    source = tmp_path / "source"
    source.mkdir()
    (source / "big.bin").write_bytes(b"b" * 2**20)
    root = str(tmp_path / "artifacts")
    child = multiprocessing.get_context("fork").Process(
        target=_copy_and_get_killed,
        args=(root, str(source if folder else source / "big.bin"), folder),
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert not (tmp_path / "artifacts" / "data" / "big.bin").exists()
    assert LocalArtifactRepository(root).list_artifacts("data") == []
    LocalArtifactRepository(root).log_artifacts(source, "data")  # a retry copies it whole
    assert (tmp_path / "artifacts" / "data" / "big.bin").read_bytes() == b"b" * 2**20
