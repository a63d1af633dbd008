"""Safe calls: the session stack, one patched call, and our errors kept from the user.

What runs when a wrapped function is called (the wraps themselves are
:mod:`autolog.patching`'s): only the outermost patched call of a thread or task
logs (:data:`_SESSIONS`, rule 4); it opens a run when the user has none and
closes it afterwards (the policy of which run is :mod:`autolog._runs`'s); the
handler runs around the user's call; and our failures stay ours (rule 1):

- an exception of the user's call propagates unchanged (same object, same
  traceback) and the run we opened ends FAILED (KILLED on KeyboardInterrupt);
- an exception of ours, before or after the call, is reported once per
  integration per process as an :class:`~autolog.errors.AutologWarning`, and
  the call runs with the user's original arguments and returns its own result;
  creating the handler's generator is ours too (a handler that is a plain
  function, or raises before its ``yield``, or yields twice), and a run we
  opened is closed whatever happens;
- ``AUTOLOG_TESTING=1`` re-raises our exceptions so tests see them.

Integrations use these through :mod:`autolog.plugin`.
"""

from __future__ import annotations

import contextvars
import inspect
import types
from collections import namedtuple
from time import perf_counter_ns

import wrapt

from autolog import _runs, training
from autolog._report import guard, guarded, report_error
from autolog._runs import AUTOLOGGING_TAG
from autolog.tracking import training_calls

# typing and dataclasses cost ~7 ms of autolog()'s 10 ms budget; type checkers
# honour this name, and annotations are strings (PEP 563).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any

    from autolog.integration import Integration, IntegrationConfig

#: a handler: ``def handler(call: Call) -> Generator[None, Any, None]``
Handler = "Callable[[Call], Generator[None, Any, None]]"

__all__ = [
    "AUTOLOGGING_TAG",
    "Call",
    "Handler",
    "Session",
    "active_session",
    "guard",
    "guarded",
    "report_error",
]


# -- the session stack (rule 4) ------------------------------------------------


class Session(namedtuple("Session", "integration run_id")):
    """One outermost patched call in progress: which integration, which run."""

    __slots__ = ()


# A tuple, replaced (never mutated) on entry and reset on exit. A ContextVar
# gives each thread and each asyncio task its own stack, so a fit running in
# another thread is an outermost call of its own.
_SESSIONS: contextvars.ContextVar[tuple[Session, ...]] = contextvars.ContextVar(
    "autolog_sessions", default=()
)


def active_session() -> Session | None:
    """The outermost patched call running in this thread/task, if any."""
    sessions = _SESSIONS.get()
    return sessions[0] if sessions else None


# -- one patched call ---------------------------------------------------------------


class Call:
    """What a handler sees of one outermost patched call.

    ``args`` / ``kwargs`` are shallow copies that the handler may change before
    the ``yield`` (e.g. to add a callback); never mutate the user's objects in
    place: copy a list before extending it. ``run_id`` is the run this call
    logs to (None for handlers registered with ``opens_run=False``).
    """

    __slots__ = (
        "_original",
        "args",
        "config",
        "created_run",
        "instance",
        "integration",
        "kwargs",
        "run_id",
        "wrapped",
    )

    def __init__(
        self,
        integration: Integration,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run_id: str | None,
        created_run: bool,
    ):
        self.integration = integration
        self.config: IntegrationConfig = integration.config
        self.wrapped = wrapped
        self.instance = instance
        self._original = (args, kwargs)
        self.args = list(args)
        self.kwargs = dict(kwargs)
        self.run_id = run_id
        self.created_run = created_run

    def original_arguments(self) -> tuple[list[Any], dict[str, Any]]:
        """Fresh copies of the arguments the user passed (before any handler change)."""
        args, kwargs = self._original
        return list(args), dict(kwargs)

    def arguments(self) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied."""
        sig, _ = _signature_and_positions(self.wrapped)
        bound = sig.bind_partial(*self.args, **self.kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def argument(self, name: str, default: Any = None) -> Any:
        """One argument by name, whether passed by position or keyword."""
        if name in self.kwargs:
            return self.kwargs[name]
        sig, positions = _signature_and_positions(self.wrapped)
        index = positions.get(name)
        if index is not None and index < len(self.args):
            return self.args[index]
        param = sig.parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
        return default

    def set_argument(self, name: str, value: Any) -> None:
        """Replace an argument, where the user put it (position or keyword)."""
        index = _signature_and_positions(self.wrapped)[1].get(name)
        if name not in self.kwargs and index is not None and index < len(self.args):
            self.args[index] = value
        else:
            self.kwargs[name] = value


_signatures: dict[tuple[Any, bool], tuple[inspect.Signature, dict[str, int]]] = {}


def _signature_and_positions(fn: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, int]]:
    """The signature of what ``call.args`` / ``call.kwargs`` are passed to, and
    the position of each positional parameter.

    wrapt hands a handler a bound method (``obj.fit(x)``) or, when the method
    is called through its class (``Trainer.fit(trainer, x)``), a partial proxy
    binding the instance: in both, the function's first parameter is already
    taken. Cached by the underlying function (bound objects are new per call):
    ``call.argument`` runs on hot paths such as every ``backward()``.
    """
    if isinstance(fn, types.MethodType):
        func, bound = fn.__func__, True
    elif isinstance(fn, wrapt.ObjectProxy):
        func, bound = fn.__wrapped__, True
    else:
        func, bound = fn, False
    cached = _signatures.get((func, bound))
    if cached is None:
        sig = inspect.signature(func)
        if bound:
            sig = sig.replace(parameters=list(sig.parameters.values())[1:])
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        positions = {p.name: i for i, p in enumerate(sig.parameters.values()) if p.kind in kinds}
        cached = _signatures[func, bound] = (sig, positions)
    return cached


def _call_outermost(
    integration: Integration,
    handler: Handler,
    opens_run: bool,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    begun = perf_counter_ns()  # our time on this thread counts to the run's overhead
    name = integration.name
    config = integration.config
    try:
        if opens_run:
            # the one run-opening policy (exclusive, tags, one run per training)
            run_id, created = _runs.training_run(name, config, instance)
            if run_id is None:
                return wrapped(*args, **kwargs)  # exclusive: never log into the user's run
        else:
            run_id, created = _runs.fluent().active_run_id(), False
            if run_id is not None and config.exclusive:
                return wrapped(*args, **kwargs)
    except Exception as exc:  # our failure before anything of the user's ran
        report_error(name, exc, "while opening a run", silent=config.silent)
        return wrapped(*args, **kwargs)

    call = Call(integration, wrapped, instance, args, kwargs, run_id, created)
    declared = getattr(handler, "autolog_datasets", None)  # @plugin.datasets_from(...)
    if declared is not None and run_id is not None and config.log_datasets:
        try:  # the training data, recorded before it runs (provenance, issue 18)
            from autolog.provenance.datasets import record_call_datasets

            record_call_datasets(call, declared)
        except Exception as exc:
            report_error(name, exc, "while recording its datasets", silent=config.silent)
    token = _SESSIONS.set((*_SESSIONS.get(), Session(name, run_id)))
    open_run = created  # a run of ours that is still open: never left behind
    training_calls.began()  # the writer drains after the call, not beside it
    try:
        gen = _start(handler, call, name, config.silent)
        counted = training.counted_overhead(run_id)  # what callbacks count during the call
        called = perf_counter_ns()
        try:
            result = wrapped(*call.args, **call.kwargs)
        except BaseException as exc:
            returned = perf_counter_ns()
            if gen is not None:
                _close(gen, name, config.silent)
            if opens_run:
                _log_overhead(run_id, counted, begun, called, returned, name, config.silent)
            if created:
                open_run = False
                # KILLED on Ctrl-C, also when the framework made it a SystemExit (Lightning)
                _end_run("FAILED", name, config.silent, exc)
            raise
        returned = perf_counter_ns()
        if gen is not None:
            _finish(gen, result, handler, name, config.silent)
        if opens_run:
            _log_overhead(run_id, counted, begun, called, returned, name, config.silent)
        if created:
            open_run = False
            _end_run("FINISHED", name, config.silent)
        return result
    finally:
        _SESSIONS.reset(token)
        if open_run:  # only when one of our errors is re-raised (AUTOLOG_TESTING)
            _end_run("FAILED", name, config.silent)
        training_calls.ended()


def _log_overhead(
    run_id: str | None,
    counted: int,
    begun: int,
    called: int,
    returned: int,
    name: str,
    silent: bool,
) -> None:
    """The run's self-overhead metrics (:func:`autolog.training.log_overhead`): our
    time before the user's call (opening the run, params, callbacks added), what
    our callbacks counted during it, and our time after it (the model, summaries)."""
    if run_id is None:
        return
    try:
        now = perf_counter_ns()
        during = training.counted_overhead(run_id) - counted
        training.log_overhead(run_id, (called - begun) + during + (now - returned), now - begun)
    except Exception as exc:
        report_error(name, exc, "while logging its overhead", silent=silent)


def _start(
    handler: Handler, call: Call, name: str, silent: bool
) -> Generator[None, Any, None] | None:
    """Run the handler up to its ``yield``: the generator to resume after the
    call, or None (it finished early, or failed: then the call gets the user's
    own arguments). Creating the generator is ours too: a handler that is a
    plain function runs (and may raise) right here."""
    try:
        gen = handler(call)  # type: ignore[operator]
        if not isinstance(gen, types.GeneratorType):
            raise TypeError(
                f"handler {_handler_name(handler)} returned {type(gen).__name__}, not a "
                "generator: it must `yield` once, where the user's call runs"
            )
        next(gen)
    except StopIteration:
        return None  # the handler finished before the call: nothing to do after
    except Exception as exc:
        call.args, call.kwargs = call.original_arguments()  # the user's own arguments
        report_error(name, exc, "before the training call", silent=silent)
        return None
    return gen


def _finish(
    gen: Generator[None, Any, None], result: Any, handler: Handler, name: str, silent: bool
) -> None:
    """Resume the handler with the call's result; it must finish there."""
    try:
        gen.send(result)
    except StopIteration:
        return
    except Exception as exc:
        report_error(name, exc, "after the training call", silent=silent)
        return
    _close(gen, name, silent)
    report_error(
        name,
        RuntimeError(f"handler {_handler_name(handler)} yielded more than once"),
        "after the training call",
        silent=silent,
    )


def _handler_name(handler: Any) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


def _close(gen: Generator[None, Any, None], name: str, silent: bool) -> None:
    try:
        gen.close()
    except Exception as exc:
        report_error(name, exc, "while cleaning up after a failed call", silent=silent)


def _end_run(status: str, name: str, silent: bool, exc: BaseException | None = None) -> None:
    """End the run we opened: ``status``, or the one ``exc`` (the user's) calls for."""
    try:
        if exc is not None:
            status = _runs.fluent().RunStatus.ended_by(exc)
        # No drain: the training thread never waits on I/O (rule 2); the
        # writer reports a failure at the next flush()/end_run() or at exit.
        _runs.end_run(status)
    except Exception as exc:
        report_error(name, exc, "while closing its run", silent=silent)


def _make_observer(
    integration: Integration, after: Callable[[Any, tuple[Any, ...], dict[str, Any], Any], None]
) -> Any:
    """The wrapper of :meth:`~autolog.patching.Patcher.observe`: the call runs with
    the user's own arguments, then ``after(instance, args, kwargs, result)`` runs
    when it returned and no patched call of any integration is in progress. No
    run, no :class:`Call`, no generator: about a microsecond, for calls made
    once per training step (``loss.backward()``)."""
    name = integration.name
    get_sessions = _SESSIONS.get

    def autolog_observer(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        result = wrapped(*args, **kwargs)
        if not get_sessions():
            try:
                after(instance, args, kwargs, result)
            except Exception as exc:
                report_error(name, exc, "after the training call", silent=integration.config.silent)
        return result

    return autolog_observer


def _make_wrapper(integration: Integration, handler: Handler, opens_run: bool) -> Any:
    def autolog_wrapper(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # The fast path: a nested patched call (Pipeline.fit -> step.fit,
        # XGBClassifier.fit -> xgboost.train) passes straight through.
        if _SESSIONS.get():
            return wrapped(*args, **kwargs)
        return _call_outermost(integration, handler, opens_run, wrapped, instance, args, kwargs)

    return autolog_wrapper
