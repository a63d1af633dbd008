"""The autolog integration for toyml: the whole of a third-party integration.

Installed with this distribution, it is found through the entry point in
``pyproject.toml``; ``autolog.autolog()`` then logs every ``Trainer.train``.
"""

from __future__ import annotations

import autolog
from autolog import training
from autolog.patching import Call, guard


class EpochLogger:
    """Injected into the user's callbacks: one metrics enqueue per epoch.

    Holds only a run id, so it pickles; ``guard`` keeps our errors out of the
    user's training.
    """

    def __init__(self, run_id: str | None):
        self.run_id = run_id

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        with guard("toyml", "in on_epoch_end"):
            training.log_epoch_metrics(logs, step=epoch, run_id=self.run_id)


class ToyMLIntegration(autolog.Integration):
    name = "toyml"
    modules = ("toyml",)
    distribution = "autolog-toyml"
    supported_versions = ">=0.1,<1"
    options = {"log_epochs": True}

    def patch(self, patcher, module):
        patcher.wrap(module, "Trainer.train", self.on_train)

    def on_train(self, call: Call):
        trainer = call.instance
        training.log_training_params(
            {"learning_rate": trainer.learning_rate, "epochs": trainer.epochs}, call.run_id
        )
        if call.config.log_epochs:
            callbacks = training.copy_callbacks(
                call.argument("callbacks"), EpochLogger(call.run_id)
            )
            call.set_argument("callbacks", callbacks)
        model = yield  # Trainer.train runs here
        autolog.log_metric("final_weight", model.weight, run_id=call.run_id)
