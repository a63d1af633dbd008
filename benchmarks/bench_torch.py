"""PyTorch autologging costs (issue 8): what the plain-loop integration adds to each
optimizer step (wrapped ``backward``, loss accumulation, the global step hook),
and a whole 5-epoch Lightning fit, bare vs autolog, model saving included.

Per-step: rounds of 2,000 steps of a tiny model (so the step itself is short
and our share is visible) alternate with autolog off and on; the row is the
median difference per step. Lightning: the bare fit calls the original
``Trainer.fit`` (the object our wrapper wraps) interleaved with the patched one.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

STEPS = 2_000
EPOCHS = 5
ROWS, FEATURES, BATCH = 512, 16, 32


def _plain_loop_step_cost(h, row: str) -> None:
    import torch

    import autolog

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Linear(FEATURES, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(BATCH, FEATURES), torch.randn(BATCH, 1)

    def steps() -> float:
        # CPU time of this thread: our cost is Python on the training thread,
        # and the shared benchmark machine's other load stays out of it.
        start = time.thread_time()
        for _ in range(STEPS):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
        return (time.thread_time() - start) / STEPS * 1e6

    bare, logged = [], []
    for _ in range(7):
        autolog.autolog("torch", disable=True)
        bare.append(steps())
        autolog.autolog("torch", silent=True, log_models=False)
        logged.append(steps())
    autolog.end_run()
    b, o = statistics.median(bare), statistics.median(logged)
    h.row(
        row,
        o - b,
        "us",
        goal="<= 20 us",
        peer=f"bare step {b:.1f} us; with autolog {o:.1f} us",
        notes="thread CPU time, median of 7 interleaved rounds of 2,000 steps "
        "(Linear 16->1, batch 32, 1 torch thread)",
    )


def _lightning_fit(h, row: str) -> None:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    import autolog

    class Regressor(pl.LightningModule):
        def __init__(self, lr: float = 0.01):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
            )

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    g = torch.Generator().manual_seed(0)
    X = torch.randn(ROWS, FEATURES, generator=g)
    data = TensorDataset(X, X[:, :1] * 2)
    train, val = DataLoader(data, batch_size=BATCH), DataLoader(data, batch_size=128)
    root = tempfile.mkdtemp(prefix="bench-lightning-")

    def fit(fit_fn) -> None:
        trainer = pl.Trainer(
            max_epochs=EPOCHS,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=root,
        )
        fit_fn(trainer, Regressor(), train, val)

    autolog.autolog("lightning", "torch", silent=True)
    original = pl.Trainer.fit.__wrapped__
    fit(pl.Trainer.fit)  # warm-up: imports, first run
    h.compare(
        row,
        lambda: fit(original),
        lambda: fit(pl.Trainer.fit),
        repeat=5,
        unit="ms",
        goal="<= 5 % above bare",
        base_label="bare",
        notes=f"{ROWS} rows x {FEATURES}, batch {BATCH}, validation each epoch, model saved",
    )
    autolog.flush()


def run(h) -> None:
    import logging

    import autolog

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    autolog.set_tracking_uri((Path(tempfile.mkdtemp(prefix="bench-torch-")) / "mlruns").as_uri())
    step_row = "plain loop: added cost per optimizer step"
    fit_row = f"Lightning {EPOCHS}-epoch fit, {ROWS // BATCH} batches/epoch"
    if h.wanted(step_row):
        _plain_loop_step_cost(h, step_row)
    if h.wanted(fit_row):
        _lightning_fit(h, fit_row)
