"""The REST store with an offline spool: a server outage costs training nothing.

``store_for_uri("http://...")`` returns ``SpooledStore(RestStore(uri))``. While
the server answers, every call goes straight through (writes try once: the
spool, not a retry loop, absorbs a failure). When a write fails with
:class:`~autolog.errors.TransientStoreError` (connection refused, timeout,
408/429/5xx), that write and every write after it are appended to the
spool (:mod:`autolog.tracking.stores.spool`, fsynced: ``autolog.flush()``
returns once the data is durable there), and a background thread replays
them (:mod:`autolog.tracking.stores.spool_replay`) as soon as the server
answers again, in order, exactly once. Writes go straight to the server again
once the spool has drained.

What the user sees: one warning when the spool starts being used, one line
on stderr when it has drained, and, when the interpreter exits with the server
still down, one line saying where the data waits and that ``autolog sync``
delivers it. A run started while offline gets its id and start time here;
a server that assigns its own ids (a real ``mlflow server``) gets the run at
replay and the id map translates (kept in the spool folder, reported by
``autolog sync``). Experiments read before are remembered in the spool folder,
so ``set_experiment`` / ``start_run`` work offline for an experiment this
machine has used.

Settings: ``AUTOLOG_SPOOL`` (``off`` disables the spool), ``AUTOLOG_SPOOL_DIR``,
``AUTOLOG_SPOOL_MAX_BYTES`` (default 1 GiB), ``AUTOLOG_SPOOL_EXIT_TIMEOUT``
(seconds spent replaying at exit when the server is back, default 10).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from autolog.errors import AutologWarning, TransientStoreError
from autolog.tracking.at_exit import at_exit
from autolog.tracking.at_exit import cancel as cancel_at_exit
from autolog.tracking.entities import Experiment, Metric, Param, Run, RunData, RunInfo, RunTag
from autolog.tracking.stores.base import AbstractStore, new_run_identity, new_run_info
from autolog.tracking.stores.spool import Spool
from autolog.tracking.stores.spool_records import (
    create_run_record,
    delete_tag_record,
    log_batch_record,
    run_record,
    set_experiment_tag_record,
    update_run_record,
)
from autolog.tracking.stores.spool_replay import IdMap, Replayer

__all__ = ["SpooledStore", "spooled"]

T = TypeVar("T")
_EXPERIMENTS = "experiments.jsonl"
_RECORD_METRICS = 1_000  # metric points per spool record


def spooled(inner: AbstractStore) -> AbstractStore:
    """``inner`` behind a spool, unless ``AUTOLOG_SPOOL`` is ``off`` / ``0`` / ``false``."""
    if os.environ.get("AUTOLOG_SPOOL", "").strip().lower() in ("off", "0", "false", "no"):
        return inner
    return SpooledStore(inner)


def _single_attempt() -> Any:
    from autolog.tracking.stores.rest_http import single_attempt

    return single_attempt()


class _Stop(Exception):
    """Ends a replay at exit when its time is up (the cursor is saved)."""


class SpooledStore(AbstractStore):
    """``inner`` (a RestStore) whose writes survive the server being away."""

    def __init__(self, inner: AbstractStore, spool: Spool | None = None):
        from autolog.tracking.stores.rest_config import split_credentials

        self.inner = inner
        self.uri = inner.uri
        self.spool = spool if spool is not None else Spool(split_credentials(inner.uri)[0])
        self.ids = IdMap(self.spool)
        self._lock = threading.RLock()  # the online/spooling switch and appends
        self._replay_lock = threading.Lock()  # one replay at a time
        self._spooling = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._exit_registered = False
        self._episode = {"records": 0, "started": 0.0}
        self.last_replay_error: BaseException | None = None  # why replay waits, if it does
        self._experiments = {e["experiment_id"]: e for e in self.spool.read_lines(_EXPERIMENTS)}

    def __repr__(self) -> str:
        return f"SpooledStore({self.inner!r}, spool={str(self.spool.path)!r})"

    def __getattr__(self, name: str) -> Any:  # http, and whatever else RestStore offers
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def spooling(self) -> bool:
        """True while writes go to the spool (the server was found unreachable)."""
        return self._spooling

    @property
    def assigns_run_ids(self) -> bool:
        """As the server says; False while it cannot be asked (runs then get their
        ids here, and replay maps them if the server insists on its own)."""
        if self._spooling:
            return False
        try:
            with _single_attempt():
                return bool(getattr(self.inner, "assigns_run_ids", False))
        except TransientStoreError as error:
            self._begin(error)
            return False

    # -- the switch --------------------------------------------------------------
    def _write(
        self, record: dict | list[dict], online: Callable[[], T], offline: Callable[[], T]
    ) -> T:
        """``online()`` against the server, or ``record`` into the spool."""
        with self._lock:
            if self._spooling:
                self._append(record)
                return offline()
        try:
            with _single_attempt():
                return online()
        except TransientStoreError as error:
            with self._lock:
                self._begin(error)
                self._append(record)
            return offline()

    def write_spooled(self, records: Callable[[], list[dict]], online: Callable[[], T]) -> T | None:
        """``online()``, or the records ``records()`` makes (only when needed:
        spooled artifacts copy their file) into the spool."""
        return self._write(records, online, _none)

    def _append(self, record: Any) -> None:
        if callable(record):
            record = record()
        self.spool.append(record if isinstance(record, list) else [record])
        self._episode["records"] += 1
        if self._episode["records"] == 1:
            self._wake.set()

    def _begin(self, error: BaseException) -> None:
        with self._lock:
            if self._spooling:
                return
            self._spooling = True
            self._episode = {"records": 0, "started": time.monotonic()}
            warnings.warn(
                f"autolog: the tracking server {self._display()} cannot be reached ({error}); "
                f"writes are kept in the local spool {self.spool.path} and replayed when it "
                "answers again",
                AutologWarning,
                stacklevel=4,
            )
            if not self._exit_registered:
                self._exit_registered = True
                at_exit("stores", self._at_exit)  # after the runs end (into us)
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(
                    target=self._replay_loop, name="autolog-spool-replay", daemon=True
                )
                self._thread.start()

    def _display(self) -> str:
        http = getattr(self.inner, "http", None)
        return getattr(http, "display_url", None) or self.spool.uri

    # -- replay in the background ----------------------------------------------------------
    def _replay_loop(self) -> None:
        delay = 0.2
        while not self._closed:
            self._wake.wait(delay)
            self._wake.clear()
            if self._closed:
                return
            try:
                if self.replay_own():
                    return
                delay = 0.2
            except TransientStoreError as error:
                self.last_replay_error = error
                hint = getattr(error, "retry_after", None)
                delay = max(min(delay * 2, 5.0), hint or 0.0)
            except Exception as error:  # a spool or server problem a wait may not fix
                message = f"autolog: spool replay failed, will retry: {error!r}"
                warnings.warn(message, AutologWarning, stacklevel=1)
                delay = 10.0

    def replay_own(self, deadline: float | None = None) -> bool:
        """Replay this process's spooled records; True once the spool has drained
        (writes then go to the server again). A transient error propagates."""
        with self._replay_lock:
            progress = None
            if deadline is not None:

                def progress(_records: int, _items: int) -> None:
                    if time.monotonic() > deadline:
                        raise _Stop

            replayer = Replayer(self.spool, self.inner, self.ids, progress)
            try:
                return self._replay_with(replayer)
            finally:
                self._report_rejected(replayer)

    def _replay_with(self, replayer: Replayer) -> bool:
        while True:
            own = [s for s in self.spool.segments() if s.owner == self.spool.owner]
            with _single_attempt():
                for segment in own:
                    replayer.replay_segment(segment)
                if not replayer.report.records:
                    self._probe()  # nothing was sent: make sure the server answers
            with self._lock:
                if self.spool.unreplayed(self.spool.owner):
                    continue  # written meanwhile
                self.spool.close_segment()
                for segment in self.spool.segments():
                    if segment.owner == self.spool.owner:
                        self.spool.delete(segment)
                replayer.delete_blobs()
                if self._spooling:
                    self._say_drained()  # before the switch: whoever sees it, saw this
                self._spooling = False
            return True

    def _probe(self) -> None:
        """Raise TransientStoreError unless the server answers (any answer will do)."""
        try:
            self.inner.get_experiment("0")
        except TransientStoreError:
            raise
        except Exception:
            pass  # an answer, even an error one: the server is there

    def _say_drained(self) -> None:
        mapped = len(self.ids.items())
        extra = f"; {mapped} run id(s) mapped to the server's (autolog sync --dry-run lists them)"
        print(
            f"autolog: the spool has drained: {self._episode['records']:,} record(s) replayed to "
            f"{self._display()} in {time.monotonic() - self._episode['started']:.1f} s"
            f"{extra if mapped else ''}",
            file=sys.stderr,
        )

    def _report_rejected(self, replayer: Replayer) -> None:
        rejected = replayer.report.rejected
        if rejected:
            warnings.warn(
                f"autolog: the server refused {rejected} spooled record(s) for good; they are "
                f"kept with their errors in {self.spool.path / 'rejected.jsonl'}",
                AutologWarning,
                stacklevel=2,
            )

    def _at_exit(self) -> None:
        """Interpreter exit, once the runs have ended and the writer drained into us
        (:mod:`autolog.tracking.at_exit` runs the stores after the runs): try a
        last replay, and say in one line what stays in the spool."""
        if not self._spooling:
            return
        self._closed = True
        self._wake.set()
        try:
            timeout = float(os.environ.get("AUTOLOG_SPOOL_EXIT_TIMEOUT") or 10)
        except ValueError:  # at exit nobody could catch a typed error: the default
            timeout = 10.0
        try:
            if self.replay_own(deadline=time.monotonic() + timeout):
                return
        except (_Stop, TransientStoreError):
            pass
        except Exception as error:
            print(f"autolog: spool replay at exit failed: {error!r}", file=sys.stderr)
        records = self.spool.last_seq
        print(
            f"autolog: the tracking server {self._display()} is still unreachable; the data "
            f"waits in the spool {self.spool.path} ({self.spool.total_bytes(fresh=True):,} bytes,"
            f" {records:,} record(s) of this process): run `autolog sync` to deliver it",
            file=sys.stderr,
        )

    # -- experiments (remembered for offline use) ----------------------------------------
    def _remember(self, experiment: Experiment | None) -> Experiment | None:
        if experiment is not None:
            entry = {
                "experiment_id": experiment.experiment_id,
                "name": experiment.name,
                "artifact_location": experiment.artifact_location,
                "lifecycle_stage": experiment.lifecycle_stage,
            }
            if self._experiments.get(experiment.experiment_id) != entry:
                self._experiments[experiment.experiment_id] = entry
                try:
                    self.spool.append_line(_EXPERIMENTS, entry)
                except OSError:
                    pass
        return experiment

    def _read_experiment(self, read: Callable[[], Any], cached: Callable[[], Any]) -> Any:
        if not self._spooling:
            try:
                with _single_attempt():
                    return self._remember(read())
            except TransientStoreError as error:
                self._begin(error)
        found = cached()
        if found is None:  # never seen here: only the server knows, and it is away
            with _single_attempt():
                return self._remember(read())
        return Experiment(**found)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._read_experiment(
            lambda: self.inner.get_experiment(experiment_id),
            lambda: self._experiments.get(str(experiment_id)),
        )

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self._read_experiment(
            lambda: self.inner.get_experiment_by_name(name),
            lambda: next((e for e in self._experiments.values() if e["name"] == name), None),
        )

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        return self.inner.create_experiment(name, artifact_location, tags)

    def search_experiments(self, *args: Any, **kwargs: Any) -> list[Experiment]:
        return self.inner.search_experiments(*args, **kwargs)

    def delete_experiment(self, experiment_id: str) -> None:
        self.inner.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self.inner.restore_experiment(experiment_id)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.inner.rename_experiment(experiment_id, new_name)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._write(
            set_experiment_tag_record(experiment_id, key, value),
            lambda: self.inner.set_experiment_tag(experiment_id, key, value),
            lambda: None,
        )

    # -- runs -------------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: Sequence[RunTag] = (),
        run_name: str = "",
        run_id: str | None = None,
    ) -> Run:
        client_id, tag_map, name = new_run_identity(run_id, tags, run_name)
        record = create_run_record(experiment_id, user_id, start_time, tags, run_name, client_id)

        def online() -> Run:
            if run_id is None or getattr(self.inner, "assigns_run_ids", False):
                if run_id is None:
                    return self.inner.create_run(experiment_id, user_id, start_time, tags, run_name)
                Replayer(self.spool, self.inner, self.ids).create_run(record)  # then mapped
                return self.inner.get_run(self.ids.get(client_id))
            return self.inner.create_run(
                experiment_id, user_id, start_time, tags, run_name, run_id=run_id
            )

        def offline() -> Run:
            found = self._experiments.get(str(experiment_id))
            location = found["artifact_location"] if found else ""
            info = new_run_info(client_id, experiment_id, name, user_id, start_time, location)
            return Run(info, RunData(tags=tag_map))

        return self._write(record, online, offline)

    def get_run(self, run_id: str) -> Run:
        return self.inner.get_run(self.ids.get(run_id))

    def update_run_info(
        self,
        run_id: str,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        def online() -> RunInfo:
            return self.inner.update_run_info(self.ids.get(run_id), status, end_time, run_name)

        def offline() -> RunInfo:
            return RunInfo(run_id, "", run_name or "", "", status or "", 0, end_time, "")

        return self._write(update_run_record(run_id, status, end_time, run_name), online, offline)

    def delete_run(self, run_id: str) -> None:
        self._write(
            run_record("delete_run", run_id),
            lambda: self.inner.delete_run(self.ids.get(run_id)),
            _none,
        )

    def restore_run(self, run_id: str) -> None:
        self._write(
            run_record("restore_run", run_id),
            lambda: self.inner.restore_run(self.ids.get(run_id)),
            _none,
        )

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        # records of at most _RECORD_METRICS points: a big batch then fits a
        # nearly full spool piece by piece (all pieces of one call, or none)
        records = [log_batch_record(run_id, metrics[:_RECORD_METRICS], params, tags)]
        for start in range(_RECORD_METRICS, len(metrics), _RECORD_METRICS):
            records.append(log_batch_record(run_id, metrics[start : start + _RECORD_METRICS]))
        self._write(
            records,
            lambda: self.inner.log_batch(self.ids.get(run_id), metrics, params, tags),
            _none,
        )

    def delete_tag(self, run_id: str, key: str) -> None:
        self._write(
            delete_tag_record(run_id, key),
            lambda: self.inner.delete_tag(self.ids.get(run_id), key),
            _none,
        )

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.inner.get_metric_history(self.ids.get(run_id), key)

    def search_runs(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.search_runs(*args, **kwargs)

    def close(self) -> None:
        """Stop the replay thread; what is still spooled stays for ``autolog sync``."""
        self._closed = True
        self._wake.set()
        if self._exit_registered:
            cancel_at_exit(self._at_exit)
            self._exit_registered = False
        self.inner.close()


def _none() -> None:
    return None
