"""Lightning autologging: ``Trainer.fit`` of ``lightning.pytorch`` and ``pytorch_lightning``.

``autolog.autolog()`` (or ``autolog.autolog("lightning")``) and then::

    trainer = lightning.pytorch.Trainer(max_epochs=10, callbacks=[EarlyStopping("val_loss")])
    trainer.fit(module, train_loader, val_loader)

gives one run per ``fit`` (or logs into your active run) holding:

- **params**: ``max_epochs``, ``precision``, ``accumulate_grad_batches``, each
  optimizer's class and hyperparameters per param group (``optimizer``,
  ``optimizer.lr``, ``optimizer.betas``, ...; ``optimizer1...`` for a second
  optimizer), each LR scheduler's class and settings (``lr_scheduler``,
  ``lr_scheduler.step_size``, ``lr_scheduler.interval``, ...), the module's
  ``hparams`` (``save_hyperparameters()``) and the ``EarlyStopping``
  settings (``early_stopping_monitor``, ``..._patience``, ``..._mode``, ...);
- **metrics per epoch** (step = epoch): ``trainer.callback_metrics`` (what the
  module logs with ``self.log``, training and validation) and the learning
  rates the epoch started with (``learning_rate``, named as in
  :func:`autolog.integrations.torch.learning_rate_metrics`).
  The sanity check is skipped; a validation value is logged only for the
  epochs where validation ran. ``log_every_n_step=N`` also logs the values
  every N optimizer steps as ``batch_<name>`` at step = global step (off by
  default: reading them synchronises the device);
- **early stopping**: ``stopped_epoch`` (when it stopped), ``best_score`` and
  ``early_stopping_wait_count``;
- **tags and artifacts**: ``best_checkpoint_path`` (``ModelCheckpoint``'s best
  file), ``model_summary.txt``, and with ``log_models`` the trained module as
  ``model/`` (the torch flavor: it loads back as your LightningModule class).

Our callback is added to the trainer's callback list for the duration of
``fit`` only; it holds the run id and option values (``ddp_spawn`` pickles
it), and only rank zero logs. The plain-loop integration (``torch``) stays
quiet inside ``fit``.
"""

from __future__ import annotations

import sys
from collections.abc import Generator

from autolog import plugin
from autolog.integrations.torch import TorchFlavor
from autolog.plugin import Call, Patcher, guarded

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    from typing import Any

__all__ = ["LightningIntegration"]

NAME = "lightning"
BEST_CHECKPOINT_TAG = "best_checkpoint_path"
_EARLY_STOPPING_SETTINGS = ("monitor", "patience", "min_delta", "mode", "stopping_threshold")
# scheduler attributes that are state, not settings
_SCHEDULER_STATE = frozenset({"last_epoch", "verbose", "base_lrs", "optimizer"})
_SCHEDULER_CONFIG = ("interval", "frequency", "monitor")

# Our callback subclasses the Callback class of the package being patched
# (lightning.pytorch or pytorch_lightning), so the classes are built on first
# use (rule 3: no framework import here). They are module attributes, created
# on demand by __getattr__ too, so a pickled callback (ddp_spawn) unpickles by
# reference in a fresh process.
_PACKAGES = {"AutologCallback": "lightning.pytorch", "AutologCallbackPL": "pytorch_lightning"}
_classes = plugin.FrameworkClasses(__name__)
__getattr__ = _classes.module_getattr


def _callback_class(package: str) -> type:
    return _classes.get(next(key for key, value in _PACKAGES.items() if value == package))


def _build_callback_class(package: str) -> type:
    import importlib

    base = importlib.import_module(package).Callback

    class AutologCallback(base):  # type: ignore[misc, valid-type]
        """Logs params at the start, each epoch's metrics in one enqueue at its end,
        and the early-stopping summary and best checkpoint at the end of training.

        State: the run id and the ``log_every_n_step`` option (picklable);
        what it learns during fit (which keys validation logs) is rebuilt.
        """

        # Lightning calls each hook of every callback per batch, each in a
        # profiler context (about 4 us a call); it skips an attribute that is
        # not callable: the per-batch hooks we do not use are None.
        on_train_batch_start = on_before_backward = on_after_backward = None
        on_before_optimizer_step = on_before_zero_grad = None
        on_validation_batch_start = on_validation_batch_end = None
        on_test_batch_start = on_test_batch_end = None
        on_predict_batch_start = on_predict_batch_end = None

        def __init__(self, run_id: str, log_every_n_step: int | None = None):
            super().__init__()
            self.run_id = run_id
            self.log_every_n_step = log_every_n_step
            self._reset()

        def _reset(self) -> None:
            if not self.log_every_n_step:  # no batch values to log: skipped too
                self.on_train_batch_end = None
            self._validation_keys: set[str] = set()
            self._keys_before_validation: set[str] = set()
            self._validated = False
            self._epoch_rates: dict[str, Any] = {}
            self._worker_session: Any = None

        def __getstate__(self) -> dict[str, Any]:
            return {"run_id": self.run_id, "log_every_n_step": self.log_every_n_step}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.__dict__.update(state)
            self._reset()

        @guarded(NAME)
        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            # A ddp_spawn worker runs fit's loop without our patched fit: say so,
            # or the plain-loop integration would take it for a loop of its own.
            if plugin.active_session() is None:
                self._worker_session = plugin.inside_session(NAME, self.run_id)
                self._worker_session.__enter__()

        @guarded(NAME)
        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            session, self._worker_session = self._worker_session, None
            if session is not None:
                session.__exit__()

        @guarded(NAME)
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            if trainer.is_global_zero:
                plugin.log_params(_fit_params(trainer, pl_module), self.run_id)
                _log_summary(pl_module, self.run_id)

        @guarded(NAME)
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            # Read here: Lightning steps epoch-interval schedulers when the
            # epoch's batches are done, before on_train_epoch_end.
            self._epoch_rates = {}
            for index, optimizer in enumerate(trainer.optimizers):
                rates = [group["lr"] for group in optimizer.param_groups]
                self._epoch_rates.update(plugin.learning_rate_metrics(rates, index))

        @guarded(NAME)
        def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                self._keys_before_validation = set(trainer.callback_metrics)

        @guarded(NAME)
        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                added = set(trainer.callback_metrics) - self._keys_before_validation
                self._validation_keys |= added
                self._validated = True

        @guarded(NAME)
        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            validated, self._validated = self._validated, False
            if not trainer.is_global_zero:
                return
            metrics = dict(trainer.callback_metrics)
            if not validated:  # a stale value of an earlier validation
                for key in self._validation_keys:
                    metrics.pop(key, None)
            metrics.update(self._epoch_rates)
            plugin.log_epoch_metrics(metrics, trainer.current_epoch, self.run_id)

        @guarded(NAME)
        def on_train_batch_end(
            self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
        ) -> None:
            every = self.log_every_n_step  # set: else this hook is None
            step = trainer.global_step
            if trainer.is_global_zero and step % every == 0:
                plugin.log_epoch_metrics(
                    trainer.callback_metrics, step, self.run_id, prefix="batch_"
                )

        @guarded(NAME)
        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.is_global_zero:
                _log_early_stopping(trainer, self.run_id)
                _tag_best_checkpoint(trainer, self.run_id)

    return AutologCallback


for _name, _package in _PACKAGES.items():
    _classes.define(_name, lambda package=_package: _build_callback_class(package))


# -- what the callback logs ---------------------------------------------------------


def _fit_params(trainer: Any, pl_module: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    hparams = getattr(pl_module, "hparams", None)
    if hparams:
        params.update(plugin.flatten(dict(hparams)))
    params["max_epochs"] = trainer.max_epochs
    params["precision"] = trainer.precision
    params["accumulate_grad_batches"] = trainer.accumulate_grad_batches
    for index, optimizer in enumerate(trainer.optimizers):
        params.update(plugin.optimizer_params(optimizer, index))
    for index, config in enumerate(trainer.lr_scheduler_configs):
        params.update(_scheduler_params(config, index))
    early = _first(trainer.callbacks, "EarlyStopping")
    if early is not None:
        params.update(plugin.settings_params(early, _EARLY_STOPPING_SETTINGS, "early_stopping_"))
    return params


def _scheduler_params(config: Any, index: int) -> dict[str, Any]:
    prefix = "lr_scheduler" if index == 0 else f"lr_scheduler{index}"
    scheduler = config.scheduler
    params: dict[str, Any] = {prefix: type(scheduler).__name__}
    for key, value in vars(scheduler).items():
        if not key.startswith("_") and key not in _SCHEDULER_STATE and _is_setting(value):
            params[f"{prefix}.{key}"] = value
    for key in _SCHEDULER_CONFIG:
        value = getattr(config, key, None)
        if value is not None:
            params[f"{prefix}.{key}"] = value
    return params


def _is_setting(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value)


def _log_summary(pl_module: Any, run_id: str) -> None:
    package = "pytorch_lightning" if _is_pl(pl_module) else "lightning.pytorch"
    summary_module = sys.modules.get(f"{package}.utilities.model_summary")
    if summary_module is None:
        import importlib

        summary_module = importlib.import_module(f"{package}.utilities.model_summary")
    plugin.log_model_summary(str(summary_module.ModelSummary(pl_module, max_depth=1)), run_id)


def _log_early_stopping(trainer: Any, run_id: str) -> None:
    early = _first(trainer.callbacks, "EarlyStopping")
    if early is None:
        return
    stopped = getattr(early, "stopped_epoch", 0)
    plugin.log_early_stopping(
        run_id,
        stopped_epoch=stopped or None,  # 0: it never stopped training
        best_score=getattr(early, "best_score", None),
        monitor=early.monitor,
        patience=early.patience,
    )
    plugin.log_epoch_metrics(
        {"early_stopping_wait_count": getattr(early, "wait_count", None)}, 0, run_id
    )


def _tag_best_checkpoint(trainer: Any, run_id: str) -> None:
    checkpoint = getattr(trainer, "checkpoint_callback", None)
    path = getattr(checkpoint, "best_model_path", None)
    if path:
        plugin.set_tag(BEST_CHECKPOINT_TAG, path, run_id=run_id)


def _first(callbacks: Any, class_name: str) -> Any:
    """The first callback that is an instance of a class named ``class_name``
    (Lightning's own, or a subclass), whichever package it comes from."""
    for callback in callbacks or ():
        if any(cls.__name__ == class_name for cls in type(callback).__mro__):
            return callback
    return None


def _is_pl(obj: Any) -> bool:
    return any(cls.__module__.startswith("pytorch_lightning") for cls in type(obj).__mro__)


# -- the integration -----------------------------------------------------------------


class LightningIntegration(plugin.Integration):
    """Lightning ``Trainer.fit`` (see the module docstring for what a run holds)."""

    name = NAME
    modules = ("lightning.pytorch", "pytorch_lightning")
    distribution = "lightning"
    supported_versions = ">=2.0,<2.7"
    options = {"log_every_n_step": plugin.Option(None, int, allow_none=True)}
    flavors = (TorchFlavor,)

    def patch(self, patcher: Patcher, module: Any) -> None:
        patcher.wrap(module.Trainer, "fit", self._on_fit)

    @plugin.datasets_from("train_dataloaders", "datamodule")
    def _on_fit(self, call: Call) -> Generator[None, Any, None]:
        trainer = call.instance
        package = "pytorch_lightning" if _is_pl(trainer) else "lightning.pytorch"
        callback = _callback_class(package)(call.run_id, call.config.log_every_n_step)
        # trainer.callbacks is the Trainer's own list (built from the user's in
        # __init__): ours goes in for this fit only, before the checkpoint
        # callbacks, which Lightning keeps last.
        original = trainer.callbacks
        position = next(
            (i for i, cb in enumerate(original) if _first([cb], "Checkpoint")), len(original)
        )
        trainer.callbacks = [*original[:position], callback, *original[position:]]
        try:
            yield
        finally:
            trainer.callbacks = original
        if call.config.log_models and trainer.is_global_zero:
            # The trainer's own reference: the fitted module, however fit was called.
            model = getattr(trainer, "lightning_module", None)
            if model is not None:
                plugin.log_model(model, "model", run_id=call.run_id)
