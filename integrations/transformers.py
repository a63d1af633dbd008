"""Hugging Face ``transformers`` autologging: ``Trainer.train`` (and ``Seq2SeqTrainer``'s).

``autolog.autolog()`` (or ``autolog.autolog("transformers")``) and then::

    args = TrainingArguments(output_dir="out", num_train_epochs=3, eval_strategy="epoch")
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      processing_class=tokenizer)
    trainer.train()

gives one run per ``train`` call (or logs into your active run) holding:

- **params**: the ``TrainingArguments`` you changed from their defaults
  (``num_train_epochs``, ``eval_strategy``, ``load_best_model_at_end``, ...;
  those the arguments derive from yours, such as ``do_eval``, too) plus the
  essentials whatever their value (``learning_rate``,
  ``per_device_train_batch_size``, ``gradient_accumulation_steps``,
  ``max_steps``, ``lr_scheduler_type``, ``optim``, ``seed``, ...);
  ``model_class``, and the model config's non-default entries as
  ``model.<key>`` (``model.hidden_size``, ``model.num_labels``, ...);
- **metrics**: everything the Trainer logs, at step = global step, at the
  steps and epochs its ``logging_strategy`` / ``eval_strategy`` say: ``loss``,
  ``grad_norm``, ``learning_rate``, ``epoch``, ``eval_loss`` and your
  ``compute_metrics`` values (``eval_accuracy``, ...), and the closing
  ``train_loss``, ``train_runtime``, ``train_samples_per_second``. The values
  are those the Trainer already read for its own log: autolog adds no
  device synchronisation;
- **best checkpoint**: ``best_score`` (the best value of
  ``metric_for_best_model``) and the tag ``best_checkpoint_path``; with an
  ``EarlyStoppingCallback``, the param ``early_stopping_patience``;
- **the model**: with ``log_models`` (default), ``trainer.model`` after
  training (the best one with ``load_best_model_at_end``) and its tokenizer
  or processor (``processing_class``), saved with ``save_pretrained`` as the
  folder ``model/``: ``autolog.load_model`` gives the model back, and the
  folder loads with ``AutoTokenizer.from_pretrained`` too (see
  :class:`TransformersFlavor`).

**report_to.** When the Trainer reports to MLflow itself (``report_to``
holds ``"mlflow"``, or ``"all"`` with mlflow installed, or you added an
``MLflowCallback``), that callback logs this training: autolog opens no run
for it and logs nothing, so nothing is logged twice. Other trackers
(``tensorboard``, ``wandb``, ...) write elsewhere and change nothing here.

**Distributed** (``torchrun``, ``accelerate launch``): only the main process
logs; the other processes train exactly as without autolog. The plain-loop
integration (``torch``) stays quiet inside ``train``.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path

import autolog
from autolog import plugin
from autolog.plugin import Call, Flavor, ModelSnapshot, Patcher, guarded

TYPE_CHECKING = False  # typing stays out of autolog()'s import cost
if TYPE_CHECKING:
    from typing import Any

__all__ = ["TransformersFlavor", "TransformersIntegration"]

NAME = "transformers"
BEST_CHECKPOINT_TAG = "best_checkpoint_path"
PROCESSOR_METADATA = "processing_class"

# logged whatever their value: what a reader compares runs by
ESSENTIAL_ARGUMENTS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "weight_decay",
    "warmup_steps",
    "lr_scheduler_type",
    "optim",
    "seed",
)
# never params: where things go on this machine, and what only the Hub needs
_SKIPPED_ARGUMENTS = frozenset({"hub_token", "push_to_hub_token", "logging_dir", "run_name"})
_MLFLOW_CALLBACK = "MLflowCallback"


# -- the callback we add for one train() ---------------------------------------------

_classes = plugin.FrameworkClasses(__name__)
__getattr__ = _classes.module_getattr


def _build_callback() -> type:
    import transformers

    class AutologCallback(transformers.TrainerCallback):
        """Logs each of the Trainer's logs in one enqueue at its global step.

        State: the run id (picklable). ``on_log`` runs where the Trainer has
        already turned its values into floats: no tensor is read here.
        """

        def __init__(self, run_id: str):
            self.run_id = run_id

        @guarded(NAME)
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and state.is_world_process_zero:
                plugin.log_epoch_metrics(logs, state.global_step, self.run_id)

    return AutologCallback


_classes.define("AutologCallback", _build_callback)


# -- params ----------------------------------------------------------------------------


def _argument_params(args: Any) -> dict[str, Any]:
    """The non-default ``TrainingArguments`` (and the essentials), by name."""
    defaults = _argument_defaults(type(args))
    params: dict[str, Any] = {}
    for key, value in args.to_dict().items():
        if key in _SKIPPED_ARGUMENTS or key.startswith("_"):
            continue
        if key in ESSENTIAL_ARGUMENTS or not _is_default(value, defaults.get(key, _NO_DEFAULT)):
            params[key] = value
    return params


_NO_DEFAULT = object()
_defaults: dict[type, dict[str, Any]] = {}


def _argument_defaults(cls: type) -> dict[str, Any]:
    """The dataclass defaults of a ``TrainingArguments`` class, as ``to_dict`` shows
    values (enums by value). Read from the fields: building default arguments
    would reset accelerate's process state under the user's Trainer."""
    cached = _defaults.get(cls)
    if cached is None:
        import dataclasses
        import enum

        cached = {}
        for field in dataclasses.fields(cls):
            if field.default is not dataclasses.MISSING:
                value = field.default
            elif field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
            else:
                continue
            cached[field.name] = value.value if isinstance(value, enum.Enum) else value
        cached["accelerator_config"] = _accelerator_defaults()
        _defaults[cls] = cached
    return cached


def _accelerator_defaults() -> Any:
    try:
        from transformers.trainer_pt_utils import AcceleratorConfig

        return AcceleratorConfig().to_dict()
    except Exception:  # another layout of transformers: the setting is logged
        return _NO_DEFAULT


def _is_default(value: Any, default: Any) -> bool:
    if default is _NO_DEFAULT:
        return False
    if value == default:
        return True
    # what __post_init__ fills in for an unset value: None -> False, "none" -> []
    return default in (None, "", "none") and value in (None, False, "", [], {})


def _model_params(model: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"model_class": plugin.class_path(model)}
    config = getattr(model, "config", None)
    to_diff_dict = getattr(config, "to_diff_dict", None)
    if to_diff_dict is not None:
        changed = {
            key: value
            for key, value in to_diff_dict().items()
            if not key.startswith("_") and key not in ("transformers_version", "architectures")
        }
        params.update(plugin.flatten(changed, prefix="model"))
    return params


def _reports_to_mlflow(trainer: Any) -> bool:
    callbacks = trainer.callback_handler.callbacks
    return any(type(cb).__name__ == _MLFLOW_CALLBACK for cb in callbacks)


def _log_best(trainer: Any, run_id: str) -> None:
    state = trainer.state
    early = next(
        (cb for cb in trainer.callback_handler.callbacks if hasattr(cb, "early_stopping_patience")),
        None,
    )
    plugin.log_early_stopping(
        run_id,
        best_score=state.best_metric,
        patience=getattr(early, "early_stopping_patience", None),
    )
    if state.best_model_checkpoint:
        plugin.set_tag(BEST_CHECKPOINT_TAG, state.best_model_checkpoint, run_id=run_id)


# -- the model flavor ---------------------------------------------------------------------


class TransformersFlavor(Flavor):
    """A ``transformers`` ``PreTrainedModel`` in its own ``save_pretrained`` format.

    The folder holds what ``model.save_pretrained`` writes (``config.json``,
    ``model.safetensors``, ``generation_config.json``, ...) and, when given as
    ``log_model(model, processing_class=tokenizer)`` (the Trainer integration
    passes its ``processing_class``), what the tokenizer's or processor's
    ``save_pretrained`` writes: ``transformers.AutoTokenizer.from_pretrained``
    reads it from the downloaded folder. ``autolog.load_model`` returns the
    model, rebuilt as its own class with ``from_pretrained`` (safetensors: no
    code runs while loading), on the CPU.
    """

    name = "transformers"
    distribution = "transformers"
    module = "transformers"
    priority = 10  # before the torch flavor, which takes any nn.Module

    def handles(self, model: Any) -> bool:
        # transformers is a lazy module: its PreTrainedModel attribute imports
        # transformers.modeling_utils (0.4-0.5 s), and Lightning imports
        # transformers, so every Lightning or torch model's log_model paid that.
        # No PreTrainedModel exists before that module is imported.
        modeling = sys.modules.get("transformers.modeling_utils")
        return modeling is not None and isinstance(model, modeling.PreTrainedModel)

    def requirements(self, model: Any) -> list[str]:
        return ["torch", "safetensors"]

    def snapshot(self, model: Any, processing_class: Any = None) -> ModelSnapshot:
        import tempfile

        metadata: dict[str, Any] = {"class": plugin.class_path(model)}
        with tempfile.TemporaryDirectory(prefix="autolog-hf-") as folder:
            root = Path(folder)
            model.save_pretrained(root)
            if processing_class is not None:
                processing_class.save_pretrained(root)
                metadata[PROCESSOR_METADATA] = plugin.class_path(processing_class)
            files = {
                path.relative_to(root).as_posix(): path.read_bytes()
                for path in sorted(root.rglob("*"))
                if path.is_file()
            }
        return ModelSnapshot(files, metadata)

    def load(self, path: Path, metadata: dict[str, Any]) -> Any:
        import importlib

        module, _, name = metadata.get("class", "").rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            import transformers

            cls = transformers.AutoModel  # a class of a script that is gone: by its config
        return cls.from_pretrained(str(path))


# -- the integration -----------------------------------------------------------------------


class TransformersIntegration(plugin.Integration):
    """Hugging Face ``Trainer.train`` (see the module docstring for what a run holds)."""

    name = NAME
    # transformers.trainer, not transformers: `import transformers` stays lazy
    # (its Trainer costs seconds to import) for whoever only uses tokenizers.
    modules = ("transformers.trainer",)
    distribution = "transformers"
    supported_versions = ">=4.41,<6"
    flavors = (TransformersFlavor,)

    def patch(self, patcher: Patcher, module: Any) -> None:
        # Seq2SeqTrainer and users' subclasses inherit it; a subclass whose
        # own train calls super().train() reaches it as the outermost call.
        patcher.wrap(module.Trainer, "train", self.on_train, opens_run=False)

    def on_train(self, call: Call) -> Generator[None, Any, None]:
        # The run is asked for here, not by the patch manager: a Trainer that
        # reports to MLflow itself gets none (report_to; see the docstring).
        trainer = call.instance
        if _reports_to_mlflow(trainer):
            yield
            return
        run_id, created = plugin.training_run(self, trainer)
        if run_id is None:  # exclusive, or not the main process
            yield
            return
        status = autolog.RunStatus.FAILED
        callback = None
        try:
            params = _argument_params(trainer.args)
            params.update(_model_params(trainer.model))
            plugin.log_params(params, run_id)
            callback = _classes.get("AutologCallback")(run_id)
            trainer.add_callback(callback)
            try:
                yield  # the user's train runs here
            except GeneratorExit as stop:  # the user's call raised: its exception
                user_error = stop.__context__
                if user_error is not None:
                    status = autolog.RunStatus.ended_by(user_error)
                raise
            finally:
                trainer.remove_callback(callback)
            status = autolog.RunStatus.FINISHED
            _log_best(trainer, run_id)
            if call.config.log_models:
                processor = getattr(trainer, "processing_class", None)
                options = {} if processor is None else {"processing_class": processor}
                plugin.log_model(trainer.model, "model", run_id=run_id, **options)
        finally:
            if created:
                plugin.end_training_run(status, run_id=run_id)
