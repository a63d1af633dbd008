"""The tracking data model: what a user reads back from a store.

Plain value classes with ``__slots__`` (params and tags immutable): the hot path
(``log_metric``) creates one :class:`Metric` per call, so these stay cheap.
Names follow the vocabulary of the tracking tools ML engineers already know.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any, Generic, TypeVar

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
        raise FrozenInstanceError(f"cannot assign to field {name!r}")  # as a frozen dataclass

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

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


@dataclass
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str = LifecycleStage.ACTIVE

    @property
    def run_uuid(self) -> str:  # the older name some users still type
        return self.run_id


@dataclass
class RunData:
    """``metrics``: the latest value per key (highest step, then latest timestamp)."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    info: RunInfo
    data: RunData = field(default_factory=RunData)


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str = LifecycleStage.ACTIVE
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_update_time: int | None = None


@dataclass(frozen=True)
class FileInfo:
    """An artifact: ``path`` relative to the run's artifact root, POSIX separators."""

    path: str
    is_dir: bool
    file_size: int | None


T = TypeVar("T")


class PagedList(list, Generic[T]):
    """A page of results; ``token`` fetches the next page (None when this is the last)."""

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
