"""Backend stores: where experiments, runs, params, metrics and tags live.

``store_for_uri(uri)`` picks the store class by URI scheme; see ``base.py`` for
the contract that every store implements and that the conformance suite
(``tests/tracking/test_store_conformance.py``) checks.

URIs understood:

- ``file:///abs/path``, ``file:relative/path``, or a plain path: the file store;
- ``sqlite:///file.db``, ``postgresql://...``, ``postgresql+psycopg://...``: the SQL store;
- ``http://`` / ``https://``: a tracking server (the REST store, ``rest.py``).
"""

from __future__ import annotations

import os
import threading

from autolog.errors import StoreError
from autolog.tracking.stores.base import AbstractStore
from autolog.tracking.stores.uris import (
    expand_home,
    file_uri_to_path,
    mask_uri,
    require_uri,
    uri_scheme,
)

__all__ = [
    "AbstractStore",
    "default_tracking_uri",
    "file_uri_to_path",
    "mask_uri",
    "normalize_tracking_uri",
    "store_for_uri",
]

_SQL_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
_stores: dict[str, AbstractStore] = {}
_stores_lock = threading.Lock()


def normalize_tracking_uri(uri: str) -> str:
    """File URIs and plain paths become absolute ``file://`` URIs (relative ones
    against the current directory); other URIs are returned unchanged. A blank
    URI, or a malformed SQL one (``sqlite://mlflow.db``), is an InvalidParameterError."""
    scheme = uri_scheme(require_uri(uri))
    if scheme in ("", "file"):
        return expand_home(file_uri_to_path(uri)).resolve().as_uri()
    if scheme in _SQL_SCHEMES:
        from autolog.tracking.stores.sql_engine import engine_url

        engine_url(uri)  # the spelling is checked now, not at the first write
    return uri


def default_tracking_uri() -> str:
    """``AUTOLOG_TRACKING_URI`` if set, else the file store at ``./mlruns``."""
    return normalize_tracking_uri(os.environ.get("AUTOLOG_TRACKING_URI") or "./mlruns")


def store_for_uri(uri: str) -> AbstractStore:
    """The store of ``uri``, opened once per process and URI."""
    store = _stores.get(uri)  # already normalised (what get_tracking_uri returns)
    if store is not None:
        return store
    key = normalize_tracking_uri(uri)
    store = _stores.get(key)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _open_store(key)
            _stores[key] = store
    return store


def _open_store(uri: str) -> AbstractStore:
    scheme = uri_scheme(uri)
    if scheme == "file":
        from autolog.tracking.stores.file import FileStore

        return FileStore(file_uri_to_path(uri))
    if scheme in _SQL_SCHEMES:
        from autolog.tracking.stores.sql import SqlStore

        return SqlStore(uri)
    if scheme in ("http", "https"):
        from autolog.tracking.stores.rest import RestStore
        from autolog.tracking.stores.spool_store import spooled

        return spooled(RestStore(uri))  # writes survive the server being away
    raise StoreError(
        f"unsupported tracking URI {mask_uri(uri)!r}: use a path, file:, sqlite:, "
        "postgresql: or http(s):"
    )


def forget_stores() -> None:
    """Close and forget every opened store (tests)."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        try:
            store.close()
        except Exception:
            pass


_forget_stores = forget_stores  # the name the tests know
