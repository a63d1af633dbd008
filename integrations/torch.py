"""PyTorch autologging for plain training loops: nothing but ``autolog.autolog()`` in the script.

An ordinary loop, unchanged::

    autolog.autolog()
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    for epoch in range(5):
        for x, y in train_loader:                  # a torch.utils.data.DataLoader
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        scheduler.step()
        with torch.no_grad():                      # evaluation is never counted
            evaluate(model, val_loader)

gives one run, opened at the first ``optimizer.step()`` of the thread (or your
active run, if you started one; none with ``exclusive=True``) and closed when
the next training starts, at ``autolog.end_run()`` or at interpreter exit
(FAILED when an uncaught exception ends the script, KILLED on Ctrl-C; the exit
code stays Python's). It holds:

- **params** (at the first step of each optimizer): ``optimizer`` (class name),
  ``optimizer.<key>`` for each hyperparameter of its param group (``lr``,
  ``momentum``, ``betas``, ``weight_decay``, ...; ``optimizer.group<i>.<key>``
  when it has several groups) and ``parameter_count`` (the number of values
  the optimizer trains). A second optimizer (a GAN's) logs the same under
  ``optimizer1``;
- **metrics per epoch** (step = epoch index): ``train_loss``, the mean of the
  tensors you called ``backward()`` on (summed on their own device, read once
  per epoch: no per-step ``.item()`` and no device synchronisation);
  ``learning_rate`` (``learning_rate_group_<i>`` with several param groups;
  ``..._optimizer1`` for a second optimizer), the rate the epoch's last step
  used, so schedulers show; and ``steps``, the optimizer steps of the epoch;
- **the model**: the modules whose trainable parameters the optimizers train
  (the outermost ones; ``torch.compile`` and ``DataParallel`` wrappers are
  unwrapped), found at each optimizer's first step (among what the loop's
  stack holds: its functions' locals and globals and their attributes, such as
  ``self.model``; among all the process's objects when the model is kept
  elsewhere) and saved with
  ``log_model`` as ``model`` (more than one, as ``model_1``, ...) when the run
  closes: see :class:`TorchFlavor`. autolog keeps them alive until then, so a
  model built inside ``def main()`` is saved at exit too; with
  ``log_models=False`` it holds no reference to them.

**Trainings.** A new optimizer whose parameters no earlier optimizer of the run
trains, stepping over another ``DataLoader`` than the run's (or after the
earlier optimizers were freed), is a new training: the run before ends (with
its model) and a new one opens; inside your own run, the new training gets a
child run of it (tag ``mlflow.parentRunId``), ended with yours at the latest.
``train(lr=0.1)`` then ``train(lr=0.5)`` thus give two runs. A second
optimizer on the same loader (a GAN's) or over the same parameters
(fine-tuning) stays in the run, as ``optimizer1``.

**Epochs.** The training loader is the ``DataLoader`` whose iteration was
running at the first optimizer step; each new iteration over it starts an
epoch. A loop without a ``DataLoader`` (tensors sliced by hand) is one epoch,
logged when the run closes. A loader created anew for every epoch is not
recognised as the same loader: its epochs are logged as one.

Inside a Lightning ``Trainer.fit`` or a Keras ``fit`` on the torch backend
this integration does nothing: those integrations own the run. Under
``torch.distributed`` only rank 0 logs. Losses are what goes through
``loss.backward()`` or ``torch.autograd.backward(loss)`` (a scalar tensor;
``torch.autograd.grad`` computes no training step and is not counted).
"""

from __future__ import annotations

import contextlib
import gc
import io
import sys
import threading
import warnings
import weakref
from pathlib import Path
from time import perf_counter_ns

from autolog import plugin
from autolog.plugin import Flavor, ModelSnapshot, Patcher, active_sessions, guard

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

__all__ = ["TorchFlavor", "TorchIntegration"]

NAME = "torch"
MODEL_FILE = "model.pt"
STATE_DICT_FILE = "state_dict.pt"

# losses summed per batch of this many steps (bounded memory: 0-d tensors)
_LOSS_BATCH = 128

# The per-step hooks' common case costs about as much as two clock reads:
# one call in _SAMPLE is timed and counts _SAMPLE times in the run's
# autolog.overhead_ms (an unbiased estimate; every other path is timed).
_SAMPLE = 16
_SAMPLE_MASK = _SAMPLE - 1

# tracker states
_IDLE, _LOGGING, _SKIPPING = 0, 1, 2


# -- the per-thread loop tracker ---------------------------------------------------------


class _LoopTracker:
    """What one thread's plain loop has done since its run opened.

    Everything on the per-step path (``add_loss``, ``on_step``) is a few
    attribute updates and, for the loss, one in-place add on the loss's device.
    A new optimizer costs more once: its params, the new-training test and (with
    ``log_models``) the search for the modules it trains (see trained_modules).
    """

    def __init__(self, integration: TorchIntegration):
        self.integration = integration
        self.state = _IDLE
        self.run_id: str | None = None  # the run this training logs to
        self.owned = False  # we opened run_id (and so end it)
        self.user_run_id: str | None = None  # the user's run we log in (or under)
        self.pending_losses: list[Any] = []  # detached losses not yet in loss_sum
        self.loss_sum: Any = None  # float32 0-d tensor on the losses' device
        self.loss_count = 0  # losses in loss_sum
        self.steps = 0  # steps of the first optimizer in this epoch
        self.rates: dict[int, Any] = {}  # optimizer index -> lr per group, last step
        self.optimizers: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self.last_optimizer: weakref.ref[Any] | None = None  # the last step's optimizer
        self.last_index = 0  # and its index
        self.optimizer_count = 0
        self.trained: list[weakref.ref[Any]] = []  # the optimizers' parameters
        # The trained modules, held until the run ends so that they can be saved
        # then, even when the script's own references are gone (``main()``
        # returned before exit).
        self.modules: list[Any] = []
        self.epoch = 0
        self.train_loader: weakref.ref[Any] | None = None
        self.latest_loader: weakref.ref[Any] | None = None  # the last one iterated
        self.spent_ns = 0  # our time in this thread's hooks (the run's self-overhead)
        self.fast_steps = 0  # the step hook's common-case calls (see _SAMPLE)
        self.opened_ns = 0  # when the run opened (perf_counter_ns)

    # per step ----------------------------------------------------------------

    def add_loss(self, loss: Any) -> None:
        if self.state == _SKIPPING or loss.numel() != 1:
            return  # a non-scalar backward(gradient) is no loss
        # Appending a detached reference is the cheapest step-path work (no
        # kernel launch, no read of the value: no sync); the tensors are summed
        # on their device in batches.
        pending = self.pending_losses
        pending.append(loss.detach())
        if len(pending) >= _LOSS_BATCH:
            self._fold_losses()

    def _fold_losses(self) -> None:
        """Add the pending losses to the float32 sum, on their device, without a sync."""
        import torch

        pending, self.pending_losses = self.pending_losses, []
        if not pending:
            return
        try:
            # Every loss has one element; stacked as they are (the usual case:
            # one shape, one device) their sum needs no per-tensor reshape.
            total = torch.stack(pending).sum(dtype=torch.float32)
        except RuntimeError:  # shapes or devices differ: add them one by one
            device = pending[0].device
            total = sum(t.reshape(()).to(device, torch.float32) for t in pending)
        self.loss_count += len(pending)
        if self.loss_sum is None:
            self.loss_sum = total
        else:
            self.loss_sum = self.loss_sum + total.to(self.loss_sum.device)

    def on_step(self, optimizer: Any, started_ns: int) -> None:
        """``started_ns``: when the step hook began (a run it opens starts then)."""
        if self.state != _LOGGING and (self.state == _SKIPPING or not self._open(started_ns)):
            return
        last = self.last_optimizer  # the common case: the same optimizer as the last step
        if last is not None and last() is optimizer:
            index = self.last_index
        else:
            index = self.optimizers.get(optimizer)
            if index is None:
                if self._is_new_training(optimizer):
                    self._start_next_training(started_ns)
                index = self._add_optimizer(optimizer)
            self.last_optimizer, self.last_index = weakref.ref(optimizer), index
        if index == 0:
            self.steps += 1
        groups = optimizer.param_groups
        # one group (the usual case): its rate alone, no list built each step
        self.rates[index] = groups[0]["lr"] if len(groups) == 1 else [g["lr"] for g in groups]

    def on_loader_iter(self, loader: Any) -> None:
        if self.state == _SKIPPING:
            return
        train = self.train_loader
        if train is not None and train() is loader:
            self.latest_loader = train
            self._close_epoch()
        else:
            # Another loader (validation, or the next training's): the losses
            # from here on are told apart from the epoch's (see
            # _start_next_training); before the first step they belong to no epoch.
            self.latest_loader = weakref.ref(loader)
            if self.state == _IDLE:
                self._reset_epoch()
            else:
                self._fold_losses()

    # trainings and runs -----------------------------------------------------------

    def _open(self, started_ns: int) -> bool:
        """Open (or join) the run at the first step; False when this step must not log."""
        if not plugin.is_main_process():
            self.state = _SKIPPING  # other ranks never log, for the life of the thread
            return False
        user_run = plugin.active_run_id()
        # the one run policy: exclusive, tags, a child run when the user's run
        # already holds another training
        run_id, created = plugin.training_run(self.integration)
        if run_id is None:  # exclusive: the user's run is left alone
            self.state = _SKIPPING
            plugin.on_run_end(user_run, self._on_skipped_run_end)
            return False
        self.run_id, self.owned, self.user_run_id = run_id, created, user_run
        self._begin(run_id, started_ns)
        return True

    def _start_run(self, parent: str | None = None) -> str:
        self.owned = True
        return plugin.start_training_run(self.integration, parent)

    def _begin(self, run_id: str, started_ns: int) -> None:
        # The run's training time starts with the hook that opened it: its
        # opening is our overhead, part of the training's time as for a fit.
        self.opened_ns = started_ns
        self.state = _LOGGING
        self.epoch = 0
        self.train_loader = self.latest_loader
        plugin.on_run_end(run_id, self._on_run_end)

    def _is_new_training(self, optimizer: Any) -> bool:
        """A new optimizer over parameters no earlier optimizer of the run trains,
        whose first step comes from another loader than the run's (or after
        every earlier optimizer was freed), starts a new training (a GAN's second
        optimizer shares the loader; fine-tuning shares the parameters)."""
        if not self.optimizer_count:
            return False
        held = {id(p) for ref in self.trained if (p := ref()) is not None}
        if any(id(p) in held for group in optimizer.param_groups for p in group["params"]):
            return False
        latest = self.latest_loader() if self.latest_loader is not None else None
        train = self.train_loader() if self.train_loader is not None else None
        return (latest is not None and latest is not train) or not len(self.optimizers)

    def _start_next_training(self, started_ns: int) -> None:
        """End the run of the training before (ours; a child of the user's run) and
        open the next one: ours again, or a child run of the user's run."""
        # Losses since the next training's loader started are the next training's.
        carried, self.pending_losses = self.pending_losses, []
        user_run_id, latest = self.user_run_id, self.latest_loader
        if self.owned:
            plugin.end_training_run(run_id=self.run_id)  # _on_run_end forgets it
        else:
            self._finish_training(self.run_id)  # the user's run stays open
            self._forget_run()
        self.latest_loader, self.user_run_id = latest, user_run_id
        self.run_id = self._start_run(parent=user_run_id)
        self._begin(self.run_id, started_ns)
        self.pending_losses = carried

    def _add_optimizer(self, optimizer: Any) -> int:
        index = self.optimizer_count
        self.optimizer_count += 1
        self.optimizers[optimizer] = index
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        self.trained.extend(weakref.ref(p) for p in parameters)
        params = plugin.optimizer_params(optimizer, index)
        count_key = (
            "parameter_count" if index == 0 else f"{plugin.optimizer_prefix(index)}.parameter_count"
        )
        params[count_key] = sum(p.numel() for p in parameters)
        plugin.log_params(params, self.run_id)
        if self.integration.config.log_models:
            from torch.nn import Parameter

            live = [p for r in self.trained if (p := r()) is not None]
            self.modules = trained_modules(
                {id(p) for p in live}, loose={id(p) for p in live if not isinstance(p, Parameter)}
            )
        return index

    def _close_epoch(self) -> None:
        if self.rates:  # some optimizer stepped in this epoch
            metrics: dict[str, Any] = {"steps": self.steps}
            self._fold_losses()
            if self.loss_count:
                metrics["train_loss"] = (self.loss_sum / self.loss_count).item()
            for index, rates in sorted(self.rates.items()):
                if not isinstance(rates, list):
                    rates = [rates]
                metrics.update(plugin.learning_rate_metrics(rates, index))
            plugin.log_epoch_metrics(metrics, self.epoch, self.run_id)
            self.epoch += 1
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self.pending_losses = []
        self.loss_sum = None
        self.loss_count = 0
        self.steps = 0
        self.rates = {}

    def _finish_training(self, run_id: str) -> None:
        """The open epoch, the model and the run's self-overhead, logged to ``run_id``."""
        start = perf_counter_ns()
        with guard(NAME, "while closing its run"):
            self._close_epoch()
            if self.integration.config.log_models:
                _log_modules(self.modules, run_id)
            now = perf_counter_ns()
            plugin.log_overhead(run_id, self.spent_ns + now - start, now - self.opened_ns)

    def _on_run_end(self, run_id: str, status: str) -> None:
        if run_id == self.run_id:
            try:
                self._finish_training(run_id)
            finally:
                self._forget_run()
        elif run_id == self.user_run_id and self.owned:
            # The user's run ends with our child run of it still open: it ends too.
            with guard(NAME, "while closing its run"):
                plugin.end_training_run(status, run_id=self.run_id)

    def _on_skipped_run_end(self, run_id: str, status: str) -> None:
        if self.state == _SKIPPING:
            self._forget_run()

    def _forget_run(self) -> None:
        latest = self.latest_loader  # the next training may be iterating it already
        self.__init__(self.integration)  # type: ignore[misc]
        self.latest_loader = latest


class _Trackers(threading.local):
    """Each thread's :class:`_LoopTracker`, made on the thread's first read."""

    def __init__(self, integration: TorchIntegration) -> None:
        self.tracker = _LoopTracker(integration)


# -- the trained model ---------------------------------------------------------------------


def _log_modules(modules: list[Any], run_id: str) -> None:
    for number, module in enumerate(modules):
        plugin.log_model(module, "model" if number == 0 else f"model_{number}", run_id=run_id)


def trained_modules(
    held: set[int], frame: Any = None, loose: set[int] | frozenset[int] = frozenset()
) -> list[Any]:
    """The outermost ``nn.Module`` objects alive whose trainable parameters all have
    their ``id`` in ``held`` (the optimizers'), largest first; wrappers unwrapped.

    Looked for first among the modules the stack reaches (see
    :func:`_stack_modules`; ``frame``, default the caller's, and every frame
    below it), which is where a loop's model lives. That answer is kept when
    its modules hold every tensor of ``held`` but those of ``loose`` (plain
    tensors, not ``nn.Parameter``: no module holds them); otherwise (a model
    kept where the stack does not reach) every module on the heap is looked
    at, a scan of ``gc.get_objects()``: tens of milliseconds in a big
    process, a hundred times the stack's cost. The stack's answer differs
    from the heap's only where a module the stack does not reach holds the
    model inside it (not a wrapper: those are unwrapped anyway) or shares its
    parameters."""
    if not held:
        return []
    try:
        found = _outermost(_stack_modules(frame or sys._getframe(1)), held)
    except Exception:  # an object on the stack that will not be looked at: the heap then
        found = []
    covered = {id(p) for module in found for p in module.parameters()}
    if held - loose <= covered:
        return found
    return _outermost(_heap_modules(), held)


def _outermost(modules: list[Any], held: set[int]) -> list[Any]:
    """Among ``modules`` and their submodules, the outermost whose trainable
    parameters are all in ``held``, unwrapped, largest first."""
    candidates = []
    seen: set[int] = set()
    for tree in modules:
        for module in tree.modules():
            if id(module) in seen:
                continue
            seen.add(id(module))
            trainable = [p for p in module.parameters() if p.requires_grad]
            if trainable and all(id(p) in held for p in trainable):
                candidates.append(module)
    inner = {id(m) for c in candidates for m in c.modules() if m is not c}
    found: dict[int, Any] = {}
    for module in candidates:
        if id(module) not in inner:
            module = _unwrapped(module)
            found.setdefault(id(module), module)
    return sorted(found.values(), key=lambda m: -sum(p.numel() for p in m.parameters()))


def _heap_modules() -> list[Any]:
    """Every ``nn.Module`` the garbage collector tracks."""
    import torch

    with warnings.catch_warnings():
        # isinstance reads __class__, which some deprecated module-level
        # objects (torch.distributed.reduce_op) answer with a warning
        warnings.simplefilter("ignore")
        return [obj for obj in gc.get_objects() if isinstance(obj, torch.nn.Module)]


def _stack_modules(frame: Any) -> list[Any]:
    """The modules the stack from ``frame`` down reaches (``plugin.objects_on_stack``)."""
    import torch

    return plugin.objects_on_stack(torch.nn.Module, frame)


def _unwrapped(module: Any) -> Any:
    # torch.compile's OptimizedModule keeps the user's module as _orig_mod;
    # DataParallel / DistributedDataParallel as .module.
    import torch

    while True:
        original = getattr(module, "_orig_mod", None)
        if isinstance(original, torch.nn.Module):
            module = original
        elif isinstance(module, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            module = module.module
        else:
            return module


# -- the model flavor ----------------------------------------------------------------------


class TorchFlavor(Flavor):
    """Any ``torch.nn.Module`` (LightningModules too; they load as their own class).

    The folder holds ``model.pt``, the whole module saved with ``torch.save``
    through cloudpickle (so a class defined in your script, ``__main__``, is
    stored with it and loads in a fresh process) and ``state_dict.pt``, the
    weights alone, for ``model.load_state_dict(torch.load(path))`` in code
    that builds the module itself. ``autolog.load_model`` returns the module,
    on its original device when available, else on the CPU.

    Loading ``model.pt`` runs code from the file (it is a pickle): only load
    models you trust. ``state_dict.pt`` loads with ``weights_only=True``.
    """

    name = "torch"
    distribution = "torch"
    module = "torch"

    def handles(self, model: Any) -> bool:
        import torch

        return isinstance(model, torch.nn.Module)

    def requirements(self, model: Any) -> list[str]:
        needed = ["cloudpickle"]
        roots = {cls.__module__.partition(".")[0] for cls in type(model).__mro__}
        for root, dist in (("lightning", "lightning"), ("pytorch_lightning", "pytorch-lightning")):
            if root in roots:
                needed.append(dist)
        return needed

    def snapshot(self, model: Any, **options: Any) -> ModelSnapshot:
        """A module whose tensors are all on the CPU is deep-copied here (a
        memory copy, a fraction of a millisecond for a small model) and saved
        from that copy on the writer thread; one on a GPU (a copy would take
        device memory the training may need), or one that cannot be copied,
        is saved here."""
        metadata = {
            "model_file": MODEL_FILE,
            "state_dict_file": STATE_DICT_FILE,
            "class": plugin.class_path(model),
        }
        copied = _private_copy(model)
        if copied is not None:
            deferred = {
                MODEL_FILE: lambda: _whole_bytes(copied),
                STATE_DICT_FILE: lambda: _weights_bytes(copied),
            }
            return ModelSnapshot({}, metadata, deferred=deferred)
        return ModelSnapshot(
            {MODEL_FILE: _whole_bytes(model), STATE_DICT_FILE: _weights_bytes(model)}, metadata
        )

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        import torch

        location = None if torch.cuda.is_available() else "cpu"
        file = Path(path) / metadata.get("model_file", MODEL_FILE)
        return torch.load(file, weights_only=False, map_location=location)


def _whole_bytes(model: Any) -> bytes:
    import cloudpickle
    import torch

    buffer = io.BytesIO()
    with _submodules_indexed():
        torch.save(model, buffer, pickle_module=cloudpickle)
    return buffer.getvalue()


# One save at a time swaps cloudpickle's submodule lookup (see below); the
# index it reads is kept between saves while sys.modules stays the same.
_SUBMODULES_LOCK = threading.Lock()
_submodule_index: dict[str, list[tuple[str, set[str]]]] = {}
_indexed_modules: list[Any] = [None]  # (len(sys.modules), its newest name) indexed


@contextlib.contextmanager
def _submodules_indexed() -> Iterator[None]:
    """cloudpickle's ``_find_imported_submodules``, answered from an index of
    ``sys.modules`` by package.

    For each function it pickles by value (the methods of a class defined in
    ``__main__``) cloudpickle scans all of ``sys.modules`` once per module the
    function's globals hold, splitting every submodule's name: with torch and
    Lightning imported (3,000+ modules) that is three quarters of the save
    (2.6 of 3.5 ms for a small LightningModule). The replacement gives the
    same list, in the same order, from names grouped by package once; the
    index is rebuilt when ``sys.modules`` changed (its size or its newest
    name). Outside the save, and where cloudpickle has no such function,
    cloudpickle is untouched."""
    module = sys.modules.get("cloudpickle.cloudpickle")
    original = getattr(module, "_find_imported_submodules", None)
    if original is None:
        yield
        return
    with _SUBMODULES_LOCK:
        module._find_imported_submodules = _find_imported_submodules
        try:
            yield
        finally:
            module._find_imported_submodules = original


def _find_imported_submodules(code: Any, top_level_dependencies: Any) -> list[Any]:
    import types

    modules = sys.modules
    state = (len(modules), next(reversed(modules), None))
    if state != _indexed_modules[0]:
        _submodule_index.clear()
        _indexed_modules[0] = state
    subimports = []
    names = None
    for x in top_level_dependencies:
        if isinstance(x, types.ModuleType) and hasattr(x, "__package__") and x.__package__:
            prefix = x.__name__ + "."
            found = _submodule_index.get(prefix)
            if found is None:
                start = len(prefix)
                found = _submodule_index[prefix] = [
                    (name, set(name[start:].split(".")))
                    for name in list(modules)
                    if isinstance(name, str) and name.startswith(prefix)
                ]
            if names is None:
                names = set(code.co_names)
            for name, tokens in found:
                if tokens <= names and name in modules:
                    subimports.append(modules[name])
    return subimports


def _weights_bytes(model: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def _private_copy(model: Any) -> Any:
    """A deep copy of a module whose parameters and buffers are all on the CPU
    (LightningModules drop their trainer in it, as when pickled), or None."""
    import copy

    import torch

    tensors = [*model.parameters(), *model.buffers()]
    if any(t.device.type != "cpu" or t.is_sparse or t.is_quantized for t in tensors):
        return None
    try:
        with torch.no_grad():
            return copy.deepcopy(model)
    except Exception:  # an attribute that does not copy (a lock, a file): saved now
        return None


# -- the integration -------------------------------------------------------------------------


class TorchIntegration(plugin.Integration):
    """Plain PyTorch loops (see the module docstring for what a run holds)."""

    name = NAME
    modules = ("torch",)
    distribution = "torch"
    supported_versions = ">=2.1,<2.14"
    flavors = (TorchFlavor,)

    def __init__(self) -> None:
        super().__init__()
        # this thread's tracker, as an attribute: made on a thread's first read
        # of it, read without a Python call (the step path reads it twice a step)
        self._threads = _Trackers(self)
        self._tensor_type: Any = ()  # torch.Tensor, once patched

    def tracker(self) -> _LoopTracker:
        """This thread's loop tracker."""
        return self._threads.tracker

    def patch(self, patcher: Patcher, module: Any) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self._tensor_type = module.Tensor
        handle = register_optimizer_step_post_hook(self._on_optimizer_step)
        patcher.add_cleanup(handle.remove)
        # loss.backward() calls torch.autograd.backward: one wrap sees both.
        # Observed, not wrapped with a handler: it runs every step, and needs
        # neither a run nor the call's arguments by name (about 1 us).
        patcher.observe(module.autograd, "backward", self._after_backward)
        patcher.observe(module.utils.data.DataLoader, "__iter__", self._after_loader_iter)

    # The two per-step hooks do the common case inline (the same optimizer
    # as the last step; a scalar loss that fills no batch) and call the
    # tracker otherwise:
    # each Python call saved is ~0.1 us of every step.

    def _on_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        # A global hook: it also fires inside Lightning's or Keras' fit, whose
        # integrations own that run (their session is on the stack).
        sessions = active_sessions()
        if sessions and sessions[0].integration != NAME:
            return
        try:  # guard()'s rule, without its object: this runs every step
            tracker = self._threads.tracker
            last = tracker.last_optimizer
            if tracker.state == _LOGGING and last is not None and last() is optimizer:
                # on_step's common case, timed one call in _SAMPLE (see _SAMPLE)
                calls = tracker.fast_steps = tracker.fast_steps + 1
                timed = not calls & _SAMPLE_MASK
                if timed:
                    start = perf_counter_ns()
                index = tracker.last_index
                if index == 0:
                    tracker.steps += 1
                groups = optimizer.param_groups
                tracker.rates[index] = (
                    groups[0]["lr"] if len(groups) == 1 else [g["lr"] for g in groups]
                )
                if timed:
                    tracker.spent_ns += _SAMPLE * (perf_counter_ns() - start)
            else:
                start = perf_counter_ns()
                tracker.on_step(optimizer, start)
                tracker.spent_ns += perf_counter_ns() - start
        except Exception as exc:
            plugin.report_error(NAME, exc, "in the optimizer step hook")

    def _after_backward(self, instance: Any, args: Any, kwargs: Any, result: Any) -> None:
        # a loss counts once its backward pass succeeded
        loss = args[0] if args else kwargs.get("tensors")
        if type(loss) is self._tensor_type:
            tracker = self._threads.tracker
            pending = tracker.pending_losses
            count = len(pending)
            if count < _LOSS_BATCH - 1 and loss.ndim == 0 and tracker.state != _SKIPPING:
                # add_loss's common case, a plain scalar tensor: .data is
                # detach()'s tensor (the same storage, no autograd history)
                # made without the dispatcher, about half its cost; the value
                # is not read. Timed one call in _SAMPLE (see _SAMPLE).
                if count & _SAMPLE_MASK:
                    pending.append(loss.data)
                else:
                    start = perf_counter_ns()
                    pending.append(loss.data)
                    tracker.spent_ns += _SAMPLE * (perf_counter_ns() - start)
                return
        if isinstance(loss, self._tensor_type):  # one tensor, not a sequence of them
            start = perf_counter_ns()
            tracker = self._threads.tracker
            tracker.add_loss(loss)
            tracker.spent_ns += perf_counter_ns() - start

    def _after_loader_iter(self, loader: Any, args: Any, kwargs: Any, result: Any) -> None:
        start = perf_counter_ns()
        tracker = self._threads.tracker
        # DataLoader.__iter__(loader), called through the class, binds no instance
        tracker.on_loader_iter(loader if loader is not None else args[0])
        tracker.spent_ns += perf_counter_ns() - start
