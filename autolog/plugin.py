"""Everything an integration author uses, in one module: ``from autolog import plugin``.

The built-in integrations import only this module and the user API
(``autolog``); so does ``examples/custom_integration/``. The README's "Write
your own integration" is the guide; this is the reference.

**Declaring.** Subclass :class:`Integration`: ``name``, ``modules`` (the
framework's modules: :meth:`Integration.patch` runs when each is imported),
``covers`` (other integrations' frameworks whose classes you also patch while
their own integration is off), ``distribution`` / ``supported_versions``,
``options`` (defaults or :class:`Option`, type-checked at ``autolog()``),
``flavors`` (:class:`Flavor` subclasses). :func:`register` (or the entry-point
group ``autolog.integrations``) validates the class and raises
:class:`IntegrationError` naming the class and the member that is wrong.

**Patching.** ``patch(self, patcher, module)`` calls :meth:`Patcher.wrap` /
:meth:`Patcher.wrap_subclasses` with *handlers*: generator functions (methods
named ``on_*``) that run around the user's outermost call::

    def on_train(self, call: plugin.Call):
        plugin.log_params({"epochs": call.argument("epochs")}, call.run_id)
        result = yield                    # the user's call runs here
        plugin.log_metrics({"final_loss": result.loss}, run_id=call.run_id)

Whatever a handler raises (before its ``yield``, after it, a second ``yield``)
is reported once as a warning and never reaches the user, whose call gets its
own arguments and returns its own result; a run autolog opened is always
closed. Code of yours that the framework calls during training (callback
hooks) goes under :func:`guarded` (or ``with guard(...)``).

**Training data.** ``@datasets_from("X", "y")`` on a handler names the call's
arguments that hold its training data: each is recorded as a dataset of the
run (name, shape, dtypes, digest; :mod:`autolog.provenance.datasets`).

**Logging to a given run.** Handlers and callbacks log to ``call.run_id``, not
to "the active run" (a callback may run on another thread): the functions
below take it as the keyword-only ``run_id`` (:func:`log_metrics`,
:func:`log_metric`, :func:`set_tags`, :func:`log_text`, :func:`log_dict`,
:func:`log_figure`, :func:`log_model`) and the shared helpers take it as an
argument (:func:`log_params`, :func:`log_epoch_metrics`,
:func:`log_early_stopping`). Statistics that cost a pass over the training
data are computed on the writer thread, from a copy taken when the fit
returns: :func:`log_metrics_later`; :func:`log_later` hands a short fit's
params, tags and metrics to the writer in one piece. :class:`child_run`
opens a nested run; :func:`training_run` asks the run-opening policy for a
training that is no patched call (a plain loop).

**Calls inside calls.** Only a thread's outermost patched call logs; a
training that runs *other* trainings, each of which deserves its own run (the
trials of a hyperparameter search), runs them under :class:`outside_session`
with the run they log to active (:func:`start_training_run`). A framework's own
calls of its patched functions (statsmodels fits OLS inside ``adfuller``) are
not the user's: ``Patcher.wrap(..., enabled=called_from_outside("statsmodels"))``
leaves them alone.

**Distributed training.** Only the main process (rank 0) of a distributed
training logs: the run-opening policy gives the other processes no run (a
patched call there runs bare, :func:`training_run` answers ``(None, False)``).
Code that logs without asking for a run (a callback pickled into spawned
workers) checks :func:`is_main_process`; :func:`process_rank` says the rank.

**Plain loops.** :func:`objects_on_stack` gives the instances of a class the
caller's stack holds (locals, globals, their items and attributes): where a
loop's model is, without a scan of the heap.

**Framework callbacks.** A callback class that subclasses a framework's class
is defined on first use and pickles by reference: :class:`FrameworkClasses`.
Callbacks hold only picklable state (the run id).
"""

from __future__ import annotations

from autolog import _runs
from autolog._base import Integration, IntegrationConfig, Option
from autolog._calls import _SESSIONS, Call, Session, active_session
from autolog._lazy_classes import FrameworkClasses
from autolog._report import guard, guarded, report_error
from autolog._runs import AUTOLOGGING_TAG
from autolog._stack import objects_on_stack
from autolog.errors import IntegrationError, InvalidParameterError, ModelError
from autolog.flavors import (
    Flavor,
    ModelSnapshot,
    distribution_version,
    load_pickle,
    pickle_snapshot,
    saved_bytes,
)
from autolog.patching import Patcher
from autolog.provenance.datasets import caller_variable_name as variable_name
from autolog.provenance.datasets import datasets_from
from autolog.training import (
    MAX_PARAM_LENGTH,
    SUMMARY_FILE,
    TRUNCATED_PARAMS_TAG,
    PerThread,
    add_overhead,
    class_path,
    copy_callbacks,
    flatten,
    float32_text,
    learning_rate_metrics,
    log_early_stopping,
    log_epoch_metrics,
    log_later,
    log_metrics_later,
    log_model_summary,
    log_overhead,
    numeric,
    optimizer_params,
    optimizer_prefix,
    param_value,
    param_values,
    settings_params,
)
from autolog.training import log_training_params as log_params

# typing costs several ms at import (integrations import this module at
# autolog()); type checkers honour this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = [
    "AUTOLOGGING_TAG",
    "MAX_PARAM_LENGTH",
    "SUMMARY_FILE",
    "Call",
    "Flavor",
    "FrameworkClasses",
    "Integration",
    "IntegrationConfig",
    "IntegrationError",
    "InvalidParameterError",
    "ModelError",
    "ModelSnapshot",
    "Option",
    "Patcher",
    "PerThread",
    "Session",
    "active_run_id",
    "active_session",
    "active_sessions",
    "add_overhead",
    "called_from_outside",
    "child_run",
    "class_path",
    "copy_callbacks",
    "datasets_from",
    "distribution_version",
    "drain_before_exit_of",
    "end_training_run",
    "flatten",
    "float32_text",
    "guard",
    "guarded",
    "is_main_process",
    "learning_rate_metrics",
    "load_pickle",
    "log_bytes",
    "log_dict",
    "log_early_stopping",
    "log_epoch_metrics",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_later",
    "log_metrics_later",
    "log_model",
    "log_model_summary",
    "log_overhead",
    "log_params",
    "log_text",
    "numeric",
    "objects_on_stack",
    "on_run_end",
    "optimizer_params",
    "optimizer_prefix",
    "outside_session",
    "inside_session",
    "param_value",
    "pickle_snapshot",
    "process_rank",
    "register",
    "report_error",
    "run_tags",
    "saved_bytes",
    "set_tag",
    "set_tags",
    "settings_params",
    "start_training_run",
    "training_run",
    "variable_name",
]


#: This thread's session stack, outermost first (a tuple of :class:`Session`,
#: empty outside any patched call): what :func:`active_session` reads, without
#: its Python call, for hooks that run at every training step.
active_sessions = _SESSIONS.get


def register(cls: type[Integration]) -> type[Integration]:
    """Register an integration class at run time (see :func:`autolog.register`)."""
    from autolog.integration import register as _register

    return _register(cls)


# -- logging to a given run ---------------------------------------------------------
#
# The user API's functions log to this thread's active run; these log to the
# run a handler or callback was given. ``run_id`` is keyword-only and required.


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, *, run_id: str | None
) -> None:
    """Log several metrics at one step to ``run_id`` (one enqueue)."""
    _runs.fluent().log_metrics(metrics, step=step, run_id=run_id)


def log_metric(key: str, value: float, step: int | None = None, *, run_id: str | None) -> None:
    """Log one metric point to ``run_id``."""
    _runs.fluent().log_metric(key, value, step=step, run_id=run_id)


def set_tags(tags: Mapping[str, Any], *, run_id: str | None) -> None:
    """Set tags on ``run_id``."""
    _runs.fluent().set_tags(tags, run_id=run_id)


def set_tag(key: str, value: Any, *, run_id: str | None) -> None:
    """Set one tag on ``run_id``."""
    _runs.fluent().set_tag(key, value, run_id=run_id)


def log_text(text: str, artifact_file: str, *, run_id: str | None) -> None:
    """Write ``text`` as the artifact file ``artifact_file`` of ``run_id``."""
    _runs.fluent().log_text(text, artifact_file, run_id=run_id)


def log_bytes(data: bytes | Callable[[], bytes], artifact_file: str, *, run_id: str | None) -> None:
    """Write ``data`` as the artifact file ``artifact_file`` of ``run_id``: bytes,
    or a function of no arguments returning them, called on the writer thread
    (rendering, encoding, a summary of a copy taken now: off the training
    thread). The function must only use what it was given, never a live
    model that training goes on changing; what it raises fails the write."""
    _runs.fluent().log_bytes(data, artifact_file, run_id=run_id)


def drain_before_exit_of(library: str) -> None:
    """At interpreter exit, write what is queued before the exit handlers that
    ``library`` (already imported) registered run: ``atexit`` calls the last
    registered first, and autolog's own exit drain was registered before any
    framework. For deferred writes (:func:`log_bytes` with a function) that need
    a library whose exit handler tears it down: h5py unregisters its type
    conversions at exit, after which a deferred Keras archive cannot be made.
    Once per library per process; what cannot be written is reported by the
    exit drain, as always."""
    if library in _drains_before_exit:
        return
    _drains_before_exit.add(library)
    import atexit

    atexit.register(_drain_at_exit)


_drains_before_exit: set[str] = set()


def _drain_at_exit() -> None:
    from autolog.tracking.writer import started_writer

    writer = started_writer()
    if writer is not None:
        writer.flush(raise_errors=False)


def log_dict(dictionary: Mapping[str, Any], artifact_file: str, *, run_id: str | None) -> None:
    """Write a JSON (or YAML, by the file's suffix) artifact to ``run_id``."""
    _runs.fluent().log_dict(dictionary, artifact_file, run_id=run_id)


def log_figure(figure: Any, artifact_file: str, *, run_id: str | None) -> None:
    """Save a matplotlib / plotly figure as an artifact of ``run_id``."""
    _runs.fluent().log_figure(figure, artifact_file, run_id=run_id)


def log_model(model: Any, name: str = "model", *, run_id: str | None, **options: Any) -> Any:
    """:func:`autolog.log_model` into ``run_id``; returns its ``ModelInfo``."""
    from autolog.models import log_model as _log_model

    return _log_model(model, name, run_id=run_id, **options)


def on_run_end(run_id: str, hook: Callable[[str, str], None]) -> None:
    """Call ``hook(run_id, status)`` just before ``run_id`` ends (it can still log
    to it); for a training that outlives any one patched call (a plain loop).
    The hook must keep its errors to itself (:func:`guarded`)."""
    _runs.fluent().on_run_end(run_id, hook)


# -- runs -----------------------------------------------------------------------------


def training_run(integration: Integration, model: Any = None) -> tuple[str | None, bool]:
    """The run for a training of ``integration`` that no patched call brackets
    (a plain PyTorch loop): the same policy as around a patched call
    (``exclusive``, ``extra_tags``, ``mlflow.autologging``; a second training
    in the user's run goes to a nested child run). Returns ``(run_id,
    created)``; ``(None, False)``: log nothing. A created run is this thread's
    active run: close it with :func:`end_training_run`."""
    return _runs.training_run(integration.name, integration.config, model)


def start_training_run(
    integration: Integration,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Open a run of ``integration`` now, whatever the user's runs: tagged like
    every run autolog opens, nested under ``parent_run_id`` when given (the
    next training of a loop that ran in the user's run). ``tags`` are set at
    its creation (strings, or converted as :func:`set_tags` does), with the
    run's creation rather than as a write of their own: what a run is known by
    (an Optuna trial's number). It is this thread's active run; end it with
    :func:`end_training_run`."""
    return _runs.child_run(integration.name, integration.config, parent_run_id, run_name, tags)


def process_rank() -> int:
    """This process's global rank in a distributed training; 0 outside one
    (read from ``torch.distributed`` or the launchers' environment, never by
    importing a framework; see :func:`autolog._runs.process_rank`)."""
    return _runs.process_rank()


def is_main_process() -> bool:
    """Whether this process logs: it is rank 0 of its distributed training, or
    in none. No collective call: it never waits on another process."""
    return _runs.process_rank() == 0


def run_tags(integration: Integration) -> dict[str, str]:
    """The tags every run of ``integration`` gets (``mlflow.autologging`` and the
    ``extra_tags`` of ``autolog()``), for a run it must open itself with
    :func:`autolog.start_run` (one found again by a tag of its own: an Optuna
    study's run, shared by several processes)."""
    return _runs.run_tags(integration.name, integration.config)


def active_run_id() -> str | None:
    """The id of this thread's active run (the user's or ours), or None."""
    return _runs.fluent().active_run_id()


def end_training_run(
    status: str = "FINISHED",
    run_id: str | None = None,
    end_time: int | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> None:
    """End ``run_id`` (default: this thread's innermost run), a run that
    :func:`training_run` or :func:`start_training_run` created, without
    waiting for the writer. ``end_time`` (ms since the epoch, default now):
    when the training ended, for a run closed later (an Optuna trial's, once
    Optuna has told the trial's state).

    ``params``, ``metrics`` (at step 0) and ``tags``: the run's last values
    (a trial's params, value and state), logged as :func:`log_params`,
    :func:`log_metrics` and :func:`set_tags` log them (long param values cut,
    a param the run holds with another value kept) and queued with the run's
    end in one go. Whatever they raise (an invalid value), the run ends, then
    the error propagates."""
    if not (params or metrics or tags):
        _runs.end_run(status, run_id, end_time)
        return
    values, cut = param_values(params) if params else ({}, [])
    if cut:
        tags = {**(tags or {}), TRUNCATED_PARAMS_TAG: ",".join(sorted(cut))}
    fl = _runs.fluent()
    if run_id is None:
        run_id = fl.active_run_id()
    try:
        fl.end_run(
            status,
            flush=False,
            run_id=run_id,
            end_time=end_time,
            params=values,
            metrics=metrics,
            tags=tags,
        )
        return
    except Exception:
        if run_id not in fl.active_runs:  # it ended (a write of it failed earlier)
            raise
    # nothing of it was queued and the run is still active: one call at a time
    try:
        if params:
            log_params(params, run_id)  # a changed param is skipped here
        if metrics:
            log_metrics(metrics, run_id=run_id)
        if tags:
            set_tags(tags, run_id=run_id)
    finally:
        _runs.end_run(status, run_id, end_time)


class child_run:
    """A nested run under ``parent_run_id`` (default ``call.run_id``), tagged like
    every run autolog opens; ``with child_run(call) as run_id: ...`` ends it
    (FAILED if the block raised) without waiting for the writer."""

    __slots__ = ("integration", "parent_run_id", "run_name")

    def __init__(self, call: Call, parent_run_id: str | None = None, run_name: str | None = None):
        self.integration = call.integration
        self.parent_run_id = parent_run_id or call.run_id
        self.run_name = run_name

    def __enter__(self) -> str:
        integration = self.integration
        return _runs.child_run(
            integration.name, integration.config, self.parent_run_id, self.run_name
        )

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        _runs.end_run("FINISHED" if exc is None else "FAILED")
        return False


class outside_session:
    """A block whose patched calls are outermost calls of their own, although it
    runs inside one of ours: each logs (into this thread's active run, by the
    usual policy) instead of passing through as a nested call. For a training
    made of trainings: an Optuna trial's objective fits a model, and that fit
    belongs to the trial's run::

        with plugin.outside_session():
            return objective(trial)     # a model.fit() in there logs
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _SESSIONS.set(())

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        _SESSIONS.reset(self._token)
        return False


class inside_session:
    """A block that counts as an outermost patched call of ``integration`` in
    progress (``active_session()`` answers it), for a training that runs where
    no patched call brackets it: the worker processes a framework spawns
    (Lightning's ``ddp_spawn``) run ``fit``'s training loop without ``fit``.
    Other integrations then stay quiet there, as they do inside the call
    (the plain-loop ``torch`` integration does not take the loop for one of
    its own). ``__enter__`` and ``__exit__`` may run in two callback hooks of
    one thread (``setup`` / ``teardown``)."""

    __slots__ = ("_token", "session")

    def __init__(self, integration: str, run_id: str | None = None):
        self.session = Session(integration, run_id)
        self._token: Any = None

    def __enter__(self) -> Session:
        self._token = _SESSIONS.set((*_SESSIONS.get(), self.session))
        return self.session

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> bool:
        if self._token is not None:
            _SESSIONS.reset(self._token)
            self._token = None
        return False


_WRAPPER_MODULES = ("wrapt", "autolog.plugin")


def called_from_outside(*packages: str) -> Callable[[], bool]:
    """A switch for ``Patcher.wrap(..., enabled=...)``: on only when the patched
    function is called from code outside ``packages`` (the user's code), off when
    the framework calls it itself (statsmodels fits an OLS inside ``adfuller``;
    those fits are its business, not trainings of the user's). Costs a frame
    walk of two or three frames per call."""
    import sys

    prefixes = tuple(f"{name}." for name in packages)

    def enabled() -> bool:
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith(
            _WRAPPER_MODULES
        ):
            frame = frame.f_back  # pure-Python wrapt's own frames
        caller = frame.f_globals.get("__name__", "") if frame is not None else ""
        return caller not in packages and not caller.startswith(prefixes)

    return enabled


def __getattr__(name: str) -> object:
    # the signature module imports dataclasses and typing: only when used
    if name in ("infer_signature", "Signature"):
        from autolog import signature

        return getattr(signature, name)
    raise AttributeError(f"module 'autolog.plugin' has no attribute {name!r}")
