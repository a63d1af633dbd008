"""Integrations as plugins: the base class, the registry, ``autolog()`` and ``status()``.

An integration is a small class (compare OpenTelemetry's ``BaseInstrumentor``)::

    class ToyIntegration(autolog.Integration):
        name = "toy"                      # what users pass to autolog("toy")
        modules = ("toyml",)              # patch() runs when this module is imported
        distribution = "toyml"            # its version is checked before patching
        supported_versions = ">=1.0,<3"   # PEP 440
        options = {"log_every_epoch": True}   # autolog(log_every_epoch=False)

        def patch(self, patcher, module):
            patcher.wrap(module, "Trainer.train", self.on_train)

        def on_train(self, call):         # see autolog.patching for handlers
            autolog.log_params({"epochs": call.argument("epochs")})
            yield

It is registered through the entry-point group ``autolog.integrations`` (what
our built-ins do, in our own ``pyproject.toml``) or at run time with
:func:`register`. Registration validates the class and names what is wrong.

``autolog()`` installs post-import hooks (wrapt), so a framework is patched
when it is imported, before or after ``autolog()``, in any order (rule 3).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from collections import namedtuple
from collections.abc import Mapping

import wrapt

from autolog.errors import AutologWarning, IntegrationError
from autolog.patching import TYPE_CHECKING, Patcher, report_error

if TYPE_CHECKING:  # typing / dataclasses stay out of autolog()'s import cost
    import types
    from typing import Any, ClassVar

    from autolog.flavors import Flavor

__all__ = [
    "Integration",
    "IntegrationConfig",
    "IntegrationStatus",
    "autolog",
    "integration_classes",
    "register",
    "status",
]

ENTRY_POINT_GROUP = "autolog.integrations"

# Options every integration has; autolog() takes them as keywords.
COMMON_OPTIONS: dict[str, Any] = {
    "exclusive": False,
    "silent": False,
    "log_models": True,
    "log_input_examples": False,
    "log_datasets": True,
    "extra_tags": None,
    "allow_unsupported_versions": False,
}


class IntegrationConfig:
    """The settings one integration runs with: the common options of
    :func:`autolog` and the integration's declared options, all as attributes
    (``config.log_models``, ``config.max_tuning_runs``). Replaced, never changed,
    when ``autolog()`` reconfigures, so a running call sees one consistent set."""

    def __init__(self, options: Mapping[str, Any] | None = None, **common: Any):
        unknown = set(common) - set(COMMON_OPTIONS)
        if unknown:
            raise TypeError(f"unknown common option(s) {sorted(unknown)}")
        values = {**COMMON_OPTIONS, **common, **dict(options or {})}
        values["extra_tags"] = dict(values["extra_tags"] or {})
        self.__dict__.update(values)
        self.__dict__["options"] = dict(options or {})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("IntegrationConfig is read-only; call autolog() to reconfigure")

    def __repr__(self) -> str:
        return f"IntegrationConfig({self.__dict__!r})"


class Integration:
    """Base class of every integration, built-in or third-party.

    Set the class attributes and implement :meth:`patch`; everything else
    (version checks, import hooks, run handling, error isolation, unpatching)
    is the framework's job.
    """

    #: the name users pass to ``autolog(name)``
    name: ClassVar[str]
    #: modules whose import triggers :meth:`patch` (called once per module)
    modules: ClassVar[tuple[str, ...]]
    #: the distribution whose installed version is checked (None: no check)
    distribution: ClassVar[str | None] = None
    #: PEP 440 specifiers the integration supports ("" = any version)
    supported_versions: ClassVar[str] = ""
    #: the integration's own options and their defaults
    options: ClassVar[Mapping[str, Any]] = {}
    #: model flavors this integration provides (see autolog.models)
    flavors: ClassVar[tuple[type[Flavor], ...]] = ()

    def __init__(self) -> None:
        self.config = IntegrationConfig(self.options)

    def patch(self, patcher: Patcher, module: types.ModuleType) -> None:
        """Install the wraps for ``module`` (one of :attr:`modules`), just imported."""
        raise NotImplementedError

    def unpatch(self) -> None:
        """Extra clean-up beyond the patcher's wraps (rarely needed)."""


# -- validation of a registered class -------------------------------------------------

# The shape of a PEP 440 specifier set (">=1.3,<2", "~=2.0", "==3.*"), checked
# at registration without importing packaging (~3 ms); packaging evaluates it
# when the framework is imported.
_SPECIFIERS = re.compile(
    r"^\s*$|^\s*(~=|===|==|!=|<=|>=|<|>)\s*[0-9][0-9A-Za-z.*+!_-]*\s*"
    r"(,\s*(~=|===|==|!=|<=|>=|<|>)\s*[0-9][0-9A-Za-z.*+!_-]*\s*)*$"
)


def _validate(cls: Any) -> None:
    def fail(what: str) -> None:
        where = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)!s}"
        raise IntegrationError(f"invalid integration {where}: {what}")

    if not (isinstance(cls, type) and issubclass(cls, Integration)):
        fail(f"expected a subclass of autolog.Integration, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        fail(f"'name' must be an identifier-like string, got {name!r}")
    modules = getattr(cls, "modules", None)
    if isinstance(modules, str):
        fail(f"'modules' must be a tuple of module names, got the string {modules!r}")
    if not modules or not all(isinstance(m, str) and m for m in modules):
        fail(f"'modules' must be a non-empty tuple of module names, got {modules!r}")
    if cls.patch is Integration.patch:
        fail("it does not implement patch(self, patcher, module)")
    if cls.distribution is not None and not isinstance(cls.distribution, str):
        fail(f"'distribution' must be a string or None, got {cls.distribution!r}")
    if not isinstance(cls.supported_versions, str) or not _SPECIFIERS.match(cls.supported_versions):
        fail(f"'supported_versions' is not a PEP 440 specifier: {cls.supported_versions!r}")
    if not isinstance(cls.options, Mapping):
        fail(f"'options' must be a mapping of option name to default, got {cls.options!r}")
    clash = sorted(set(cls.options) & set(COMMON_OPTIONS))
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


_registry = _Registry()


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


def register(cls: type[Integration]) -> type[Integration]:
    """Register an integration class at run time; usable as a class decorator.

    Raises :class:`~autolog.errors.IntegrationError` naming the class and what
    is wrong with it. Then ``autolog()`` (or ``autolog(cls.name)``) enables it.
    """
    _registry.discover()
    _registry.add(cls)
    return cls


def integration_classes() -> list[type[Integration]]:
    """Every registered integration class: built-in, entry-point and run-time ones."""
    _registry.discover()
    with _registry.lock:
        return list(_registry.classes.values())


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
    with _registry.lock:
        state = _registry.states.get(name)
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
    for other in _registry.states.values():
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


def autolog(
    *names: str,
    disable: bool = False,
    exclusive: bool = False,
    silent: bool = False,
    log_models: bool = True,
    log_input_examples: bool = False,
    log_datasets: bool = True,
    extra_tags: Mapping[str, str] | None = None,
    allow_unsupported_versions: bool = False,
    **options: Any,
) -> None:
    """Turn on autologging for every registered integration, or for ``names``.

    Frameworks already imported are patched now; the others when they are
    imported. Calling it again reconfigures; ``disable=True`` removes the
    patches (of all, or of ``names``) and restores the original objects.

    - ``exclusive``: never log into a run the user started;
    - ``silent``: no warnings of ours;
    - ``log_models`` / ``log_input_examples`` / ``log_datasets``: what to log;
    - ``extra_tags``: tags added to every run autolog opens;
    - ``allow_unsupported_versions``: patch frameworks outside the tested range;
    - ``**options``: options declared by the selected integrations
      (e.g. ``max_tuning_runs=10`` for scikit-learn); an option none of them
      declares is a ``TypeError``.

    Example::

        autolog.autolog()                          # everything installed
        autolog.autolog("sklearn", max_tuning_runs=None)
        autolog.autolog("keras", disable=True)
    """
    _registry.discover()
    with _registry.lock:
        known = sorted(_registry.classes)
        unknown = [n for n in names if n not in _registry.classes]
        if unknown:
            raise IntegrationError(
                f"unknown integration(s) {unknown}; registered integrations: {known}"
            )
        selected = [_registry.states[n] for n in (names or known)]
        # An integration that covers another's framework while that one is off
        # (sklearn for XGBoost's estimators) is enabled after it: no re-patching.
        firsts = {s.cls.modules[0] for s in selected}
        selected.sort(key=lambda s: bool(firsts & set(s.cls.modules[1:])), reverse=disable)
        declared = {key for s in selected for key in s.cls.options}
        stray = sorted(set(options) - declared)
        if stray and not disable:
            raise TypeError(
                f"autolog() got option(s) {stray} that none of {[s.cls.name for s in selected]} "
                f"declares; their options: {sorted(declared)}"
            )
        for state in selected:
            if disable:
                _disable(state)
                continue
            own = {
                **state.cls.options,
                **{k: v for k, v in options.items() if k in state.cls.options},
            }
            state.integration.config = IntegrationConfig(
                own,
                exclusive=exclusive,
                silent=silent,
                log_models=log_models,
                log_input_examples=log_input_examples,
                log_datasets=log_datasets,
                extra_tags=extra_tags,
                allow_unsupported_versions=allow_unsupported_versions,
            )
            _enable(state)


def is_enabled(name: str) -> bool:
    """Whether the integration ``name`` is enabled (patched or waiting for its import)."""
    with _registry.lock:
        state = _registry.states.get(name)
        return bool(state and state.enabled and state.problem is None)


# -- status ---------------------------------------------------------------------------


class IntegrationStatus(
    namedtuple(
        "IntegrationStatus",
        "name distribution installed_version supported state reason targets",
    )
):
    """One row of :func:`status`: ``targets`` are the patched ``module.Class.attr`` names."""

    __slots__ = ()


def _installed_version(distribution: str | None) -> str | None:
    if not distribution:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def status() -> list[IntegrationStatus]:
    """One row per registered integration: what it patches and in what state.

    States: ``active`` (patched), ``waiting for import`` (enabled, framework
    not imported yet), ``not installed``, ``unsupported version``,
    ``disabled``, ``failed`` (with the reason).
    """
    import importlib.util

    _registry.discover()
    rows = []
    with _registry.lock:
        for name, error in sorted(_registry.load_errors.items()):
            rows.append(IntegrationStatus(name, None, None, "", FAILED, error, ()))
        for name, state in sorted(_registry.states.items()):
            cls = state.cls
            installed = _installed_version(cls.distribution)
            reason = ""
            if state.problem is not None:
                current, reason = state.problem
            elif importlib.util.find_spec(cls.modules[0].split(".")[0]) is None:
                current = NOT_INSTALLED
            elif not state.enabled:
                current = DISABLED
            elif state.patched:
                current = ACTIVE
            else:
                current = WAITING
            rows.append(
                IntegrationStatus(
                    name,
                    cls.distribution,
                    installed,
                    cls.supported_versions or "any",
                    current,
                    reason,
                    tuple(state.patcher.targets),
                )
            )
    return rows


def _reset_for_tests() -> None:
    """Disable every integration and forget run-time registrations (tests only)."""
    from autolog import patching

    with _registry.lock:
        for state in _registry.states.values():
            if state.enabled or state.patcher.records:
                _disable(state)
        for name in set(_registry.classes) - _registry.from_entry_points:
            del _registry.classes[name]
            del _registry.states[name]
    patching._warned.clear()
