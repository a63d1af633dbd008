"""Lightning ``Trainer.fit``: params, per-epoch metrics, early stopping, checkpoint
tag, summary and model; the plain-loop integration stays quiet inside fit."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest

pl = pytest.importorskip("lightning.pytorch")
torch = pytest.importorskip("torch")

import autolog  # noqa: E402
from tests.integrations.runs import history, only_run  # noqa: E402
from tests.models_roundtrip import assert_roundtrip_in_fresh_process  # noqa: E402

MODULE_SOURCE = """
import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class Regressor(pl.LightningModule):
    def __init__(self, hidden: int = 8, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def loaders():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 4, generator=g)
    data = TensorDataset(X, X.sum(dim=1, keepdim=True))
    return DataLoader(data, batch_size=16), DataLoader(data, batch_size=32)
"""

namespace: dict = {"__name__": "lightning_test_module"}
exec(compile(MODULE_SOURCE, "lightning_test_module", "exec"), namespace)
Regressor, loaders = namespace["Regressor"], namespace["loaders"]


def _trainer(tmp_path, callbacks=(), **kwargs):
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=list(callbacks),
        **{"max_epochs": 3, **kwargs},
    )


def test_fit_logs_params_epoch_metrics_early_stopping_checkpoint_and_model(tmp_path):
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    autolog.autolog()  # every integration: the plain-loop one must stay quiet inside fit
    torch.manual_seed(0)
    early = EarlyStopping("val_loss", patience=1, min_delta=10.0, mode="min")
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val_loss")
    user_callbacks = [early, checkpoint]
    trainer = _trainer(tmp_path, user_callbacks, max_epochs=6)
    callbacks_before = list(trainer.callbacks)
    model = Regressor()
    train, val = loaders()
    trainer.fit(model, train, val)

    assert trainer.callbacks == callbacks_before  # ours was there for the fit only
    run = only_run()
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "lightning"
    params = run.data.params
    assert params["max_epochs"] == "6"
    assert params["hidden"] == "8" and params["lr"] == "0.05"
    assert params["optimizer"] == "Adam" and params["optimizer.lr"] == "0.05"
    assert params["optimizer.betas"] == "(0.9, 0.999)"
    assert params["lr_scheduler"] == "StepLR"
    assert params["lr_scheduler.gamma"] == "0.5" and params["lr_scheduler.step_size"] == "1"
    assert params["lr_scheduler.interval"] == "epoch"
    assert params["precision"] == "32-true"
    assert params["accumulate_grad_batches"] == "1"
    assert params["early_stopping_monitor"] == "val_loss"
    assert params["early_stopping_patience"] == "1"
    assert params["early_stopping_mode"] == "min"

    # min_delta=10 makes every epoch after the first "no improvement": stops at epoch 1
    epochs = trainer.current_epoch
    assert epochs < 6
    for key in ("train_loss", "val_loss", "learning_rate"):
        assert [s for s, _ in history(run_id, key)] == list(range(epochs)), key
    assert [v for _, v in history(run_id, "learning_rate")] == [
        0.05 * 0.5**e for e in range(epochs)
    ]
    val_losses = [v for _, v in history(run_id, "val_loss")]
    assert val_losses[-1] == pytest.approx(float(trainer.callback_metrics["val_loss"]))
    metrics = run.data.metrics
    assert metrics["stopped_epoch"] == early.stopped_epoch > 0
    assert metrics["best_score"] == pytest.approx(float(early.best_score))
    assert metrics["early_stopping_wait_count"] == early.wait_count
    # plain-loop keys would show that the torch integration logged inside fit
    assert "steps" not in metrics and "parameter_count" not in params

    assert run.data.tags["best_checkpoint_path"] == checkpoint.best_model_path
    artifacts = {f.path for f in autolog.Client().list_artifacts(run_id)}
    assert {"model_summary.txt", "model"} <= artifacts
    summary = autolog.Client().download_artifacts(run_id, "model_summary.txt")
    with open(summary) as file:
        assert "Sequential" in file.read()
    loaded = autolog.load_model(f"runs:/{run_id}/model")
    assert type(loaded) is Regressor
    x = torch.randn(3, 4)
    assert torch.equal(loaded(x), model(x))


def test_validation_values_are_logged_only_for_epochs_with_validation(tmp_path):
    autolog.autolog("lightning", log_models=False)
    trainer = _trainer(tmp_path, max_epochs=4, check_val_every_n_epoch=2)
    trainer.fit(Regressor(), *loaders())
    run_id = only_run().info.run_id
    assert [s for s, _ in history(run_id, "val_loss")] == [1, 3]
    assert [s for s, _ in history(run_id, "train_loss")] == [0, 1, 2, 3]


def test_log_every_n_step_and_the_users_run(tmp_path):
    autolog.autolog("lightning", log_models=False, log_every_n_step=2)
    with autolog.start_run() as run:
        trainer = _trainer(tmp_path, max_epochs=1)
        model = Regressor()
        model.training_step = _logging_step_metric(model)
        trainer.fit(model, *loaders())
        assert autolog.active_run().info.run_id == run.info.run_id
    assert only_run().info.run_id == run.info.run_id
    assert [s for s, _ in history(run.info.run_id, "batch_step_loss")] == [2, 4]


def _logging_step_metric(model):
    original = model.training_step

    def training_step(batch, batch_idx):
        loss = original(batch, batch_idx)
        model.log("step_loss", loss, on_step=True, on_epoch=False)
        return loss

    return training_step


def test_the_callback_pickles_with_its_run_id_and_options():
    from autolog.integrations import lightning as integration

    callback = integration._callback_class("lightning.pytorch")("a" * 32, 5)
    copy = pickle.loads(pickle.dumps(callback))
    assert type(copy) is type(callback)
    assert (copy.run_id, copy.log_every_n_step) == ("a" * 32, 5)


def _our_hooks_called(tmp_path, **options):
    """The hooks of ours that Lightning called in a fit, as its profiler saw them."""
    autolog.autolog("lightning", log_models=False, **options)
    profiler = pl.profilers.SimpleProfiler()
    _trainer(tmp_path, max_epochs=1, profiler=profiler).fit(Regressor(), *loaders())
    prefix = "[Callback]AutologCallback."
    return {name[len(prefix) :] for name in profiler.recorded_durations if name.startswith(prefix)}


def test_lightning_calls_none_of_our_unused_per_batch_hooks(tmp_path):
    called = _our_hooks_called(tmp_path)
    assert {"on_train_start", "on_train_epoch_end", "on_validation_epoch_end"} <= called
    batch_hooks = {hook for hook in called if "batch" in hook or "backward" in hook}
    assert batch_hooks == set() and "on_before_optimizer_step" not in called
    assert [s for s, _ in history(only_run().info.run_id, "train_loss")] == [0]


def test_with_log_every_n_step_the_batch_end_hook_is_called(tmp_path):
    called = _our_hooks_called(tmp_path, log_every_n_step=2)
    assert "on_train_batch_end" in called and "on_train_batch_start" not in called


def test_pytorch_lightning_package_is_patched_too(tmp_path):
    pytorch_lightning = pytest.importorskip("pytorch_lightning")
    autolog.autolog("lightning")
    row = next(r for r in autolog.status() if r.name == "lightning")
    assert "pytorch_lightning.trainer.trainer.Trainer.fit" in row.targets
    assert "lightning.pytorch.trainer.trainer.Trainer.fit" in row.targets

    class Tiny(pytorch_lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.linear(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = pytorch_lightning.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(Tiny(), loaders()[0])
    run = only_run()
    assert run.data.params["optimizer"] == "SGD"
    assert [s for s, _ in history(run.info.run_id, "train_loss")] == [0, 1]


def test_lightning_module_from_a_script_loads_in_a_fresh_process():
    result = assert_roundtrip_in_fresh_process(
        MODULE_SOURCE
        + """
torch.manual_seed(0)
trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False,
                     enable_progress_bar=False, enable_checkpointing=False)
model = Regressor()
trainer.fit(model, loaders()[0])
X = torch.randn(5, 4)
""",
        predict="model(X)",
        expected_flavor="torch",
    )
    assert result.loaded_type == "Regressor"
    assert "lightning" in " ".join(result.metadata["requirements"])


CTRL_C_SCRIPT = (
    MODULE_SOURCE
    + """
import autolog

autolog.autolog("lightning")


class SaysWhenTraining(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 0:
            print("training", flush=True)  # the parent may interrupt from here on


train, val = loaders()
trainer = pl.Trainer(
    accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
    enable_checkpointing=False, max_epochs=100_000, callbacks=[SaysWhenTraining()],
)
trainer.fit(Regressor(), train, val)
"""
)


def test_ctrl_c_in_fit_ends_the_run_killed(tmp_path):
    """Lightning handles Ctrl-C itself (a graceful shutdown, then ``sys.exit(1)``):
    the run is KILLED all the same, not FAILED."""
    script = tmp_path / "fit_script.py"
    script.write_text(CTRL_C_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline().strip() == "training", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr  # Lightning's own exit status, unchanged
    run = only_run()
    assert run.info.status == "KILLED"
    assert run.info.end_time is not None
    assert len(history(run, "train_loss")) >= 1


def test_the_run_says_what_autolog_cost_its_fit(tmp_path):
    autolog.autolog("lightning")
    train, val = loaders()
    start = time.perf_counter()
    _trainer(tmp_path, max_epochs=1).fit(Regressor(), train, val)
    wall_ms = (time.perf_counter() - start) * 1e3
    metrics = only_run().data.metrics
    assert 0 < metrics["autolog.overhead_ms"] < metrics["autolog.training_ms"] <= wall_ms
