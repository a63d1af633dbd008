"""Integrations as plugins: ``register()``, ``autolog()`` and ``status()``.

An integration is a small class (compare OpenTelemetry's ``BaseInstrumentor``);
its authors import everything from :mod:`autolog.plugin`::

    class ToyIntegration(plugin.Integration):
        name = "toy"                      # what users pass to autolog("toy")
        modules = ("toyml",)              # patch() runs when this module is imported
        distribution = "toyml"            # its version is checked before patching
        supported_versions = ">=1.0,<3"   # PEP 440
        options = {"log_every_epoch": True}   # autolog(log_every_epoch=False)

        def patch(self, patcher, module):
            patcher.wrap(module, "Trainer.train", self.on_train)

        def on_train(self, call):         # a handler: see autolog.plugin
            plugin.log_params({"epochs": call.argument("epochs")}, call.run_id)
            yield

It is registered through the entry-point group ``autolog.integrations`` (what
our built-ins do, in our own ``pyproject.toml``) or at run time with
:func:`register`. Registration validates the class and names what is wrong.

``autolog()`` installs post-import hooks (wrapt), so a framework is patched
when it is imported, before or after ``autolog()``, in any order (rule 3).
The registry behind these functions (discovery, validation, the hooks,
enabling and disabling) is :mod:`autolog._registry`.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping

from autolog._base import (
    COMMON_OPTIONS,
    Integration,
    IntegrationConfig,
    Option,
    check_options,
    option_defaults,
)
from autolog._registry import (
    ACTIVE,
    DISABLED,
    FAILED,
    NOT_INSTALLED,
    WAITING,
    disable_integration,
    enable_integration,
)
from autolog._registry import registry as _registry
from autolog.errors import IntegrationError

# typing / dataclasses stay out of autolog()'s import cost; type checkers honour this.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Integration",
    "IntegrationConfig",
    "IntegrationStatus",
    "Option",
    "autolog",
    "integration_classes",
    "register",
    "status",
]


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
    _registry.load_all()
    with _registry.lock:
        return list(_registry.classes.values())


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
    log_system_metrics: bool | None = None,
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
    - ``log_system_metrics``: sample CPU / memory / GPU as ``system/*`` metrics
      of every run started from now on (None: leave the current setting);
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
        known = sorted(_registry.states)
        unknown = [n for n in names if n not in _registry.states]
        if unknown:
            raise IntegrationError(
                f"unknown integration(s) {unknown}; registered integrations: {known}"
            )
        selected = [_registry.states[n] for n in (names or known)]
        if options:  # their declarations are in the classes
            selected = [s for s in selected if _registry.try_load(s, stacklevel=4)]
        # An integration that covers another's framework while that one is off
        # (sklearn covers XGBoost's estimators) is enabled after it and
        # disabled before it: no patching that is undone at once.
        owned = {m for s in selected for m in s.modules}
        selected.sort(key=lambda s: bool(owned & set(s.covers)), reverse=disable)
        if disable:
            for state in selected:
                disable_integration(state)
            return
        common = {
            "exclusive": exclusive,
            "silent": silent,
            "log_models": log_models,
            "log_input_examples": log_input_examples,
            "log_datasets": log_datasets,
            "extra_tags": extra_tags,
            "allow_unsupported_versions": allow_unsupported_versions,
        }
        _check_values(selected, common, options)
        if log_system_metrics is not None:
            from autolog import provenance

            provenance.configure(system_metrics=log_system_metrics)
        for state in selected:
            if state.loaded:
                own = {
                    **option_defaults(state.cls.options),
                    **{k: v for k, v in options.items() if k in state.cls.options},
                }
                state.integration.config = IntegrationConfig(own, **common)
            state.common = common  # the config of a class loaded later
            enable_integration(state)


def _check_values(selected: list[Any], common: dict[str, Any], options: dict[str, Any]) -> None:
    """Every option value against its declaration, before anything changes:
    a stray name is a TypeError, a wrong type an InvalidParameterError naming
    the option, the integration and the expected type. The classes of
    ``selected`` are loaded when there are ``options``."""
    declared = {key for s in selected if options for key in s.cls.options}
    stray = sorted(set(options) - declared)
    if stray:
        raise TypeError(
            f"autolog() got option(s) {stray} that none of {[s.name for s in selected]} "
            f"declares; their options: {sorted(declared)}"
        )
    check_options("autolog", COMMON_OPTIONS, common)
    if common["extra_tags"] is not None:
        bad = {k: v for k, v in common["extra_tags"].items() if not isinstance(k, str)}
        if bad:
            from autolog.errors import InvalidParameterError

            raise InvalidParameterError(f"autolog(): extra_tags keys must be strings, got {bad}")
    for state in selected if options else ():
        check_options(state.name, state.cls.options, options)


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

    _registry.load_all()
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
            elif not any(importlib.util.find_spec(m.split(".")[0]) for m in cls.modules):
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
    """Disable every integration and forget run-time registrations (tests only).
    Disabling is what clears an integration's state (its ``unpatch``)."""
    from autolog import _report, _runs

    with _registry.lock:
        for state in _registry.states.values():
            if state.enabled or (state.loaded and state.patcher.records):
                disable_integration(state)
        for name in set(_registry.classes) - _registry.from_entry_points:
            _registry.remove(name)
    _report._warned.clear()
    _runs._reset_for_tests()
