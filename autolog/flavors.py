"""Flavors: how the models of one framework are saved and loaded, and which one a model gets.

A flavor is a small class (see :class:`Flavor`); integrations list theirs in
``Integration.flavors``, anyone else calls :func:`register_flavor`.
:func:`autolog.models.log_model` asks the flavors whose framework is
imported, highest ``priority`` first, and falls back to :class:`PythonFlavor`
(cloudpickle). The helpers here (:func:`pickle_snapshot`, :func:`load_pickle`,
:func:`saved_bytes`) keep the framework flavors short.

Loading a pickle runs code chosen by whoever wrote it: never load a model
from a source you do not trust.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from autolog.errors import IntegrationError, InvalidParameterError, ModelError

# Integrations import this module when they are registered, so it avoids
# typing and dataclasses (several ms on a bare interpreter); type checkers
# honour this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar

__all__ = [
    "Flavor",
    "ModelSnapshot",
    "PythonFlavor",
    "distribution_version",
    "flavor_classes",
    "flavor_for_model",
    "flavor_instance",
    "flavor_named",
    "load_pickle",
    "pickle_snapshot",
    "register_flavor",
    "saved_bytes",
    "validate_flavor_class",
]


class ModelSnapshot:
    """What a flavor took from a model on the caller's thread.

    ``files``: file name (relative, POSIX) -> bytes, written into the model
    folder by the background writer; ``metadata``: flavor-specific entries
    (JSON-serialisable) stored in the model's metadata file (e.g. the class
    to rebuild, the native format) and handed back, unchanged, to
    :meth:`Flavor.load`.

    ``deferred``: file name -> a function of no arguments that returns the
    file's bytes, called after ``log_model`` returned, by the writer thread
    (or by a ``flush()`` that drains the queue on its caller's thread): the
    costly part of a serialisation (compressing, archiving, encoding), handed
    over so that the training thread does not wait for it. The function must only use what the
    flavor copied from the model when it took the snapshot (never the live
    model, which training may change meanwhile). What it raises fails the
    model's files like a write error (``flush()`` raises it) and its
    ``model.json`` is not written, so a half-written model never loads.
    """

    __slots__ = ("deferred", "files", "metadata")

    def __init__(
        self,
        files: dict[str, bytes],
        metadata: dict[str, Any] | None = None,
        deferred: dict[str, Callable[[], bytes]] | None = None,
    ):
        self.files = files
        self.metadata = {} if metadata is None else metadata
        self.deferred = {} if deferred is None else deferred

    def all_files(self) -> dict[str, bytes]:
        """Every file's bytes, the deferred ones serialised now (on this thread)."""
        return {**self.files, **{name: make() for name, make in self.deferred.items()}}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelSnapshot):
            return NotImplemented
        return (self.files, self.metadata, self.deferred) == (
            other.files,
            other.metadata,
            other.deferred,
        )

    def __repr__(self) -> str:
        sizes = {name: len(data) for name, data in self.files.items()}
        later = f", deferred={sorted(self.deferred)}" if self.deferred else ""
        return f"ModelSnapshot(files={sizes} bytes{later}, metadata={self.metadata!r})"


class Flavor:
    """How to save and load the models of one framework.

    Subclasses set the class attributes and implement the three methods. The
    framework is never imported to *decide*: :meth:`handles` is only asked
    when ``module`` is already in ``sys.modules``. Instances are created
    with no arguments and reused.
    """

    #: stored in the metadata as the model's flavor, e.g. "sklearn"
    name: ClassVar[str]
    #: the PyPI distribution, for requirements and MissingDependencyError
    distribution: ClassVar[str]
    #: top-level module that must be imported for a model of ours to exist
    module: ClassVar[str]
    #: when several flavors handle a model the highest priority wins
    #: (XGBoost's sklearn-API models are sklearn estimators too)
    priority: ClassVar[int] = 0

    def handles(self, model: Any) -> bool:
        raise NotImplementedError

    def snapshot(self, model: Any, **options: Any) -> ModelSnapshot:
        """Serialise ``model`` to bytes, consistently, as fast as possible: what
        must be read from the live model is read here; what can be computed
        from that copy later goes into ``ModelSnapshot.deferred``."""
        raise NotImplementedError

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        """Rebuild the native model from the folder ``path``; ``metadata`` is
        the ``ModelSnapshot.metadata`` this flavor returned when saving."""
        raise NotImplementedError

    def requirements(self, model: Any) -> list[str]:
        """Distributions the model needs besides ``distribution`` (names only)."""
        return []


# -- helpers for flavor authors ---------------------------------------------


def pickle_snapshot(
    model: Any, file_name: str = "model.pkl", *, by_value: tuple[Any, ...] = ()
) -> ModelSnapshot:
    """A snapshot holding ``model`` pickled with cloudpickle, for flavors without a
    native format (or as their fallback); :func:`load_pickle` reads it back.

    ``by_value``: modules (or their names) whose classes and functions are
    stored inside the pickle instead of by reference, for code that the
    loading process will not have (classes in ``__main__`` always are).
    """
    import cloudpickle

    registered = _register_by_value(cloudpickle, by_value)
    try:
        data = cloudpickle.dumps(model)
    except Exception as exc:
        raise ModelError(f"cannot pickle {type_name(model)}: {exc}") from exc
    finally:
        for module_name in registered:
            cloudpickle.unregister_pickle_by_value(sys.modules[module_name])
    return ModelSnapshot(
        {file_name: data},
        {"pickled_file": file_name, "serializer": "cloudpickle", "class": type_name(model)},
    )


def saved_bytes(save: Callable[[Path], Any], file_name: str) -> bytes:
    """The bytes that ``save(path)`` writes to a file named ``file_name``, for
    frameworks that save only to a path (``booster.save_model(path)``,
    ``keras_model.save(path)``); the temporary folder is removed after."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="autolog-snapshot-") as tmp:
        path = Path(tmp) / file_name
        save(path)
        return path.read_bytes()


def load_pickle(path: Path, metadata: dict[str, Any]) -> Any:
    """The object a :func:`pickle_snapshot` stored in the model folder ``path``.

    This runs code from the file: only load models you trust.
    """
    import cloudpickle

    with open(Path(path) / metadata.get("pickled_file", "model.pkl"), "rb") as file:
        return cloudpickle.load(file)


def _register_by_value(cloudpickle: Any, modules: tuple[Any, ...]) -> list[str]:
    """Register ``modules`` for pickling by value; return those we registered (to undo)."""
    already = set(cloudpickle.list_registry_pickle_by_value())
    registered = []
    for module in modules:
        name = module if isinstance(module, str) else getattr(module, "__name__", None)
        if name not in sys.modules:
            raise InvalidParameterError(f"by_value module {module!r} is not imported")
        if name not in already:
            cloudpickle.register_pickle_by_value(sys.modules[name])
            registered.append(name)
    return registered


class PythonFlavor(Flavor):
    """Any Python object, cloudpickled: the fallback when no framework flavor handles it.

    Option: ``pickle_by_value=(module, ...)`` also stores the code of those
    modules (e.g. a ``my_model.py`` next to your script) inside the file.
    """

    name = "python"
    distribution = "cloudpickle"
    module = "builtins"
    priority = -(10**9)  # asked last, and answers yes to everything

    def handles(self, model: Any) -> bool:
        return True

    def requirements(self, model: Any) -> list[str]:
        # The distribution named like the model's top-level package, when one
        # is installed (statsmodels, prophet, ...): a cheap, cached lookup,
        # never a scan of every installed distribution.
        root = type(model).__module__.partition(".")[0]
        if root in ("__main__", "builtins") or distribution_version(root) is None:
            return []
        return [root]

    def snapshot(self, model: Any, pickle_by_value: tuple[Any, ...] = ()) -> ModelSnapshot:
        snap = pickle_snapshot(model, by_value=tuple(pickle_by_value))
        snap.metadata["python_version"] = python_version()
        return snap

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        saved = metadata.get("python_version", "")
        if saved.split(".")[:2] != python_version().split(".")[:2]:
            # cloudpickle stores __main__ classes as bytecode, which is not
            # portable across Python minor versions.
            warnings.warn(
                f"model pickled with Python {saved}, loading with {python_version()}: "
                "it may fail or misbehave",
                stacklevel=3,
            )
        return load_pickle(path, metadata)


_versions: dict[str, str | None] = {}


def distribution_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None; read once per process
    from ``importlib.metadata`` (a directory scan, a few hundred microseconds)."""
    if distribution not in _versions:
        import importlib.metadata  # 10+ ms to import: only when a model is logged or loaded

        try:
            _versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            _versions[distribution] = None
    return _versions[distribution]


# -- the flavor registry ----------------------------------------------------

_registered: list[type[Flavor]] = []
_instances: dict[type[Flavor], Flavor] = {}


def register_flavor(flavor_class: type[Flavor]) -> type[Flavor]:
    """Make ``flavor_class`` available to log_model/load_model (usable as a decorator).

    Flavors listed in a registered integration's ``flavors`` need no call.
    Raises :class:`IntegrationError` quoting what is wrong with the class.
    """
    validate_flavor_class(flavor_class)
    for other in flavor_classes():
        if other.name == flavor_class.name and other is not flavor_class:
            raise IntegrationError(
                f"flavor name {flavor_class.name!r} of {qualname(flavor_class)} is already "
                f"used by {qualname(other)}"
            )
    if flavor_class not in _registered:
        _registered.append(flavor_class)
    return flavor_class


def validate_flavor_class(flavor_class: Any) -> None:
    """Raise :class:`IntegrationError` quoting what is wrong with a flavor class."""
    if not (isinstance(flavor_class, type) and issubclass(flavor_class, Flavor)):
        raise IntegrationError(f"{flavor_class!r} is not a subclass of autolog.models.Flavor")
    for attr in ("name", "distribution", "module"):
        value = getattr(flavor_class, attr, None)
        if not isinstance(value, str) or not value:
            raise IntegrationError(
                f"flavor {qualname(flavor_class)} must set {attr} to a non-empty string, "
                f"got {value!r}"
            )
    for method in ("handles", "snapshot", "load"):
        if getattr(flavor_class, method) is getattr(Flavor, method):
            raise IntegrationError(f"flavor {qualname(flavor_class)} must implement {method}()")


# Flavors of registered integrations, pushed here by the integration registry
# (autolog._registry) when it registers a class: this module never imports it.
_from_integrations: list[type[Flavor]] = []


def add_integration_flavors(flavor_classes: tuple[type[Flavor], ...]) -> None:
    """Called by the integration registry with a registered integration's
    (already validated) ``flavors``."""
    for flavor_class in flavor_classes:
        if flavor_class not in _from_integrations:
            _from_integrations.append(flavor_class)


def remove_integration_flavors(flavor_classes: tuple[type[Flavor], ...]) -> None:
    """The integration that listed ``flavor_classes`` was unregistered."""
    for flavor_class in flavor_classes:
        if flavor_class in _from_integrations:
            _from_integrations.remove(flavor_class)


def flavor_classes() -> list[type[Flavor]]:
    """Every known flavor: those of the registered integrations, then
    :func:`register_flavor`'s, then ``python`` (no duplicates)."""
    seen: dict[type[Flavor], None] = {}
    for flavor_class in (*_from_integrations, *_registered, PythonFlavor):
        seen.setdefault(flavor_class, None)
    return list(seen)


def flavor_instance(flavor_class: type[Flavor]) -> Flavor:
    """The one shared instance of ``flavor_class``."""
    flavor = _instances.get(flavor_class)
    if flavor is None:
        flavor = _instances[flavor_class] = flavor_class()
    return flavor


def flavor_for_model(model: Any, requested: str | type[Flavor] | None = None) -> Flavor:
    """The flavor that saves ``model``: ``requested`` (a name or class) if given,
    else the highest-priority one of an imported framework that handles it,
    else ``python``."""
    if requested is not None:
        if isinstance(requested, type):
            flavor = _instances.get(requested)  # one instance per class, made once checked
            if flavor is None:
                validate_flavor_class(requested)
                flavor = flavor_instance(requested)
            return flavor
        return flavor_instance(flavor_named(requested, purpose="save"))
    # sorted() is stable: among equal priorities the registration order decides
    candidates = sorted(flavor_classes(), key=lambda cls: -cls.priority)
    for flavor_class in candidates:
        # Never import a framework to decide: a model of a framework that is
        # not imported cannot exist in this process.
        if flavor_class is PythonFlavor or flavor_class.module not in sys.modules:
            continue
        flavor = flavor_instance(flavor_class)
        try:
            handled = flavor.handles(model)
        except Exception as exc:
            raise ModelError(
                f"flavor {flavor.name!r} ({qualname(flavor_class)}) failed to decide whether "
                f"it handles a {type_name(model)}: {exc}"
            ) from exc
        if handled:
            return flavor
    return flavor_instance(PythonFlavor)


def flavor_named(name: str, *, purpose: str = "load") -> type[Flavor]:
    """The flavor class called ``name``; InvalidParameterError listing the known ones."""
    for flavor_class in flavor_classes():
        if flavor_class.name == name:
            return flavor_class
    known = ", ".join(sorted(cls.name for cls in flavor_classes()))
    raise InvalidParameterError(f"unknown flavor {name!r} to {purpose} a model; known: {known}")


def type_name(obj: Any) -> str:
    return qualname(type(obj))


def qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def _reset_for_tests() -> None:
    """Forget flavors registered with :func:`register_flavor` and shared instances."""
    _registered.clear()
    _instances.clear()
