"""Store resolution: the tracking URI in force and the store it names.

``set_tracking_uri`` / ``get_tracking_uri`` are the fluent API's (re-exported by
:mod:`autolog.tracking.fluent`); :func:`current_store` is what every part of
the tracking API asks for "the store" (``start_run``, ``Client()``, the
artifact proxy). Resolving a path costs syscalls, so the answer is cached
until the URI, ``AUTOLOG_TRACKING_URI`` or (for a relative default) the
working directory changes.
"""

from __future__ import annotations

import os

from autolog.tracking.stores import default_tracking_uri, normalize_tracking_uri, store_for_uri
from autolog.tracking.stores.base import AbstractStore

__all__ = ["current_store", "get_tracking_uri", "set_tracking_uri", "uri_generation"]

_tracking_uri: str | None = None  # set by set_tracking_uri
_generation = 0  # bumped by set_tracking_uri: what was chosen for another URI is stale
_store_cache: tuple[tuple[str | None, ...], AbstractStore] | None = None


def set_tracking_uri(uri: str | os.PathLike) -> None:
    """Where runs are stored: a path or ``file:`` URI (the file store),
    ``sqlite:///runs.db``, ``postgresql://...``, or ``http(s)://`` (a server).
    Relative paths are resolved now, against the current directory."""
    global _tracking_uri, _generation
    _tracking_uri = normalize_tracking_uri(os.fspath(uri))
    _generation += 1


def get_tracking_uri() -> str:
    """The URI set by :func:`set_tracking_uri`, else ``AUTOLOG_TRACKING_URI``,
    else the absolute ``file:`` URI of ``./mlruns``."""
    return _tracking_uri if _tracking_uri is not None else default_tracking_uri()


def uri_generation() -> int:
    """How many times :func:`set_tracking_uri` was called: the active experiment
    (:mod:`autolog.tracking.fluent_experiments`) is forgotten when it changes."""
    return _generation


def current_store() -> AbstractStore:
    """The store of the current tracking URI (cached, see the module docstring)."""
    global _store_cache
    env = os.environ.get("AUTOLOG_TRACKING_URI")
    key = (_tracking_uri, env, os.getcwd() if _tracking_uri is None else None)
    cached = _store_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    store = store_for_uri(get_tracking_uri())
    _store_cache = (key, store)
    return store


def reset() -> None:
    """Forget the URI set and the cached store (tests)."""
    global _tracking_uri, _store_cache, _generation
    _tracking_uri = _store_cache = None
    _generation += 1
