"""The artifact repository interface and its local and fsspec implementations.

:class:`ArtifactRepository` is what every repository offers (log, list,
download, stream); :class:`LocalArtifactRepository` serves ``file:`` URIs and
plain paths, :class:`FsspecArtifactRepository` any other storage scheme
(``s3://``, ``az://`` / ``abfs://``, ``gs://``, ``hdfs://``, ``memory://``,
any fsspec URL) when ``fsspec`` and the scheme's driver are installed
(``pip install 'autolog[s3]'``, ``[azure]``, ``[gcs]``). Paths inside a
repository are POSIX and relative to its root; one that would escape the root
(``..``, an absolute path, a backslash, a symlink out of a local root) is an
``InvalidParameterError`` naming it.

Credentials come from each platform's usual environment variables, read by
its driver (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_PROFILE``,
``AZURE_STORAGE_CONNECTION_STRING`` or ``AZURE_STORAGE_ACCOUNT_NAME`` /
``AZURE_STORAGE_ACCOUNT_KEY``, ``GOOGLE_APPLICATION_CREDENTIALS``). An S3
endpoint (MinIO, moto, Ceph) is ``AUTOLOG_S3_ENDPOINT_URL`` (also read:
``MLFLOW_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``);
``AUTOLOG_ARTIFACT_STORAGE_OPTIONS`` (a JSON object) is passed to fsspec for
every scheme (``{"anon": true}``, ``{"endpoint_url": ...}``, ...).

A leaf below the stores (the REST store's proxied repository and the spool
build on the interface); which repository serves a URI is
:func:`autolog.tracking.artifacts.repository_for`'s answer.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import posixpath
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from autolog.errors import InvalidParameterError, ResourceNotFoundError, StoreError
from autolog.tracking.entities import FileInfo

__all__ = [
    "ArtifactRepository",
    "FsspecArtifactRepository",
    "LocalArtifactRepository",
    "MAX_NAME_BYTES",
    "clean_artifact_path",
    "storage_options",
    "temporary_name",
]

#: what to install for a scheme whose fsspec driver is missing
_DRIVERS = {
    "s3": "autolog[s3]",
    "s3a": "autolog[s3]",
    "az": "autolog[azure]",
    "abfs": "autolog[azure]",
    "abfss": "autolog[azure]",
    "adl": "autolog[azure]",
    "gs": "autolog[gcs]",
    "gcs": "autolog[gcs]",
    "hdfs": "pyarrow",
}
_S3_ENDPOINT_ENVS = (
    "AUTOLOG_S3_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
)
STORAGE_OPTIONS_ENV = "AUTOLOG_ARTIFACT_STORAGE_OPTIONS"
#: the part size of streamed writes to object stores (S3's minimum is 5 MiB)
WRITE_BLOCK_SIZE = 8 * 1024 * 1024


#: the longest folder or file name of an artifact path, in bytes of UTF-8
MAX_NAME_BYTES = 200


def clean_artifact_path(path: str | None, *, what: str = "artifact path") -> str:
    """``path`` normalised to a relative POSIX path ('' for the root).

    Raises InvalidParameterError for absolute paths, paths that leave the root,
    and a folder or file name over :data:`MAX_NAME_BYTES` bytes of UTF-8 (no
    file system or object store keeps it: refused at the call, not by the writer).
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
    if len(normal) > MAX_NAME_BYTES // 4:  # shorter: no name can be too long in UTF-8
        for name in normal.split("/"):
            size = len(name.encode("utf-8", "surrogatepass"))
            if size > MAX_NAME_BYTES:
                raise InvalidParameterError(
                    f"Invalid {what}: the name {name[:40]!r}... is {size} bytes of "
                    f"UTF-8, over {MAX_NAME_BYTES} (file systems keep 255, temporary names "
                    "need the rest)"
                )
    return "" if normal == "." else normal


def _checked_file(path: str | os.PathLike) -> str:
    """``clean_artifact_path`` of an artifact file, which must name one."""
    relative = clean_artifact_path(path, what="artifact file")
    if not relative:
        raise InvalidParameterError(f"Invalid artifact file {path!r}: empty")
    return relative


#: :func:`_checked_file` of a name, remembered: a run's files have the names the
#: last run's had (what raises is not remembered: raised each time)
_clean_file = functools.lru_cache(maxsize=1024)(_checked_file)


_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def temporary_name(folder: str, name: str) -> str:
    """Where a file ``name`` in ``folder`` is written before ``os.replace`` puts it
    in place: hidden, and unique to this process and thread (the process id is
    remembered, not asked of the kernel each time; a forked child asks again)."""
    return os.path.join(folder, f".{name}.{_pid}.{threading.get_ident()}.tmp")


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC  # os.open adds O_CLOEXEC


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

    def open_read(self, path: str) -> BinaryIO:
        """The file ``path`` opened for reading in binary (a stream: read it in
        chunks). ResourceNotFoundError when missing, InvalidParameterError for a folder."""
        raise StoreError(f"{type(self).__name__} cannot stream {path!r}")

    def open_write(self, path: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A binary file to write ``path`` through, in chunks: readers see the old
        file or the whole new one; an exception inside the block leaves no file."""
        raise StoreError(f"{type(self).__name__} cannot stream {path!r}")

    def file_info(self, path: str) -> FileInfo | None:
        """``path``'s FileInfo (a folder has ``file_size`` None), None when missing."""
        raise StoreError(f"{type(self).__name__} cannot look up {path!r}")

    def delete_artifacts(self, path: str) -> None:
        """Remove the file or folder ``path``; ResourceNotFoundError when missing."""
        raise StoreError(f"{type(self).__name__} cannot delete {path!r}")

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
        self._root = os.fspath(self.root)
        #: folders this object made or found (no mkdir for them again; one removed
        #: behind its back is made again when a file cannot be created in it)
        self._folders: set[str] = set()

    def _local(self, path: str | None, what: str = "artifact path") -> Path:
        relative = clean_artifact_path(path, what=what)
        return self.root / relative if relative else self.root

    def _inside(self, path: str | None) -> Path:
        """``_local(path)``, refused when a symlink on the way leads out of the root."""
        target = self._local(path)
        root = os.path.realpath(self.root)
        real = os.path.realpath(target)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise InvalidParameterError(f"Invalid artifact path {path!r}: leads out of the root")
        return target

    def open_read(self, path: str) -> BinaryIO:
        target = self._inside(path)
        if target.is_dir():
            raise InvalidParameterError(f"Artifact {path!r} is a folder, not a file")
        try:
            return open(target, "rb")
        except FileNotFoundError:
            raise ResourceNotFoundError(f"No artifact {path!r} under {self.artifact_uri}") from None

    @contextlib.contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        _checked_file(path)
        target = self._inside(path)
        if target.is_dir():
            raise InvalidParameterError(f"Artifact {path!r} is a folder, not a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._inside(path)  # a symlinked folder created meanwhile
        tmp = Path(temporary_name(os.fspath(target.parent), target.name))
        try:
            with open(tmp, "wb") as stream:
                yield stream
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def file_info(self, path: str) -> FileInfo | None:
        relative = clean_artifact_path(path)
        target = self._inside(relative)
        try:
            stat = target.stat()
        except FileNotFoundError:
            return None
        if target.is_dir():
            return FileInfo(relative, True, None)
        return FileInfo(relative, False, stat.st_size)

    def delete_artifacts(self, path: str) -> None:
        relative = clean_artifact_path(path)
        target = self._inside(relative)
        self._folders.clear()  # what it removes is made again by the next write
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            raise ResourceNotFoundError(f"No artifact {path!r} under {self.artifact_uri}")

    def log_artifact(self, local_file: str | os.PathLike, artifact_path: str | None = None) -> None:
        source = Path(local_file)
        if not source.is_file():
            raise InvalidParameterError(f"log_artifact: {str(source)!r} is not a file")
        folder = self._local(artifact_path)
        folder.mkdir(parents=True, exist_ok=True)
        _copy_whole(source, folder / source.name)

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        source = Path(local_dir)
        if not source.is_dir():
            raise InvalidParameterError(f"log_artifacts: {str(source)!r} is not a folder")
        folder = self._local(artifact_path)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, folder, dirs_exist_ok=True, copy_function=_copy_whole)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """Write ``data`` to a temporary file beside the target in one ``write()``
        (os.open / os.write: no buffered file object, its fstat, ioctl and lseek),
        then ``os.replace`` it into place: the file appears whole or not at all."""
        check = _clean_file if type(artifact_file) is str else _checked_file
        relative = check(artifact_file)
        view = memoryview(data)  # not bytes-like: TypeError before any file is made
        target = os.path.join(self._root, relative)
        folder, name = os.path.split(target)
        if folder not in self._folders:
            self._make_folders(relative)
        tmp = temporary_name(folder, name)
        try:
            try:
                fd = os.open(tmp, _CREATE_FLAGS, 0o666)
            except FileNotFoundError:  # a folder removed since this object made it
                self._folders.clear()
                self._make_folders(relative)
                fd = os.open(tmp, _CREATE_FLAGS, 0o666)
        except NotADirectoryError:  # no retry mends it: refused, not held for retry
            raise InvalidParameterError(
                f"Invalid artifact file {artifact_file!r}: a folder on its path is a file"
            ) from None
        try:
            try:
                while view:  # after a short write the rest, or the disk's error
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            try:
                os.replace(tmp, target)
            except IsADirectoryError:
                raise InvalidParameterError(
                    f"Invalid artifact file {artifact_file!r}: a folder has that path"
                ) from None
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _make_folders(self, relative: str) -> None:
        """Make the folders of the file ``relative`` top-down from the root (one
        ``mkdir`` each, none for a folder known to exist), and remember them."""
        try:
            self._make_folders_from_known(relative)
        except FileNotFoundError:  # a folder it knew of was removed: from the root again
            self._folders.clear()
            self._make_folders_from_known(relative)

    def _make_folders_from_known(self, relative: str) -> None:
        folder = self._root
        if folder not in self._folders:
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            except FileNotFoundError:  # a root whose parents do not exist yet
                os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        for part in relative.split("/")[:-1]:
            folder = os.path.join(folder, part)
            if folder not in self._folders:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder)
                self._folders.add(folder)

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


def _copy_whole(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """``shutil.copy2`` through a temporary file beside ``target`` and ``os.replace``:
    a copy cut short (a kill, a full disk) never shows as ``target``."""
    folder, name = os.path.split(os.fspath(target))
    tmp = temporary_name(folder, name)
    try:
        shutil.copy2(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class FsspecArtifactRepository(ArtifactRepository):
    """Artifacts at any URL fsspec understands (``s3://bucket/x``, ``gs://``, ``memory://``).

    fsspec and the scheme's driver (s3fs, gcsfs, ...) are imported only here.
    """

    def __init__(self, artifact_uri: str, **options: Any):
        super().__init__(artifact_uri)
        scheme = urlparse(artifact_uri).scheme.lower()
        hint = _DRIVERS.get(scheme, "fsspec and the driver of this scheme")
        try:
            import fsspec
        except ImportError:
            raise StoreError(
                f"Artifact URI {artifact_uri!r} needs the 'fsspec' package: pip install '{hint}'"
            ) from None
        try:
            self.fs, self.root = fsspec.core.url_to_fs(
                artifact_uri, **{**storage_options(artifact_uri), **options}
            )
        except ImportError as exc:
            raise StoreError(
                f"Artifact URI {artifact_uri!r} needs the fsspec driver of {scheme!r}: "
                f"pip install '{hint}' ({exc})"
            ) from None
        except ValueError as exc:  # an unknown protocol: the URI is wrong, not the store
            raise InvalidParameterError(f"Artifact URI {artifact_uri!r}: {exc}") from None
        except OSError as exc:  # a driver that cannot connect
            raise StoreError(f"Artifact URI {artifact_uri!r}: {exc}") from None
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

    def open_read(self, path: str) -> BinaryIO:
        remote = self._remote(path)
        if self.fs.isdir(remote):
            raise InvalidParameterError(f"Artifact {path!r} is a folder, not a file")
        try:
            return self.fs.open(remote, "rb")
        except FileNotFoundError:
            raise ResourceNotFoundError(f"No artifact {path!r} under {self.artifact_uri}") from None

    @contextlib.contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        if not clean_artifact_path(path, what="artifact file"):
            raise InvalidParameterError(f"Invalid artifact file {path!r}: empty")
        # an object appears when its upload completes: readers never see half of it
        stream = self.fs.open(self._remote(path), "wb", block_size=WRITE_BLOCK_SIZE)
        try:
            yield stream
        except BaseException:
            discard = getattr(stream, "discard", None)
            if discard is not None:
                discard()  # S3: aborts the multipart upload
            with contextlib.suppress(AttributeError):
                stream.closed = True  # never flushed later (on garbage collection)
            raise
        stream.close()

    def file_info(self, path: str) -> FileInfo | None:
        relative = clean_artifact_path(path)
        try:
            info = self.fs.info(self._remote(relative))
        except FileNotFoundError:
            return None
        if info["type"] == "directory":
            return FileInfo(relative, True, None)
        return FileInfo(relative, False, info.get("size"))

    def delete_artifacts(self, path: str) -> None:
        remote = self._remote(path)
        if not self.fs.exists(remote):
            raise ResourceNotFoundError(f"No artifact {path!r} under {self.artifact_uri}")
        self.fs.rm(remote, recursive=True)

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


def storage_options(artifact_uri: str) -> dict[str, Any]:
    """The fsspec options of ``artifact_uri`` from the environment: the S3 endpoint
    (``AUTOLOG_S3_ENDPOINT_URL`` and its aliases) for ``s3://``, then the JSON
    object in ``AUTOLOG_ARTIFACT_STORAGE_OPTIONS`` for any scheme."""
    options: dict[str, Any] = {}
    scheme = urlparse(artifact_uri).scheme.lower()
    if scheme in _DRIVERS and scheme != "hdfs":
        # another process (a replica, a client) writes the same bucket: never
        # answer a listing from this process's memory of an earlier one
        options["use_listings_cache"] = False
    if scheme in ("s3", "s3a"):
        endpoint = next((os.environ[e] for e in _S3_ENDPOINT_ENVS if os.environ.get(e)), None)
        if endpoint:
            options["endpoint_url"] = endpoint
    text = os.environ.get(STORAGE_OPTIONS_ENV)
    if text:
        try:
            extra = json.loads(text)
        except ValueError:
            extra = None
        if not isinstance(extra, dict):
            raise InvalidParameterError(
                f"{STORAGE_OPTIONS_ENV} must be a JSON object, got {text!r}"
            )
        options.update(extra)
    return options
