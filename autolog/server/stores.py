"""The backend store and the artifact destination a server process opens."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from autolog.errors import StoreError
from autolog.server.settings import ServerSettings
from autolog.tracking.artifacts import ArtifactRepository, repository_for
from autolog.tracking.stores import file_uri_to_path, mask_uri, normalize_tracking_uri
from autolog.tracking.stores.base import AbstractStore

__all__ = ["open_artifacts", "open_store"]

_SQL_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")


@contextlib.contextmanager
def _pool_budget(connections: int) -> Iterator[None]:
    """The SQL engine reads its pool size from the environment when it opens:
    ``connections`` and no overflow, for the opening only (then restored)."""
    names = ("AUTOLOG_SQL_POOL_SIZE", "AUTOLOG_SQL_MAX_OVERFLOW")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({names[0]: str(connections), names[1]: "0"})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def open_store(settings: ServerSettings) -> AbstractStore:
    """The store of ``settings.backend_store_uri``, giving new experiments the
    artifact root the settings call for (``mlflow-artifacts:`` when proxying)."""
    uri = normalize_tracking_uri(settings.backend_store_uri)
    scheme = uri.partition(":")[0].lower()
    root = settings.store_artifact_root()
    if scheme == "file":
        from autolog.tracking.stores.file import FileStore

        return FileStore(file_uri_to_path(uri), artifact_root=root)
    if scheme in _SQL_SCHEMES:
        from autolog.tracking.stores.sql import SqlStore

        # SqlStore keeps "<scheme>://" roots: "mlflow-artifacts://" becomes "mlflow-artifacts:"
        with _pool_budget(settings.db_connections):
            return SqlStore(
                uri, artifact_root="mlflow-artifacts://" if root == "mlflow-artifacts:" else root
            )
    raise StoreError(
        f"--backend-store-uri {mask_uri(uri)!r}: use a path, file:, sqlite: or postgresql:"
    )


def open_artifacts(settings: ServerSettings) -> ArtifactRepository | None:
    """The proxied artifacts' repository (None with ``--no-serve-artifacts``)."""
    if not settings.serve_artifacts:
        return None
    destination = settings.destination
    if "://" not in destination:
        Path(destination).expanduser().mkdir(parents=True, exist_ok=True)
    return repository_for(destination)
