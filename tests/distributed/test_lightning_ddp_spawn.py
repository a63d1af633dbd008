"""Lightning ``strategy="ddp_spawn"`` on CPU, 2 processes: one run (the one the
main process's ``fit`` opened), its epoch metrics logged once, by rank 0."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")

from tests.distributed.test_torch_ddp import free_port, run_script
from tests.integrations.runs import history, only_run

EPOCHS = 3

# autolog() at the top of the script: the spawned processes run it too (they
# import the script), so the plain-loop integration is on in each of them.
SCRIPT = """
import os, sys
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
import autolog

autolog.autolog()


class Regressor(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        self.log("rank", float(self.global_rank), on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


if __name__ == "__main__":
    os.environ["MASTER_PORT"] = sys.argv[1]
    torch.manual_seed(0)
    X = torch.randn(32, 4)
    loader = DataLoader(TensorDataset(X, X.sum(1, keepdim=True)), batch_size=8)
    trainer = pl.Trainer(
        strategy="ddp_spawn", accelerator="cpu", devices=2, max_epochs=int(sys.argv[2]),
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Regressor(), loader)
"""


@pytest.mark.slow
def test_lightning_ddp_spawn_gives_one_run_from_rank_0(tmp_path):
    run_script(tmp_path, SCRIPT, str(free_port()), str(EPOCHS))
    run = only_run()  # the spawned processes open no run of their own
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "lightning"
    assert run.data.params["max_epochs"] == str(EPOCHS)
    losses = history(run, "train_loss")
    assert [s for s, _ in losses] == list(range(EPOCHS))  # each epoch once: one logger
    assert history(run, "rank") == [(e, 0.0) for e in range(EPOCHS)]  # what rank 0 saw
