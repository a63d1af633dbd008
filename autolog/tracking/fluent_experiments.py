"""The active experiment and the experiment functions of the fluent API.

Part of :mod:`autolog.tracking.fluent` (which re-exports the public names):
``set_experiment``, ``create_experiment``, ``get_experiment``, ... act on the
store of the current tracking URI (:mod:`autolog.tracking.tracking_uri`).
Also kept here, for ``start_run`` and ``Client.create_run``: which experiment a
new run goes to (:func:`active_experiment_id`) and each experiment's artifact
location, read once (:func:`artifact_location`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from autolog.errors import ResourceAlreadyExistsError, RunStateError
from autolog.tracking.entities import Experiment, LifecycleStage, ViewType
from autolog.tracking.stores.base import DEFAULT_EXPERIMENT_ID, AbstractStore
from autolog.tracking.tracking_uri import current_store, uri_generation
from autolog.tracking.validation import validate_experiment_name, validated_tags

__all__ = [
    "active_experiment_id",
    "artifact_location",
    "create_experiment",
    "forget_artifact_location",
    "get_experiment",
    "get_experiment_by_name",
    "search_experiments",
    "set_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
]

# set by set_experiment (or AUTOLOG_EXPERIMENT_NAME), with the uri_generation() it
# was chosen under: an experiment id of another store means nothing there
_experiment: tuple[int, str] | None = None
_artifact_locations: dict[tuple[int, str], str] = {}  # (id(store), experiment id) ->


# -- experiments -----------------------------------------------------------


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
    global _experiment
    store = current_store()
    if experiment_id is not None:
        experiment = store.get_experiment(str(experiment_id))
    else:
        experiment = _get_or_create_experiment(store, validate_experiment_name(experiment_name))
    _experiment = (uri_generation(), _require_active(experiment).experiment_id)
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
    clean_tags = validated_tags(tags or {})
    return current_store().create_experiment(
        validate_experiment_name(name), artifact_location, clean_tags
    )


def get_experiment(experiment_id: str) -> Experiment:
    """The experiment with that id (``ResourceNotFoundError`` if there is none)."""
    return current_store().get_experiment(str(experiment_id))


def get_experiment_by_name(name: str) -> Experiment | None:
    """The experiment with that name, or None."""
    return current_store().get_experiment_by_name(name)


def search_experiments(
    view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 1000,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
) -> list[Experiment]:
    """Experiments matching ``filter_string`` (``name LIKE 'churn%'``, ``tags.team = 'x'``)."""
    return current_store().search_experiments(view_type, max_results, filter_string, order_by)


def active_experiment_id(store: AbstractStore) -> str:
    """The experiment a new run of ``store`` goes to: the one of
    :func:`set_experiment`, else ``AUTOLOG_EXPERIMENT_ID``, else
    ``AUTOLOG_EXPERIMENT_NAME`` (created if new), else the default experiment."""
    global _experiment
    chosen = _experiment
    if chosen is not None and chosen[0] == uri_generation():
        return chosen[1]
    from_env = os.environ.get("AUTOLOG_EXPERIMENT_ID")
    if from_env:
        return from_env
    name = os.environ.get("AUTOLOG_EXPERIMENT_NAME")
    if name:
        experiment_id = _get_or_create_experiment(store, name).experiment_id
        _experiment = (uri_generation(), experiment_id)
        return experiment_id
    return DEFAULT_EXPERIMENT_ID


def set_experiment_tag(key: str, value: Any) -> None:
    """Tag the active experiment (the one of :func:`set_experiment`, else the default)."""
    set_experiment_tags({key: value})


def set_experiment_tags(tags: Mapping[str, Any]) -> None:
    """Set several tags on the active experiment."""
    store = current_store()
    experiment_id = active_experiment_id(store)
    for key, value in validated_tags(tags).items():
        store.set_experiment_tag(experiment_id, key, value)


def artifact_location(store: AbstractStore, experiment_id: str) -> str:
    """The experiment's artifact location; checks once that it exists and is active."""
    cache_key = (id(store), experiment_id)
    location = _artifact_locations.get(cache_key)
    if location is None:
        experiment = _require_active(store.get_experiment(experiment_id))
        location = experiment.artifact_location.rstrip("/")
        _artifact_locations[cache_key] = location
    return location


def forget_artifact_location(store: AbstractStore, experiment_id: str) -> None:
    """Drop what :func:`artifact_location` remembers of the experiment (it was deleted)."""
    _artifact_locations.pop((id(store), str(experiment_id)), None)


def reset() -> None:
    """Forget the active experiment and the artifact locations (tests)."""
    global _experiment
    _experiment = None
    _artifact_locations.clear()
