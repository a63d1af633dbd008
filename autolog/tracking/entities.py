"""The tracking data model: what a user reads back from a store.

Plain value classes, no dataclasses (their building is import time): the hot
path's (:class:`Metric`, one per ``log_metric``; params and tags, immutable)
with ``__slots__``; the records a store returns with a ``__dict__``.
Names follow the vocabulary of the tracking tools ML engineers already know.
"""

from __future__ import annotations

# dataclasses and typing are not imported here: the first logged run of a
# process imports this module (see _Record); type checkers honour this.
from operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Experiment",
    "ExperimentTag",
    "FileInfo",
    "LifecycleStage",
    "Metric",
    "PagedList",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
    "ViewType",
]


class RunStatus:
    """Run states, as strings (what stores persist and filters compare)."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    ALL = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)
    TERMINATED = (FINISHED, FAILED, KILLED)

    @staticmethod
    def ended_by(exc: BaseException | None) -> str:
        """The status of a run that ``exc`` ended: FINISHED without one, KILLED for
        Ctrl-C (a KeyboardInterrupt, or the SystemExit that frameworks such as
        Lightning raise while handling one), FAILED for any other exception."""
        if exc is None:
            return RunStatus.FINISHED
        if isinstance(exc, KeyboardInterrupt) or (
            isinstance(exc, SystemExit) and isinstance(exc.__context__, KeyboardInterrupt)
        ):
            return RunStatus.KILLED
        return RunStatus.FAILED


class LifecycleStage:
    ACTIVE = "active"
    DELETED = "deleted"


class ViewType:
    """Which lifecycle stages a search returns."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    @staticmethod
    def stages(view_type: int) -> tuple[str, ...]:
        if view_type == ViewType.ACTIVE_ONLY:
            return (LifecycleStage.ACTIVE,)
        if view_type == ViewType.DELETED_ONLY:
            return (LifecycleStage.DELETED,)
        return (LifecycleStage.ACTIVE, LifecycleStage.DELETED)


class Metric:
    """One metric point: ``value`` (float, NaN and inf kept) at ``step``, ``timestamp`` in ms."""

    __slots__ = ("key", "step", "timestamp", "value")

    def __init__(self, key: str, value: float, timestamp: int, step: int = 0):
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.step = step

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metric):
            return NotImplemented
        same_value = self.value == other.value or (
            self.value != self.value and other.value != other.value  # both NaN
        )
        return (
            self.key == other.key
            and same_value
            and self.timestamp == other.timestamp
            and self.step == other.step
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Metric(key={self.key!r}, value={self.value!r}, "
            f"timestamp={self.timestamp!r}, step={self.step!r})"
        )


class _KeyValue:
    """An immutable ``(key, value)`` pair of strings: a param or a tag.

    A slotted class, not a frozen dataclass: the training thread makes one per
    param and tag it logs, and a frozen dataclass's ``__init__`` costs twice
    as much (it sets each field through ``object.__setattr__``). What the
    dataclass gave is kept: keyword construction, equality and hash by class
    and fields, a repr, assignment refused, pickling and copying."""

    __slots__ = ("key", "value")
    key: str
    value: str

    def __init__(self, key: str, value: str) -> None:
        _set_key(self, key)  # the slots' own setters: __setattr__ refuses
        _set_value(self, value)

    __match_args__ = ("key", "value")

    def __setattr__(self, name: str, value: Any) -> None:
        _refuse(f"cannot assign to field {name!r}")  # as a frozen dataclass

    def __delattr__(self, name: str) -> None:
        _refuse(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.key == other.key and self.value == other.value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.key, self.value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, value={self.value!r})"

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickle, copy: no setattr
        return (type(self), (self.key, self.value))


_set_key = _KeyValue.key.__set__  # type: ignore[attr-defined]
_set_value = _KeyValue.value.__set__  # type: ignore[attr-defined]


class Param(_KeyValue):
    """A run input; the value is always a string."""

    __slots__ = ()


class RunTag(_KeyValue):
    """A mutable string label on a run."""

    __slots__ = ()


class ExperimentTag(_KeyValue):
    """A string label on an experiment."""

    __slots__ = ()


class _Record:
    """What the dataclasses these classes were gave, without building them at
    import (the dataclass decorator costs milliseconds a class, paid by the
    first logged run of a process): equality by class and fields, a repr that
    names them, ``__match_args__``. Instances keep a ``__dict__``, so ``vars()``
    reads the fields back in order (the stores write it) and copy and pickle
    work as for any plain object."""

    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls) -> None:
        cls.__match_args__ = cls._fields
        cls._values = attrgetter(*cls._fields)  # a tuple of them: two fields or more

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values(self) == self._values(other)  # tuples, as a dataclass compares

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__qualname__}({shown})"


class RunInfo(_Record):
    _fields = (
        "run_id",
        "experiment_id",
        "run_name",
        "user_id",
        "status",
        "start_time",
        "end_time",
        "artifact_uri",
        "lifecycle_stage",
    )

    def __init__(
        self,
        run_id: str,
        experiment_id: str,
        run_name: str,
        user_id: str,
        status: str,
        start_time: int,
        end_time: int | None,
        artifact_uri: str,
        lifecycle_stage: str = LifecycleStage.ACTIVE,
    ) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.run_name = run_name
        self.user_id = user_id
        self.status = status
        self.start_time = start_time
        self.end_time = end_time
        self.artifact_uri = artifact_uri
        self.lifecycle_stage = lifecycle_stage

    @property
    def run_uuid(self) -> str:  # the older name some users still type
        return self.run_id


class RunData(_Record):
    """``metrics``: the latest value per key (highest step, then latest timestamp)."""

    _fields = ("params", "metrics", "tags")

    def __init__(
        self,
        params: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.params = {} if params is None else params  # a fresh dict each, as a
        self.metrics = {} if metrics is None else metrics  # default_factory gave
        self.tags = {} if tags is None else tags


class Run(_Record):
    _fields = ("info", "data")

    def __init__(self, info: RunInfo, data: RunData | None = None) -> None:
        self.info = info
        self.data = RunData() if data is None else data


class Experiment(_Record):
    _fields = (
        "experiment_id",
        "name",
        "artifact_location",
        "lifecycle_stage",
        "tags",
        "creation_time",
        "last_update_time",
    )

    def __init__(
        self,
        experiment_id: str,
        name: str,
        artifact_location: str,
        lifecycle_stage: str = LifecycleStage.ACTIVE,
        tags: dict[str, str] | None = None,
        creation_time: int | None = None,
        last_update_time: int | None = None,
    ) -> None:
        self.experiment_id = experiment_id
        self.name = name
        self.artifact_location = artifact_location
        self.lifecycle_stage = lifecycle_stage
        self.tags = {} if tags is None else tags
        self.creation_time = creation_time
        self.last_update_time = last_update_time


class FileInfo(_Record):
    """An artifact: ``path`` relative to the run's artifact root, POSIX separators.

    Immutable and hashable, as the frozen dataclass it was."""

    _fields = ("path", "is_dir", "file_size")

    def __init__(self, path: str, is_dir: bool, file_size: int | None) -> None:
        fields = self.__dict__  # __setattr__ refuses
        fields["path"] = path
        fields["is_dir"] = is_dir
        fields["file_size"] = file_size

    def __setattr__(self, name: str, value: Any) -> None:
        _refuse(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        _refuse(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash((self.path, self.is_dir, self.file_size))


def _refuse(message: str) -> None:
    """Raise what a frozen dataclass raises; ``dataclasses`` is imported only then."""
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(message)


class PagedList(list):
    """A page of results; ``token`` fetches the next page (None when this is the last).

    ``PagedList[Run]`` subscripts as ``list`` does (``list.__class_getitem__``)."""

    def __init__(self, items: Any = (), token: str | None = None):
        super().__init__(items)
        self.token = token


def latest_metrics(metrics: Any) -> dict[str, float]:
    """Latest value per key of an iterable of :class:`Metric`: highest step, then newest."""
    best: dict[str, Metric] = {}
    for m in metrics:
        cur = best.get(m.key)
        if cur is None or (m.step, m.timestamp) >= (cur.step, cur.timestamp):
            best[m.key] = m
    return {k: m.value for k, m in best.items()}
