"""Keras 3 autologging: ``Model.fit`` with params, per-epoch metrics, early stopping and a model.

``autolog.autolog()`` (or ``autolog.autolog("keras")``) and then, with any
Keras 3 backend (TensorFlow, torch, JAX; ``tf.keras`` is Keras 3 from
TensorFlow 2.16 on)::

    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(X, y, epochs=10, validation_split=0.2)

gives one run per ``fit`` call (or logs into your active run) holding:

- **params**: ``epochs``, ``batch_size`` (32 for arrays when not given; read
  from a ``tf.data`` pipeline, a ``PyDataset``'s or loader's ``batch_size``
  attribute, or the first batch of a generator when Keras itself takes it;
  ``None`` when it cannot be known), ``steps_per_epoch``,
  ``validation_split``, ``initial_epoch``, ``shuffle``, ``has_class_weight``,
  ``has_sample_weight``, ``optimizer`` (class name) and ``optimizer.<key>``
  for its config (``optimizer.learning_rate``, ...), ``loss``, ``metrics``,
  and the settings of the ``EarlyStopping`` (``early_stopping_*``) and
  ``ReduceLROnPlateau`` (``reduce_lr_on_plateau_*``) callbacks you passed;
- **metrics**: every value Keras reports at the end of an epoch (``loss``,
  ``val_loss``, ``accuracy``, ...) at step = epoch, and ``learning_rate``;
  with ``log_every_n_steps=N`` also the running batch values as
  ``batch_<name>`` every N training steps (off by default: it makes Keras
  synchronise every batch);
- **early stopping**: ``stopped_epoch`` (when it stopped training),
  ``restored_epoch`` (the best epoch, when ``restore_best_weights`` put its
  weights back) and ``best_score`` (the best monitored value);
- **artifacts**: ``model_summary.txt`` and, with ``log_models`` (default),
  the trained model as ``model/`` in the native ``.keras`` format, which
  ``autolog.load_model`` (``keras.models.load_model``) reads back.

Our callback is added to a copy of your ``callbacks`` list; your list and
your callback objects are never changed. A ``CallbackList`` you build
yourself is used as is (we do not add to it), so such a fit logs no epoch
metrics. Interrupting ``fit`` (Ctrl-C, or a callback raising
``KeyboardInterrupt``) ends the run KILLED with the epochs done so far.

**Repeated fits in your own run** (fine-tuning: ``fit`` twice inside one
``autolog.start_run()``): a param the run already holds with another value
(``epochs=5`` then ``epochs=2``) keeps its first value and is listed in the
tag ``autolog.skipped_params``, since params are immutable; the metrics of
the second fit continue at its epochs (pass ``initial_epoch`` to keep the
steps increasing) and the model and summary are replaced by the latest.
Without an active run each ``fit`` gets a run of its own.
"""

from __future__ import annotations

import contextlib
import sys
import types
import weakref
from collections.abc import Generator, Iterator
from pathlib import Path

from autolog import plugin
from autolog.plugin import Call, Flavor, ModelSnapshot, Patcher, guard, guarded

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    from typing import Any

__all__ = ["KerasFlavor", "KerasIntegration"]

NAME = "keras"
MODEL_FILE = "model.keras"
# Keras' own default for array inputs (Model.fit docstring).
DEFAULT_ARRAY_BATCH_SIZE = 32

_EARLY_STOPPING_SETTINGS = (
    "monitor",
    "patience",
    "min_delta",
    "mode",
    "baseline",
    "restore_best_weights",
    "start_from_epoch",
)
_REDUCE_LR_SETTINGS = ("monitor", "factor", "patience", "min_delta", "cooldown", "min_lr", "mode")


# -- the callback we inject ------------------------------------------------------
#
# Its classes subclass keras.callbacks.Callback, so they are built on first use
# (importing keras here would break rule 3), as module attributes that a
# pickled callback (Keras and multiprocessing frameworks pickle callbacks)
# unpickles by reference in a process that never ran fit.

_classes = plugin.FrameworkClasses(__name__)
__getattr__ = _classes.module_getattr


def _build_callback() -> type:
    import keras

    class AutologCallback(keras.callbacks.Callback):
        """Logs each epoch's values in one enqueue and the model summary once.

        State: the run id and an option value (picklable). It defines no
        batch hook, which keeps Keras' asynchronous batch dispatch on.
        """

        def __init__(
            self, run_id: str, log_every_n_steps: int | None = None, rate_fixed: bool = False
        ):
            super().__init__()
            self.run_id = run_id
            self.log_every_n_steps = log_every_n_steps
            # True when nothing in this fit can assign the learning rate (see
            # _rate_is_fixed): it is read once, when training begins
            self.rate_fixed = rate_fixed
            self.rate: float | None = None
            # Otherwise, on TensorFlow, what tells whether it was assigned
            # since the last read (see _RateWatch); None: read every epoch.
            self._watch: _RateWatch | None = None

        def __getstate__(self) -> dict[str, Any]:
            state = dict(self.__dict__)
            state["_watch"] = None  # this fit's, in this process
            return state

        @guarded(NAME)
        def on_train_begin(self, logs: Any = None) -> None:
            _log_summary(self.model, self.run_id)
            if self.rate_fixed:
                self.rate = _learning_rate(self.model)
            else:
                self._watch = _RateWatch.start(self.model)

        @guarded(NAME)
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            values = dict(logs) if logs else {}
            # ReduceLROnPlateau / LearningRateScheduler put the rate used in
            # this epoch into the logs; otherwise read the optimizer's (a
            # TensorFlow eager read, ~10 us) unless it cannot have changed.
            if "learning_rate" not in values:
                if not self.rate_fixed:
                    watch = self._watch
                    if watch is None:
                        self.rate = _learning_rate(self.model)
                    else:
                        self.rate = watch.rate(self.model, self.rate)
                rate = self.rate
                if rate is not None:
                    values["learning_rate"] = rate
            plugin.log_epoch_metrics(values, epoch, self.run_id)

        @guarded(NAME)
        def on_train_end(self, logs: Any = None) -> None:
            self.stop_watching()

        def stop_watching(self) -> None:
            watch, self._watch = self._watch, None
            if watch is not None:
                watch.stop()

    return AutologCallback


def _build_batch_callback() -> type:
    class AutologBatchCallback(_classes.get("AutologCallback")):  # type: ignore[misc]
        """Also logs the running batch values every ``log_every_n_steps`` steps."""

        def __init__(
            self, run_id: str, log_every_n_steps: int | None = None, rate_fixed: bool = False
        ):
            super().__init__(run_id, log_every_n_steps, rate_fixed)
            self.steps_done = 0  # training steps of this fit before the current epoch
            self.steps_seen = 0  # training steps of this fit so far

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.steps_done = self.steps_seen

        @guarded(NAME)
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            # ``batch`` is the last step index of the epoch that ran (more
            # than one per call with steps_per_execution > 1).
            previous, self.steps_seen = self.steps_seen, self.steps_done + batch + 1
            every = self.log_every_n_steps or 1
            if logs and self.steps_seen // every > previous // every:
                plugin.log_epoch_metrics(logs, self.steps_seen, self.run_id, prefix="batch_")

    return AutologBatchCallback


_classes.define("AutologCallback", _build_callback)
_classes.define("AutologBatchCallback", _build_batch_callback)


def _callback_class(batch_level: bool) -> type:
    return _classes.get("AutologBatchCallback" if batch_level else "AutologCallback")


# Keras callbacks that never assign the optimizer's learning rate (exact
# classes: a subclass may); any other callback might (a warm-up of the user's)
_RATE_KEEPING = (
    "History",
    "ProgbarLogger",
    "EarlyStopping",
    "ModelCheckpoint",
    "CSVLogger",
    "TerminateOnNaN",
    "TensorBoard",
)


def _rate_is_fixed(model: Any, callbacks: list[Any]) -> bool:
    """Whether the learning rate stays what it is at the start of this fit: a
    variable (not a schedule of the step), Keras' own train step, and only
    callbacks that never assign it."""
    import keras

    optimizer = getattr(model, "optimizer", None)
    try:
        variable = isinstance(optimizer.learning_rate, keras.Variable)
    except AttributeError:
        return False
    if not variable or not _keras_train_step(model):
        return False
    keeping = tuple(getattr(keras.callbacks, name) for name in _RATE_KEEPING)
    return all(type(callback) in keeping for callback in callbacks)


class _RateWatch:
    """Whether the optimizer's learning-rate variable was assigned since the last
    read, in a fit where a callback of the user's might set it (a warm-up).

    Reading the rate is a TensorFlow eager op (~10 to 17 us), more than the
    rest of the epoch's logging; most user callbacks never set it. For the
    fit, the variable's class is a subclass of its own whose only difference
    is that an assignment (``assign``, ``assign_add``, ``assign_sub``, the
    ``learning_rate`` setter and ``set_weights`` all end in
    ``_direct_assign``, given the new value in the variable's dtype) keeps
    the value assigned: the epoch's end takes the rate from it (a float of
    an eager tensor, ~0.5 us) and reads the variable only at the first
    epoch's end, when the optimizer or its rate variable was replaced, or
    once an assignment was traced into a ``tf.function`` during the fit
    (from then on, every epoch). The class is put back when training ends
    (or fails); a copy or pickle of the variable made meanwhile is of its
    own class. Only on TensorFlow, with a rate variable and Keras' own
    ``train_step`` (a custom step may assign the rate inside the compiled
    function, which no Python method sees). What it cannot see: an
    assignment compiled into a ``tf.function`` traced before the fit and
    called during it.
    """

    def __init__(self, optimizer: Any, variable: Any) -> None:
        self.optimizer = optimizer
        self.variable = variable
        self.written = True  # read at the first epoch's end
        self.assigned: Any = None  # the last value assigned (an eager tensor)
        self.traced = False  # an assignment seen while tracing a tf.function
        self.own_class = own = type(variable)
        watch = self

        def _direct_assign(self: Any, value: Any) -> Any:
            result = own._direct_assign(self, value)
            if self is watch.variable:
                watch.saw(value)
            return result

        def __reduce_ex__(self: Any, protocol: Any) -> Any:
            # Copies and pickles are of the variable's own class: made by
            # copyreg._reconstructor (object.__new__(own)), which pickle does not
            # check against the object's class as it does copyreg.__newobj__.
            import copyreg

            reduced = own.__reduce_ex__(self, protocol)
            if isinstance(reduced, tuple) and len(reduced) > 1 and reduced[1] == (type(self),):
                reduced = (copyreg._reconstructor, (own, object, None), *reduced[2:])
            return reduced

        self.watching_class = type(
            own.__name__,
            (own,),
            {
                "__module__": own.__module__,
                "__qualname__": own.__qualname__,
                "_direct_assign": _direct_assign,
                "__reduce_ex__": __reduce_ex__,
                "_autolog_watching": True,
            },
        )
        variable.__class__ = self.watching_class

    @classmethod
    def start(cls, model: Any) -> _RateWatch | None:
        """A watch over ``model``'s rate variable, or None where it cannot watch it."""
        import keras

        if keras.backend.backend() != "tensorflow" or not _keras_train_step(model):
            return None
        optimizer = getattr(model, "optimizer", None)
        try:
            variable = optimizer.learning_rate
        except AttributeError:  # no optimizer, or one without a rate: read as before
            return None
        own = type(variable)
        if not isinstance(variable, keras.Variable) or not hasattr(own, "_direct_assign"):
            return None
        if getattr(own, "_autolog_watching", False):
            return None  # watched already (a fit inside a fit's callback)
        try:
            return cls(optimizer, variable)
        except TypeError:  # a class whose instances cannot change class
            return None

    def saw(self, value: Any) -> None:
        import tensorflow as tf

        self.written = True
        if tf.executing_eagerly():
            self.assigned = value
        else:  # a tf.function assigns it: its later calls run no Python
            self.traced, self.assigned = True, None

    def rate(self, model: Any, last: float | None) -> float | None:
        """The rate now: ``last`` (the previous epoch's) when nothing assigned it."""
        optimizer = model.optimizer
        if (
            self.traced
            or optimizer is not self.optimizer
            or optimizer.learning_rate is not self.variable
        ):
            return _learning_rate(model)
        if not self.written:
            return last
        assigned, self.assigned, self.written = self.assigned, None, False
        if assigned is None:  # the first epoch's end
            return _learning_rate(model)
        try:
            return plugin.numeric(assigned)
        except (TypeError, ValueError):
            return _learning_rate(model)

    def stop(self) -> None:
        if type(self.variable) is self.watching_class:
            self.variable.__class__ = self.own_class


def _keras_train_step(model: Any) -> bool:
    step = getattr(type(model), "train_step", None)
    return getattr(step, "__module__", "").startswith("keras.")


def _learning_rate(model: Any) -> float | None:
    # optimizer.learning_rate: its variable, or its schedule at the current
    # step. On TensorFlow reading it is one eager op (about 10 us), the floor
    # of this read: the variable's private value read straight costs more.
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        return plugin.numeric(optimizer.learning_rate)
    except (AttributeError, TypeError, ValueError):
        return None


def _log_summary(model: Any, run_id: str) -> None:
    """The model's printed summary as it is now, rendered by the writer thread
    (Keras draws it with rich: about 2 ms the training thread does not wait
    for); where this Keras lays its summary code out otherwise, drawn here."""
    if not getattr(model, "built", False):
        return  # Keras cannot summarise a model that has no weights yet
    render = _summary_renderer(model)
    if render is None:
        plugin.log_model_summary(_summary_text(model.summary), run_id)
        return
    plugin.log_bytes(lambda: render().encode("utf-8"), plugin.SUMMARY_FILE, run_id=run_id)


def _summary_text(print_summary: Any) -> str:
    parts: list[str] = []
    print_summary(print_fn=lambda text, **_: parts.append(str(text)))
    return "\n".join(parts)


def _summary_renderer(model: Any) -> Any:
    """A function drawing ``model.summary()`` as it would be drawn now, later,
    on another thread, or None where Keras' private ``print_summary`` is not
    there. What training or the user may change meanwhile is taken now: which
    weights are trainable (a callback that freezes layers), and whether the
    optimizer is built (it builds its variables in the first training step,
    and is left out of the summary until then); the layers, their shapes and
    parameter counts are the model's structure, which training leaves alone."""
    try:
        from keras.src.utils.summary_utils import print_summary
    except ImportError:
        return None
    import wrapt

    optimizer = getattr(model, "optimizer", None)
    built = optimizer is not None and bool(getattr(optimizer, "built", False))

    class AsNow(wrapt.ObjectProxy):  # isinstance() still sees the model's class
        trainable_weights = list(model.trainable_weights)
        non_trainable_weights = list(model.non_trainable_weights)

    AsNow.optimizer = optimizer if built else None

    def render() -> str:
        return _summary_text(lambda print_fn: print_summary(AsNow(model), print_fn=print_fn))

    return render


# -- params of one fit call -------------------------------------------------------


def _fit_params(call: Call, model: Any, callbacks: list[Any], batch_size: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "epochs": call.argument("epochs"),
        "steps_per_epoch": call.argument("steps_per_epoch"),
        "validation_split": call.argument("validation_split"),
        "initial_epoch": call.argument("initial_epoch"),
        "shuffle": call.argument("shuffle"),
        "has_class_weight": call.argument("class_weight") is not None,
        "has_sample_weight": call.argument("sample_weight") is not None,
    }
    if batch_size is not _UNKNOWN_YET:
        params["batch_size"] = batch_size
    params.update(_compile_params(model))
    params.update(_callback_params(callbacks))
    return params


def _compile_params(model: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        params["optimizer"] = type(optimizer).__name__
        config = dict(optimizer.get_config())
        config.pop("name", None)
        for key, value in plugin.flatten(config, prefix="optimizer").items():
            params[key] = plugin.float32_text(value)
    loss = getattr(model, "loss", None)
    if loss is not None:
        params["loss"] = _names(loss)
    metrics = _compiled_metrics(model)
    if metrics:
        params["metrics"] = metrics
    return params


def _compiled_metrics(model: Any) -> str | None:
    # The compile config holds what the user passed (strings, or serialized
    # Metric objects); model.metrics only says "compile_metrics" in Keras 3.
    try:
        config = model.get_compile_config() or {}
    except Exception:  # a metric Keras cannot serialize: we only lose its name
        return None
    names = [_names(value) for value in (config.get("metrics"), config.get("weighted_metrics"))]
    return ", ".join(name for name in names if name) or None


def _names(value: Any) -> str:
    """A readable name for a loss or metric spec: a string, a Loss/Metric object,
    a function, a serialized object, or lists/dicts of those."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "class_name" in value and "config" in value:  # a serialized Keras object
            config = value["config"]
            if isinstance(config, str):  # a serialized function: its name
                return config
            return str((config or {}).get("name") or value["class_name"])
        return ", ".join(f"{key}: {_names(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(filter(None, (_names(item) for item in value)))
    return str(getattr(value, "name", None) or getattr(value, "__name__", None) or value)


def _callback_params(callbacks: list[Any]) -> dict[str, Any]:
    import keras

    params: dict[str, Any] = {}
    early = _first(callbacks, keras.callbacks.EarlyStopping)
    if early is not None:
        params.update(
            plugin.settings_params(
                early, _EARLY_STOPPING_SETTINGS, "early_stopping_", skip_none=False
            )
        )
    plateau = _first(callbacks, keras.callbacks.ReduceLROnPlateau)
    if plateau is not None:
        params.update(
            plugin.settings_params(
                plateau, _REDUCE_LR_SETTINGS, "reduce_lr_on_plateau_", skip_none=False
            )
        )
    return params


def _first(items: list[Any], cls: type) -> Any:
    return next((item for item in items if isinstance(item, cls)), None)


def _user_callbacks(callbacks: Any) -> list[Any] | None:
    """The user's callbacks as a flat list (a new list), or None when we must not add
    to them (a CallbackList the user built)."""
    import keras

    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return None
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    return list(keras.tree.flatten(callbacks))


# -- batch size without consuming the data ------------------------------------------

_UNKNOWN_YET = object()  # a generator's: read when Keras takes its first batch


def _batch_size(x: Any, given: Any) -> Any:
    """The batch size of fit's ``x``: ``given``, Keras' default for arrays, read from a
    tf.data pipeline or a loader, _UNKNOWN_YET for a generator, None if unknowable."""
    if given is not None:
        return given
    if isinstance(x, types.GeneratorType):
        return _UNKNOWN_YET
    import keras

    if isinstance(x, keras.utils.PyDataset) or type(x).__module__.startswith("torch."):
        return _int_attribute(x, "batch_size")
    if _is_tf_dataset(x):
        return _tf_dataset_batch_size(x)
    if hasattr(x, "__next__") or hasattr(x, "element_spec"):
        return _int_attribute(x, "batch_size")  # other iterators and loaders
    return DEFAULT_ARRAY_BATCH_SIZE


def _int_attribute(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _is_tf_dataset(x: Any) -> bool:
    tf_module = sys.modules.get("tensorflow")
    return tf_module is not None and isinstance(x, tf_module.data.Dataset)


def _tf_dataset_batch_size(dataset: Any) -> int | None:
    # Walk the pipeline back to its batch op (map, prefetch, cache, shuffle,
    # repeat and the like keep batches whole); the element_spec cannot tell a
    # batch dimension from a feature dimension. Nothing is iterated.
    node = dataset
    for _ in range(100):  # pipelines are short; never loop on a strange graph
        name = type(node).__name__.lower()
        if "unbatch" in name or "rebatch" in name:
            return None
        size = getattr(node, "_batch_size", None)
        if size is not None:
            try:
                return int(size)
            except (TypeError, ValueError):
                return None
        node = getattr(node, "_input_dataset", None)
        if node is None:
            return None
    return None


def _first_batch_size(batch: Any) -> int | None:
    inputs = batch[0] if isinstance(batch, tuple) else batch
    while isinstance(inputs, (dict, list, tuple)) and inputs:
        inputs = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs[0]
    shape = getattr(inputs, "shape", None)
    if shape is not None and len(shape) and shape[0] is not None:
        return int(shape[0])
    try:
        return len(inputs)
    except TypeError:
        return None


def _reporting_batch_size(generator: Iterator[Any], run_id: str) -> Iterator[Any]:
    """Yields what ``generator`` yields; logs the size of the first batch when it is
    taken (Keras takes it itself, before training, to learn the data's shape)."""
    try:
        first = next(generator)
    except StopIteration:
        return
    with guard(NAME, "while reading a generator's batch size"):
        plugin.log_params({"batch_size": _first_batch_size(first)}, run_id)
    yield first
    yield from generator


# -- the model flavor ----------------------------------------------------------------


class KerasFlavor(Flavor):
    """Keras 3 models in the native ``.keras`` format (architecture, weights,
    compile state and optimizer), loaded with ``keras.models.load_model``.

    Custom layers must be registered with
    ``keras.saving.register_keras_serializable`` and importable where the model
    is loaded. Priority above torch's: under the torch backend a Keras model
    is also a ``torch.nn.Module``.
    """

    name = "keras"
    distribution = "keras"
    module = "keras"
    priority = 20

    def handles(self, model: Any) -> bool:
        import keras

        return isinstance(model, keras.Model)

    def snapshot(self, model: Any, **options: Any) -> ModelSnapshot:
        """The model's config and a copy of every variable (weights, optimizer
        state) are taken here, on the caller's thread (about a millisecond for
        a small model); the ``.keras`` archive is built from that copy on the
        writer thread. With save options, or where this Keras' saving library
        differs from the one this was written for, the archive is made here by
        ``model.save``."""
        import keras

        metadata = {
            "model_file": MODEL_FILE,
            "backend": keras.backend.backend(),
            "class": plugin.class_path(model),
        }
        state = None if options else _copied_state(model)
        if state is not None:
            import h5py  # noqa: F401  (imported, so that its exit handler is registered)

            # made at the latest before h5py's exit handler unregisters the
            # conversions an .h5 file needs (a fit just before the script ends)
            plugin.drain_before_exit_of("h5py")
            return ModelSnapshot({}, metadata, deferred={MODEL_FILE: _archive(state)})
        return ModelSnapshot({MODEL_FILE: _saved_archive(model, **options)}, metadata)

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        import keras

        return keras.models.load_model(Path(path) / metadata.get("model_file", MODEL_FILE))

    def requirements(self, model: Any) -> list[str]:
        import keras

        backend = keras.backend.backend()
        if backend == "tensorflow":
            # tensorflow-cpu installs the same module under another name.
            for dist in ("tensorflow", "tensorflow-cpu"):
                if plugin.distribution_version(dist) is not None:
                    return [dist]
            return ["tensorflow"]
        return [backend] if backend in ("torch", "jax") else []


def _archive(state: _CopiedState) -> Any:
    """The deferred ``.keras`` archive. Should Keras' saving walk not suit our
    copies for this model (a saveable writing what our stores do not take),
    ``model.save`` writes it on the writer thread this once: the model as it is
    then, the same as the snapshot unless training went on meanwhile; its next
    snapshots are then taken whole on the caller's thread."""

    def make() -> bytes:
        try:
            return state.archive()
        except Exception:
            with contextlib.suppress(TypeError):  # a model that is no set member
                _whole_on_caller.add(state.model)
            return _saved_archive(state.model)

    return make


def _saved_archive(model: Any, **options: Any) -> bytes:
    # Keras writes .keras archives to a path only; the bytes are read back at once.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="autolog-keras-") as folder:
        path = Path(folder) / MODEL_FILE
        model.save(path, **options)
        return path.read_bytes()


class _CopiedState:
    """What ``model.save`` reads from the model: its config (serialised on the
    caller's thread) and the value of every variable it tracks (copied there,
    in one pass over the variables); the archive is laid out later, on the
    writer thread, by Keras' own saving walk over the model's structure with
    each variable's value taken from those copies, so that it holds the
    same bytes as a ``model.save`` at the end of the fit."""

    def __init__(
        self, lib: Any, model: Any, config_json: str, metadata_json: str, copies: Any
    ) -> None:
        self.lib = lib
        self.model = model
        self.config_json = config_json
        self.metadata_json = metadata_json
        self.copies = copies  # id(variable) -> numpy copy (the variables kept alive)

    def archive(self) -> bytes:
        """The ``.keras`` archive, as ``model.save`` lays it out (on the writer thread)."""
        import io
        import zipfile

        lib = self.lib
        stores = _store_classes(lib)
        self.weights, self.assets = stores[0](self.copies), stores[1]()
        try:
            lib._save_state(
                self.model,
                weights_store=self.weights,
                assets_store=self.assets,
                inner_path="",
                visited_saveables=set(),
            )
        except BaseException:
            self.assets.close()
            raise
        buffer = io.BytesIO()
        try:
            with zipfile.ZipFile(buffer, "w") as archive:
                with archive.open(lib._METADATA_FILENAME, "w") as file:
                    file.write(self.metadata_json.encode())
                with archive.open(lib._CONFIG_FILENAME, "w") as file:
                    file.write(self.config_json.encode())
                store = lib.H5IOStore(lib._VARS_FNAME_H5, archive=archive, mode="w")
                try:
                    for path, entry_metadata, values in self.weights.entries:
                        entry = store.make(path, metadata=entry_metadata)
                        for key, value in values:
                            entry[key] = value
                finally:
                    store.close()
                if self.assets.working_dir is not None:
                    lib._write_to_zip_recursively(
                        archive, self.assets.working_dir, lib._ASSETS_DIRNAME
                    )
        finally:
            self.assets.close()
        return buffer.getvalue()


class _Copies:
    """The values of a model's variables, copied now: ``values_by_id`` maps
    ``id(variable)`` to its numpy copy; the variables are kept alive with it,
    so no id is reused meanwhile."""

    __slots__ = ("optimizer", "values_by_id", "variables")

    def __init__(self, variables: list[Any], optimizer: Any = None) -> None:
        import keras
        import numpy as np

        self.variables = variables
        read = _tensorflow_read if keras.backend.backend() == "tensorflow" else None
        values = {}
        for variable in variables:
            native = read(variable) if read is not None else None
            if native is None:
                native = keras.ops.convert_to_numpy(variable)
            values[id(variable)] = np.array(native, copy=True)
        self.values_by_id = values
        # the optimizer saves its variables' values (variable.numpy()), not the
        # variables: its copies go by position, under its name
        self.optimizer: tuple[str, list[Any]] | None = None
        if optimizer is not None and isinstance(getattr(optimizer, "name", None), str):
            ordered = [values.get(id(v)) for v in optimizer.variables]
            if all(value is not None for value in ordered):
                self.optimizer = (optimizer.name, ordered)


def _tensorflow_read(variable: Any) -> Any:
    native = getattr(variable, "value", None)
    return native.numpy() if hasattr(native, "numpy") else None


def _tracked_variables(model: Any) -> list[Any]:
    """Every variable the saving walk can meet: the model's (layers, metrics,
    seed generators) and its optimizer's, each once."""
    found: dict[int, Any] = {}
    optimizer = getattr(model, "optimizer", None)
    groups = [model.variables, getattr(model, "metrics_variables", ())]
    if optimizer is not None:
        groups.append(optimizer.variables)
    for group in groups:
        for variable in group:
            found.setdefault(id(variable), variable)
    return list(found.values())


# models whose deferred archive failed once: their next snapshots are taken
# whole on the caller's thread (model.save there); weak, so that a model
# freed meanwhile neither stays alive nor lends its id to the next one
_whole_on_caller: weakref.WeakSet[Any] = weakref.WeakSet()


def _copied_state(model: Any) -> _CopiedState | None:
    """The model's config and variables copied for a later archive, or None when
    Keras' private saving library is not the one expected (``model.save`` then)."""
    try:
        if model in _whole_on_caller:
            return None
        from keras.src.saving import saving_lib as lib

        _store_classes(lib)
        config_json, metadata_json = lib._serialize_model_as_json(model)
        variables = _tracked_variables(model)
    except (ImportError, AttributeError, TypeError):
        return None
    copies = _Copies(variables, getattr(model, "optimizer", None))
    return _CopiedState(lib, model, config_json, metadata_json, copies)


_stores: tuple[type, type] | None = None


def _store_classes(lib: Any) -> tuple[type, type]:
    """Stores that ``saving_lib._save_state`` accepts (it checks their classes)
    and that copy instead of writing: variables into numpy arrays, assets (the
    vocabularies of lookup layers) into a temporary folder made only if needed."""
    global _stores
    if _stores is not None:
        return _stores
    import numpy as np

    to_numpy = lib.backend.convert_to_numpy

    class CopyingWeightsStore(lib.H5IOStore):
        def __init__(self, copies: Any = None) -> None:
            # no h5 file: values are collected, written after the walk; a
            # variable copied on the caller's thread gives its copy
            self.mode = "w"
            self.copies = copies.values_by_id if copies is not None else {}
            optimizer = copies.optimizer if copies is not None else None
            self.optimizer_name, self.optimizer_values = optimizer or (None, [])
            self.entries: list[tuple[str, Any, list[tuple[str, Any]]]] = []

        def __bool__(self) -> bool:
            return True

        def make(self, path: str, metadata: Any = None) -> Any:
            self.entries.append((path, metadata, []))
            return self

        def __setitem__(self, key: str, value: Any) -> None:
            copied = self.copies.get(id(value))
            if copied is None:
                copied = self._optimizer_value(key)
            if copied is None:  # no variable of the model (a lookup's vocabulary)
                copied = np.array(to_numpy(value), copy=True)
            self.entries[-1][2].append((key, copied))

        def _optimizer_value(self, key: str) -> Any:
            path, metadata, _ = self.entries[-1]
            name = (metadata or {}).get("name") if isinstance(metadata, dict) else None
            if name is None or name != self.optimizer_name or not key.isdigit():
                return None
            if path.rsplit("/", 1)[-1] != "optimizer":
                return None
            index = int(key)
            values = self.optimizer_values
            return values[index] if index < len(values) else None

        def __len__(self) -> int:
            return len(self.entries[-1][2]) if self.entries else 0

        def keys(self) -> list[str]:
            return [key for key, _ in self.entries[-1][2]] if self.entries else []

        def __contains__(self, key: object) -> bool:
            return key in self.keys()

        def close(self) -> None:
            pass

    class CopyingAssetsStore(lib.DiskIOStore):
        def __init__(self) -> None:
            self.mode = "w"
            self.archive = None
            self.root_path = lib._ASSETS_DIRNAME
            self.tmp_dir = None
            self.working_dir: str | None = None

        def make(self, path: str) -> str:
            if self.working_dir is None:  # a layer with assets: a folder for them
                import tempfile

                self.tmp_dir = tempfile.mkdtemp(prefix="autolog-keras-assets-")
                self.working_dir = str(Path(self.tmp_dir) / self.root_path)
                Path(self.working_dir).mkdir()
            return super().make(path)

        def close(self) -> None:
            if self.tmp_dir is not None:
                import shutil

                shutil.rmtree(self.tmp_dir, ignore_errors=True)
                self.tmp_dir = None

    _stores = (CopyingWeightsStore, CopyingAssetsStore)
    return _stores


# -- the handler and the integration --------------------------------------------------


class KerasIntegration(plugin.Integration):
    """Autologging of ``keras.Model.fit`` (see the module documentation)."""

    name = NAME
    modules = ("keras",)
    distribution = "keras"
    supported_versions = ">=3.0,<4"
    options = {"log_every_n_steps": plugin.Option(None, int, allow_none=True)}
    flavors = (KerasFlavor,)

    def patch(self, patcher: Patcher, module: types.ModuleType) -> None:
        # Keras 3 defines fit on the backend's trainer class (TensorFlowTrainer,
        # TorchTrainer, JAXTrainer), a base of keras.Model. Wrapping the class
        # that defines it covers every model. A user's subclass that overrides
        # fit and calls super().fit reaches this wrapper with Keras' own
        # signature, so it is deliberately not wrapped on its own.
        owner = next(cls for cls in module.Model.__mro__ if "fit" in cls.__dict__)
        patcher.wrap(owner, "fit", self.on_fit)

    @plugin.datasets_from("x", "y")
    def on_fit(self, call: Call) -> Generator[None, Any, None]:
        model = call.instance
        run_id = call.run_id
        given_callbacks = call.argument("callbacks")
        callbacks = _user_callbacks(given_callbacks)
        # A CallbackList of the user's is read (EarlyStopping settings), never added to.
        seen = callbacks if callbacks is not None else list(given_callbacks.callbacks)
        x = call.argument("x")
        batch_size = _batch_size(x, call.argument("batch_size"))
        params = _fit_params(call, model, seen, batch_size)
        plugin.log_params(params, run_id)
        ours = None
        if callbacks is not None:
            every = call.config.log_every_n_steps
            ours = _callback_class(bool(every))(run_id, every, _rate_is_fixed(model, callbacks))
            call.set_argument("callbacks", plugin.copy_callbacks(callbacks, ours))
        if batch_size is _UNKNOWN_YET:
            call.set_argument("x", _reporting_batch_size(x, run_id))

        try:
            yield  # the user's fit runs here
        finally:
            if ours is not None:  # a fit that failed never reached on_train_end
                ours.stop_watching()

        _log_early_stopping(seen, run_id)
        if call.config.log_models:
            example = _input_example(x) if call.config.log_input_examples else None
            plugin.log_model(model, "model", input_example=example, run_id=run_id)


def _log_early_stopping(callbacks: list[Any], run_id: str) -> None:
    import keras

    early = _first(callbacks, keras.callbacks.EarlyStopping)
    if early is None:
        return
    restored = early.restore_best_weights and early.best_weights is not None
    plugin.log_early_stopping(
        run_id,
        stopped_epoch=early.stopped_epoch if early.stopped_epoch > 0 else None,
        restored_epoch=early.best_epoch if restored else None,
        best_score=early.best,
    )


def _input_example(x: Any) -> Any:
    if hasattr(x, "shape") and hasattr(x, "__getitem__") and not _is_tf_dataset(x):
        return x[:5]
    return None  # datasets and generators: taking an example would consume them
