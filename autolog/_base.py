"""What an integration declares: the :class:`Integration` base class, its
:class:`Option` declarations and the :class:`IntegrationConfig` it runs with.

Leaf definitions: the registry (:mod:`autolog._registry`) validates classes
against them and :mod:`autolog.integration` (``autolog()``) checks option
values with them; neither is imported here. Authors take these names from
:mod:`autolog.plugin`.
"""

from __future__ import annotations

from collections.abc import Mapping

from autolog.errors import InvalidParameterError

# typing / dataclasses stay out of autolog()'s import cost; type checkers honour this.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import types
    from typing import Any, ClassVar

    from autolog.flavors import Flavor
    from autolog.patching import Patcher

__all__ = [
    "COMMON_OPTIONS",
    "RESERVED_OPTION_NAMES",
    "Integration",
    "IntegrationConfig",
    "Option",
    "as_option",
    "check_options",
    "option_defaults",
]


class Option:
    """An integration option with its type, for ``Integration.options``::

        options = {
            "max_tuning_runs": Option(5, int, allow_none=True),
            "serialization_format": Option("pickle", str, choices=("pickle", "skops")),
            "log_epochs": True,          # a plain default: its type is the default's
        }

    ``autolog(...)`` checks every value passed against it and raises
    :class:`~autolog.errors.InvalidParameterError` naming the option, the
    integration and the expected type. ``types``: a type or a tuple of them;
    None takes the default's type (a float also accepts an int; a default of
    None accepts anything). ``allow_none``: None is a valid value too
    (default: when the default is None).
    """

    __slots__ = ("allow_none", "choices", "default", "doc", "types")

    def __init__(
        self,
        default: Any,
        types: type | tuple[type, ...] | None = None,
        *,
        allow_none: bool | None = None,
        choices: tuple[Any, ...] | None = None,
        doc: str = "",
    ):
        self.default = default
        if types is None:
            types = _inferred_types(default)
        self.types = types if isinstance(types, tuple) else (types,)
        self.allow_none = default is None if allow_none is None else allow_none
        self.choices = tuple(choices) if choices is not None else None
        self.doc = doc

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this option, or None."""
        if value is None and self.allow_none:
            return None
        if self.types:
            wrong_bool = isinstance(value, bool) and bool not in self.types
            if wrong_bool or not isinstance(value, self.types):
                expected = " or ".join(t.__name__ for t in self.types)
                if self.allow_none:
                    expected += " or None"
                return f"must be {expected}, got {type(value).__name__} {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {list(self.choices)}, got {value!r}"
        return None

    def __repr__(self) -> str:
        return f"Option({self.default!r}, {self.types!r}, allow_none={self.allow_none})"


def _inferred_types(default: Any) -> tuple[type, ...]:
    if default is None:
        return ()  # anything
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, float):
        return (int, float)
    if isinstance(default, Mapping):
        return (Mapping,)
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    return (type(default),)


# Options every integration has; autolog() takes them as keywords.
COMMON_OPTIONS: dict[str, Option] = {
    "exclusive": Option(False),
    "silent": Option(False),
    "log_models": Option(True),
    "log_input_examples": Option(False),
    "log_datasets": Option(True),
    "extra_tags": Option(None, Mapping, allow_none=True),
    "allow_unsupported_versions": Option(False),
}
#: names an integration's own option cannot have: autolog()'s keywords
RESERVED_OPTION_NAMES = frozenset({*COMMON_OPTIONS, "disable", "names"})


def as_option(declared: Any) -> Option:
    return declared if isinstance(declared, Option) else Option(declared)


def option_defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: default}`` of declared options (plain defaults or :class:`Option`)."""
    return {k: v.default if isinstance(v, Option) else v for k, v in options.items()}


def check_options(integration: str, declared: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Raise InvalidParameterError for the first value of ``values`` that its
    declaration in ``declared`` refuses, naming the option and the integration."""
    for key, value in values.items():
        if key in declared:
            problem = as_option(declared[key]).problem(value)
            if problem is not None:
                raise InvalidParameterError(
                    f"autolog(): option {key!r} of the {integration!r} integration {problem}"
                )


class IntegrationConfig:
    """The settings one integration runs with: the common options of
    ``autolog()`` and the integration's declared options, all as attributes
    (``config.log_models``, ``config.max_tuning_runs``). Replaced, never changed,
    when ``autolog()`` reconfigures, so a running call sees one consistent set."""

    def __init__(self, options: Mapping[str, Any] | None = None, **common: Any):
        unknown = set(common) - set(COMMON_OPTIONS)
        if unknown:
            raise TypeError(f"unknown common option(s) {sorted(unknown)}")
        own = option_defaults(options or {})
        values = {**option_defaults(COMMON_OPTIONS), **common, **own}
        values["extra_tags"] = dict(values["extra_tags"] or {})
        self.__dict__.update(values)
        self.__dict__["options"] = own

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("IntegrationConfig is read-only; call autolog() to reconfigure")

    def __repr__(self) -> str:
        return f"IntegrationConfig({self.__dict__!r})"


class Integration:
    """Base class of every integration, built-in or third-party.

    Set the class attributes and implement :meth:`patch`; everything else
    (version checks, import hooks, run handling, error isolation, unpatching)
    is the framework's job. Handlers are methods named ``on_<something>``:
    registration checks that each is a generator function.
    """

    #: the name users pass to ``autolog(name)``
    name: ClassVar[str]
    #: the framework's modules: each import of one triggers :meth:`patch` (once per module)
    modules: ClassVar[tuple[str, ...]]
    #: top-level modules of *other* integrations' frameworks whose classes this
    #: one also patches while their own integration is not enabled (scikit-learn
    #: covers XGBoost's and LightGBM's estimators): :meth:`patch` is called for
    #: them then, and the registry removes those wraps while the owner is enabled
    covers: ClassVar[tuple[str, ...]] = ()
    #: the distribution whose installed version is checked (None: no check)
    distribution: ClassVar[str | None] = None
    #: PEP 440 specifiers the integration supports ("" = any version)
    supported_versions: ClassVar[str] = ""
    #: the integration's own options: name -> default, or an :class:`Option`
    options: ClassVar[Mapping[str, Any]] = {}
    #: model flavors this integration provides (see autolog.models)
    flavors: ClassVar[tuple[type[Flavor], ...]] = ()

    def __init__(self) -> None:
        self.config = IntegrationConfig(self.options)

    def patch(self, patcher: Patcher, module: types.ModuleType) -> None:
        """Install the wraps for ``module`` (one of :attr:`modules` or
        :attr:`covers`), just imported. It must wrap something (or register a
        clean-up): a patch that installs nothing is an IntegrationError."""
        raise NotImplementedError

    def unpatch(self) -> None:
        """Extra clean-up after the patcher removed the wraps: forget what the
        integration remembers (state kept on the instance), remove hooks."""
