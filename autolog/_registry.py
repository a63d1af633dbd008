"""The registry of integrations: discovery, validation, and patching on import.

:mod:`autolog.integration` is the API (``Integration``, ``autolog()``,
``status()``); this module keeps what it needs at run time: the registered
classes and the state of each, entry-point discovery, the post-import hooks
that patch a framework when it is imported, and enabling / disabling.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from collections.abc import Mapping

import wrapt

from autolog import flavors as _flavors
from autolog._base import (
    RESERVED_OPTION_NAMES,
    Integration,
    IntegrationConfig,
    Option,
    as_option,
    option_defaults,
)
from autolog._distributions import metadata_folders
from autolog._report import report_error
from autolog.errors import AutologWarning, IntegrationError
from autolog.patching import Patcher

# typing costs several ms at import; type checkers honour this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import types
    from typing import Any

ENTRY_POINT_GROUP = "autolog.integrations"


# -- validation of a registered class -------------------------------------------------

# The shape of a PEP 440 specifier set (">=1.3,<2", "~=2.0", "==3.*"), checked
# at registration without importing packaging (~3 ms); packaging evaluates it
# when the framework is imported.
_SPECIFIERS = re.compile(
    r"^\s*$|^\s*(~=|===|==|!=|<=|>=|<|>)\s*[0-9][0-9A-Za-z.*+!_-]*\s*"
    r"(,\s*(~=|===|==|!=|<=|>=|<|>)\s*[0-9][0-9A-Za-z.*+!_-]*\s*)*$"
)


def _validate(cls: Any) -> None:
    """Raise IntegrationError quoting the class and the member that is wrong."""
    where = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)!s}"

    def fail(what: str) -> None:
        raise IntegrationError(f"invalid integration {where}: {what}")

    if not (isinstance(cls, type) and issubclass(cls, Integration)):
        fail(f"expected a subclass of autolog.Integration, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        fail(f"'name' must be an identifier-like string, got {name!r}")
    for attr in ("modules", "covers"):
        modules = getattr(cls, attr, None)
        if isinstance(modules, str):
            fail(f"'{attr}' must be a tuple of module names, got the string {modules!r}")
        if not isinstance(modules, tuple) or not all(isinstance(m, str) and m for m in modules):
            fail(f"'{attr}' must be a tuple of module names, got {modules!r}")
    if not cls.modules:
        fail("'modules' must be a non-empty tuple of module names, got ()")
    if set(cls.covers) & set(cls.modules):
        fail(f"'covers' {sorted(set(cls.covers) & set(cls.modules))} are in 'modules' too")
    if cls.patch is Integration.patch:
        fail("it does not implement patch(self, patcher, module)")
    if cls.distribution is not None and not isinstance(cls.distribution, str):
        fail(f"'distribution' must be a string or None, got {cls.distribution!r}")
    if not isinstance(cls.supported_versions, str) or not _SPECIFIERS.match(cls.supported_versions):
        fail(f"'supported_versions' is not a PEP 440 specifier: {cls.supported_versions!r}")
    _validate_options(cls, fail)
    _validate_handlers(cls, fail)
    if not isinstance(cls.flavors, tuple):
        fail(f"'flavors' must be a tuple of autolog.Flavor subclasses, got {cls.flavors!r}")
    for flavor in cls.flavors:
        try:
            _flavors.validate_flavor_class(flavor)
        except IntegrationError as exc:
            fail(f"'flavors': {exc}")


def _validate_options(cls: Any, fail: Any) -> None:
    if not isinstance(cls.options, Mapping):
        fail(f"'options' must be a mapping of option name to default, got {cls.options!r}")
    clash = sorted(set(cls.options) & RESERVED_OPTION_NAMES)
    if clash:
        fail(f"options {clash} are reserved: they are autolog()'s own keywords")
    for key, declared in cls.options.items():
        if not isinstance(key, str) or not key.isidentifier():
            fail(f"option name {key!r} in 'options' is not an identifier")
        if isinstance(declared, Option):
            problem = declared.problem(declared.default)
            if problem is not None:
                fail(f"the default of option {key!r}: {problem}")
        else:
            as_option(declared)


def _validate_handlers(cls: Any, fail: Any) -> None:
    """Methods named ``on_*`` are handlers: each must be a generator function
    (a plain function would run, and fail, outside the user's call)."""
    import inspect

    for klass in cls.__mro__:
        if klass is Integration:
            break
        for attr, value in vars(klass).items():
            if not attr.startswith("on_"):
                continue
            function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if callable(function) and not inspect.isgeneratorfunction(function):
                fail(
                    f"handler {klass.__qualname__}.{attr} is not a generator function: "
                    "a handler must `yield` once, where the user's call runs"
                )


# -- the registry ------------------------------------------------------------------

WAITING = "waiting for import"
ACTIVE = "active"
DISABLED = "disabled"
NOT_INSTALLED = "not installed"
UNSUPPORTED = "unsupported version"
FAILED = "failed"


class _State:
    """Run-time state of one registered integration.

    A built-in is registered from its row of the manifest
    (:data:`autolog.integrations.FRAMEWORK_MODULES`) and its class is loaded
    from ``entry_point`` at the first use of ``cls``, ``integration`` or
    ``patcher``: when one of its frameworks is imported, or when ``status()``,
    an option of its own, or a flavor needs it."""

    def __init__(
        self,
        name: str,
        modules: tuple[str, ...],
        covers: tuple[str, ...],
        entry_point: str | None = None,
        cls: type[Integration] | None = None,
    ):
        self.name = name
        self.modules = modules
        self.covers = covers
        self.entry_point = entry_point  # "module:attr", loaded when needed
        self.common: dict[str, Any] | None = None  # autolog()'s options, until loaded
        self.enabled = False
        self.hooked: set[str] = set()  # modules with a post-import hook installed
        self.patched: set[str] = set()  # modules patched now
        self.problem: tuple[str, str] | None = None  # (state, reason)
        self._cls = cls
        if cls is not None:
            self._attach(cls)

    def _attach(self, cls: type[Integration]) -> None:
        self._cls = cls
        self._integration = cls()
        self._patcher = Patcher(self._integration)
        if self.common is not None:
            own = option_defaults(cls.options)
            self._integration.config = IntegrationConfig(own, **self.common)

    @property
    def loaded(self) -> bool:
        return self._cls is not None

    @property
    def cls(self) -> type[Integration]:
        if self._cls is None:
            registry.load(self)
        return self._cls  # type: ignore[return-value]

    @property
    def integration(self) -> Integration:
        self.cls  # noqa: B018 (loads it)
        return self._integration

    @property
    def patcher(self) -> Patcher:
        self.cls  # noqa: B018 (loads it)
        return self._patcher


def _builtin_row(name: str, value: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The manifest's row for a built-in's entry point, None for any other."""
    if not value.startswith("autolog.integrations."):
        return None
    from autolog.integrations import FRAMEWORK_MODULES

    return FRAMEWORK_MODULES.get(name)


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.classes: dict[str, type[Integration]] = {}  # the loaded ones
        self.load_errors: dict[str, str] = {}
        self.states: dict[str, _State] = {}  # every registered one, loaded or not
        self.from_entry_points: set[str] = set()
        self.discovered = False

    def discover(self) -> None:
        with self.lock:
            if self.discovered:
                return
            self.discovered = True
            for name, value in _entry_points(ENTRY_POINT_GROUP):
                row = _builtin_row(name, value)
                if row is not None and name not in self.states:
                    self.states[name] = _State(name, *row, entry_point=value)
                    self.from_entry_points.add(name)
                    continue
                try:
                    self.add(_load_entry_point(name, value))
                    self.from_entry_points.add(name)
                except Exception as exc:
                    self._failed(name, value, exc, stacklevel=3)

    def _failed(self, name: str, value: str, exc: Exception, stacklevel: int) -> None:
        # One broken plugin must not stop the others (or autolog()): status()
        # shows it as failed, with the reason.
        self.load_errors[name] = f"{type(exc).__name__}: {exc}"
        warnings.warn(
            f"autolog: cannot load integration {name!r} from entry point "
            f"{value!r}: {type(exc).__name__}: {exc}",
            AutologWarning,
            stacklevel=stacklevel + 1,
        )

    def load(self, state: _State) -> None:
        """Load a built-in's class; raises what loading raises."""
        with self.lock:
            if state.loaded:
                return
            cls = _load_entry_point(state.name, state.entry_point or "")
            if (cls.modules, cls.covers) != (state.modules, state.covers):
                raise IntegrationError(
                    f"{cls.__module__}.{cls.__qualname__} patches {cls.modules} and covers "
                    f"{cls.covers}; autolog.integrations.FRAMEWORK_MODULES says "
                    f"{state.modules} and {state.covers}"
                )
            _validate(cls)
            state._attach(cls)
            self.classes[cls.name] = cls
            _flavors.add_integration_flavors(cls.flavors)

    def try_load(self, state: _State, stacklevel: int = 2) -> bool:
        """Load ``state``'s class; a failure is reported as discovery reports
        one, and forgets the integration."""
        try:
            self.load(state)
            return True
        except Exception as exc:
            with self.lock:
                self.states.pop(state.name, None)
                self.from_entry_points.discard(state.name)
            self._failed(state.name, state.entry_point or "", exc, stacklevel + 1)
            return False

    def load_all(self, imported_only: bool = False) -> None:
        """Load every registered class (``imported_only``: those of the
        frameworks imported by now, the only ones whose objects can exist)."""
        self.discover()
        with self.lock:
            for state in list(self.states.values()):
                if state.loaded:
                    continue
                if imported_only and not any(
                    m.partition(".")[0] in sys.modules for m in state.modules
                ):
                    continue
                self.try_load(state, stacklevel=3)

    def add(self, cls: type[Integration]) -> None:
        _validate(cls)
        with self.lock:
            if cls.name in self.states and not self.states[cls.name].loaded:
                self.try_load(self.states[cls.name], stacklevel=3)
            existing = self.classes.get(cls.name)
            if existing is cls:
                return
            if existing is not None:
                raise IntegrationError(
                    f"an integration named {cls.name!r} is already registered "
                    f"({existing.__module__}.{existing.__qualname__}); "
                    f"cannot register {cls.__module__}.{cls.__qualname__}"
                )
            self.classes[cls.name] = cls
            self.states[cls.name] = _State(cls.name, cls.modules, cls.covers, cls=cls)
            self.load_errors.pop(cls.name, None)
            _flavors.add_integration_flavors(cls.flavors)  # pushed, never pulled

    def remove(self, name: str) -> None:
        """Forget a (disabled) run-time registration and its flavors."""
        with self.lock:
            cls = self.classes.pop(name)
            del self.states[name]
            _flavors.remove_integration_flavors(cls.flavors)


registry = _Registry()


def _load_entry_point(name: str, value: str) -> Any:
    module_name, _, attr = value.partition(":")
    import importlib

    obj: Any = importlib.import_module(module_name.strip())
    for part in attr.strip().split("."):
        if part:
            obj = getattr(obj, part)
    if getattr(obj, "name", None) != name:
        raise IntegrationError(
            f"entry point {name!r} = {value!r} loads an integration "
            f"named {getattr(obj, 'name', None)!r}"
        )
    return obj


def _entry_points(group: str) -> list[tuple[str, str]]:
    """(name, "module:attr") of the entry points of ``group`` on ``sys.path``
    (``importlib.metadata`` would do, but importing it costs 10 to 30 ms, three
    times the budget of ``autolog()``)."""
    found: list[tuple[str, str]] = []
    header = f"[{group}]"
    for _name, folder in metadata_folders():
        path = os.path.join(folder, "entry_points.txt")
        if not os.access(path, os.R_OK):  # most have none: no exception raised
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            continue
        if header in text:
            found.extend(_parse_section(text, header))
    return found


def _parse_section(text: str, header: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == header
        elif inside and "=" in line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            out.append((name.strip(), value.strip()))
    return out


# -- enabling, patching on import, disabling -------------------------------------------


# A final release, local label allowed ("2.13.0+cpu"), and a clause comparing
# to one ("<2.14"): the common case, compared here without importing packaging
# (5 to 9 ms at the first patched import; most frameworks do not import it).
_FINAL_RELEASE = re.compile(r"\s*v?(\d+(?:\.\d+)*)(?:\+[0-9A-Za-z.]+)?\s*$")
_RELEASE_CLAUSE = re.compile(r"\s*(>=|<=|<|>|==|!=)\s*(\d+(?:\.\d+)*)\s*$")
_COMPARE = {
    ">=": tuple.__ge__,
    "<=": tuple.__le__,
    "<": tuple.__lt__,
    ">": tuple.__gt__,
    "==": tuple.__eq__,
    "!=": tuple.__ne__,
}


def version_in_range(installed: str, specifiers: str) -> bool:
    """Whether ``installed`` satisfies the PEP 440 ``specifiers`` (pre-releases
    allowed), as ``packaging`` says; the final releases compared with plain
    release clauses are answered without it."""
    release = _FINAL_RELEASE.match(installed)
    clauses = [_RELEASE_CLAUSE.match(c) for c in specifiers.split(",")]
    if release is None or not all(clauses):
        from packaging.specifiers import SpecifierSet

        return installed in SpecifierSet(specifiers, prereleases=True)
    mine = tuple(int(part) for part in release.group(1).split("."))
    for clause in clauses:
        bound = tuple(int(part) for part in clause.group(2).split("."))
        width = max(len(mine), len(bound))  # 2.1 == 2.1.0
        padded = mine + (0,) * (width - len(mine)), bound + (0,) * (width - len(bound))
        if not _COMPARE[clause.group(1)](*padded):
            return False
    return True


def _version_problem(state: _State) -> tuple[str, str] | None:
    cls = state.cls
    if not cls.distribution:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(cls.distribution)
    except PackageNotFoundError:
        return None  # importable without metadata (a vendored copy): nothing to check
    if (
        cls.supported_versions
        and not state.integration.config.allow_unsupported_versions
        and not version_in_range(installed, cls.supported_versions)
    ):
        return (
            UNSUPPORTED,
            f"{cls.distribution} {installed} is outside the supported range "
            f"{cls.supported_versions!r}; pass allow_unsupported_versions=True to try anyway",
        )
    return None


def _on_import(name: str, module_name: str, module: types.ModuleType) -> None:
    """Post-import hook: patch ``module`` for the integration ``name`` if enabled
    (a module it only ``covers``: if no enabled integration owns it)."""
    with registry.lock:
        state = registry.states.get(name)
        if state is None or not state.enabled or module_name in state.patched:
            return
        if module_name in state.covers and _owner_enabled(module_name):
            return
        if not registry.try_load(state, stacklevel=3):
            return
        problem = _version_problem(state)
        if problem is not None:
            state.problem = problem
            if not state.integration.config.silent:
                warnings.warn(
                    f"autolog: {name} not enabled: {problem[1]}", AutologWarning, stacklevel=2
                )
            return
        try:
            installed = state.patcher.installed()
            state.integration.patch(state.patcher, module)
            if state.patcher.installed() == installed:
                raise IntegrationError(
                    f"{state.cls.__module__}.{state.cls.__qualname__}.patch() wrapped nothing "
                    f"in {module_name}: call patcher.wrap(...) (or add_cleanup) for what it "
                    "logs"
                )
        except Exception as exc:
            state.patcher.unpatch_all()  # never leave half a patch behind
            state.patched.clear()
            state.problem = (FAILED, f"patching {module_name} raised {type(exc).__name__}: {exc}")
            report_error(
                name, exc, f"while patching {module_name}", silent=state.integration.config.silent
            )
            return
        state.patched.add(module_name)
        state.problem = None


def _owner_enabled(module_name: str) -> bool:
    """Whether an enabled integration has ``module_name`` in its ``modules``."""
    return any(s.enabled and module_name in s.modules for s in registry.states.values())


def _coverers(state: _State) -> list[_State]:
    """Enabled integrations that cover this one's framework (``covers``: the
    scikit-learn integration wraps XGBoost's estimators while XGBoost's own
    integration is off)."""
    own = set(state.modules)
    return [
        other
        for other in registry.states.values()
        if other is not state and other.enabled and own & set(other.covers)
    ]


def _step_aside(state: _State) -> None:
    """Remove the wraps that covering integrations put on ``state``'s framework."""
    own = tuple(state.modules)
    for other in _coverers(state):
        covered = {m for m in other.patched if _in_modules(m, own)}
        if covered:
            other.patcher.unpatch_all(modules=own)
            other.patched -= covered


def _cover_again(state: _State) -> None:
    """``state`` was disabled: integrations that cover its framework patch it now."""
    for other in _coverers(state):
        for module_name in set(other.covers) & set(state.modules):
            module = sys.modules.get(module_name)
            if module is not None:
                _on_import(other.name, module_name, module)


def _in_modules(module_name: str, modules: tuple[str, ...]) -> bool:
    return any(module_name == m or module_name.startswith(m + ".") for m in modules)


def enable_integration(state: _State) -> None:
    _step_aside(state)
    _enable_one(state)


def _enable_one(state: _State) -> None:
    state.enabled = True
    state.problem = None
    for module_name in (*state.modules, *state.covers):
        if module_name not in state.hooked:
            # wrapt calls the hook at once when the module is already imported.
            state.hooked.add(module_name)
            wrapt.register_post_import_hook(
                lambda module, n=state.name, m=module_name: _on_import(n, m, module),
                module_name,
            )
        elif module_name in sys.modules:
            _on_import(state.name, module_name, sys.modules[module_name])


def disable_integration(state: _State) -> None:
    state.enabled = False
    state.problem = None
    if state.loaded:  # else it has patched nothing
        state.patcher.unpatch_all()
        state.patched.clear()
        try:
            state.integration.unpatch()
        except Exception as exc:
            report_error(
                state.name, exc, "while unpatching", silent=state.integration.config.silent
            )
    _cover_again(state)
