"""The fluent API's tracking URI and active experiment: where ``start_run`` puts a run.

Part of :mod:`autolog.tracking.fluent` (which re-exports the public names):
``set_tracking_uri``, ``get_tracking_uri``, ``set_experiment`` and the other
experiment functions. Resolving the store and the experiment may do
synchronous I/O, once; the answers are cached for ``start_run``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from autolog.errors import InvalidParameterError, ResourceAlreadyExistsError, RunStateError
from autolog.tracking.entities import Experiment, LifecycleStage, ViewType
from autolog.tracking.stores import default_tracking_uri, normalize_tracking_uri, store_for_uri
from autolog.tracking.stores.base import DEFAULT_EXPERIMENT_ID, AbstractStore
from autolog.tracking.validation import validate_key, validate_tag_value

__all__ = [
    "create_experiment",
    "get_experiment",
    "get_experiment_by_name",
    "get_tracking_uri",
    "search_experiments",
    "set_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "set_tracking_uri",
]

_tracking_uri: str | None = None  # set by set_tracking_uri
_experiment_id: str | None = None  # set by set_experiment
_artifact_locations: dict[tuple[int, str], str] = {}  # (id(store), experiment id) ->
_checked_keys: set[str] = set()  # keys that passed validate_key (the hot path skips it)
_MAX_CHECKED_KEYS = 10_000


# -- tracking URI and experiments -------------------------------------------


def set_tracking_uri(uri: str | os.PathLike) -> None:
    """Where runs are stored: a path or ``file:`` URI (the file store),
    ``sqlite:///runs.db``, ``postgresql://...``, or ``http(s)://`` (a server).
    Relative paths are resolved now, against the current directory."""
    global _tracking_uri, _experiment_id
    _tracking_uri = normalize_tracking_uri(os.fspath(uri))
    _experiment_id = None  # an experiment id of another store means nothing here


def get_tracking_uri() -> str:
    """The URI set by :func:`set_tracking_uri`, else ``AUTOLOG_TRACKING_URI``,
    else the absolute ``file:`` URI of ``./mlruns``."""
    return _tracking_uri if _tracking_uri is not None else default_tracking_uri()


_store_cache: tuple[tuple[str | None, ...], AbstractStore] | None = None


def _store() -> AbstractStore:
    """The store of the current tracking URI. Resolving a path costs syscalls, so
    the answer is kept until the URI, the environment variable or (for a
    relative default) the working directory changes."""
    global _store_cache
    env = os.environ.get("AUTOLOG_TRACKING_URI")
    key = (_tracking_uri, env, os.getcwd() if _tracking_uri is None else None)
    cached = _store_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    store = store_for_uri(get_tracking_uri())
    _store_cache = (key, store)
    return store


def _require_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(f"experiment name {name!r} must be a non-empty string")
    if "\x00" in name:
        raise InvalidParameterError(f"experiment name {name!r} contains a NUL character")
    return name


def _require_active(experiment: Experiment) -> Experiment:
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        raise RunStateError(
            f"experiment {experiment.name!r} (id {experiment.experiment_id}) is deleted; "
            "restore it with Client().restore_experiment() or use another name"
        )
    return experiment


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment the active one (created if the name is new) and return it."""
    global _experiment_id
    store = _store()
    if experiment_id is not None:
        experiment = store.get_experiment(str(experiment_id))
    else:
        experiment = _get_or_create_experiment(store, _require_name(experiment_name))
    _experiment_id = _require_active(experiment).experiment_id
    return experiment


def _get_or_create_experiment(store: AbstractStore, name: str) -> Experiment:
    experiment = store.get_experiment_by_name(name)
    if experiment is None:
        try:
            return store.get_experiment(store.create_experiment(name))
        except ResourceAlreadyExistsError:  # another process created it just now
            experiment = store.get_experiment_by_name(name)
            if experiment is None:
                raise
    return experiment


def create_experiment(
    name: str, artifact_location: str | None = None, tags: Mapping[str, Any] | None = None
) -> str:
    """Create an experiment and return its id (an existing name is an error)."""
    clean_tags = _validated_tags(tags or {})
    return _store().create_experiment(_require_name(name), artifact_location, clean_tags)


def get_experiment(experiment_id: str) -> Experiment:
    """The experiment with that id (``ResourceNotFoundError`` if there is none)."""
    return _store().get_experiment(str(experiment_id))


def get_experiment_by_name(name: str) -> Experiment | None:
    """The experiment with that name, or None."""
    return _store().get_experiment_by_name(name)


def search_experiments(
    view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 1000,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
) -> list[Experiment]:
    """Experiments matching ``filter_string`` (``name LIKE 'churn%'``, ``tags.team = 'x'``)."""
    return _store().search_experiments(view_type, max_results, filter_string, order_by)


def _active_experiment_id(store: AbstractStore) -> str:
    global _experiment_id
    if _experiment_id is not None:
        return _experiment_id
    from_env = os.environ.get("AUTOLOG_EXPERIMENT_ID")
    if from_env:
        return from_env
    name = os.environ.get("AUTOLOG_EXPERIMENT_NAME")
    if name:
        _experiment_id = _get_or_create_experiment(store, name).experiment_id
        return _experiment_id
    return DEFAULT_EXPERIMENT_ID


def set_experiment_tag(key: str, value: Any) -> None:
    """Tag the active experiment (the one of :func:`set_experiment`, else the default)."""
    set_experiment_tags({key: value})


def set_experiment_tags(tags: Mapping[str, Any]) -> None:
    """Set several tags on the active experiment."""
    store = _store()
    experiment_id = _active_experiment_id(store)
    for key, value in _validated_tags(tags).items():
        store.set_experiment_tag(experiment_id, key, value)


def _artifact_location(store: AbstractStore, experiment_id: str) -> str:
    """The experiment's artifact location; checks once that it exists and is active."""
    cache_key = (id(store), experiment_id)
    location = _artifact_locations.get(cache_key)
    if location is None:
        experiment = _require_active(store.get_experiment(experiment_id))
        location = experiment.artifact_location.rstrip("/")
        _artifact_locations[cache_key] = location
    return location


def _check_key(key: Any, kind: str) -> str:
    validate_key(key, kind)
    if len(_checked_keys) < _MAX_CHECKED_KEYS:
        _checked_keys.add(key)
    return key


def _validated_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    clean = {}
    for key, value in tags.items():
        if type(key) is not str or key not in _checked_keys:
            _check_key(key, "tag key")
        clean[key] = validate_tag_value(key, value)
    return clean


def _reset() -> None:
    """Forget the URI, the experiment and the caches (tests)."""
    global _tracking_uri, _experiment_id, _store_cache
    _tracking_uri = _experiment_id = _store_cache = None
    _artifact_locations.clear()
