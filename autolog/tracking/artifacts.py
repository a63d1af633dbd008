"""Artifact repositories: where a run's files live, behind one small interface.

``repository_for(artifact_uri)`` gives a :class:`LocalArtifactRepository` for
``file:`` URIs and plain paths, an :class:`FsspecArtifactRepository` for any
other storage scheme (``s3://``, ``az://`` / ``abfs://``, ``gs://``,
``hdfs://``, ``memory://``, any fsspec URL) when ``fsspec`` and the scheme's
driver are installed (``pip install 'autolog[s3]'``, ``[azure]``, ``[gcs]``),
and the tracking server's proxy for ``mlflow-artifacts:`` and ``http(s)://``
URIs (behind the offline spool when the tracking URI's store has one). The
repositories themselves live in :mod:`autolog.tracking.artifact_repository`
(interface, local, fsspec; credentials and storage options are described
there) and :mod:`autolog.tracking.stores.rest_artifacts` (the server's proxy).

The server and the proxy stream files through :meth:`ArtifactRepository.open_read`
and :meth:`ArtifactRepository.open_write` in bounded memory.

>>> repo = repository_for(run.info.artifact_uri)
>>> repo.log_bytes(b"hello", "notes/hello.txt")
>>> [f.path for f in repo.list_artifacts("notes")]
['notes/hello.txt']
"""

from __future__ import annotations

from urllib.parse import urlparse

from autolog.tracking.artifact_repository import (
    STORAGE_OPTIONS_ENV,
    WRITE_BLOCK_SIZE,
    ArtifactRepository,
    FsspecArtifactRepository,
    LocalArtifactRepository,
    clean_artifact_path,
    storage_options,
)

__all__ = [
    "STORAGE_OPTIONS_ENV",
    "WRITE_BLOCK_SIZE",
    "ArtifactRepository",
    "FsspecArtifactRepository",
    "LocalArtifactRepository",
    "clean_artifact_path",
    "proxied_repository",
    "repository_for",
    "storage_options",
]


def repository_for(artifact_uri: str, tracking_uri: str | None = None) -> ArtifactRepository:
    """The repository for a run's ``artifact_uri``: local for ``file:`` and plain
    paths, the tracking server's proxy for ``mlflow-artifacts:`` and ``http(s):``
    (the server of ``tracking_uri``, default the current one), fsspec for other
    schemes (StoreError naming what to install when it is missing)."""
    scheme = urlparse(artifact_uri).scheme.lower()
    # a one-letter "scheme" is a Windows drive (C:\...)
    if scheme in ("", "file") or len(scheme) == 1:
        return LocalArtifactRepository(artifact_uri)
    if scheme in ("mlflow-artifacts", "http", "https"):
        return proxied_repository(artifact_uri, tracking_uri)
    return FsspecArtifactRepository(artifact_uri)


def proxied_repository(artifact_uri: str, tracking_uri: str | None = None) -> ArtifactRepository:
    """The repository of an ``mlflow-artifacts:`` or ``http(s)://.../mlflow-artifacts/
    artifacts/...`` URI (what :func:`repository_for` gives for those schemes), on the
    server of ``tracking_uri`` (default the current tracking URI); behind the offline
    spool of that URI when its store has one (uploads survive an outage)."""
    from autolog.tracking.stores import store_for_uri
    from autolog.tracking.stores.rest_artifacts import HttpArtifactRepository
    from autolog.tracking.stores.spool_artifacts import SpooledArtifactRepository
    from autolog.tracking.stores.spool_store import SpooledStore
    from autolog.tracking.tracking_uri import get_tracking_uri

    if tracking_uri is None:
        tracking_uri = get_tracking_uri()
    repository = HttpArtifactRepository(artifact_uri, tracking_uri)
    store = store_for_uri(tracking_uri)
    if isinstance(store, SpooledStore):
        return SpooledArtifactRepository(repository, store)
    return repository
