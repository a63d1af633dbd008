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

from autolog.errors import AutologWarning, IntegrationError
from autolog.patching import TYPE_CHECKING, Patcher, report_error

if TYPE_CHECKING:
    import types
    from typing import Any

    from autolog.integration import Integration

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
    from autolog import integration as api  # imported here: it imports this module

    def fail(what: str) -> None:
        where = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)!s}"
        raise IntegrationError(f"invalid integration {where}: {what}")

    if not (isinstance(cls, type) and issubclass(cls, api.Integration)):
        fail(f"expected a subclass of autolog.Integration, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        fail(f"'name' must be an identifier-like string, got {name!r}")
    modules = getattr(cls, "modules", None)
    if isinstance(modules, str):
        fail(f"'modules' must be a tuple of module names, got the string {modules!r}")
    if not modules or not all(isinstance(m, str) and m for m in modules):
        fail(f"'modules' must be a non-empty tuple of module names, got {modules!r}")
    if cls.patch is api.Integration.patch:
        fail("it does not implement patch(self, patcher, module)")
    if cls.distribution is not None and not isinstance(cls.distribution, str):
        fail(f"'distribution' must be a string or None, got {cls.distribution!r}")
    if not isinstance(cls.supported_versions, str) or not _SPECIFIERS.match(cls.supported_versions):
        fail(f"'supported_versions' is not a PEP 440 specifier: {cls.supported_versions!r}")
    if not isinstance(cls.options, Mapping):
        fail(f"'options' must be a mapping of option name to default, got {cls.options!r}")
    clash = sorted(set(cls.options) & set(api.COMMON_OPTIONS))
    if clash:
        fail(f"options {clash} clash with autolog()'s own keywords")
    if not isinstance(cls.flavors, tuple):
        fail(f"'flavors' must be a tuple of autolog.Flavor subclasses, got {cls.flavors!r}")
    if cls.flavors:
        from autolog.flavors import validate_flavor_class

        for flavor in cls.flavors:
            try:
                validate_flavor_class(flavor)
            except IntegrationError as exc:
                fail(f"'flavors': {exc}")


# -- the registry ------------------------------------------------------------------

WAITING = "waiting for import"
ACTIVE = "active"
DISABLED = "disabled"
NOT_INSTALLED = "not installed"
UNSUPPORTED = "unsupported version"
FAILED = "failed"


class _State:
    """Run-time state of one registered integration."""

    def __init__(self, cls: type[Integration]):
        self.cls = cls
        self.integration = cls()
        self.patcher = Patcher(self.integration)
        self.enabled = False
        self.hooked: set[str] = set()  # modules with a post-import hook installed
        self.patched: set[str] = set()  # modules patched now
        self.problem: tuple[str, str] | None = None  # (state, reason)


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.classes: dict[str, type[Integration]] = {}
        self.load_errors: dict[str, str] = {}
        self.states: dict[str, _State] = {}
        self.from_entry_points: set[str] = set()
        self.discovered = False

    def discover(self) -> None:
        with self.lock:
            if self.discovered:
                return
            self.discovered = True
            for name, value in _entry_points(ENTRY_POINT_GROUP):
                try:
                    cls = _load(value)
                    if getattr(cls, "name", None) != name:
                        raise IntegrationError(
                            f"entry point {name!r} = {value!r} loads an integration "
                            f"named {getattr(cls, 'name', None)!r}"
                        )
                    self.add(cls)
                    self.from_entry_points.add(name)
                except Exception as exc:
                    # One broken plugin must not stop the others (or autolog()):
                    # status() shows it as failed, with the reason.
                    self.load_errors[name] = f"{type(exc).__name__}: {exc}"
                    warnings.warn(
                        f"autolog: cannot load integration {name!r} from entry point "
                        f"{value!r}: {type(exc).__name__}: {exc}",
                        AutologWarning,
                        stacklevel=3,
                    )

    def add(self, cls: type[Integration]) -> None:
        _validate(cls)
        with self.lock:
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
            self.states[cls.name] = _State(cls)
            self.load_errors.pop(cls.name, None)


registry = _Registry()


def _load(value: str) -> Any:
    module_name, _, attr = value.partition(":")
    import importlib

    obj: Any = importlib.import_module(module_name.strip())
    for part in attr.strip().split("."):
        if part:
            obj = getattr(obj, part)
    return obj


def _entry_points(group: str) -> list[tuple[str, str]]:
    """(name, "module:attr") of the entry points of ``group`` on ``sys.path``.

    ``importlib.metadata`` would do, but importing it costs 10 to 30 ms, three
    times the budget of ``autolog()``; this reads the same ``entry_points.txt``
    files of the installed distributions directly. The first distribution of
    a name on ``sys.path`` wins, as for imports.
    """
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    header = f"[{group}]"
    for entry in sys.path:
        try:
            listing = os.scandir(entry or ".")
        except OSError:
            continue
        with listing:
            for item in listing:
                if not item.name.endswith((".dist-info", ".egg-info")):
                    continue
                dist = item.name.rsplit(".", 1)[0].split("-", 1)[0].lower().replace("_", "-")
                if dist in seen:
                    continue
                seen.add(dist)
                try:
                    with open(os.path.join(item.path, "entry_points.txt"), encoding="utf-8") as fh:
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


def _version_problem(state: _State) -> tuple[str, str] | None:
    cls = state.cls
    if not cls.distribution:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(cls.distribution)
    except PackageNotFoundError:
        return None  # importable without metadata (a vendored copy): nothing to check
    if cls.supported_versions and not state.integration.config.allow_unsupported_versions:
        from packaging.specifiers import SpecifierSet

        if installed not in SpecifierSet(cls.supported_versions, prereleases=True):
            return (
                UNSUPPORTED,
                f"{cls.distribution} {installed} is outside the supported range "
                f"{cls.supported_versions!r}; pass allow_unsupported_versions=True to try anyway",
            )
    return None


def _on_import(name: str, module_name: str, module: types.ModuleType) -> None:
    """Post-import hook: patch ``module`` for the integration ``name`` if enabled."""
    with registry.lock:
        state = registry.states.get(name)
        if state is None or not state.enabled or module_name in state.patched:
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
            state.integration.patch(state.patcher, module)
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


def _in_modules(module_name: str, modules: tuple[str, ...]) -> bool:
    return any(module_name == m or module_name.startswith(m + ".") for m in modules)


def _owner_module(owner: Any) -> str:
    # a patched module (functions) or a class (methods)
    return owner.__module__ if isinstance(owner, type) else owner.__name__


def _yielding(state: _State, *, disabling: bool) -> list[_State]:
    """Enabled integrations that cover this one's framework while it is off (the
    scikit-learn integration wraps XGBoost's estimators then): re-patched around
    enabling it (so they step aside) and disabling it (so they cover it again)."""
    own = tuple(state.cls.modules)
    found = []
    for other in registry.states.values():
        if other is state or not other.enabled:
            continue
        if disabling:
            shares = any(_in_modules(m, own) for m in other.cls.modules)
        else:
            shares = any(_in_modules(_owner_module(r.owner), own) for r in other.patcher.records)
        if shares:
            found.append(other)
    return found


def _enable(state: _State) -> None:
    yielding = _yielding(state, disabling=False)
    for other in yielding:
        other.patcher.unpatch_all()
        other.patched.clear()
    _enable_one(state)
    for other in yielding:
        _enable_one(other)


def _enable_one(state: _State) -> None:
    state.enabled = True
    state.problem = None
    for module_name in state.cls.modules:
        if module_name not in state.hooked:
            # wrapt calls the hook at once when the module is already imported.
            state.hooked.add(module_name)
            wrapt.register_post_import_hook(
                lambda module, n=state.cls.name, m=module_name: _on_import(n, m, module),
                module_name,
            )
        elif module_name in sys.modules:
            _on_import(state.cls.name, module_name, sys.modules[module_name])


def _disable(state: _State) -> None:
    state.enabled = False
    state.patcher.unpatch_all()
    state.patched.clear()
    state.problem = None
    try:
        state.integration.unpatch()
    except Exception as exc:
        report_error(
            state.cls.name, exc, "while unpatching", silent=state.integration.config.silent
        )
    for other in _yielding(state, disabling=True):
        other.patcher.unpatch_all()
        other.patched.clear()
        _enable_one(other)
