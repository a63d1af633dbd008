"""The patch manager: reversible wraps on wrapt, the session stack, the safety boundary.

An integration never wraps anything itself. It asks its :class:`Patcher` to
wrap ``owner.attribute`` with a *handler*, a generator function that runs
around the user's call::

    def on_fit(call):                       # before the user's call
        autolog.log_params(call.instance.get_params())
        call.kwargs["callbacks"] = [*user_callbacks, OurCallback(call.run_id)]
        result = yield                      # the user's call runs here
        autolog.log_metric("score", result.score_)   # after it

The patch manager decides whether the call logs at all (only the outermost
patched call of a thread or task does: :data:`_SESSIONS`), opens a run when
the user has none and closes it afterwards, and keeps our failures away from
the user (ARCHITECTURE.md rule 1):

- an exception of the user's call propagates unchanged (same object, same
  traceback) and the run we opened ends FAILED (KILLED on KeyboardInterrupt);
- an exception of ours, before or after the call, is reported once per
  integration per process as an :class:`~autolog.errors.AutologWarning`, and
  the call runs with the user's original arguments and returns its own result;
- ``AUTOLOG_TESTING=1`` re-raises our exceptions so tests see them.

Every wrap is recorded with the original object taken from the owner's
``__dict__``, so :meth:`Patcher.unpatch_all` restores the identical object
(rule 5).
"""

from __future__ import annotations

import contextvars
import inspect
import os
import sys
import threading
import types
import warnings
from collections import namedtuple

import wrapt

from autolog.errors import AutologWarning

# typing and dataclasses cost ~7 ms of autolog()'s 10 ms budget; type checkers
# honour this name, and annotations are strings (PEP 563).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable
    from typing import Any

    from autolog.integration import Integration, IntegrationConfig

__all__ = [
    "Call",
    "Handler",
    "Patcher",
    "Session",
    "active_session",
    "guard",
    "report_error",
]

#: a handler: ``def handler(call: Call) -> Generator[None, Any, None]``
Handler = "Callable[[Call], Generator[None, Any, None]]"

_MISSING = object()
AUTOLOGGING_TAG = "mlflow.autologging"


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


# -- reporting our own errors ----------------------------------------------------

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _testing() -> bool:
    return os.environ.get("AUTOLOG_TESTING", "") not in ("", "0", "false")


def report_error(integration: str, exc: BaseException, where: str, *, silent: bool = False) -> None:
    """Report one of *our* failures: raise under AUTOLOG_TESTING, else warn once
    per integration per process (a failing callback must not warn every epoch)."""
    if _testing():
        raise exc
    with _warned_lock:
        if integration in _warned:
            return
        _warned.add(integration)
    if not silent:
        warnings.warn(
            f"autolog: the {integration!r} integration failed {where} "
            f"({type(exc).__name__}: {exc}); your training was not affected. "
            "Further failures of this integration in this process are not reported.",
            AutologWarning,
            stacklevel=3,
        )


class guard:
    """Context manager for code of ours that runs inside the user's training,
    such as the body of an injected callback: our exceptions are reported
    (see :func:`report_error`) and swallowed; KeyboardInterrupt passes.

    ``with guard("keras", "in on_epoch_end"): ...``. A class, not a generator
    context manager, because it runs once per epoch and per batch.
    """

    __slots__ = ("integration", "where")

    def __init__(self, integration: str, where: str = "in a training callback"):
        self.integration = integration
        self.where = where

    def __enter__(self) -> guard:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        report_error(self.integration, exc, self.where)
        return True


# -- one patched call ---------------------------------------------------------------


class Call:
    """What a handler sees of one outermost patched call.

    ``args`` / ``kwargs`` are shallow copies that the handler may change before
    the ``yield`` (e.g. to add a callback); never mutate the user's objects in
    place: copy a list before extending it. ``run_id`` is the run this call
    logs to (None for handlers registered with ``opens_run=False``).
    """

    __slots__ = (
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
        self.args = list(args)
        self.kwargs = dict(kwargs)
        self.run_id = run_id
        self.created_run = created_run

    def arguments(self) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied."""
        sig = _signature(self.wrapped)
        bound = sig.bind_partial(*self.args, **self.kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def argument(self, name: str, default: Any = None) -> Any:
        """One argument by name, whether passed by position or keyword."""
        if name in self.kwargs:
            return self.kwargs[name]
        index = _positions(self.wrapped).get(name)
        if index is not None and index < len(self.args):
            return self.args[index]
        param = _signature(self.wrapped).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
        return default

    def set_argument(self, name: str, value: Any) -> None:
        """Replace an argument, where the user put it (position or keyword)."""
        index = _positions(self.wrapped).get(name)
        if name not in self.kwargs and index is not None and index < len(self.args):
            self.args[index] = value
        else:
            self.kwargs[name] = value


_signatures: dict[Any, inspect.Signature] = {}


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """The signature of what ``call.args`` / ``call.kwargs`` are passed to.

    wrapt hands a handler a bound method (``obj.fit(x)``) or, when the method
    is called through its class (``Trainer.fit(trainer, x)``), a partial proxy
    binding the instance: in both, the function's first parameter is already
    taken. Cached by the underlying function: bound objects are new per call.
    """
    if isinstance(fn, types.MethodType):
        func, bound = fn.__func__, True
    elif isinstance(fn, wrapt.ObjectProxy):
        func, bound = fn.__wrapped__, True
    else:
        func, bound = fn, False
    sig = _signatures.get(func)
    if sig is None:
        sig = inspect.signature(func)
        _signatures[func] = sig
    if bound:
        return sig.replace(parameters=list(sig.parameters.values())[1:])
    return sig


def _positions(fn: Callable[..., Any]) -> dict[str, int]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name: i for i, p in enumerate(_signature(fn).parameters.values()) if p.kind in kinds}


_fluent_module: types.ModuleType | None = None


def _fluent() -> types.ModuleType:
    # Imported on the first patched call, not at import: rule 3. Cached, since
    # an import statement costs a microsecond on every call of a hot wrap
    # (Tensor.backward).
    global _fluent_module
    if _fluent_module is None:
        from autolog.tracking import fluent

        _fluent_module = fluent
    return _fluent_module


def _call_outermost(
    integration: Integration,
    handler: Handler,
    opens_run: bool,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    name = integration.name
    config = integration.config
    fluent = _fluent()
    try:
        run_id = fluent.active_run_id()  # the user's run, if any
        if run_id is not None and config.exclusive:
            return wrapped(*args, **kwargs)  # exclusive: never log into the user's run
        created = False
        if run_id is None and opens_run:
            tags = {AUTOLOGGING_TAG: name, **config.extra_tags}
            run_id = fluent.start_run(tags=tags).info.run_id
            created = True
    except Exception as exc:  # our failure before anything of the user's ran
        report_error(name, exc, "while opening a run", silent=config.silent)
        return wrapped(*args, **kwargs)

    call = Call(integration, wrapped, instance, args, kwargs, run_id, created)
    token = _SESSIONS.set((*_SESSIONS.get(), Session(name, run_id)))
    try:
        gen: Generator[None, Any, None] | None = handler(call)
        try:
            next(gen)  # type: ignore[arg-type]
        except StopIteration:
            gen = None  # the handler finished before the call: nothing to do after
        except Exception as exc:
            gen = None
            report_error(name, exc, "before the training call", silent=config.silent)
            call.args, call.kwargs = list(args), dict(kwargs)  # the user's own arguments
        try:
            result = wrapped(*call.args, **call.kwargs)
        except BaseException as exc:
            if gen is not None:
                _close(gen, name, config.silent)
            if created:
                status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
                _end_run(fluent, status, name, config.silent)
            raise
        if gen is not None:
            try:
                gen.send(result)
            except StopIteration:
                pass
            except Exception as exc:
                report_error(name, exc, "after the training call", silent=config.silent)
            else:
                _close(gen, name, config.silent)
                report_error(
                    name,
                    RuntimeError(f"handler {handler.__qualname__} yielded more than once"),
                    "after the training call",
                    silent=config.silent,
                )
        if created:
            _end_run(fluent, "FINISHED", name, config.silent)
        return result
    finally:
        _SESSIONS.reset(token)


def _close(gen: Generator[None, Any, None], name: str, silent: bool) -> None:
    try:
        gen.close()
    except Exception as exc:
        report_error(name, exc, "while cleaning up after a failed call", silent=silent)


def _end_run(fluent: types.ModuleType, status: str, name: str, silent: bool) -> None:
    try:
        # No drain: the training thread never waits on I/O (rule 2); the
        # writer reports a failure at the next flush()/end_run() or at exit.
        fluent.end_run(status, flush=False)
    except Exception as exc:
        report_error(name, exc, "while closing its run", silent=silent)


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


# -- recording and undoing wraps ---------------------------------------------------


class _AutologFunctionWrapper(wrapt.FunctionWrapper):
    """Our wrapper type: lets us recognise our own wraps (no double wrapping).

    It pickles and copies as the function it wraps does: wrapt proxies refuse
    both by default, which would break a user's ``pickle.dumps(r2_score)``, a
    joblib worker or a ``copy.deepcopy`` of an object holding a patched
    function while autolog is on.
    """

    def __reduce_ex__(self, protocol: Any) -> Any:
        return _pickle_reference(self)

    def __reduce__(self) -> Any:
        return _pickle_reference(self)

    def __copy__(self) -> Any:
        return self  # functions are immutable: copies are the object itself

    def __deepcopy__(self, memo: Any) -> Any:
        return self


class _ImportedModule:
    """Pickles as ``importlib.import_module(name)``: only that call is stored,
    so the file loads where autolog is not installed."""

    def __init__(self, name: str):
        self.name = name

    def __reduce__(self) -> Any:
        import importlib

        return (importlib.import_module, (self.name,))


def _pickle_reference(wrapper: Any) -> Any:
    """A wrapped function pickles by reference, like a function: by its
    qualified name when that name resolves to the wrapper (exactly the bytes of
    the original), else as ``getattr(<its module>, name)``, which loads the
    original (a function wrapped where it is re-exported, such as
    ``sklearn.metrics.r2_score``, defined in ``sklearn.metrics._regression``)."""
    import pickle

    module_name = getattr(wrapper, "__module__", None)
    qualname = getattr(wrapper, "__qualname__", None)
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    if module is None or not isinstance(qualname, str) or "<locals>" in qualname:
        raise pickle.PicklingError(f"cannot pickle {wrapper!r}: it has no importable name")
    *parents, name = qualname.split(".")
    owner: Any = module
    for part in parents:
        owner = getattr(owner, part, None)
    if owner is None:
        raise pickle.PicklingError(f"cannot pickle {wrapper!r}: {module_name}.{qualname} not found")
    if getattr(owner, name, None) is wrapper:
        return qualname
    # A class pickles by reference itself; a module needs the import.
    return (getattr, (owner if parents else _ImportedModule(module_name), name))


class PatchRecord:
    """One installed wrap: ``owner.__dict__[attribute]`` was ``original``
    (``_MISSING`` when the attribute was inherited) and is now ``wrapper``."""

    __slots__ = ("attribute", "original", "owner", "wrapper")

    def __init__(self, owner: Any, attribute: str, original: Any, wrapper: Any):
        self.owner = owner
        self.attribute = attribute
        self.original = original
        self.wrapper = wrapper

    @property
    def target(self) -> str:
        owner = self.owner
        if isinstance(owner, types.ModuleType):
            return f"{owner.__name__}.{self.attribute}"
        return f"{owner.__module__}.{owner.__qualname__}.{self.attribute}"


def is_autolog_wrapper(obj: Any) -> bool:
    if isinstance(obj, property):
        obj = obj.fget
    return isinstance(obj, _AutologFunctionWrapper)


def _own_attribute(owner: Any, attribute: str) -> Any:
    if isinstance(owner, type):
        return owner.__dict__.get(attribute, _MISSING)
    return getattr(owner, attribute, _MISSING)


class Patcher:
    """Installs and removes one integration's wraps. Thread-safe.

    ``wrap`` covers functions of a module and functions, classmethods,
    staticmethods and properties of a class; ``wrap_subclasses`` covers a whole
    class hierarchy, including subclasses created later (a user's estimator
    that overrides ``fit``).
    """

    def __init__(self, integration: Integration):
        self.integration = integration
        self.records: list[PatchRecord] = []
        self._cleanups: list[Callable[[], None]] = []
        self._subclass_hooks: list[tuple[type, Any]] = []
        self._lock = threading.RLock()

    @property
    def targets(self) -> list[str]:
        with self._lock:
            return [r.target for r in self.records]

    def wrap(
        self,
        owner: Any,
        attribute: str,
        handler: Handler,
        *,
        opens_run: bool = True,
        enabled: Callable[[], bool] | None = None,
    ) -> bool:
        """Wrap ``owner.attribute`` (``attribute`` may be dotted: ``"Booster.update"``
        on a module). Returns False when it was already wrapped by us.

        ``opens_run=False``: the handler runs for outermost calls but no run is
        opened for it (``call.run_id`` is the user's active run or None): for
        calls that log into an existing run, such as metric functions.

        ``enabled``: asked on every call (wrapt's switch); when it returns
        False the wrap is skipped entirely, as if it were not there: for a
        class that another integration owns while that one is enabled.
        """
        *path, attribute = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        with self._lock:
            raw = _own_attribute(owner, attribute)
            if raw is _MISSING:
                if not isinstance(owner, type):
                    raise AttributeError(f"{owner!r} has no attribute {attribute!r} to patch")
                raw_inherited = inspect.getattr_static(owner, attribute)
            else:
                raw_inherited = raw
            if is_autolog_wrapper(raw_inherited) and raw is not _MISSING:
                return False
            wrapper_fn = _make_wrapper(self.integration, handler, opens_run)
            if isinstance(raw_inherited, property):
                new: Any = property(
                    _AutologFunctionWrapper(raw_inherited.fget, wrapper_fn, enabled=enabled),
                    raw_inherited.fset,
                    raw_inherited.fdel,
                    raw_inherited.__doc__,
                )
            else:
                # wrapt binds functions, classmethods and staticmethods correctly
                # when given the raw descriptor from the class __dict__.
                new = _AutologFunctionWrapper(raw_inherited, wrapper_fn, enabled=enabled)
            setattr(owner, attribute, new)
            self.records.append(PatchRecord(owner, attribute, raw, new))
            return True

    def wrap_subclasses(
        self,
        base: type,
        attribute: str,
        handler: Handler,
        *,
        opens_run: bool = True,
        include: Callable[[type], bool] = lambda cls: True,
        enabled: Callable[[], bool] | None = None,
    ) -> int:
        """Wrap ``attribute`` on ``base`` and every subclass that defines it in
        its own ``__dict__``, now and when later subclasses are created.
        Returns the number of classes wrapped now. ``enabled``: see :meth:`wrap`."""
        count = 0
        for cls in _class_tree(base):
            if (
                attribute in cls.__dict__
                and include(cls)
                and self.wrap(cls, attribute, handler, opens_run=opens_run, enabled=enabled)
            ):
                count += 1
        self._hook_subclass_creation(base, attribute, handler, opens_run, include, enabled)
        return count

    def _hook_subclass_creation(
        self,
        base: type,
        attribute: str,
        handler: Handler,
        opens_run: bool,
        include: Callable[[type], bool],
        enabled: Callable[[], bool] | None = None,
    ) -> None:
        patcher = self
        original = base.__dict__.get("__init_subclass__", _MISSING)

        def __init_subclass__(cls: type, **kwargs: Any) -> None:
            if original is _MISSING:
                super(base, cls).__init_subclass__(**kwargs)  # type: ignore[misc]
            else:
                original.__func__(cls, **kwargs)
            try:
                if attribute in cls.__dict__ and include(cls):
                    patcher.wrap(cls, attribute, handler, opens_run=opens_run, enabled=enabled)
            except Exception as exc:  # never break the user's class statement
                report_error(patcher.integration.name, exc, f"while patching {cls.__qualname__}")

        with self._lock:
            base.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment]
            self._subclass_hooks.append((base, original))

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on unpatch (e.g. to remove a framework hook we registered)."""
        with self._lock:
            self._cleanups.append(fn)

    def unpatch_all(self) -> None:
        """Restore every original object, newest wrap first."""
        with self._lock:
            for base, original in reversed(self._subclass_hooks):
                if original is _MISSING:
                    delattr(base, "__init_subclass__")
                else:
                    base.__init_subclass__ = original  # type: ignore[assignment]
            self._subclass_hooks.clear()
            for record in reversed(self.records):
                if record.original is _MISSING:
                    delattr(record.owner, record.attribute)
                else:
                    setattr(record.owner, record.attribute, record.original)
            self.records.clear()
            cleanups, self._cleanups = self._cleanups, []
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception as exc:
                report_error(self.integration.name, exc, "while unpatching")


def _class_tree(base: type) -> Iterable[type]:
    seen: set[type] = set()
    stack = [base]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        try:
            stack.extend(cls.__subclasses__())
        except TypeError:  # type.__subclasses__ needs an argument
            pass
