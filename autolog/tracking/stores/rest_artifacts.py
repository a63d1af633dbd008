"""Artifacts proxied by a tracking server: ``mlflow-artifacts:`` URIs.

A server started with ``--serve-artifacts`` (the default of ``autolog server``
and of ``mlflow server``) gives runs artifact URIs such as
``mlflow-artifacts:/1/<run_id>/artifacts`` and serves their files at
``<tracking URI>/api/2.0/mlflow-artifacts/artifacts/1/<run_id>/artifacts/...``.
:class:`HttpArtifactRepository` reads and writes them there, with the REST
store's connection pool, credentials, TLS settings and retries:

- ``mlflow-artifacts:/<path>``: on the server of the tracking URI (the one the
  run was read from; ``repository_for`` defaults it to the current one);
- ``mlflow-artifacts://host:port/<path>``: on that host, with the tracking
  URI's scheme and path prefix;
- ``http(s)://host/.../mlflow-artifacts/artifacts/<path>``: that URL.

Files go up and come down in chunks (a file of any size takes a few MB of
memory): an upload streams the open file with its ``Content-Length``; a
download is written to a temporary file beside its target and renamed into
place when complete, so a broken transfer leaves no partial file.

>>> repo = HttpArtifactRepository("mlflow-artifacts:/1/abc/artifacts", "http://127.0.0.1:5000")
>>> repo.log_bytes(b"hi", "notes/hi.txt")
>>> [f.path for f in repo.list_artifacts("notes")]
['notes/hi.txt']
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from autolog.errors import InvalidParameterError, ResourceNotFoundError, TransientStoreError
from autolog.tracking.artifact_repository import ArtifactRepository, clean_artifact_path
from autolog.tracking.entities import FileInfo
from autolog.tracking.stores.rest_http import HttpClient, http_client_for
from autolog.tracking.stores.uris import mask_uri
from autolog.tracking.wire import int_from_wire

__all__ = ["ARTIFACTS_ENDPOINT", "HttpArtifactRepository"]

ARTIFACTS_ENDPOINT = "/api/2.0/mlflow-artifacts/artifacts"
_MARKER = "/mlflow-artifacts/artifacts"
_CHUNK = 1 << 20


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class HttpArtifactRepository(ArtifactRepository):
    """The files under one proxied artifact URI (see the module docstring)."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None):
        super().__init__(artifact_uri)
        self.http, self._endpoint, self._root = _resolve(artifact_uri, tracking_uri)

    def __repr__(self) -> str:
        return f"HttpArtifactRepository({self.artifact_uri!r}, server={self.http.display_url!r})"

    def _url(self, relative: str) -> str:
        path = _join(self._root, relative)
        return self.http.base_url + self._endpoint + "/" + quote(path, safe="/")

    # -- writing -------------------------------------------------------------------------
    def _put_file(self, source: Path, relative: str) -> None:
        size = source.stat().st_size
        headers = {
            "Content-Type": mimetypes.guess_type(source.name)[0] or "application/octet-stream",
            "Content-Length": str(size),
        }
        response = self.http.request("PUT", self._url(relative), headers, lambda: source.open("rb"))
        response.release_conn()

    def log_artifact(self, local_file: str | os.PathLike, artifact_path: str | None = None) -> None:
        source = Path(local_file)
        if not source.is_file():
            raise InvalidParameterError(f"log_artifact: {str(source)!r} is not a file")
        self._put_file(source, _join(clean_artifact_path(artifact_path), source.name))

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        source = Path(local_dir)
        if not source.is_dir():
            raise InvalidParameterError(f"log_artifacts: {str(source)!r} is not a folder")
        base = clean_artifact_path(artifact_path)
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            self._put_file(file, _join(base, file.relative_to(source).as_posix()))

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        relative = clean_artifact_path(artifact_file, what="artifact file")
        if not relative:
            raise InvalidParameterError(f"Invalid artifact file {artifact_file!r}: empty")
        headers = {
            "Content-Type": mimetypes.guess_type(relative)[0] or "application/octet-stream",
            "Content-Length": str(len(data)),
        }
        self.http.request("PUT", self._url(relative), headers, lambda: data).release_conn()

    # -- reading -------------------------------------------------------------------------
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        relative = clean_artifact_path(path)
        answer = self.http.call("GET", self._endpoint, query={"path": _join(self._root, relative)})
        infos = []
        for entry in answer.get("files", ()):
            name = str(entry.get("path", "")).rstrip("/").rsplit("/", 1)[-1]
            if not name:
                continue
            is_dir = bool(entry.get("is_dir"))
            size = None if is_dir else int_from_wire(entry.get("file_size"), "file_size", 0)
            infos.append(FileInfo(_join(relative, name), is_dir, size))
        return sorted(infos, key=lambda info: info.path)

    def download_artifacts(self, path: str, dst_path: str | os.PathLike | None = None) -> str:
        relative = clean_artifact_path(path)
        listing = self.list_artifacts(relative)
        dst = self._destination(dst_path)
        target = dst / relative if relative else dst
        if listing or not relative:
            target.mkdir(parents=True, exist_ok=True)
            self._download_tree(listing, dst)
        else:
            self._download_file(relative, target)
        return str(target)

    def _download_tree(self, listing: list[FileInfo], dst: Path) -> None:
        for info in listing:
            if info.is_dir:
                (dst / info.path).mkdir(parents=True, exist_ok=True)
                self._download_tree(self.list_artifacts(info.path), dst)
            else:
                self._download_file(info.path, dst / info.path)

    def _download_file(self, relative: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            response = self.http.request("GET", self._url(relative), stream=True)
        except ResourceNotFoundError:
            raise ResourceNotFoundError(
                f"No artifact {relative!r} under {self.artifact_uri}"
            ) from None
        try:
            with partial.open("wb") as out:
                for chunk in response.stream(_CHUNK):
                    out.write(chunk)
            os.replace(partial, target)
        except self.http.transport_errors as error:
            raise TransientStoreError(
                f"download of {relative!r} from {self.http.display_url} broke off: {error}"
            ) from None
        finally:
            response.release_conn()
            partial.unlink(missing_ok=True)

    # -- streaming (what the artifact proxy and model loading use) ------------------------
    def open_read(self, path: str) -> BinaryIO:
        relative = clean_artifact_path(path)
        try:
            return self.http.request("GET", self._url(relative), stream=True)
        except ResourceNotFoundError:
            raise ResourceNotFoundError(f"No artifact {path!r} under {self.artifact_uri}") from None

    @contextlib.contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        relative = clean_artifact_path(path, what="artifact file")
        if not relative:
            raise InvalidParameterError(f"Invalid artifact file {path!r}: empty")
        # staged in a local temporary file, then uploaded in one streamed PUT:
        # the server's file changes only when the whole body has arrived
        with tempfile.TemporaryDirectory(prefix="autolog-upload-") as folder:
            staged = Path(folder) / Path(relative).name
            with staged.open("wb") as stream:
                yield stream
            self._put_file(staged, relative)

    def file_info(self, path: str) -> FileInfo | None:
        relative = clean_artifact_path(path)
        if not relative:
            return FileInfo("", True, None)
        parent = relative.rpartition("/")[0]
        for info in self.list_artifacts(parent):
            if info.path == relative:
                return info
        return None

    def delete_artifacts(self, path: str) -> None:
        relative = clean_artifact_path(path)
        try:
            self.http.request("DELETE", self._url(relative)).release_conn()
        except ResourceNotFoundError:
            raise ResourceNotFoundError(f"No artifact {path!r} under {self.artifact_uri}") from None


def _resolve(artifact_uri: str, tracking_uri: str | None) -> tuple[HttpClient, str, str]:
    """The client, the artifact endpoint's path and the root path under it."""
    parts = urlsplit(artifact_uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        before, marker, root = parts.path.partition(_MARKER)
        if not marker:
            raise InvalidParameterError(
                f"artifact URL {mask_uri(artifact_uri)!r} is no tracking server's artifact "
                f"proxy: its path must contain {_MARKER!r}"
            )
        base = f"{scheme}://{parts.netloc}"
        return http_client_for(base), before + _MARKER, root.strip("/")
    if scheme != "mlflow-artifacts":
        raise InvalidParameterError(f"artifact URI {artifact_uri!r} is not an mlflow-artifacts URI")
    if tracking_uri is None:
        raise InvalidParameterError(
            f"artifact URI {artifact_uri!r} is served by a tracking server: give its tracking "
            "URI (repository_for(uri) defaults it to the current one)"
        )
    tracking = urlsplit(tracking_uri)
    if tracking.scheme.lower() not in ("http", "https"):
        raise InvalidParameterError(
            f"artifact URI {artifact_uri!r} is served by a tracking server, but the tracking "
            f"URI is not http(s); set_tracking_uri('http://<server>') first"
        )
    if parts.netloc:  # mlflow-artifacts://host:port/...: that host, the tracking URI's scheme
        base = f"{tracking.scheme}://{parts.netloc}{tracking.path.rstrip('/')}"
        return http_client_for(base), ARTIFACTS_ENDPOINT, parts.path.strip("/")
    return http_client_for(tracking_uri), ARTIFACTS_ENDPOINT, parts.path.strip("/")
