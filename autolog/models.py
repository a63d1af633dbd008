"""Models: ``log_model`` / ``load_model`` for every framework, one API.

``autolog.log_model(model)`` saves any model as a folder artifact of the
active run (starting one if none is active) and returns a :class:`ModelInfo`
whose ``model_uri`` (``runs:/<run_id>/<name>``) ``autolog.load_model`` takes
back, in this process or a fresh one::

    info = autolog.log_model(model, "model", input_example=X[:5])
    same = autolog.load_model(info.model_uri)
    same.predict(X)

**Which format.** The *flavor* of a model is the integration that knows its
framework: scikit-learn, XGBoost, LightGBM, Keras, torch, Lightning each
register one (in their ``autolog.integrations.<fw>`` module, listed in
``Integration.flavors``), a third-party package registers its own the same
way, or calls :func:`register_flavor`. A flavor is asked whether it handles
a model only when its framework is already imported, highest ``priority``
first. Any other object, a custom class with a ``predict`` method included,
is saved with the ``python`` flavor: cloudpickle, which stores classes defined
in ``__main__`` (a script, a notebook) by value, so they load in a fresh
process that does not have that script.

**The folder.** ``<name>/model.json`` is the metadata (plain JSON):
``format_version`` (1), ``flavor``, ``framework`` (distribution, version), ``python_version``,
``autolog_version``, ``run_id``, ``artifact_path``, ``created_ms``,
``files`` (what the flavor wrote, relative to the folder), ``requirements``
(``dist==version`` from ``importlib.metadata``), ``signature`` (see
:mod:`autolog.signature`), ``input_example`` (the file name of
``input_example.json``, or null) and ``flavor_metadata`` (what the flavor
needs to load). The flavor's native files sit next to it. ``model.json`` is
written last, so a folder with one is complete.

**Cost.** On the caller's thread ``log_model`` only takes the flavor's
snapshot (the model's bytes) and builds the metadata; the files are written
by the background writer like every other artifact.

.. warning:: Loading a pickled model (the ``python`` flavor, scikit-learn's
   default) runs code chosen by whoever wrote the file. Never load a model
   from a source you do not trust. For scikit-learn, ``skops`` is the safer
   format (``log_model(model, serialization_format="skops")`` where installed).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from autolog.errors import (
    InvalidParameterError,
    MissingDependencyError,
    ModelError,
    ResourceNotFoundError,
)
from autolog.flavors import (
    Flavor,
    ModelSnapshot,
    PythonFlavor,
    distribution_version,
    flavor_classes,
    flavor_for_model,
    flavor_instance,
    load_pickle,
    pickle_snapshot,
    python_version,
    register_flavor,
    saved_bytes,
    type_name,
    validate_flavor_class,
)
from autolog.model_uri import checked_artifact_path as _checked_artifact_path

# typing, dataclasses and json are not imported here: integrations import
# this module at registration (see autolog.flavors); type checkers honour this.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from autolog.signature import Signature

__all__ = [
    "METADATA_FILE",
    "INPUT_EXAMPLE_FILE",
    "Flavor",
    "ModelInfo",
    "ModelSnapshot",
    "PythonFlavor",
    "distribution_version",
    "flavor_classes",
    "load_input_example",
    "load_model",
    "load_pickle",
    "log_model",
    "pickle_snapshot",
    "read_model_metadata",
    "register_flavor",
    "saved_bytes",
    "validate_flavor_class",
]


def __getattr__(name: str) -> object:
    # Signature and infer_signature live in autolog.signature; re-exported
    # lazily so that importing this module stays cheap for integrations.
    if name in ("Signature", "infer_signature"):
        from autolog import signature

        return getattr(signature, name)
    raise AttributeError(f"module 'autolog.models' has no attribute {name!r}")


METADATA_FILE = "model.json"
INPUT_EXAMPLE_FILE = "input_example.json"
METADATA_FORMAT_VERSION = 1


# -- logging ------------------------------------------------------------------


class ModelInfo:
    """What :func:`log_model` saved: pass ``model_uri`` to :func:`load_model`.

    ``model_uri`` (``runs:/<run_id>/<artifact_path>``), ``flavor``, ``run_id``,
    ``artifact_path`` and ``metadata`` (the content of ``model.json``).
    """

    __slots__ = ("_metadata", "artifact_path", "flavor", "model_uri", "run_id")

    def __init__(
        self,
        model_uri: str,
        flavor: str,
        run_id: str,
        artifact_path: str,
        metadata: dict | Callable[[], dict],
    ):
        self.model_uri = model_uri
        self.flavor = flavor
        self.run_id = run_id
        self.artifact_path = artifact_path
        self._metadata = metadata  # or the function that makes it, when first read

    def __repr__(self) -> str:
        return f"ModelInfo(model_uri={self.model_uri!r}, flavor={self.flavor!r})"

    @property
    def metadata(self) -> dict[str, Any]:
        metadata = self._metadata
        if callable(metadata):  # made once by whoever reads it first: the writer, or you
            metadata = self._metadata = metadata()
        return metadata

    @property
    def signature(self) -> Signature | None:
        from autolog.signature import Signature

        data = self.metadata.get("signature")
        return Signature.from_dict(data) if data else None


def log_model(
    model: Any,
    name: str = "model",
    input_example: Any = None,
    signature: Signature | dict[str, Any] | None = None,
    run_id: str | None = None,
    flavor: str | type[Flavor] | None = None,
    snapshot: ModelSnapshot | None = None,
    **flavor_options: Any,
) -> ModelInfo:
    """Save ``model`` as the folder ``name`` of the run ``run_id`` (default: the
    active run, started if there is none) and return its :class:`ModelInfo`.

    ``flavor`` forces a flavor (its name or class) instead of finding the one
    that handles the model; ``flavor_options`` go to its ``snapshot``. When
    ``signature`` is not given it is inferred from ``input_example`` (inputs
    only: we do not run your model); pass
    ``infer_signature(X, model.predict(X))`` for outputs too.

    ``snapshot``: the :class:`ModelSnapshot` that ``flavor`` (then required)
    already took of ``model``, for an integration that needs the same bytes
    for something else too (XGBoost's feature importance, from a copy of the
    booster); it is stored as is, and ``flavor_options`` are then refused.
    """
    artifact_path = _checked_artifact_path(name)
    if not isinstance(flavor, type):  # a flavor class needs no registry to be used
        _discover_integrations(imported_only=True)
    chosen = flavor_for_model(model, flavor)
    if snapshot is not None:
        if flavor is None or flavor_options or not isinstance(snapshot, ModelSnapshot):
            raise InvalidParameterError(
                "log_model(snapshot=...) takes a ModelSnapshot, with the flavor that took "
                "it and no flavor options"
            )
    else:
        snapshot = _take_snapshot(chosen, model, flavor_options)
    return _log_snapshot(model, chosen, snapshot, artifact_path, input_example, signature, run_id)


def _take_snapshot(chosen: Flavor, model: Any, flavor_options: dict[str, Any]) -> ModelSnapshot:
    try:
        snapshot = chosen.snapshot(model, **flavor_options)
    except (ModelError, InvalidParameterError):
        raise
    except TypeError as exc:
        if flavor_options:  # most often an option this flavor does not know
            raise InvalidParameterError(
                f"flavor {chosen.name!r} rejected options {sorted(flavor_options)}: {exc}"
            ) from exc
        raise ModelError(f"flavor {chosen.name!r} cannot save {type_name(model)}: {exc}") from exc
    except Exception as exc:
        raise ModelError(f"flavor {chosen.name!r} cannot save {type_name(model)}: {exc}") from exc
    return snapshot


def _log_snapshot(
    model: Any,
    chosen: Flavor,
    snapshot: ModelSnapshot,
    artifact_path: str,
    input_example: Any,
    signature: Any,
    run_id: str | None,
) -> ModelInfo:
    for file_name in (*snapshot.files, *snapshot.deferred):
        if file_name in (METADATA_FILE, INPUT_EXAMPLE_FILE):
            raise ModelError(f"flavor {chosen.name!r} wrote the reserved file name {file_name!r}")
        _checked_artifact_path(file_name)

    files = dict(snapshot.files)
    if input_example is not None or signature is not None:
        # the signature module is imported only by calls that use it (import cost)
        from autolog.signature import coerce_signature, infer_signature, input_example_json

        if input_example is not None:
            files[INPUT_EXAMPLE_FILE] = input_example_json(input_example)
        if signature is not None:
            signature = coerce_signature(signature)
        else:
            try:
                signature = infer_signature(input_example)
            except InvalidParameterError:
                signature = None  # an example we can store but not describe: no signature

    from autolog.tracking import fluent

    run_id = run_id or _active_or_new_run_id(fluent)
    created_ms = time.time_ns() // 1_000_000
    # a flavor's own requirements may read the model: asked now, on this thread
    extra = chosen.requirements(model) if _own_requirements(chosen) else ()

    def metadata() -> dict[str, Any]:
        return {
            "format_version": METADATA_FORMAT_VERSION,
            "flavor": chosen.name,
            "framework": {
                "distribution": chosen.distribution,
                "version": distribution_version(chosen.distribution),
            },
            "python_version": python_version(),
            "autolog_version": _autolog_version(),
            "run_id": run_id,
            "artifact_path": artifact_path,
            "created_ms": created_ms,
            "files": sorted({*snapshot.files, *snapshot.deferred}),
            "requirements": _pinned(chosen.distribution, extra),
            "signature": signature.to_dict() if signature is not None else None,
            "input_example": INPUT_EXAMPLE_FILE if input_example is not None else None,
            "flavor_metadata": snapshot.metadata,
        }

    if not _is_json(snapshot.metadata):  # the flavor's part, checked here (the rest is ours)
        raise ModelError(
            f"flavor {chosen.name!r} returned metadata that is not JSON: {snapshot.metadata!r}"
        )
    info = ModelInfo(
        f"runs:/{run_id}/{artifact_path}", chosen.name, run_id, artifact_path, metadata
    )
    encoded: Any = functools.partial(_encoded, info)
    deferred = snapshot.deferred
    if not _writer_serialises():
        encoded = encoded()
        if deferred:
            files.update({name: make() for name, make in deferred.items()})
            deferred = {}
    for file_name, data in files.items():
        fluent.log_bytes(data, f"{artifact_path}/{file_name}", run_id=run_id)
    # model.json goes last: the writer keeps order, so a reader that finds it
    # finds every file it names (it is not written when a deferred one failed).
    if deferred:
        later = _DeferredFiles(chosen.name, deferred)
        for file_name in deferred:
            fluent.log_bytes(later.maker(file_name), f"{artifact_path}/{file_name}", run_id=run_id)
        fluent.log_bytes(later.then(encoded), f"{artifact_path}/{METADATA_FILE}", run_id=run_id)
    else:
        fluent.log_bytes(encoded, f"{artifact_path}/{METADATA_FILE}", run_id=run_id)
    return info


def _encoded(info: ModelInfo) -> bytes:
    """model.json's text: the metadata, one key a line (made on the writer thread:
    json's indenting encoder is pure Python)."""
    import json

    return json.dumps(info.metadata, indent=1, sort_keys=False).encode()


def _is_json(value: Any) -> bool:
    """Whether json.dumps takes ``value`` (a walk: cheaper than encoding it)."""
    if value is None or type(value) in (str, int, float, bool):
        return True
    if isinstance(value, dict):
        return all(_is_json_key(k) and _is_json(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    return isinstance(value, (str, int, float))  # their subclasses encode as their bases


def _is_json_key(key: Any) -> bool:
    return key is None or isinstance(key, (str, int, float))  # bool is an int


def _own_requirements(flavor: Flavor) -> bool:
    return type(flavor).requirements is not Flavor.requirements


def _writer_serialises() -> bool:
    """Whether ``log_bytes`` takes a function, called on the writer thread."""
    from autolog.tracking import fluent_artifacts

    return getattr(fluent_artifacts, "DEFERRED_BYTES", False)


class _DeferredFiles:
    """A snapshot's deferred files, serialised on the writer thread: each once
    (a retried write reuses the bytes), and ``model.json`` only when all were."""

    __slots__ = ("done", "failed", "flavor", "makers")

    def __init__(self, flavor: str, makers: dict[str, Any]):
        self.flavor = flavor
        self.makers = makers
        self.done: dict[str, bytes] = {}
        self.failed: dict[str, str] = {}

    def maker(self, name: str) -> Any:
        def make() -> bytes:
            if name not in self.done:
                try:
                    data = self.makers[name]()
                    if not isinstance(data, (bytes, bytearray, memoryview)):
                        raise TypeError(f"it returned {type(data).__name__}, not bytes")
                except Exception as exc:
                    # a ModelError, never an OSError: the writer would retry it forever
                    self.failed[name] = f"{type(exc).__name__}: {exc}"
                    raise ModelError(
                        f"flavor {self.flavor!r} could not serialise {name!r}: {exc}"
                    ) from None
                self.done[name] = bytes(data)
            return self.done[name]

        return make

    def then(self, encoded: Any) -> Any:
        def metadata() -> bytes:
            missing = [name for name in self.makers if name not in self.done]
            if missing:
                reasons = "; ".join(f"{n}: {self.failed.get(n, 'not written')}" for n in missing)
                raise ModelError(f"model.json not written: its files failed ({reasons})")
            return encoded() if callable(encoded) else encoded

        return metadata


def _active_or_new_run_id(fluent: Any) -> str:
    run = fluent.active_run()
    if run is None:  # like every log_* call: start a run, left open for the user
        run = fluent.start_run()
    return run.info.run_id


def _pinned(distribution: str, extra: Any) -> list[str]:
    """The model's requirements: its flavor's distribution and ``extra``, pinned
    to their installed versions."""
    pinned = []
    for dist in dict.fromkeys([distribution, *extra]):
        version = distribution_version(dist)
        pinned.append(f"{dist}=={version}" if version else dist)
    return pinned


# -- loading ------------------------------------------------------------------


def load_model(model_uri: str) -> Any:
    """The native model saved at ``model_uri``, ready to ``predict``.

    ``model_uri``: ``runs:/<run_id>/<name>`` (the ``ModelInfo.model_uri``), a
    local folder, or an artifact URI (``file:///...``, or any URL the
    artifact store reads). Raises :class:`MissingDependencyError` naming the
    distribution when the model's framework is not installed,
    :class:`ResourceNotFoundError` when there is no model there, and
    :class:`InvalidParameterError` for a malformed URI.

    Loading a pickled model runs code: never load models from untrusted sources.
    """
    from autolog.model_uri import local_model_dir

    with local_model_dir(model_uri) as path:
        metadata = _read_metadata(path, model_uri)
        flavor_class = _loadable_flavor_class(metadata, model_uri)
        try:
            return flavor_instance(flavor_class).load(path, metadata.get("flavor_metadata", {}))
        except (ModelError, ImportError):
            raise
        except Exception as exc:
            raise ModelError(
                f"flavor {flavor_class.name!r} could not load the model at {model_uri}: {exc}"
            ) from exc


def read_model_metadata(model_uri: str) -> dict[str, Any]:
    """The content of the model's ``model.json`` (no framework is imported)."""
    from autolog.model_uri import local_model_dir

    with local_model_dir(model_uri) as path:
        return _read_metadata(path, model_uri)


def load_input_example(model_uri: str) -> Any:
    """The input example saved with the model (numpy arrays and pandas frames
    rebuilt as such), or None when it was logged without one."""
    from autolog.model_uri import local_model_dir

    with local_model_dir(model_uri) as path:
        name = _read_metadata(path, model_uri).get("input_example")
        if not name:
            return None
        import json

        from autolog.signature import parse_input_example

        return parse_input_example(json.loads((path / name).read_text()))


def _read_metadata(path: Path, model_uri: str) -> dict[str, Any]:
    file = path / METADATA_FILE
    if not file.is_file():
        raise ResourceNotFoundError(f"no model at {model_uri}: {file} does not exist")
    import json

    try:
        metadata = json.loads(file.read_text())
    except ValueError as exc:
        raise ModelError(f"model metadata {file} is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict) or "flavor" not in metadata:
        raise ModelError(f"model metadata {file} has no 'flavor'")
    return metadata


def _loadable_flavor_class(metadata: dict[str, Any], model_uri: str) -> type[Flavor]:
    name = metadata["flavor"]
    framework = metadata.get("framework") or {}
    distribution = framework.get("distribution") or name
    saved_with = f"{distribution}=={framework['version']}" if framework.get("version") else ""
    hint = f" (saved with {saved_with}; pip install {saved_with})" if saved_with else ""
    _discover_integrations()
    known = {cls.name: cls for cls in flavor_classes()}
    flavor_class = known.get(name)
    if flavor_class is None:
        raise MissingDependencyError(
            f"the model at {model_uri} has flavor {name!r}, which no installed integration "
            f"provides; it needs the distribution {distribution!r}{hint}"
        )
    if distribution_version(flavor_class.distribution) is None:
        raise MissingDependencyError(
            f"the model at {model_uri} (flavor {name!r}) needs the distribution "
            f"{flavor_class.distribution!r}, which is not installed{hint}"
        )
    return flavor_class


# -- small helpers ------------------------------------------------------------


def _discover_integrations(imported_only: bool = False) -> None:
    """Register the installed integrations, whose flavors the registry hands to
    :mod:`autolog.flavors`: a fresh process that only loads a model knows its
    flavor too (``imported_only``: the integrations of the frameworks imported
    by now, enough to find the flavor of a model object)."""
    from autolog._registry import registry

    registry.load_all(imported_only)


def _autolog_version() -> str:
    from autolog import __version__

    return __version__
