"""The patch manager: reversible wraps on wrapt, the session stack, the safety boundary.

An integration never wraps anything itself. It asks its :class:`Patcher` to
wrap ``owner.attribute`` with a *handler*, a generator function that runs
around the user's call::

    def on_fit(call):                       # before the user's call
        autolog.log_params(call.instance.get_params())
        call.kwargs["callbacks"] = [*user_callbacks, OurCallback(call.run_id)]
        result = yield                      # the user's call runs here
        autolog.log_metric("score", result.score_)   # after it

What happens around a patched call (only the outermost one logs, a run is
opened and closed, our errors are kept from the user, rule 1) lives in
:mod:`autolog._calls`; this module is the integrations' API: :class:`Patcher`
(the wraps); integration authors take it, with everything else they use,
from :mod:`autolog.plugin`.

Every wrap is recorded with the original object taken from the owner's
``__dict__``, so :meth:`Patcher.unpatch_all` restores the identical object
(rule 5).
"""

from __future__ import annotations

import inspect
import sys
import threading
import types

import wrapt

from autolog._calls import (
    AUTOLOGGING_TAG,
    Call,
    Handler,
    Session,
    _make_observer,
    _make_wrapper,
    active_session,
    guard,
    guarded,
    report_error,
)
from autolog.errors import IntegrationError

# typing costs several ms at import; type checkers honour this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from autolog._base import Integration

__all__ = [
    "AUTOLOGGING_TAG",
    "Call",
    "Handler",
    "Patcher",
    "Session",
    "active_session",
    "guard",
    "guarded",
    "is_autolog_wrapper",
    "report_error",
]

_MISSING = object()


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
        #: per hooked base, what its one hook wraps: (attribute, handler, opens_run, include,
        #: enabled) entries
        self._subclass_entries: dict[type, list[tuple]] = {}
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
        _check_handler(self.integration, handler, attribute)
        return self._install(
            owner, attribute, _make_wrapper(self.integration, handler, opens_run), enabled
        )

    def observe(
        self,
        owner: Any,
        attribute: str,
        after: Callable[[Any, tuple[Any, ...], dict[str, Any], Any], None],
    ) -> bool:
        """Wrap ``owner.attribute`` so that ``after(instance, args, kwargs, result)``
        runs each time the call returns, outside any patched call (none of any
        integration in progress); returns False when it was already wrapped by us.

        For calls made once per training step (``loss.backward()``): no run is
        opened or looked up, no :class:`Call` is built, the user's arguments go
        through unchanged, and ``after``'s failures are reported like a
        handler's. Where the call is made under a patched call (a Lightning
        ``fit``), ``after`` does not run: that call's integration owns it.
        """
        if not callable(after):
            cls = type(self.integration)
            raise IntegrationError(
                f"invalid integration {cls.__module__}.{cls.__qualname__}: patcher.observe(..., "
                f"{attribute!r}) needs a callable after(instance, args, kwargs, result), got "
                f"{after!r}"
            )
        return self._install(owner, attribute, _make_observer(self.integration, after), None)

    def _install(
        self, owner: Any, attribute: str, wrapper_fn: Any, enabled: Callable[[], bool] | None
    ) -> bool:
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
        """One ``__init_subclass__`` hook per base, however many attributes are
        wrapped under it: scikit-learn's roots have eleven methods each, and
        eleven chained hooks ran on every class it defines (1,900 calls while
        it imports). ``include`` is asked once per class for all the entries
        that share it."""
        entry = (attribute, handler, opens_run, include, enabled)
        with self._lock:
            entries = self._subclass_entries.get(base)
            if entries is not None:
                entries.append(entry)
                return
            entries = self._subclass_entries[base] = [entry]
        patcher = self
        original = base.__dict__.get("__init_subclass__", _MISSING)

        def __init_subclass__(cls: type, **kwargs: Any) -> None:
            if original is _MISSING:
                super(base, cls).__init_subclass__(**kwargs)  # type: ignore[misc]
            else:
                original.__func__(cls, **kwargs)
            own = cls.__dict__
            answers: dict[Callable[[type], bool], bool] = {}
            for attribute, handler, opens_run, include, enabled in entries:
                if attribute not in own:
                    continue
                try:
                    included = answers.get(include)
                    if included is None:
                        included = answers[include] = bool(include(cls))
                    if included:
                        patcher.wrap(cls, attribute, handler, opens_run=opens_run, enabled=enabled)
                except Exception as exc:  # never break the user's class statement
                    report_error(
                        patcher.integration.name, exc, f"while patching {cls.__qualname__}"
                    )

        with self._lock:
            base.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment]
            self._subclass_hooks.append((base, original))

    def installed(self) -> int:
        """How many wraps, subclass hooks and clean-ups are installed now."""
        with self._lock:
            hooked = sum(map(len, self._subclass_entries.values()))
            return len(self.records) + hooked + len(self._cleanups)

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on unpatch (e.g. to remove a framework hook we registered)."""
        with self._lock:
            self._cleanups.append(fn)

    def unpatch_all(self, modules: tuple[str, ...] | None = None) -> None:
        """Restore every original object, newest wrap first. ``modules``: only
        the wraps on objects of those modules (and their submodules), and no
        clean-up runs (the registry's, when a covered framework's own
        integration takes over)."""

        def selected(owner: Any) -> bool:
            if modules is None:
                return True
            name = owner.__module__ if isinstance(owner, type) else owner.__name__
            return any(name == m or name.startswith(m + ".") for m in modules)

        with self._lock:
            kept_hooks = []
            for base, original in reversed(self._subclass_hooks):
                if not selected(base):
                    kept_hooks.insert(0, (base, original))
                    continue
                del self._subclass_entries[base]
                if original is _MISSING:
                    delattr(base, "__init_subclass__")
                else:
                    base.__init_subclass__ = original  # type: ignore[assignment]
            self._subclass_hooks = kept_hooks
            kept = []
            for record in reversed(self.records):
                if not selected(record.owner):
                    kept.insert(0, record)
                elif record.original is _MISSING:
                    delattr(record.owner, record.attribute)
                else:
                    setattr(record.owner, record.attribute, record.original)
            self.records = kept
            if modules is not None:
                return
            cleanups, self._cleanups = self._cleanups, []
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception as exc:
                report_error(self.integration.name, exc, "while unpatching")


def _check_handler(integration: Any, handler: Any, target: str) -> None:
    """A handler must be a generator function: IntegrationError naming it."""
    if not inspect.isgeneratorfunction(handler):
        cls = type(integration)
        raise IntegrationError(
            f"invalid integration {cls.__module__}.{cls.__qualname__}: the handler "
            f"{getattr(handler, '__qualname__', handler)!s} given to patcher.wrap(..., "
            f"{target!r}) is not a generator function: a handler must `yield` once, where "
            "the user's call runs"
        )


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
