"""Artifact repositories: where a run's files live, behind one small interface.

``repository_for(artifact_uri)`` gives a :class:`LocalArtifactRepository` for
``file:`` URIs and plain paths, and an :class:`FsspecArtifactRepository` for
any other scheme (``s3://``, ``gs://``, ``memory://`` ...) when ``fsspec`` is
installed. Paths inside a repository are POSIX and relative to its root; one
that would escape the root (``..``, an absolute path) is an
``InvalidParameterError`` naming it.

>>> repo = repository_for(run.info.artifact_uri)
>>> repo.log_bytes(b"hello", "notes/hello.txt")
>>> [f.path for f in repo.list_artifacts("notes")]
['notes/hello.txt']
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import unquote, urlparse

from autolog.errors import InvalidParameterError, ResourceNotFoundError, StoreError
from autolog.tracking.entities import FileInfo

__all__ = [
    "ArtifactRepository",
    "FsspecArtifactRepository",
    "LocalArtifactRepository",
    "clean_artifact_path",
    "repository_for",
]


def clean_artifact_path(path: str | None, *, what: str = "artifact path") -> str:
    """``path`` normalised to a relative POSIX path ('' for the root).

    Raises InvalidParameterError for absolute paths and paths that leave the root.
    """
    if path is None or path in ("", "."):
        return ""
    if not isinstance(path, str):
        raise InvalidParameterError(f"Invalid {what} {path!r}: expected a string")
    text = path.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":") or "\x00" in text:
        raise InvalidParameterError(f"Invalid {what} {path!r}: must be relative to the run")
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../"):
        raise InvalidParameterError(f"Invalid {what} {path!r}: escapes the run's artifact root")
    return "" if normal == "." else normal


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


class ArtifactRepository(ABC):
    """The files of one artifact root (a run's ``artifact_uri``)."""

    def __init__(self, artifact_uri: str):
        self.artifact_uri = artifact_uri

    @abstractmethod
    def log_artifact(self, local_file: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy one local file into the folder ``artifact_path`` (the root if None)."""

    @abstractmethod
    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy the contents of a local folder into ``artifact_path``."""

    @abstractmethod
    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """Write ``data`` as the file ``artifact_file``; readers never see half of it."""

    @abstractmethod
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The direct children of ``path`` (the root if None), sorted by path;
        folders have ``file_size`` None. A missing path lists as empty."""

    @abstractmethod
    def download_artifacts(self, path: str, dst_path: str | os.PathLike | None = None) -> str:
        """Copy the file or folder ``path`` ('' for everything) to ``dst_path``
        (a new temporary folder if None) and return the local path of the copy."""

    @staticmethod
    def _destination(dst_path: str | os.PathLike | None) -> Path:
        if dst_path is None:
            return Path(tempfile.mkdtemp(prefix="autolog-artifacts-"))
        dst = Path(dst_path).absolute()
        dst.mkdir(parents=True, exist_ok=True)
        return dst


class LocalArtifactRepository(ArtifactRepository):
    """Artifacts in a local folder (``file:///abs/path`` or a plain path)."""

    def __init__(self, artifact_uri: str):
        super().__init__(artifact_uri)
        parsed = urlparse(artifact_uri)
        if parsed.scheme == "file":
            self.root = Path(unquote(parsed.path))
        else:
            self.root = Path(artifact_uri)
        self.root = self.root.expanduser().absolute()

    def _local(self, path: str | None, what: str = "artifact path") -> Path:
        relative = clean_artifact_path(path, what=what)
        return self.root / relative if relative else self.root

    def log_artifact(self, local_file: str | os.PathLike, artifact_path: str | None = None) -> None:
        source = Path(local_file)
        if not source.is_file():
            raise InvalidParameterError(f"log_artifact: {str(source)!r} is not a file")
        folder = self._local(artifact_path)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, folder / source.name)

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        source = Path(local_dir)
        if not source.is_dir():
            raise InvalidParameterError(f"log_artifacts: {str(source)!r} is not a folder")
        folder = self._local(artifact_path)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, folder, dirs_exist_ok=True)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        relative = clean_artifact_path(artifact_file, what="artifact file")
        if not relative:
            raise InvalidParameterError(f"Invalid artifact file {artifact_file!r}: empty")
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        relative = clean_artifact_path(path)
        folder = self._local(relative)
        if not folder.is_dir():
            return []
        infos = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    continue  # a log_bytes in progress
                child = _join(relative, entry.name)
                if entry.is_dir():
                    infos.append(FileInfo(child, True, None))
                else:
                    infos.append(FileInfo(child, False, entry.stat().st_size))
        return sorted(infos, key=lambda info: info.path)

    def download_artifacts(self, path: str, dst_path: str | os.PathLike | None = None) -> str:
        relative = clean_artifact_path(path)
        source = self._local(relative)
        if not source.exists():
            raise ResourceNotFoundError(f"No artifact {path!r} under {self.artifact_uri}")
        dst = self._destination(dst_path)
        target = dst / relative if relative else dst
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        return str(target)


class FsspecArtifactRepository(ArtifactRepository):
    """Artifacts at any URL fsspec understands (``s3://bucket/x``, ``gs://``, ``memory://``).

    fsspec and the scheme's driver (s3fs, gcsfs, ...) are imported only here.
    """

    def __init__(self, artifact_uri: str):
        super().__init__(artifact_uri)
        try:
            import fsspec
        except ImportError:
            raise StoreError(
                f"Artifact URI {artifact_uri!r} needs the 'fsspec' package "
                "(and its driver for this scheme): pip install fsspec"
            ) from None
        self.fs, self.root = fsspec.core.url_to_fs(artifact_uri)
        self.root = self.root.rstrip("/")

    def _remote(self, path: str | None, what: str = "artifact path") -> str:
        return _join(self.root, clean_artifact_path(path, what=what))

    def log_artifact(self, local_file: str | os.PathLike, artifact_path: str | None = None) -> None:
        source = Path(local_file)
        if not source.is_file():
            raise InvalidParameterError(f"log_artifact: {str(source)!r} is not a file")
        self.fs.put_file(str(source), _join(self._remote(artifact_path), source.name))

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        source = Path(local_dir)
        if not source.is_dir():
            raise InvalidParameterError(f"log_artifacts: {str(source)!r} is not a folder")
        base = self._remote(artifact_path)
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            self.fs.put_file(str(file), _join(base, file.relative_to(source).as_posix()))

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        relative = clean_artifact_path(artifact_file, what="artifact file")
        if not relative:
            raise InvalidParameterError(f"Invalid artifact file {artifact_file!r}: empty")
        # object stores write a whole object at once: atomic for readers already
        self.fs.pipe_file(_join(self.root, relative), data)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        relative = clean_artifact_path(path)
        base = self._remote(relative)
        if not self.fs.isdir(base):
            return []
        infos = []
        for entry in self.fs.ls(base, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            is_dir = entry["type"] == "directory"
            infos.append(FileInfo(_join(relative, name), is_dir, None if is_dir else entry["size"]))
        return sorted(infos, key=lambda info: info.path)

    def download_artifacts(self, path: str, dst_path: str | os.PathLike | None = None) -> str:
        relative = clean_artifact_path(path)
        source = self._remote(relative)
        if not self.fs.exists(source):
            raise ResourceNotFoundError(f"No artifact {path!r} under {self.artifact_uri}")
        dst = self._destination(dst_path)
        target = dst / relative if relative else dst
        if self.fs.isdir(source):
            for remote in self.fs.find(source):
                local = target / remote[len(source) :].lstrip("/")
                local.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(remote, str(local))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(source, str(target))
        return str(target)


def repository_for(artifact_uri: str) -> ArtifactRepository:
    """The repository for a run's ``artifact_uri``: local for ``file:`` and plain
    paths, fsspec for other schemes (StoreError naming fsspec when it is missing)."""
    scheme = urlparse(artifact_uri).scheme
    # a one-letter "scheme" is a Windows drive (C:\...)
    if scheme in ("", "file") or len(scheme) == 1:
        return LocalArtifactRepository(artifact_uri)
    return FsspecArtifactRepository(artifact_uri)
