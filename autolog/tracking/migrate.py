"""Copy a whole tracking store into another one (``autolog migrate``).

Works between any two stores (file, sqlite, postgresql) because it only uses
the :class:`~autolog.tracking.stores.base.AbstractStore` contract and the
artifact repositories::

    from autolog.tracking.migrate import migrate
    counts = migrate("./mlruns", "sqlite:///mlflow.db")
    print(counts.runs, counts.metric_points)

What is copied: experiments, matched by name (an existing one is reused and
its tags updated); runs with the same run ids, status, start and end times,
user, name, params, tags, the full history of every metric, and every
artifact (into the target's own artifact location: sharing the source's
folder would let one store overwrite the other's files). Deleted experiments
and runs are copied, then deleted again. A source that does not exist (a
mistyped path or database file) is a ResourceNotFoundError, and nothing is
created. A run id already in the target is
skipped, so an interrupted migrate can simply be run again (a run that was
half copied when it stopped stays as it is: delete it in the target first).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from autolog.errors import InvalidParameterError, ResourceNotFoundError
from autolog.tracking.artifacts import repository_for
from autolog.tracking.entities import Experiment, LifecycleStage, Param, Run, RunTag, ViewType
from autolog.tracking.stores import mask_uri, normalize_tracking_uri, store_for_uri
from autolog.tracking.stores.base import AbstractStore

__all__ = ["MigrationCounts", "migrate"]

#: runs per search page and entities per log_batch: one SQL transaction each
_BATCH = 1000
_MAX_EXPERIMENTS = 50_000


@dataclass
class MigrationCounts:
    """What :func:`migrate` did."""

    experiments: int = 0
    runs: int = 0
    skipped: int = 0  # runs whose id the target had already
    metric_points: int = 0
    artifact_files: int = 0


def migrate(
    source: AbstractStore | str,
    target: AbstractStore | str,
    echo: Callable[[str], None] | None = None,
) -> MigrationCounts:
    """Copy every experiment and run of ``source`` into ``target`` (stores or
    tracking URIs); ``echo`` gets one line per experiment."""
    source_uri, target_uri = _uri(source), _uri(target)
    if source_uri == target_uri:  # checked before opening: opening creates a file store
        raise InvalidParameterError(f"--from and --to are the same store ({mask_uri(source_uri)})")
    if isinstance(source, str):
        _require_existing(source_uri)  # before opening anything: opening creates a store
    source, target = _store(source), _store(target)
    counts = MigrationCounts()
    for experiment in source.search_experiments(ViewType.ALL, max_results=_MAX_EXPERIMENTS):
        target_id = _target_experiment(target, experiment)
        counts.experiments += 1
        copied = sum(
            _copy_run(source, target, run, target_id, counts)
            for run in _all_runs(source, experiment.experiment_id)
        )
        if experiment.lifecycle_stage == LifecycleStage.DELETED:
            target.delete_experiment(target_id)  # after its runs: a deleted one may refuse them
        if echo is not None:
            echo(f"experiment {experiment.name!r}: {copied} runs copied")
    return counts


def _require_existing(uri: str) -> None:
    """ResourceNotFoundError unless a store is there: a mistyped source would
    otherwise be created empty and "migrated" without a word."""
    from pathlib import Path

    from autolog.tracking.stores import file_uri_to_path

    scheme = uri.partition(":")[0].lower()
    if scheme == "file":
        path = Path(file_uri_to_path(uri))
        if not path.is_dir():
            raise ResourceNotFoundError(f"source store {path} does not exist (no such folder)")
        return
    if scheme not in ("sqlite", "postgresql", "postgresql+psycopg"):
        return  # a tracking server answers for itself
    import sqlalchemy as sa

    from autolog.tracking.stores.sql_engine import engine_url

    url = engine_url(uri)
    if url.get_backend_name() == "sqlite" and not Path(url.database).expanduser().is_file():
        raise ResourceNotFoundError(
            f"source store {mask_uri(uri)} does not exist (no file {url.database})"
        )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = sa.inspect(conn).has_table("experiments")
    finally:
        engine.dispose()
    if not found:
        raise ResourceNotFoundError(f"source {mask_uri(uri)} holds no tracking store (no tables)")


def _uri(store: AbstractStore | str) -> str:
    return normalize_tracking_uri(store if isinstance(store, str) else store.uri)


def _store(store: AbstractStore | str) -> AbstractStore:
    return store_for_uri(store) if isinstance(store, str) else store


def _target_experiment(target: AbstractStore, experiment: Experiment) -> str:
    existing = target.get_experiment_by_name(experiment.name)
    if existing is None:
        return target.create_experiment(experiment.name, tags=dict(experiment.tags))
    for key, value in experiment.tags.items():
        target.set_experiment_tag(existing.experiment_id, key, value)
    return existing.experiment_id


def _all_runs(store: AbstractStore, experiment_id: str) -> Iterator[Run]:
    token = None
    while True:
        page = store.search_runs(
            [experiment_id], "", ViewType.ALL, max_results=_BATCH, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def _copy_run(
    source: AbstractStore, target: AbstractStore, run: Run, experiment_id: str, counts
) -> bool:
    info = run.info
    try:
        target.get_run(info.run_id)
    except ResourceNotFoundError:
        pass
    else:
        counts.skipped += 1
        return False
    tags = [RunTag(k, v) for k, v in run.data.tags.items()]
    created = target.create_run(
        experiment_id, info.user_id, info.start_time, tags, info.run_name, info.run_id
    )
    params = [Param(k, v) for k, v in run.data.params.items()]
    for i in range(0, len(params), _BATCH):
        target.log_batch(info.run_id, params=params[i : i + _BATCH])
    for key in run.data.metrics:
        history = source.get_metric_history(info.run_id, key)
        for i in range(0, len(history), _BATCH):
            target.log_batch(info.run_id, metrics=history[i : i + _BATCH])
        counts.metric_points += len(history)
    counts.artifact_files += _copy_artifacts(info.artifact_uri, created.info.artifact_uri)
    target.update_run_info(info.run_id, status=info.status, end_time=info.end_time)
    if info.lifecycle_stage == LifecycleStage.DELETED:
        target.delete_run(info.run_id)
    counts.runs += 1
    return True


def _copy_artifacts(source_uri: str, target_uri: str) -> int:
    """Copy every artifact file; returns how many. A run without any costs one listing."""
    source = repository_for(source_uri)
    if not source.list_artifacts():
        return 0
    staging = tempfile.mkdtemp(prefix="autolog-migrate-")
    try:
        source.download_artifacts("", staging)
        repository_for(target_uri).log_artifacts(staging)
        return sum(len(files) for _dir, _subdirs, files in os.walk(staging))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
