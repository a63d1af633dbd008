"""Active runs: what the process keeps of the runs it logs to (fluent API and ``Client``).

Internal to :mod:`autolog.tracking`. A run's :class:`RunState` holds its info,
its store and the params logged so far, so that logging needs no read of the
store and a param overwrite raises at the call that made it. This module keeps:

- each thread's active-run stack (:func:`run_stack`, innermost last) and every
  active run of the process by id (``active_runs``);
- the runs logged to by id without being active (``detached_runs``, bounded);
- how a run becomes this thread's active one (:func:`start`, ``start_run``'s
  core) and which run a ``log_*`` call goes to (:func:`target`: the given
  one, else the active one, else a new one);
- how a state is made: a new run (:func:`new_run`, its creation queued), a
  resumed one (:func:`resume`), one read from the store (:func:`attach`);
- how a run ends (:func:`finish`, which first calls the :func:`on_run_end`
  hooks), and, at interpreter exit, the active runs this process started.

Writes are queued on the background writer (:mod:`autolog.tracking.writer`).
"""

from __future__ import annotations

import os
import random
import sys
import threading
from collections.abc import Callable, Iterable
from time import time_ns
from typing import Any

from autolog.errors import InvalidParameterError, RunStateError
from autolog.tracking import context
from autolog.tracking.at_exit import at_exit
from autolog.tracking.entities import LifecycleStage, RunInfo, RunStatus, RunTag
from autolog.tracking.fluent_experiments import active_experiment_id, artifact_location
from autolog.tracking.secrets import MASK, check_secret_unchanged
from autolog.tracking.stores.base import AbstractStore, new_run_info
from autolog.tracking.tracking_uri import current_store
from autolog.tracking.validation import (
    check_key,
    check_param_unchanged,
    checked_keys,
    validate_param_value,
    validate_run_id,
    validate_tag_value,
    validated_tags,
)
from autolog.tracking.writer import CALL, Call, get_writer, reset_writer, started_writer

__all__ = [
    "RunState",
    "active_run_id",
    "active_runs",
    "artifact_repository",
    "attach",
    "check_status",
    "check_writable",
    "detached_runs",
    "enqueue",
    "finish",
    "flush_started",
    "keep_detached",
    "last_run_id",
    "mark_deleted",
    "new_params",
    "new_run",
    "new_run_id",
    "now_ms",
    "on_run_end",
    "queue_run_info",
    "resume",
    "run_stack",
    "start",
    "start_child",
    "state_in",
    "target",
]

_local = threading.local()  # .stack: this thread's active runs, innermost last
active_runs: dict[str, RunState] = {}  # every active run of the process, by id
detached_runs: dict[str, RunState] = {}  # runs logged to by id without being active
_last_run_id: str | None = None  # the run that ended last in this process
_end_hooks: dict[str, list[Any]] = {}  # run id -> callables run just before it ends


class RunState:
    """What the process knows of a run it logs to, without asking the store.

    A new run's :class:`RunInfo` is made when first read (``info``), from
    ``new_info`` (``(experiment_id, run_name, user_id, start_time,
    artifact_location)``): many runs (an Optuna trial's, a fit's) end without
    anyone reading it."""

    __slots__ = (
        *("created", "deleted", "_ended", "_info", "_new_info", "params", "pid"),
        *("repository", "run_id", "secret_params", "store"),
    )

    def __init__(
        self,
        store: AbstractStore,
        info: RunInfo | None,
        params: dict[str, str],
        created: bool,
        run_id: str | None = None,
        new_info: tuple[str, str, str, int, str] | None = None,
    ):
        self.store = store
        self._info = info
        self._new_info = new_info
        self._ended: tuple[str, int] | None = None  # (status, end time) before info was made
        self.run_id = info.run_id if info is not None else run_id
        self.params = params  # logged so far: immutability is checked against these
        self.created = created  # True once the store is known to hold the run
        self.repository: Any = None
        self.pid = os.getpid()  # the process that started (and so must end) the run
        self.deleted = False  # deleted through this process: writing to it is an error
        # key -> fingerprint of a secret param's value (stored as "***"), so that
        # logging it again with another value still raises (never kept in clear)
        self.secret_params: dict[str, str] | None = None

    @property
    def info(self) -> RunInfo:
        info = self._info
        if info is None:
            info = self._info = new_run_info(self.run_id, *self._new_info)  # type: ignore[misc]
            if self._ended is not None:
                info.status, info.end_time = self._ended
        return info

    @info.setter
    def info(self, info: RunInfo) -> None:
        self._info = info


def on_run_end(run_id: str, hook: Any) -> None:
    """Call ``hook(run_id, status)`` when the run ends (internal: integrations
    whose run outlives any one call, such as plain PyTorch loops, finish their
    logging there). The hook runs before the run is closed, so it can still log
    to it; it must keep its own errors to itself (``autolog.patching.guard``)."""
    _end_hooks.setdefault(run_id, []).append(hook)


def run_stack() -> list[RunState]:
    """This thread's active runs, innermost last (the list itself)."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def active_run_id() -> str | None:
    """The id of this thread's innermost active run, or None (no object built:
    the patch manager asks on every call)."""
    stack = getattr(_local, "stack", None)
    return stack[-1].run_id if stack else None


def last_run_id() -> str | None:
    """The run that ended last in this process, or None."""
    return _last_run_id


def now_ms() -> int:
    return time_ns() // 1_000_000


def flush_started() -> None:
    """Drain the writer if one was started (no thread is started to find nothing
    queued), before a read or a synchronous call: it retries and raises nothing,
    so that another run's failed write never fails a read (``flush()`` raises it)."""
    writer = started_writer()
    if writer is not None:
        writer.flush(raise_errors=False)


def check_writable(state: RunState) -> None:
    """RunStateError when this process deleted the run (the stores refuse it too)."""
    if state.deleted:
        raise RunStateError(
            f"run {state.run_id} is deleted; restore it (Client().restore_run) before writing to it"
        )


def mark_deleted(run_id: str, deleted: bool) -> None:
    """Remember that ``run_id`` was deleted (or restored) through this process."""
    for states in (active_runs, detached_runs):
        state = states.get(run_id)
        if state is not None:
            state.deleted = deleted


def check_status(status: str) -> str:
    if status not in RunStatus.ALL:
        raise InvalidParameterError(f"run status {status!r} is not one of {RunStatus.ALL}")
    return status


# -- which run: the one started, the one logged to -----------------------------------


def start(
    run_id: str | None = None,
    experiment_id: Any = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: Any = None,
    description: str | None = None,
    parent_run_id: str | None = None,
) -> RunState:
    """``start_run``'s core: a new run (or ``run_id`` resumed) made this thread's
    innermost active run. A run already active without ``nested`` is a
    RunStateError; a nested one gets the parent's id as ``mlflow.parentRunId``."""
    stack = run_stack()
    if stack and not nested:
        raise RunStateError(
            f"run {stack[-1].run_id} is already active; to start a run inside it pass "
            "nested=True, otherwise call autolog.end_run() first"
        )
    extra_tags = validated_tags(tags or {})
    if description is not None:
        extra_tags[context.NOTE] = validate_tag_value(context.NOTE, description)
    parent = parent_run_id or (stack[-1].run_id if stack else None)
    if parent is not None:
        extra_tags[context.PARENT_RUN_ID] = parent
    if run_id is not None:
        state = resume(validate_run_id(run_id), run_name, extra_tags)
    else:
        store = current_store()
        exp_id = str(experiment_id) if experiment_id is not None else active_experiment_id(store)
        state = new_run(store, exp_id, run_name, extra_tags)[0]
    stack.append(state)
    active_runs[state.run_id] = state
    return state


def start_child(parent_run_id: str | None, run_name: str | None, tags: Any) -> RunState:
    """A new run of autolog's (a training's, an Optuna trial's) made this
    thread's innermost active run, nested under ``parent_run_id``, else under
    this thread's innermost run if there is one. A parent that is active in
    this process gives the child its store and experiment (where the child's
    ``mlflow.parentRunId`` names a run), without resolving either again: a
    search opens one of these per trial. Otherwise as :func:`start` (nested)."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = run_stack()
    parent = parent_run_id or (stack[-1].run_id if stack else None)
    extra_tags = validated_tags(tags) if tags else {}
    of_parent = active_runs.get(parent) if parent is not None else None
    if of_parent is not None:
        store, info = of_parent.store, of_parent._info  # not made yet: its new_info has it
        exp_id = info.experiment_id if info is not None else of_parent._new_info[0]  # type: ignore[index]
    else:
        store = current_store()
        exp_id = active_experiment_id(store)
    if parent is not None:
        extra_tags[context.PARENT_RUN_ID] = parent
    state = new_run(store, exp_id, run_name, extra_tags)[0]
    stack.append(state)
    active_runs[state.run_id] = state
    return state


def target(run_id: str | None) -> RunState:
    """The run a ``log_*`` call goes to: ``run_id``'s (read once from the store
    when this process does not know it), else this thread's active run, else a
    new one, started as ``start_run()`` would."""
    if run_id is None:
        stack = getattr(_local, "stack", None)  # run_stack() without the call: every log_*
        if stack:
            return stack[-1]
        return start()
    state = active_runs.get(run_id) or detached_runs.get(run_id)
    return state if state is not None else attach(run_id)


def artifact_repository(state: RunState) -> Any:
    """The artifact repository of the run (made once, kept on its state)."""
    if state.repository is None:
        from autolog.tracking.artifacts import repository_for

        state.repository = repository_for(state.info.artifact_uri, state.store.uri)
    return state.repository


# -- making a run's state ------------------------------------------------------------

# Run ids are random 128-bit numbers drawn from our own generator, seeded from
# os.urandom (and again in a forked child): uuid4() asks the kernel each time,
# and that call lets go of the GIL, so the training thread starting a run
# waited for the writer thread to hand it back (0.5 ms a run when it is busy).
# Not the `random` module's own generator: a script that seeds it for
# reproducibility would repeat its run ids.
_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)


# uuid.UUID(int=..., version=4).hex, the bits set by hand: a third of the cost
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version nibble and the RFC 4122 variant
_NOT_VERSION = ~((0xF000 << 64) | (0xC000 << 48))


def new_run_id() -> str:
    """A new run id: 32 hex characters (a random version-4 UUID)."""
    return f"{_ids.getrandbits(128) & _NOT_VERSION | _VERSION_4:032x}"


def new_run(
    store: AbstractStore,
    exp_id: str,
    run_name: str | None,
    extra_tags: dict[str, str],
    start_time: int | None = None,
) -> tuple[RunState, Callable[[], dict[str, str]]]:
    """Make a RUNNING run of ``store`` locally and queue its creation; returns its
    state and a function giving its tags (system tags included). Those are
    made on the writer thread, for the creation, unless asked first: a fit's
    run costs its training thread only the id, the name and a queued call.
    Used by ``start_run`` and ``Client.create_run``."""
    location = artifact_location(store, exp_id)
    run_id = f"{_ids.getrandbits(128) & _NOT_VERSION | _VERSION_4:032x}"  # new_run_id()
    name = run_name or extra_tags.get(context.RUN_NAME)
    name = validate_tag_value(context.RUN_NAME, name) if name else context.generate_run_name()
    made: list[dict[str, str]] = []  # the tags, made once by whoever asks first

    def tags() -> dict[str, str]:
        if not made:
            made.append({**context.system_tags(), **extra_tags, context.RUN_NAME: name})
        return made[0]

    user = context.user()
    if start_time is None:
        start_time = time_ns() // 1_000_000
    if getattr(store, "assigns_run_ids", False):  # a server that picks ids (mlflow server)
        run_tags = [RunTag(k, v) for k, v in tags().items()]
        run = store.create_run(exp_id, user, start_time, tags=run_tags, run_name=name)
        state = RunState(store, run.info, {}, created=True)
        context.run_started(state, extra_tags)  # provenance: background artifacts, sampler
        return state, tags

    def create_run() -> None:
        run_tags = [RunTag(k, v) for k, v in tags().items()]
        store.create_run(exp_id, user, start_time, tags=run_tags, run_name=name, run_id=run_id)

    get_writer().append((CALL, store, run_id, Call(create_run, "create_run")))
    state = RunState(store, None, {}, False, run_id, (exp_id, name, user, start_time, location))
    context.run_started(state, extra_tags)  # provenance: background artifacts, sampler
    return state, tags


def resume(run_id: str, run_name: str | None, extra_tags: dict[str, str]) -> RunState:
    """State of ``run_id`` of the current store, set RUNNING again (``start_run(run_id=...)``)."""
    if run_id in active_runs:
        raise RunStateError(f"run {run_id} is already active")
    store = current_store()
    flush_started()  # the run may still be in our queue
    run = store.get_run(run_id)
    if run.info.lifecycle_stage == LifecycleStage.DELETED:
        raise RunStateError(f"run {run_id} is deleted; restore it before resuming it")
    info = store.update_run_info(run_id, status=RunStatus.RUNNING, run_name=run_name or None)
    info.end_time = None
    if extra_tags:
        store.log_batch(run_id, tags=[RunTag(k, v) for k, v in extra_tags.items()])
    return RunState(store, info, dict(run.data.params), created=True)


def attach(run_id: str, store: AbstractStore | None = None) -> RunState:
    """State for logging to a run that is not active in this process (read once
    from ``store``, default the current one)."""
    store = current_store() if store is None else store
    flush_started()
    run = store.get_run(validate_run_id(run_id))
    state = RunState(store, run.info, dict(run.data.params), created=True)
    state.deleted = run.info.lifecycle_stage == LifecycleStage.DELETED
    return keep_detached(state)


def keep_detached(state: RunState) -> RunState:
    """Remember a run logged to by id (bounded: forgetting one only costs a re-read)."""
    if len(detached_runs) >= 1000:
        detached_runs.clear()
    detached_runs[state.run_id] = state
    return state


def state_in(store: AbstractStore, run_id: str) -> RunState:
    """State for logging to ``run_id`` of ``store``, which may be another store than
    the current one (``Client(tracking_uri=...)``)."""
    state = active_runs.get(run_id) or detached_runs.get(run_id)
    if state is not None and state.store is store:
        return state
    return attach(run_id, store)


# -- logging to it ---------------------------------------------------------------------


def new_params(state: RunState, params: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    """The validated params of ``params`` that the run does not have yet; one the
    run (or ``params`` itself) has with another value raises ParamOverwriteError.
    Records nothing but the fingerprints of masked (secret) values, once all is
    valid: the caller adds the params to ``state.params``."""
    new: dict[str, str] = {}
    secret: dict[str, str] | None = None  # key -> fingerprint of a masked value
    for key, value in params:
        if type(key) is not str or key not in checked_keys:
            check_key(key, "param key")
        text = validate_param_value(key, value)
        if text == MASK:  # masked: immutability is checked on what was given
            secret = secret or {}
            known = (state.secret_params or {}).get(key) or secret.get(key)
            secret[key] = check_secret_unchanged(key, known, value)
        logged = state.params.get(key)
        if logged is None:
            logged = new.get(key)
        if logged is not None:
            check_param_unchanged(key, logged, text)
        else:
            new[key] = text
    if secret:
        state.secret_params = {**(state.secret_params or {}), **secret}
    return new


def enqueue(state: RunState, kind: int, payloads: list, synchronous: bool) -> None:
    """Queue ``payloads`` (metrics, params or tags: ``kind``) for the run's store."""
    if state.deleted:
        check_writable(state)
    writer = get_writer()
    store, run_id = state.store, state.run_id
    if len(payloads) == 1:
        writer.append((kind, store, run_id, payloads[0]))
    elif payloads:
        writer.extend([(kind, store, run_id, payload) for payload in payloads])
    if synchronous:
        writer.flush(run_id)


def queue_run_info(state: RunState, **changes: Any) -> None:
    """Queue ``update_run_info(run_id, **changes)`` on the run's store."""
    check_writable(state)
    store, run_id = state.store, state.run_id

    def update_run_info() -> None:
        store.update_run_info(run_id, **changes)

    get_writer().submit(store, update_run_info, run_id)


# -- ending it -----------------------------------------------------------------------


def finish(
    state: RunState,
    status: str,
    flush: bool,
    end_time: int | None = None,
    items: list[tuple[int, Any, str | None, Any]] | None = None,
) -> None:
    """End an active run with ``status`` (at ``end_time``, ms, default now): its
    hooks run, it leaves the stack, its end is queued; ``flush`` drains the
    writer. Either way what failed of this run's writes is raised
    (TrackingWriteError); another run's is not. ``items``: writer items
    (validated) queued right before the end, with it in one go."""
    global _last_run_id
    if status not in RunStatus.ALL:
        check_status(status)
    run_id = state.run_id
    if _end_hooks:
        for hook in _end_hooks.pop(run_id, ()):
            hook(run_id, status)
    stack = getattr(_local, "stack", None)
    if stack and state in stack:
        stack.remove(state)
    active_runs.pop(run_id, None)
    _last_run_id = run_id
    if end_time is None:
        end_time = time_ns() // 1_000_000
    info = state._info
    if info is None:  # not made yet: made with these if it ever is
        state._ended = (status, end_time)
        info = state._info  # unless another thread (a sampler) made it meanwhile
    if info is not None:
        info.status = status
        info.end_time = end_time
    writer = get_writer()
    if not state.deleted:  # a deleted run keeps what it had (the stores refuse writes)
        store = state.store

        def update_run_info() -> None:
            store.update_run_info(run_id, status=status, end_time=end_time)

        end = (CALL, store, run_id, Call(update_run_info, "update_run_info"))
        if items:
            items.append(end)
            writer.extend(items)
        else:
            writer.append(end)
    if flush:
        writer.flush(run_id)  # raises for this run's writes, not for another's
    else:
        writer.check(run_id)  # its earlier failures, without waiting for a retry


def _exit_error() -> BaseException | None:
    """The uncaught exception that ends the script (Python keeps it as
    ``sys.last_value`` before exit handlers run), or None. An interactive
    session keeps its last error there too, long after it was shown: None."""
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return None
    return getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)


def _rearm_ctrl_c_exit() -> None:
    """Make the process still end by SIGINT (exit status 130) after an uncaught
    KeyboardInterrupt. CPython forgets that it must whenever code compiled from
    a string runs (``exec``/``eval``: namedtuple and dataclass creation), which
    our exit work (saving a model) does; a string raising KeyboardInterrupt
    through ``exec`` sets it again."""
    try:
        exec("raise KeyboardInterrupt")  # a constant string
    except KeyboardInterrupt:
        pass


def _end_runs_at_exit() -> None:
    """Interpreter exit: end the active runs (FINISHED, or FAILED / KILLED when an
    uncaught exception or Ctrl-C ends the script) and drain the queue."""
    error = _exit_error()
    try:
        # A forked child may log into its parent's runs but does not own them.
        pid = os.getpid()
        for state in [s for s in active_runs.values() if s.pid == pid]:
            if state.run_id in active_runs:  # an end hook may have ended it (a child run)
                finish(state, RunStatus.ended_by(error), flush=False)
    except Exception as exc:  # at exit nobody can catch it: say what was lost
        print(f"autolog: could not end the active runs at exit: {exc!r}", file=sys.stderr)
    _report_lost_at_exit()
    if isinstance(error, KeyboardInterrupt):
        _rearm_ctrl_c_exit()


def _report_lost_at_exit() -> None:
    """Write what is queued (retrying held writes once) and print, plainly, what
    could not be written: it is lost when the interpreter ends."""
    writer = started_writer()
    if writer is None:
        return
    try:
        writer.flush(raise_errors=False, retry=True)
    except Exception as error:
        print(f"autolog: tracking data could not be written at exit: {error!r}", file=sys.stderr)
    lines = writer.lost_report()
    if lines:
        print(
            "autolog: at exit, this tracking data could not be written and is lost:\n  "
            + "\n  ".join(lines),
            file=sys.stderr,
        )


at_exit("runs", _end_runs_at_exit)


def reset() -> None:
    """End and forget every run and the writer (tests)."""
    global _last_run_id, _local
    try:
        for state in list(active_runs.values()):
            finish(state, RunStatus.FINISHED, flush=False)
        flush_started()
    except Exception:
        pass  # a test that broke the store on purpose: its leftovers are dropped below
    reset_writer()
    active_runs.clear()
    detached_runs.clear()
    _local = threading.local()
    _last_run_id = None
