"""TensorFlow autologging for plain training loops: ``tf.GradientTape`` and a Keras optimizer.

An ordinary loop, unchanged, eager or with a ``@tf.function`` step::

    autolog.autolog()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    for epoch in range(5):
        for x, y in dataset:                          # a tf.data.Dataset
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

gives one run, opened at the first ``apply_gradients`` of the thread (or your
active run, if you started one; none with ``exclusive=True``) and closed when
the next training starts, at ``autolog.end_run()`` or at interpreter exit
(FAILED when an uncaught exception ends the script). It holds, as the
plain-PyTorch integration (``torch``) does for its loops:

- **params** (at the first step of each optimizer): ``optimizer`` (class
  name), ``optimizer.<key>`` for its config (``learning_rate``, ``beta_1``,
  ...) and ``parameter_count`` (the number of values it trains); a second
  optimizer (a GAN's) as ``optimizer1...``;
- **metrics per epoch** (step = epoch index): ``train_loss``, the mean of the
  scalar losses you called ``tape.gradient`` on, summed where they live and
  read once per epoch (no per-step ``.numpy()``: in a ``tf.function`` the
  sum is one variable update of the graph itself); ``learning_rate`` (the
  optimizer's, schedules included, at the epoch's end); ``steps``, the
  optimizer's iterations in the epoch;
- **the model**: the outermost Keras models whose trainable variables the
  optimizers train, found at each optimizer's first step (among what the
  loop's stack holds: its functions' locals and globals and their
  attributes; among all the process's objects when the model is kept
  elsewhere), saved with ``log_model`` as ``model`` (``model_1``, ...) when
  the run closes, in the ``.keras`` format (the ``keras`` flavor).

**Epochs** are iterations over a ``tf.data.Dataset`` in Python: the one whose
iteration was running at the first step is the training data, and each new
``for batch in dataset`` over it starts an epoch. A loop without a dataset
(tensors sliced by hand) or with its epochs inside one ``tf.function`` is one
epoch, logged when the run closes. **Trainings**: a new optimizer over other
variables, stepping over another dataset, is a new training (a new run).

Inside Keras' ``fit`` (which applies its gradients with ``optimizer.apply``)
this integration does nothing: the ``keras`` integration owns that run.
Under a multi-worker strategy (``TF_CONFIG``) or ``torch.distributed`` only
rank 0 logs.
"""

from __future__ import annotations

import gc
import sys
import weakref

from autolog import plugin
from autolog.plugin import Patcher, guard

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    from typing import Any

__all__ = ["TensorFlowIntegration"]

NAME = "tensorflow"
# eager losses summed per batch of this many steps (one op, bounded memory)
_LOSS_BATCH = 128

_IDLE, _LOGGING, _SKIPPING = 0, 1, 2


class _GraphLosses:
    """One variable, ``[sum of the losses, their count]``, that a traced step adds
    its loss into: one graph update a step, no sync.

    One ``AssignAddVariableOp`` of a two-value vector (the loss stacked with
    1.0) rather than a sum and a counter in two variables: each update is an
    op the step runs and a variable its call captures (1.2 to 1.7 us a step
    here against 2.4 to 3.5 for two). The count is not read from the
    optimizer's ``iterations`` instead: that is right only while every traced
    step computes one gradient per optimizer step, and a step may take
    several (a GAN's two losses, accumulated gradients). Counted in float32:
    exact up to 2**24 steps an epoch.

    Created once per thread outside any graph and never replaced: a traced
    function keeps the variables it captured for as long as it lives.
    """

    def __init__(self) -> None:
        import tensorflow as tf

        with tf.init_scope():
            self.sums = tf.Variable(
                [0.0, 0.0], dtype=tf.float32, trainable=False, name="autolog_loss"
            )

    def add(self, loss: Any) -> None:
        import tensorflow as tf

        self.sums.assign_add(tf.stack([tf.cast(loss, tf.float32), 1.0]), read_value=False)

    def take(self) -> tuple[float, int]:
        total, count = self.sums.numpy().tolist()
        if count:
            self.sums.assign([0.0, 0.0])
        return total, int(count)


class _LoopTracker:
    """What one thread's plain loop has done since its run opened."""

    def __init__(self, integration: TensorFlowIntegration, graph: _GraphLosses | None = None):
        self.integration = integration
        self.graph = graph  # kept across runs (see _GraphLosses)
        self.state = _IDLE
        self.run_id: str | None = None
        self.owned = False  # we opened run_id (and so end it)
        self.user_run_id: str | None = None
        self.pending: list[Any] = []  # eager losses not yet summed
        self.loss_sum = 0.0
        self.loss_count = 0
        self.optimizers: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self.fit_optimizers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.last_optimizer: weakref.ref[Any] | None = None  # the last step's
        # the first optimizer's step counter and rate (a variable or a schedule),
        # held without the optimizer: the epoch that closes with the run needs them
        self.iterations: Any = None
        self.rate: Any = None
        self.start_iterations = 0
        self.trained: set[int] = set()  # ids of the variables the optimizers train
        self.loose: set[int] = set()  # those of them no Keras layer made (plain tf.Variable)
        self.models: list[Any] = []
        self.epoch = 0
        self.stepped = False  # an optimizer stepped in this epoch
        self.train_data: weakref.ref[Any] | None = None
        self.latest_data: weakref.ref[Any] | None = None

    # per step ------------------------------------------------------------------

    def add_loss(self, loss: Any) -> None:
        if self.state == _SKIPPING:
            return
        if type(loss) is _EAGER_TENSOR[0]:  # the per-step path of an eager loop
            if loss.ndim == 0:  # one scalar loss, not a per-example vector
                self.pending.append(loss)  # (Keras' run_eagerly fit: summed, dropped unread)
                if len(self.pending) >= _LOSS_BATCH:
                    self._fold()
            return
        shape = getattr(loss, "shape", None)
        if shape is None or shape.rank != 0:
            return  # a list of targets, a non-scalar, not a tensor
        import tensorflow as tf

        if tf.executing_eagerly():
            self.pending.append(loss)
        elif not _in_keras_fit():  # tracing a step of ours: the sum joins its graph
            if self.graph is None:
                self.graph = _GraphLosses()
            self.graph.add(loss)

    def _fold(self) -> None:
        import tensorflow as tf

        pending, self.pending = self.pending, []
        if pending:
            try:
                total = tf.add_n(pending)
            except (TypeError, ValueError, tf.errors.InvalidArgumentError):  # mixed dtypes
                total = tf.add_n([tf.cast(t, tf.float32) for t in pending])
            self.loss_count += len(pending)
            self.loss_sum += total  # an eager tensor: read when the epoch closes

    def on_step(self, optimizer: Any) -> None:
        last = self.last_optimizer
        if last is not None and last() is optimizer:  # the per-step path: a known one
            self.stepped = True
            return
        if self.state == _SKIPPING or optimizer in self.fit_optimizers:
            return
        if optimizer not in self.optimizers and _in_keras_fit():
            self.fit_optimizers.add(optimizer)  # a Keras fit's, with the keras integration off
            return
        if self.state != _LOGGING and not self._open():
            return
        if optimizer not in self.optimizers:
            import tensorflow as tf

            # Eager: this step has run already; traced: its graph runs after this.
            done = 1 if tf.executing_eagerly() else 0
            with tf.init_scope():  # a traced step: read the optimizer's state eagerly
                if self._is_new_training(optimizer):
                    self._start_next_training()
                self._add_optimizer(optimizer, done)
        self.stepped = True
        self.last_optimizer = weakref.ref(optimizer)

    def on_data_iter(self, dataset: Any) -> None:
        if self.state == _SKIPPING or not _eager():
            return  # a loop over a dataset inside a tf.function: no epoch of ours
        train = self.train_data() if self.train_data is not None else None
        if train is not None and train is dataset:
            self._close_epoch()
            return
        self.latest_data = _weak(dataset)
        if self.state == _IDLE:
            self._reset_epoch()
        else:
            self._fold()  # losses from here on are told apart from the epoch's

    # trainings and runs ------------------------------------------------------

    def _open(self) -> bool:
        user_run = plugin.active_run_id()
        run_id, created = plugin.training_run(self.integration)
        if run_id is None:  # exclusive, or not the main process: never log here
            self.state = _SKIPPING
            return False
        self.run_id, self.owned, self.user_run_id = run_id, created, user_run
        self._begin(run_id)
        return True

    def _begin(self, run_id: str) -> None:
        self.state = _LOGGING
        self.epoch = 0
        self.train_data = self.latest_data
        plugin.on_run_end(run_id, self._on_run_end)

    def _is_new_training(self, optimizer: Any) -> bool:
        if not self.optimizers:
            return len(self.trained) > 0  # every earlier optimizer was freed
        if self.trained & _variable_ids(optimizer):
            return False  # fine-tuning the same variables
        latest = self.latest_data() if self.latest_data is not None else None
        train = self.train_data() if self.train_data is not None else None
        return latest is not None and latest is not train

    def _start_next_training(self) -> None:
        user_run_id, latest = self.user_run_id, self.latest_data
        if self.owned:
            plugin.end_training_run(run_id=self.run_id)  # _on_run_end forgets it
        else:
            self._finish_training(self.run_id)
            self._forget_run()
        self.latest_data, self.user_run_id, self.owned = latest, user_run_id, True
        self.run_id = plugin.start_training_run(self.integration, user_run_id)
        self._begin(self.run_id)

    def _add_optimizer(self, optimizer: Any, done: int) -> None:
        index = len(self.optimizers)
        self.optimizers[optimizer] = index
        if index == 0:
            self.iterations = optimizer.iterations
            self.rate = getattr(optimizer, "_learning_rate", None)
            self.start_iterations = int(self.iterations.numpy()) - done
        variables = _variable_ids(optimizer)
        self.trained |= variables
        self.loose |= _loose_variable_ids(optimizer)
        prefix = plugin.optimizer_prefix(index)
        params: dict[str, Any] = {prefix: type(optimizer).__name__}
        params.update(_optimizer_config(optimizer, prefix))
        params[f"{prefix}.parameter_count" if index else "parameter_count"] = sum(
            int(v.shape.num_elements() or 0) for v in optimizer._trainable_variables
        )
        plugin.log_params(params, self.run_id)
        if self.integration.config.log_models:
            self.models = trained_models(self.trained, self.loose)

    def _close_epoch(self) -> None:
        metrics: dict[str, Any] = {}
        if self.iterations is not None:
            # A traced step calls no Python per step: its iterations tell whether it ran.
            iterations = int(self.iterations.numpy())
            metrics["steps"] = iterations - self.start_iterations
            self.start_iterations = iterations
            rate = self.rate(self.iterations) if callable(self.rate) else self.rate
            metrics["learning_rate"] = plugin.numeric(rate)
        if self.stepped or metrics.get("steps"):
            self._fold()
            total, count = float(self.loss_sum), self.loss_count
            if self.graph is not None:
                graph_total, graph_count = self.graph.take()
                total, count = total + graph_total, count + graph_count
            if count:
                metrics["train_loss"] = total / count
            plugin.log_epoch_metrics(metrics, self.epoch, self.run_id)
            self.epoch += 1
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self.pending = []
        self.loss_sum, self.loss_count = 0.0, 0
        self.stepped = False
        if self.graph is not None and self.state != _LOGGING:
            self.graph.take()  # losses of no run's epoch

    def _finish_training(self, run_id: str) -> None:
        with guard(NAME, "while closing its run"):
            self._close_epoch()
            if self.integration.config.log_models:
                for number, model in enumerate(self.models):
                    name = "model" if number == 0 else f"model_{number}"
                    plugin.log_model(model, name, run_id=run_id)

    def _on_run_end(self, run_id: str, status: str) -> None:
        if run_id == self.run_id:
            try:
                self._finish_training(run_id)
            finally:
                self._forget_run()
        elif run_id == self.user_run_id and self.owned:
            with guard(NAME, "while closing its run"):
                plugin.end_training_run(status, run_id=self.run_id)

    def _forget_run(self) -> None:
        latest = self.latest_data
        self.__init__(self.integration, self.graph)  # type: ignore[misc]
        self.latest_data = latest


# TensorFlow's eager tensor class, found at patch time (no public name for it)
_EAGER_TENSOR: list[Any] = [None]

_KERAS_TRAINERS = ("keras.src.backend.tensorflow.trainer", "keras.src.trainers.")


def _in_keras_fit() -> bool:
    """Whether the step is one of Keras' own ``fit`` (its train step applies the
    gradients): asked at a new optimizer's first step and while tracing only."""
    frame = sys._getframe(2)
    for _ in range(40):
        if frame is None:
            return False
        if frame.f_globals.get("__name__", "").startswith(_KERAS_TRAINERS):
            return True
        frame = frame.f_back
    return False


def _eager() -> bool:
    import tensorflow as tf

    return tf.executing_eagerly()


def _weak(obj: Any) -> weakref.ref[Any] | None:
    try:
        return weakref.ref(obj)
    except TypeError:
        return None


def _optimizer_config(optimizer: Any, prefix: str) -> dict[str, Any]:
    """``<prefix>.<key>`` for the optimizer's config, float32 settings as the
    user wrote them (0.01, not 0.009999999776482582), unset ones left out."""
    config = dict(optimizer.get_config())
    config.pop("name", None)
    flat = plugin.flatten(config, prefix=prefix)
    return {key: plugin.float32_text(value) for key, value in flat.items() if value is not None}


def _variable_ids(optimizer: Any) -> set[int]:
    # Keras 3 optimizers keep the variables they were built with (the first
    # apply_gradients builds them).
    return {id(v) for v in getattr(optimizer, "_trainable_variables", ())}


def _loose_variable_ids(optimizer: Any) -> set[int]:
    """The optimizer's variables that are no Keras variable (a plain
    ``tf.Variable``): no model holds them."""
    import keras

    kind = getattr(keras, "Variable", None)
    variables = getattr(optimizer, "_trainable_variables", ())
    return {id(v) for v in variables if kind is None or not isinstance(v, kind)}


def trained_models(
    held: set[int], loose: set[int] | frozenset[int] = frozenset(), frame: Any = None
) -> list[Any]:
    """The outermost Keras models alive whose trainable variables all have their
    ``id`` in ``held`` (the optimizers'), largest first.

    Looked for first among the models the loop's stack reaches
    (``plugin.objects_on_stack`` from ``frame``, default the caller's), and
    their inner models. That answer is kept when its models hold every
    variable of ``held`` but those of ``loose`` (plain ``tf.Variable``: no
    model holds them); otherwise every model on the heap is looked at, a scan
    of ``gc.get_objects()`` (60 to 120 ms in a process that imported
    TensorFlow). The two answers differ only where a model the stack does not
    reach holds the loop's model inside it."""
    if not held:
        return []
    import keras

    try:
        found = _outermost(plugin.objects_on_stack(keras.Model, frame or sys._getframe(1)), held)
    except Exception:  # an object on the stack that will not be looked at: the heap then
        found = []
    covered = {id(v) for model in found for v in model.trainable_variables}
    if held - loose <= covered:
        return found
    return _outermost(_heap_models(), held)


def _heap_models() -> list[Any]:
    """Every Keras model the garbage collector tracks."""
    import keras

    return [obj for obj in gc.get_objects() if isinstance(obj, keras.Model)]


def _outermost(models: list[Any], held: set[int]) -> list[Any]:
    """Among ``models`` and the models inside them, the outermost whose trainable
    variables are all in ``held``, largest first."""
    import keras

    candidates, seen = [], set()
    for model in models:
        for obj in (model, *_sublayers(model)):
            if id(obj) in seen or not isinstance(obj, keras.Model):
                continue
            seen.add(id(obj))
            ids = {id(v) for v in obj.trainable_variables}
            if ids and ids <= held:
                candidates.append((obj, ids))
    inner = {id(layer) for model, _ in candidates for layer in _sublayers(model)}
    # a model another keeps as an attribute (Sequential's own functional graph)
    inner |= {id(v) for m, _ in candidates for v in vars(m).values() if isinstance(v, keras.Model)}
    outer = [(m, ids) for m, ids in candidates if id(m) not in inner]
    outer.sort(key=lambda item: -len(item[1]))
    return [model for model, _ in outer]


def _sublayers(model: Any) -> list[Any]:
    found, stack = [], list(getattr(model, "layers", ()))
    while stack:
        layer = stack.pop()
        found.append(layer)
        stack.extend(getattr(layer, "layers", ()))
    return found


# -- the integration -----------------------------------------------------------------


class TensorFlowIntegration(plugin.Integration):
    """Plain TensorFlow loops (see the module docstring for what a run holds)."""

    name = NAME
    modules = ("tensorflow",)
    # The hooks are Keras 3's optimizer API (tf.GradientTape is stable across
    # TensorFlow 2); TensorFlow's own distribution is tensorflow, -cpu, -macos...
    distribution = "keras"
    supported_versions = ">=3.0,<4"

    def __init__(self) -> None:
        super().__init__()
        self.tracker = plugin.PerThread(lambda: _LoopTracker(self))  # this thread's

    def patch(self, patcher: Patcher, module: Any) -> None:
        import keras

        _EAGER_TENSOR[0] = type(module.constant(0.0))

        # Observed, not wrapped with a handler: they run every step. Keras'
        # own fit applies gradients with optimizer.apply, never seen here.
        owner = next(
            c for c in keras.optimizers.Optimizer.__mro__ if "apply_gradients" in c.__dict__
        )
        patcher.observe(owner, "apply_gradients", self._after_apply_gradients)
        patcher.observe(module.GradientTape, "gradient", self._after_gradient)
        patcher.observe(module.data.Dataset, "__iter__", self._after_data_iter)

    def unpatch(self) -> None:
        self.tracker.clear()

    def _after_apply_gradients(self, instance: Any, args: Any, kwargs: Any, result: Any) -> None:
        self.tracker().on_step(instance if instance is not None else args[0])

    def _after_gradient(self, instance: Any, args: Any, kwargs: Any, result: Any) -> None:
        target = args[0] if args else kwargs.get("target")
        if instance is None and args:  # called through the class: the tape is args[0]
            target = args[1] if len(args) > 1 else kwargs.get("target")
        self.tracker().add_loss(target)

    def _after_data_iter(self, instance: Any, args: Any, kwargs: Any, result: Any) -> None:
        self.tracker().on_data_iter(instance if instance is not None else args[0])
