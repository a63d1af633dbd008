"""The default store: plain folders of JSON a person can read, safe for many processes.

Layout under the root (``./mlruns`` by default)::

    .lock                          flock'ed while experiments are created or changed
    0/meta.json                    the experiment "Default" (always exists)
    1/meta.json                    {"experiment_id": "1", "name": ..., "tags": {...}, ...}
    1/<run_id>/meta.json           the run's info at its creation: status, times, name, ...
    1/<run_id>/log.jsonl           params, tags, metrics and info changes, one line per batch
    1/<run_id>/artifacts/          the run's artifact root (made by its first artifact)

A line of ``log.jsonl`` holds the parts of one ``log_batch`` that are present::

    {"m": {"loss": {"value": [0.5, 0.25], "step": [0, 1], "timestamp": [1712000000000, ...]}},
     "p": [["lr", "0.1"]], "t": [["k", "v"]]}
    {"dt": ["k"]}                  a deleted tag
    {"i": {"status": "FINISHED", "end_time": 1712000000100}}    the run's info changed

A run's info is its ``meta.json`` with the ``"i"`` lines of its log applied
in order: a run's end (``update_run_info``: status, end time, a new name) is
one appended line, not a new ``meta.json`` (writing a temporary file and
renaming it over the old one makes an inode and frees one: the dearest part
of a small run's writes). Its deletion and restoration still rewrite
``meta.json``. Runs written before ``"i"`` lines existed have none and read
as before; an older autolog reading a newer log skips them (it sees a run
that ended as still RUNNING).

Metrics are stored per key as three parallel columns, in logging order: a
million points then parse into a few thousand lists rather than a million
(reading a long history back is what this layout is fast at). NaN and
infinities are written as the JSON extensions ``NaN`` / ``Infinity`` that
Python reads back. A key with many points in one batch (``file_log.PACK_AT``,
32) has its columns packed instead, under ``"mb"``: hex of little-endian
int64 steps, int64 timestamps and float64 values (NaN and infinities kept
bit for bit)::

    {"mb": {"loss": {"step": "0000000000000000010000...", "timestamp": "...", "value": "..."}}}

Writing and parsing a float's decimal text costs about 1 us a point; the
packed columns a few hundredths of that. Lines written with plain ``"m"``
columns only (every line written before the packed columns) read as before; an older
autolog reading a newer log sees the plain columns and skips ``"mb"``.

Why it is safe (the documents and the lock live in ``file_docs.py``, the log's
format, writer and reader in ``file_log.py``):

- ``meta.json`` documents are replaced by writing a temporary file and
  ``os.replace``: a reader sees the old or the new document, never half of one;
- each batch is one ``write()`` to a file opened ``O_APPEND``, so writers of
  one run in several processes never interleave inside a line; a process
  killed mid-write leaves at most a torn last line, which readers ignore, and
  the next append (of any process) ends the torn line with a newline;
- experiment creation takes an ``fcntl.flock`` on ``.lock``: two processes
  creating one new name end with one experiment.

Durability is against a crashed or killed process (the data is in the OS page
cache once ``log_batch`` returns); ``FileStore(root, fsync=True)`` also
survives power loss, at the cost of an ``fsync`` per write.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from autolog.errors import (
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    RunStateError,
    TransientStoreError,
)
from autolog.tracking.context import RUN_NAME as RUN_NAME_TAG
from autolog.tracking.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from autolog.tracking.stores.base import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    AbstractStore,
    new_run_identity,
    new_run_info,
)
from autolog.tracking.stores.file_docs import DocumentCache, RootLock
from autolog.tracking.stores.file_log import RunLog, RunLogFiles, metric_columns, metric_history
from autolog.tracking.stores.uris import expand_home, file_uri_to_path
from autolog.tracking.validation import check_param_unchanged

__all__ = ["FileStore"]

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _now_ms() -> int:
    return int(time.time() * 1000)


class FileStore(AbstractStore):
    """Experiments and runs as folders of JSON under ``root`` (a path or ``file:`` URI).

    >>> store = FileStore("mlruns")
    >>> run = store.create_run("0", "me", start_time=0)
    >>> store.log_batch(run.info.run_id, params=[Param("lr", "0.1")])
    """

    def __init__(self, root: str | Path, *, fsync: bool = False, artifact_root: str | None = None):
        self.root = expand_home(file_uri_to_path(os.fspath(root))).absolute()
        # new experiments' artifacts: <artifact_root>/<id> when given (the server
        # passes "mlflow-artifacts:"), else <root>/<id> beside the runs
        self._artifact_root = artifact_root.rstrip("/") if artifact_root else None
        self._root = os.fspath(self.root)
        self.uri = self.root.as_uri()
        self._lock = threading.RLock()
        self._exclusive = RootLock(self.root, self._lock).held
        self._docs = DocumentCache(fsync=fsync)
        self._read_doc, self._write_doc = self._docs.read, self._docs.write
        self._logs = RunLogFiles(fsync=fsync)
        self._run_dirs: dict[str, str | Path] = {}
        self._default_ready = False
        self._unwritten_default: dict | None = None

    @property
    def fsync(self) -> bool:
        """Whether every write is ``fsync``'ed (survives power loss); fixed at opening."""
        return self._docs.fsync

    # -- experiments ---------------------------------------------------------
    def _new_experiment_doc(
        self, experiment_id: str, name: str, artifact_location: str | None, tags: dict
    ) -> dict:
        now = _now_ms()
        return {
            "experiment_id": experiment_id,
            "name": name,
            "artifact_location": artifact_location
            or (
                f"{self._artifact_root}/{experiment_id}"
                if self._artifact_root
                else (self.root / experiment_id).as_uri()
            ),
            "lifecycle_stage": LifecycleStage.ACTIVE,
            "tags": dict(tags),
            "creation_time": now,
            "last_update_time": now,
        }

    def _default_doc(self) -> dict:
        """The default experiment as it reads before anything is written.

        Reads never write: opening a store (or starting a run, which reads its
        experiment) works even where the folder cannot be created yet, and the
        first write (in the background writer) is what reports the failure."""
        if self._unwritten_default is None:
            self._unwritten_default = self._new_experiment_doc(
                DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME, None, {}
            )
        return self._unwritten_default

    def _ensure_default(self) -> None:
        """Write the default experiment's folder if it is not there yet (write paths only)."""
        if self._default_ready:
            return
        meta = self.root / DEFAULT_EXPERIMENT_ID / "meta.json"
        if not meta.exists():
            with self._exclusive():
                if not meta.exists():
                    meta.parent.mkdir(exist_ok=True)
                    self._write_doc(meta, self._default_doc())
        self._default_ready = True

    def _experiment_docs(self) -> list[dict]:
        docs = []
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    if entry.name.isdigit():
                        doc = self._read_doc(Path(entry.path) / "meta.json")
                        if doc is not None:
                            docs.append(doc)
        except (FileNotFoundError, NotADirectoryError):
            pass  # nothing written yet
        if not any(doc["experiment_id"] == DEFAULT_EXPERIMENT_ID for doc in docs):
            docs.append(self._default_doc())
        return docs

    def _experiment_doc(self, experiment_id: str) -> dict:
        doc = None
        if isinstance(experiment_id, str) and experiment_id.isdigit():
            try:
                # a str path: pathlib's joins cost more than the (cached) read
                doc = self._read_doc(os.path.join(self._root, experiment_id, "meta.json"))
            except NotADirectoryError:
                pass
            if doc is None and experiment_id == DEFAULT_EXPERIMENT_ID:
                doc = self._default_doc()
        if doc is None:
            raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}")
        return doc

    @staticmethod
    def _experiment(doc: dict) -> Experiment:
        return Experiment(**{**doc, "tags": dict(doc["tags"])})

    def _check_name_free(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidParameterError(f"Experiment name must be a non-empty string, got {name!r}")
        if any(doc["name"] == name for doc in self._experiment_docs()):
            raise ResourceAlreadyExistsError(f"Experiment {name!r} already exists")

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        self._ensure_default()
        with self._exclusive():
            self._check_name_free(name)
            ids = [int(doc["experiment_id"]) for doc in self._experiment_docs()]
            experiment_id = str(max(ids, default=0) + 1)
            doc = self._new_experiment_doc(experiment_id, name, artifact_location, tags or {})
            # a folder without meta.json is a creation cut short (disk full): reuse it
            (self.root / experiment_id).mkdir(exist_ok=True)
            self._write_doc(self.root / experiment_id / "meta.json", doc)
        return experiment_id

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._experiment(self._experiment_doc(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        for doc in self._experiment_docs():
            if doc["name"] == name:
                return self._experiment(doc)
        return None

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
    ) -> list[Experiment]:
        stages = ViewType.stages(view_type)
        experiments = [
            self._experiment(doc)
            for doc in self._experiment_docs()
            if doc["lifecycle_stage"] in stages
        ]
        from autolog.tracking import search  # a few ms: only when a search runs

        return search.search_experiments(experiments, filter_string, order_by, max_results)

    def _update_experiment(self, experiment_id: str, **changes: object) -> None:
        self._ensure_default()
        with self._exclusive():
            doc = dict(self._experiment_doc(experiment_id))
            if "tags" in changes:
                changes["tags"] = {**doc["tags"], **changes["tags"]}  # type: ignore[dict-item]
            doc.update(changes, last_update_time=_now_ms())
            self._write_doc(self.root / doc["experiment_id"] / "meta.json", doc)

    def delete_experiment(self, experiment_id: str) -> None:
        self._update_experiment(experiment_id, lifecycle_stage=LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id: str) -> None:
        self._update_experiment(experiment_id, lifecycle_stage=LifecycleStage.ACTIVE)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        with self._exclusive():
            if self._experiment_doc(experiment_id)["name"] != new_name:
                self._check_name_free(new_name)
            self._update_experiment(experiment_id, name=new_name)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._update_experiment(experiment_id, tags={key: value})

    # -- runs ----------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: Sequence[RunTag] = (),
        run_name: str = "",
        run_id: str | None = None,
    ) -> Run:
        experiment = self._experiment_doc(experiment_id)
        self._ensure_default()
        run_id, tag_map, run_name = new_run_identity(run_id, tags, run_name)
        run_dir = os.path.join(self._root, experiment["experiment_id"], run_id)
        meta = os.path.join(run_dir, "meta.json")
        location = experiment["artifact_location"].rstrip("/")
        info = new_run_info(
            run_id, experiment["experiment_id"], run_name, user_id, start_time, location
        )
        fresh = False  # whether this call made the run's folder (then its log is empty)
        try:
            os.mkdir(run_dir)
        except FileExistsError:
            existing = self._read_doc(meta)
            if existing is not None:  # created already: the same creation retried?
                return self._same_creation(RunInfo(**existing), info)
            # a creation cut short (disk full, killed) before meta.json: finish it
        else:
            fresh = True
        # No artifacts/ folder yet: the artifact repository makes it with the
        # first artifact (a run that logs none pays no mkdir, ~0.1 ms of CPU).
        if tag_map:
            self._logs.append(run_dir, {"t": list(map(list, tag_map.items()))}, new=fresh)
        # meta.json last: a run folder without it is an unfinished creation, never listed
        self._write_doc(meta, vars(info))
        self._run_dirs[run_id] = run_dir
        return Run(info, RunData(tags=tag_map))

    def _same_creation(self, existing: RunInfo, info: RunInfo) -> Run:
        """A retried ``create_run`` of a run that exists returns it (idempotent);
        another run with that id is ResourceAlreadyExistsError."""
        same = (existing.experiment_id, existing.user_id, existing.start_time) == (
            info.experiment_id,
            info.user_id,
            info.start_time,
        )
        if not same:
            raise ResourceAlreadyExistsError(f"Run {info.run_id!r} already exists")
        return self.get_run(info.run_id)

    def _active_run(self, run_id: str) -> tuple[str | Path, dict]:
        """The folder and ``meta.json`` of a run that may be written to:
        RunStateError if it is deleted."""
        run_dir, meta = self._run_meta(run_id)
        if meta["lifecycle_stage"] == LifecycleStage.DELETED:
            raise RunStateError(f"run {run_id} is deleted; restore it before writing to it")
        return run_dir, meta

    def _run_dir(self, run_id: str) -> str | Path:
        return self._run_meta(run_id)[0]

    def _run_meta(self, run_id: str) -> tuple[str | Path, dict]:
        """The run's folder and its ``meta.json`` document, read once (one stat
        when this store object wrote or read that version last)."""
        run_dir = self._run_dirs.get(run_id)
        if run_dir is not None:
            meta = self._read_doc(os.path.join(run_dir, "meta.json"))
            if meta is not None:
                return run_dir, meta
        if isinstance(run_id, str) and _RUN_ID.fullmatch(run_id):
            for doc in self._experiment_docs():
                candidate = self.root / doc["experiment_id"] / run_id
                meta = self._read_doc(os.path.join(candidate, "meta.json"))
                if meta is not None:
                    self._run_dirs[run_id] = candidate
                    return candidate, meta
        raise ResourceNotFoundError(f"No run with id {run_id!r}")

    def _load_run(self, run_dir: str | Path) -> Run | None:
        meta = self._read_doc(os.path.join(run_dir, "meta.json"))
        if meta is None:
            return None
        log = self._logs.read(run_dir)
        data = RunData(
            params=dict(log.params),
            metrics={key: point[2] for key, point in log.latest.items()},
            tags=dict(log.tags),
        )
        return Run(RunInfo(**{**meta, **log.info}) if log.info else RunInfo(**meta), data)

    def get_run(self, run_id: str) -> Run:
        with self._lock:
            run = self._load_run(self._run_dir(run_id))
        if run is None:
            raise ResourceNotFoundError(f"No run with id {run_id!r}")
        return run

    def _update_run(self, run_id: str, **changes: object) -> RunInfo:
        """Rewrite the run's ``meta.json`` with ``changes`` (its lifecycle stage)."""
        with self._lock:
            run_dir, meta = self._run_meta(run_id)
            meta = {**meta, **changes}
            self._write_doc(os.path.join(run_dir, "meta.json"), meta)
            info = self._logs.read(run_dir).info
        return RunInfo(**{**meta, **info})

    def update_run_info(
        self,
        run_id: str,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        changes: dict[str, object] = {}
        if status is not None:
            if status not in RunStatus.ALL:
                raise InvalidParameterError(f"Invalid run status {status!r}")
            changes["status"] = status
        if end_time is not None:
            changes["end_time"] = end_time
        entry: dict[str, object] = {"i": changes}
        if run_name is not None:
            changes["run_name"] = run_name
            entry["t"] = [[RUN_NAME_TAG, run_name]]
        with self._lock:
            run_dir, meta = self._active_run(run_id)
            # one line of the log, not a new meta.json (see the module)
            log = self._logs.append(run_dir, entry) if changes else self._logs.read(run_dir)
            return RunInfo(**{**meta, **log.info, **changes})

    def delete_run(self, run_id: str) -> None:
        self._update_run(run_id, lifecycle_stage=LifecycleStage.DELETED)

    def restore_run(self, run_id: str) -> None:
        self._update_run(run_id, lifecycle_stage=LifecycleStage.ACTIVE)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        entry: dict[str, object] = {}
        if metrics:
            plain, packed = metric_columns(metrics)
            if plain:
                entry["m"] = plain
            if packed:
                entry["mb"] = packed
        if tags:
            entry["t"] = [[t.key, t.value] for t in tags]
            renamed = [t.value for t in tags if t.key == RUN_NAME_TAG]
            if renamed:  # the tag renames the run: its info says so too
                entry["i"] = {"run_name": renamed[-1]}

        def with_new_params(log: RunLog) -> dict | None:
            # the log as it is now (another process's params included): only
            # params not logged yet are written, a changed one is refused
            new_params = self._new_params(log.params, params)
            if new_params:
                entry["p"] = new_params
            return entry or None

        with self._lock:
            run_dir = self._active_run(run_id)[0]
            if params:
                self._logs.update(run_dir, with_new_params)
            elif entry:
                self._logs.append(run_dir, entry)

    @staticmethod
    def _new_params(logged: dict[str, str], params: Sequence[Param]) -> list[list[str]]:
        """Params not logged yet; the same value again is a no-op, a different one an error."""
        seen = dict(logged)
        new = []
        for p in params:
            old = seen.get(p.key)
            if old is None:
                seen[p.key] = p.value
                new.append([p.key, p.value])
            else:
                check_param_unchanged(p.key, old, p.value)
        return new

    def delete_tag(self, run_id: str, key: str) -> None:
        def deletion(log: RunLog) -> dict:
            if key not in log.tags:
                raise ResourceNotFoundError(f"Run {run_id!r} has no tag {key!r}")
            return {"dt": [key]}

        with self._lock:
            self._logs.update(self._active_run(run_id)[0], deletion)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return metric_history(self._run_dir(run_id), key)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        stages = ViewType.stages(run_view_type)
        runs = []
        with self._lock:
            for experiment_id in experiment_ids:
                folder = self.root / str(experiment_id)
                if not str(experiment_id).isdigit() or not folder.is_dir():
                    continue
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_dir() and _RUN_ID.fullmatch(entry.name):
                            run = self._load_run(entry.path)
                            if run is not None and run.info.lifecycle_stage in stages:
                                runs.append(run)
        from autolog.tracking import search

        return search.search(runs, filter_string, order_by, max_results, page_token)

    def close(self) -> None:
        with self._lock:
            self._docs.clear()
            self._logs.clear()
            self._run_dirs.clear()


def _os_errors_as_store_errors(method):
    """An OSError (disk full, permission, a path that is a file) becomes a
    TransientStoreError naming the store, with the OSError as its cause: the
    writer keeps the write and retries it (every method finishes a write that
    a failure cut short, so a retry is safe)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as error:
            raise TransientStoreError(f"file store {self.root}: {error}") from error

    return wrapper


for _name in AbstractStore.__abstractmethods__:
    setattr(FileStore, _name, _os_errors_as_store_errors(getattr(FileStore, _name)))
