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

from autolog.errors import InvalidParameterError, StoreError
from autolog.tracking.stores.base import AbstractStore

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


def _scheme(uri: str) -> str:
    head, sep, _rest = uri.partition(":")
    # "C:\\runs" is a Windows path, not a URI with scheme "c"
    if not sep or len(head) == 1 or not head.replace("+", "").isalnum():
        return ""
    return head.lower()


_SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "secret", "token", "key")


def mask_uri(uri: str) -> str:
    """``uri`` fit to print: the password of ``user:password@host`` and the values
    of query parameters that hold secrets (``password=``, ``token=``, ...) become
    ``***``. Use it wherever a URI is shown (errors, warnings, summaries)::

        >>> mask_uri("postgresql://me:s3cret@db:5432/runs")
        'postgresql://me:***@db:5432/runs'
    """
    if not isinstance(uri, str) or ("@" not in uri and "=" not in uri):
        return uri  # the common case (paths, file:, sqlite:) costs no parsing
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            name, eq, _value = pair.partition("=")
            secret = eq and any(word in name.lower() for word in _SECRET_QUERY_KEYS)
            pairs.append(f"{name}=***" if secret else pair)
        query = "&".join(pairs)
    if netloc == parts.netloc and query == parts.query:
        return uri
    return parts._replace(netloc=netloc, query=query).geturl()


def _require_uri(uri: object) -> str:
    """A tracking URI that names something: blank ones are an error (they would
    silently make the current folder the store)."""
    if not isinstance(uri, str):
        raise InvalidParameterError(
            f"tracking URI {uri!r} must be a string or a path, not {type(uri).__name__}"
        )
    if not uri.strip():
        raise InvalidParameterError(
            f"tracking URI {uri!r} is blank: give a path (./mlruns), sqlite:///mlflow.db, "
            "postgresql://user:password@host:5432/db or http(s)://host:port"
        )
    return uri


def file_uri_to_path(uri: str) -> str:
    """The local path of a ``file:`` URI (percent-decoded) or of a plain path."""
    if _scheme(uri) != "file":
        return uri
    from urllib.parse import unquote, urlsplit

    rest = uri[len("file:") :]
    if rest.startswith("//"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise StoreError(
                f"file URI {mask_uri(uri)!r} names host {mask_uri(parts.netloc)!r}; "
                "only local paths work"
            )
        return unquote(parts.path)
    return unquote(rest)


def normalize_tracking_uri(uri: str) -> str:
    """File URIs and plain paths become absolute ``file://`` URIs (relative ones
    against the current directory); other URIs are returned unchanged. A blank
    URI, or a malformed SQL one (``sqlite://mlflow.db``), is an InvalidParameterError."""
    scheme = _scheme(_require_uri(uri))
    if scheme in ("", "file"):
        from pathlib import Path

        return Path(file_uri_to_path(uri)).expanduser().resolve().as_uri()
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
    scheme = _scheme(uri)
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


def _forget_stores() -> None:
    """Close and forget every opened store (tests)."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        try:
            store.close()
        except Exception:
            pass
