"""Artifact files written while the tracking server is away: kept in the spool too.

``log_artifact``, ``log_artifacts`` and the writer's ``log_bytes`` (figures,
dicts, the provenance diff and requirements) go to the server's artifact
proxy. Through a :class:`SpooledArtifactRepository` an upload that fails with
TransientStoreError (or that is made while the store is already spooling) is
copied into the spool (``blobs/``, fsynced, counted in its size) and recorded
as an ``artifact`` record, in order with the run's other records; replay
uploads it (a PUT again is harmless: it writes the same file) and removes
the copy with the replayed segment.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from autolog.errors import InvalidParameterError
from autolog.tracking.stores.spool import Spool

__all__ = ["SpooledArtifactRepository", "artifact_record", "put_blob", "replay_artifact"]


def put_blob(spool: Spool, source: bytes | Path) -> str:
    """Copy ``source`` (bytes or a file) into the spool, durably; returns its name."""
    folder = spool.path / "blobs"
    folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as out:
        if isinstance(source, bytes):
            out.write(source)
        else:
            with open(source, "rb") as data:
                shutil.copyfileobj(data, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, folder / name)
    return name


def blob_path(spool: Spool, name: str) -> Path:
    return spool.path / "blobs" / name


def artifact_record(artifact_uri: str, path: str, blob: str, size: int) -> dict[str, Any]:
    import time

    return {
        "op": "artifact",
        "at": time.time_ns() // 1_000_000,
        "uri": artifact_uri,
        "path": path,
        "blob": blob,
        "size": size,
    }


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class SpooledArtifactRepository:
    """``inner`` (the server's artifact proxy) whose uploads survive an outage."""

    def __init__(self, inner: Any, store: Any):
        self.inner = inner
        self.store = store  # the SpooledStore of the tracking URI
        self.artifact_uri = inner.artifact_uri

    def __repr__(self) -> str:
        return f"SpooledArtifactRepository({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _upload(self, files: list[tuple[str, bytes | Path]], online: Any) -> None:
        def records() -> list[dict[str, Any]]:
            spool = self.store.spool
            made = []
            for path, source in files:
                size = len(source) if isinstance(source, bytes) else source.stat().st_size
                made.append(artifact_record(self.artifact_uri, path, put_blob(spool, source), size))
            return made

        self.store.write_spooled(records, online)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        from autolog.tracking.artifact_repository import clean_artifact_path

        relative = clean_artifact_path(artifact_file, what="artifact file")
        if not relative:
            raise InvalidParameterError(f"Invalid artifact file {artifact_file!r}: empty")
        self._upload([(relative, bytes(data))], lambda: self.inner.log_bytes(data, artifact_file))

    def log_artifact(self, local_file: str | os.PathLike, artifact_path: str | None = None) -> None:
        from autolog.tracking.artifact_repository import clean_artifact_path

        source = Path(local_file)
        if not source.is_file():
            raise InvalidParameterError(f"log_artifact: {str(source)!r} is not a file")
        relative = _join(clean_artifact_path(artifact_path), source.name)
        self._upload(
            [(relative, source)], lambda: self.inner.log_artifact(local_file, artifact_path)
        )

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        from autolog.tracking.artifact_repository import clean_artifact_path

        source = Path(local_dir)
        if not source.is_dir():
            raise InvalidParameterError(f"log_artifacts: {str(source)!r} is not a folder")
        base = clean_artifact_path(artifact_path)
        files = [
            (_join(base, file.relative_to(source).as_posix()), file)
            for file in sorted(p for p in source.rglob("*") if p.is_file())
        ]
        self._upload(files, lambda: self.inner.log_artifacts(local_dir, artifact_path))


def replay_artifact(spool: Spool, record: dict[str, Any], tracking_uri: str, ids: Any) -> None:
    """Upload a spooled artifact file to the server (its run id mapped if need be)."""
    from autolog.tracking.stores.rest_artifacts import HttpArtifactRepository

    uri = "/".join(ids.get(part) for part in record["uri"].split("/"))
    blob = blob_path(spool, record["blob"])
    if not blob.exists():
        return  # uploaded and removed by an earlier replay of this record
    # streamed from the copy, under the artifact's own path (the copy's name is not it)
    HttpArtifactRepository(uri, tracking_uri)._put_file(blob, record["path"])
