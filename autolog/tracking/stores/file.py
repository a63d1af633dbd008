"""The default store: plain folders of JSON a person can read, safe for many processes.

Layout under the root (``./mlruns`` by default)::

    .lock                          flock'ed while experiments are created or changed
    0/meta.json                    the experiment "Default" (always exists)
    1/meta.json                    {"experiment_id": "1", "name": ..., "tags": {...}, ...}
    1/<run_id>/meta.json           the run's info: status, times, name, artifact_uri, ...
    1/<run_id>/log.jsonl           params, tags and metrics, one line per batch, in logging order
    1/<run_id>/artifacts/          the run's artifact root

A line of ``log.jsonl`` holds the parts of one ``log_batch`` that are present::

    {"m": {"loss": {"value": [0.5, 0.25], "step": [0, 1], "timestamp": [1712000000000, ...]}},
     "p": [["lr", "0.1"]], "t": [["k", "v"]]}
    {"dt": ["k"]}                  a deleted tag

Metrics are stored per key as three parallel columns, in logging order: a
million points then parse into a few thousand lists rather than a million
(reading a long history back is what this layout is fast at). NaN and
infinities are written as the JSON extensions ``NaN`` / ``Infinity`` that
Python reads back.

Why it is safe:

- ``meta.json`` documents are replaced by writing a temporary file and
  ``os.replace``: a reader sees the old or the new document, never half of one;
- each batch is one ``write()`` to a file opened ``O_APPEND``, so writers of
  one run in several processes never interleave inside a line; a process
  killed mid-write leaves at most a torn last line, which readers ignore, and
  the next process to append first ends the file with a newline;
- experiment creation takes an ``fcntl.flock`` on ``.lock``: two processes
  creating one new name end with one experiment.

Durability is against a crashed or killed process (the data is in the OS page
cache once ``log_batch`` returns); ``FileStore(root, fsync=True)`` also
survives power loss, at the cost of an ``fsync`` per write.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from urllib.parse import unquote, urlparse

from autolog.errors import (
    InvalidParameterError,
    ParamOverwriteError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    StoreError,
)
from autolog.tracking import search as _search
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
)
from autolog.tracking.stores.file_log import (
    RunLog,
    gc_paused,
    in_order,
    metric_columns,
    parse_lines,
)

__all__ = ["FileStore"]

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_COMPACT = {"separators": (",", ":")}


def _now_ms() -> int:
    return int(time.time() * 1000)


def root_from_uri(root: str | Path) -> Path:
    """``file:///abs``, ``file:rel`` or a plain path -> an absolute Path."""
    if isinstance(root, str) and root.startswith("file:"):
        parsed = urlparse(root)
        root = unquote(parsed.path if parsed.netloc in ("", "localhost") else root[5:])
    return Path(root).expanduser().absolute()


class FileStore(AbstractStore):
    """Experiments and runs as folders of JSON under ``root`` (a path or ``file:`` URI).

    >>> store = FileStore("mlruns")
    >>> run = store.create_run("0", "me", start_time=0)
    >>> store.log_batch(run.info.run_id, params=[Param("lr", "0.1")])
    """

    def __init__(self, root: str | Path, *, fsync: bool = False):
        self.root = root_from_uri(root)
        self.uri = self.root.as_uri()
        self.fsync = fsync
        self._lock = threading.RLock()
        self._flock_depth = 0
        self._default_ready = False
        self._unwritten_default: dict | None = None
        self._docs: dict[str, tuple[tuple[int, int, int], dict]] = {}
        self._logs: dict[str, RunLog] = {}
        self._run_dirs: dict[str, Path] = {}
        self._newline_checked: set[tuple[int, Path]] = set()

    # -- files -------------------------------------------------------------
    def _write_doc(self, path: Path, doc: dict) -> None:
        """Replace ``path`` atomically (temp file in the same folder + rename)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        st = os.stat(path)
        self._docs[os.fspath(path)] = ((st.st_ino, st.st_mtime_ns, st.st_size), doc)

    def _read_doc(self, path: str | Path) -> dict | None:
        """A JSON document, parsed once per version (inode, mtime, size); None if absent.

        Hot paths pass ``str`` paths: pathlib costs a third of a cold search."""
        path = os.fspath(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._docs.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        with open(path, "rb") as f:
            doc = json.loads(f.read())
        self._docs[path] = (key, doc)
        return doc

    def _append(self, path: Path, entry: dict) -> tuple[int, int, int]:
        """Append ``entry`` as one line in one ``write()``; returns (bytes written,
        file size and inode right after) so the caller can tell whether the line
        is the only thing appended since it last read the file."""
        data = (json.dumps(entry, **_COMPACT) + "\n").encode()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            checked = (os.getpid(), path)
            if checked not in self._newline_checked:
                # A killed writer may have left a torn line: end it so ours parses.
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                self._newline_checked.add(checked)
            os.write(fd, data)
            if self.fsync:
                os.fsync(fd)
            st = os.fstat(fd)
            return len(data), st.st_size, st.st_ino
        finally:
            os.close(fd)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Held across processes (flock) and threads while experiments change."""
        with self._lock:
            if self._flock_depth:  # a second flock from this process would deadlock
                self._flock_depth += 1
                try:
                    yield
                finally:
                    self._flock_depth -= 1
                return
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / ".lock", "a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                self._flock_depth = 1
                try:
                    yield
                finally:
                    self._flock_depth = 0
                    fcntl.flock(lock_file, fcntl.LOCK_UN)

    # -- experiments ---------------------------------------------------------
    def _new_experiment_doc(
        self, experiment_id: str, name: str, artifact_location: str | None, tags: dict
    ) -> dict:
        now = _now_ms()
        return {
            "experiment_id": experiment_id,
            "name": name,
            "artifact_location": artifact_location or (self.root / experiment_id).as_uri(),
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
                doc = self._read_doc(self.root / experiment_id / "meta.json")
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
            (self.root / experiment_id).mkdir()
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
        return _search.search_experiments(experiments, filter_string, order_by, max_results)

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
        run_dir = self.root / experiment["experiment_id"] / run_id
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise ResourceAlreadyExistsError(f"Run {run_id!r} already exists") from None
        location = experiment["artifact_location"].rstrip("/")
        info = RunInfo(
            run_id=run_id,
            experiment_id=experiment["experiment_id"],
            run_name=run_name,
            user_id=user_id,
            status=RunStatus.RUNNING,
            start_time=start_time,
            end_time=None,
            artifact_uri=f"{location}/{run_id}/artifacts",
        )
        if location == run_dir.parent.as_uri():
            (run_dir / "artifacts").mkdir()
        if tag_map:
            self._append(run_dir / "log.jsonl", {"t": list(map(list, tag_map.items()))})
        # meta.json last: a run folder without it is an unfinished creation, never listed
        self._write_doc(run_dir / "meta.json", vars(info))
        self._run_dirs[run_id] = run_dir
        return Run(info, RunData(tags=tag_map))

    def _run_dir(self, run_id: str) -> Path:
        run_dir = self._run_dirs.get(run_id)
        if run_dir is not None and (run_dir / "meta.json").exists():
            return run_dir
        if isinstance(run_id, str) and _RUN_ID.fullmatch(run_id):
            for doc in self._experiment_docs():
                candidate = self.root / doc["experiment_id"] / run_id
                if (candidate / "meta.json").exists():
                    self._run_dirs[run_id] = candidate
                    return candidate
        raise ResourceNotFoundError(f"No run with id {run_id!r}")

    def _run_log(self, run_dir: str | Path) -> RunLog:
        """The run's log state, after reading whatever was appended since last time."""
        path = os.path.join(run_dir, "log.jsonl")
        state = self._logs.get(path)
        if state is None:
            state = self._logs[path] = RunLog()
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return state
        if st.st_ino != state.inode or st.st_size < state.offset:
            state.__init__()  # replaced or truncated: read again from the start
            state.inode = st.st_ino
        if st.st_size > state.offset:
            with open(path, "rb") as f:
                f.seek(state.offset)
                data = f.read()
            complete = data.rfind(b"\n") + 1  # a torn tail stays unread
            for entry in parse_lines(data[:complete]):
                state.apply(entry)
            state.offset += complete
        return state

    def _load_run(self, run_dir: str | Path) -> Run | None:
        meta = self._read_doc(os.path.join(run_dir, "meta.json"))
        if meta is None:
            return None
        log = self._run_log(run_dir)
        data = RunData(
            params=dict(log.params),
            metrics={key: point[2] for key, point in log.latest.items()},
            tags=dict(log.tags),
        )
        return Run(RunInfo(**meta), data)

    def get_run(self, run_id: str) -> Run:
        with self._lock:
            run = self._load_run(self._run_dir(run_id))
        if run is None:
            raise ResourceNotFoundError(f"No run with id {run_id!r}")
        return run

    def _update_run(self, run_id: str, **changes: object) -> RunInfo:
        with self._lock:
            run_dir = self._run_dir(run_id)
            meta = {**self._read_doc(run_dir / "meta.json"), **changes}
            self._write_doc(run_dir / "meta.json", meta)
        return RunInfo(**meta)

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
        if run_name is not None:
            changes["run_name"] = run_name
            self.log_batch(run_id, tags=[RunTag(RUN_NAME_TAG, run_name)])
        return self._update_run(run_id, **changes)

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
        entry: dict[str, list] = {}
        if metrics:
            entry["m"] = metric_columns(metrics)
        with self._lock:
            run_dir = self._run_dir(run_id)
            log = self._run_log(run_dir)
            if params:
                new_params = self._new_params(log.params, params)
                if new_params:
                    entry["p"] = new_params
            if tags:
                entry["t"] = [[t.key, t.value] for t in tags]
            if not entry:
                return
            written, size, inode = self._append(run_dir / "log.jsonl", entry)
            # Fold our own line into the cached state unless another process
            # appended meanwhile (then the next read picks both up from the file).
            if size == log.offset + written and (inode == log.inode or log.offset == 0):
                log.inode = inode
                log.apply(entry)
                log.offset = size
            renamed = [t.value for t in tags if t.key == RUN_NAME_TAG]
            if renamed:
                self._update_run(run_id, run_name=renamed[-1])

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
            elif old != p.value:
                raise ParamOverwriteError(
                    f"Param {p.key!r} was already logged with value {old!r}; "
                    f"cannot change it to {p.value!r} (params are immutable)"
                )
        return new

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._lock:
            run_dir = self._run_dir(run_id)
            if key not in self._run_log(run_dir).tags:
                raise ResourceNotFoundError(f"Run {run_id!r} has no tag {key!r}")
            self._append(run_dir / "log.jsonl", {"dt": [key]})

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        path = self._run_dir(run_id) / "log.jsonl"
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        needle = json.dumps(key).encode()  # skip lines that cannot hold the key
        values: list[float] = []
        steps: list[int] = []
        timestamps: list[int] = []
        for entry in parse_lines(b"\n".join(x for x in data.split(b"\n") if needle in x)):
            columns = entry.get("m", {}).get(key)
            if columns is not None:
                values += columns["value"]
                steps += columns["step"]
                timestamps += columns["timestamp"]
        with gc_paused():
            points = list(map(Metric, repeat(key), values, timestamps, steps))
        if not in_order(steps, timestamps):
            points.sort(key=attrgetter("step", "timestamp"))  # stable: logging order on ties
        return points

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
        return _search.search(runs, filter_string, order_by, max_results, page_token)

    def close(self) -> None:
        with self._lock:
            self._docs.clear()
            self._logs.clear()
            self._run_dirs.clear()


def _os_errors_as_store_errors(method):
    """An OSError (disk full, permission, a path that is a file) becomes a
    StoreError naming the store, with the OSError as its cause."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as error:
            raise StoreError(f"file store {self.root}: {error}") from error

    return wrapper


for _name in AbstractStore.__abstractmethods__:
    setattr(FileStore, _name, _os_errors_as_store_errors(getattr(FileStore, _name)))
