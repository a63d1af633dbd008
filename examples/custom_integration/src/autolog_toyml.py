"""The autolog integration for toyml: the whole of a third-party integration.

Installed with this distribution, it is found through the entry point in
``pyproject.toml``; ``autolog.autolog()`` then logs every ``Trainer.train``.
Everything it uses comes from ``autolog.plugin``.
"""

from __future__ import annotations

from autolog import plugin


class EpochLogger:
    """Injected into the user's callbacks: one metrics enqueue per epoch.

    Holds only a run id, so it pickles; ``guarded`` keeps our errors out of
    the user's training (reported once, as a warning).
    """

    def __init__(self, run_id: str | None):
        self.run_id = run_id

    @plugin.guarded("toyml")
    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        plugin.log_epoch_metrics(logs, step=epoch, run_id=self.run_id)


class ToyMLIntegration(plugin.Integration):
    name = "toyml"
    modules = ("toyml",)
    distribution = "autolog-toyml"
    supported_versions = ">=0.1,<1"
    options = {"log_epochs": plugin.Option(True, bool)}

    def patch(self, patcher: plugin.Patcher, module) -> None:
        patcher.wrap(module, "Trainer.train", self.on_train)

    def on_train(self, call: plugin.Call):
        trainer = call.instance
        plugin.log_params(
            {"learning_rate": trainer.learning_rate, "epochs": trainer.epochs}, call.run_id
        )
        if call.config.log_epochs:
            callbacks = plugin.copy_callbacks(call.argument("callbacks"), EpochLogger(call.run_id))
            call.set_argument("callbacks", callbacks)
        model = yield  # Trainer.train runs here
        plugin.log_metric("final_weight", model.weight, run_id=call.run_id)
