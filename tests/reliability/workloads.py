"""The trainings of the fault matrix: one small, deterministic training per
integration, as a user writes it.

Each workload is a function of a :class:`Hooks` that returns what the user
keeps (predictions as a list of floats, and the type of the returned object).
``hooks.mid_fit()`` is called once in the middle of the training, from the
user's side (a callback, a scoring function, the loop body): the SIGKILL cells
kill the process there. Data is tiny: a cell costs the framework's fixed cost.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "examples" / "custom_integration" / "src"


class Hooks:
    """What a cell asks of a training: ``mid_fit`` runs once, mid-training."""

    def __init__(self, mid_fit: Callable[[], None] | None = None):
        self._mid_fit = mid_fit
        self.called = False

    def mid_fit(self) -> None:
        if not self.called:
            self.called = True
            if self._mid_fit is not None:
                self._mid_fit()


def _xy(rows: int = 60):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 4)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype("int64")
    return X, y


def _floats(values: Any) -> list[float]:
    import numpy as np

    return [float(v) for v in np.asarray(values, dtype="float64").ravel()]


def sklearn_fit(hooks: Hooks):
    from sklearn.linear_model import LogisticRegression

    class Model(LogisticRegression):
        """A user's estimator: calls back mid-fit (between two solver runs)."""

        def fit(self, X, y, sample_weight=None):
            super().fit(X, y, sample_weight)
            hooks.mid_fit()
            return super().fit(X, y, sample_weight)

    X, y = _xy()
    model = Model(C=0.5, max_iter=50).fit(X, y)
    return type(model).__name__, _floats(model.predict_proba(X))


def sklearn_grid(hooks: Hooks):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    calls = []

    def scorer(estimator, X, y):
        calls.append(1)
        if len(calls) == 3:
            hooks.mid_fit()
        return float((estimator.predict(X) == y).mean())

    X, y = _xy()
    search = GridSearchCV(
        LogisticRegression(max_iter=50),
        {"C": [0.1, 1.0]},
        cv=2,
        scoring=scorer,
        n_jobs=1,
        error_score="raise",
    )
    search.fit(X, y)
    return type(search).__name__, [*_floats(search.predict_proba(X)), search.best_params_["C"]]


def xgboost_train(hooks: Hooks):
    import xgboost as xgb

    class MidFit(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            if epoch == 1:
                hooks.mid_fit()
            return False

    X, y = _xy()
    train = xgb.DMatrix(X, label=y)
    params = {"objective": "binary:logistic", "max_depth": 2, "nthread": 1, "seed": 0}
    booster = xgb.train(params, train, 4, evals=[(train, "train")], callbacks=[MidFit()])
    return type(booster).__name__, _floats(booster.predict(train))


def xgboost_classifier(hooks: Hooks):
    import xgboost as xgb

    class MidFit(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            if epoch == 1:
                hooks.mid_fit()
            return False

    X, y = _xy()
    model = xgb.XGBClassifier(
        n_estimators=4, max_depth=2, n_jobs=1, random_state=0, callbacks=[MidFit()]
    )
    model.fit(X, y, eval_set=[(X, y)], verbose=False)
    return type(model).__name__, _floats(model.predict_proba(X))


def lightgbm_train(hooks: Hooks):
    import lightgbm as lgb

    def mid_fit(env):
        if env.iteration == 1:
            hooks.mid_fit()

    X, y = _xy()
    train = lgb.Dataset(X, label=y)
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1, "seed": 0}
    booster = lgb.train(params, train, 4, valid_sets=[train], callbacks=[mid_fit])
    return type(booster).__name__, _floats(booster.predict(X))


def lightgbm_classifier(hooks: Hooks):
    import lightgbm as lgb

    def mid_fit(env):
        if env.iteration == 1:
            hooks.mid_fit()

    X, y = _xy()
    model = lgb.LGBMClassifier(n_estimators=4, num_leaves=4, verbose=-1, n_jobs=1, random_state=0)
    model.fit(X, y, eval_set=[(X, y)], callbacks=[mid_fit])
    return type(model).__name__, _floats(model.predict_proba(X))


def keras_fit(hooks: Hooks):
    import keras

    class MidFit(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                hooks.mid_fit()

    keras.utils.set_random_seed(0)
    X, y = _xy(32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    history = model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[MidFit()])
    return type(history).__name__, _floats(model.predict(X, verbose=0))


def _torch_data():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    X, y = _xy(32)
    data = TensorDataset(torch.from_numpy(X), torch.from_numpy(y).float().unsqueeze(1))
    return DataLoader(data, batch_size=16)


def _lightning_module():
    import lightning.pytorch as pl
    import torch

    class Classifier(pl.LightningModule):
        def __init__(self, lr: float = 0.1):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(4, 1)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.binary_cross_entropy_with_logits(self(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return Classifier


def lightning_fit(hooks: Hooks):
    import lightning.pytorch as pl
    import torch

    class MidFit(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            if trainer.current_epoch == 0:
                hooks.mid_fit()

    torch.manual_seed(0)
    model = _lightning_module()()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[MidFit()],
    )
    trainer.fit(model, _torch_data())
    X, _ = _xy(32)
    with torch.no_grad():
        predictions = model(torch.from_numpy(X))
    return type(model).__name__, _floats(predictions)


def torch_loop(hooks: Hooks):
    """A plain loop: its run stays open after it, until the script's next training
    or its end (the cell ends it, as the end of the script would)."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        for x, y in _torch_data():
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            loss.backward()
            optimizer.step()
        if epoch == 0:
            hooks.mid_fit()
    X, _ = _xy(32)
    with torch.no_grad():
        predictions = model(torch.from_numpy(X))
    return type(model).__name__, _floats(predictions)


def toyml_plugin(hooks: Hooks):
    if str(EXAMPLE_SRC) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_SRC))
    import toyml

    class MidFit:
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                hooks.mid_fit()

    model = toyml.Trainer(learning_rate=0.1, epochs=4).train([1.0, 2.0, 3.0], [MidFit()])
    return type(model).__name__, _floats(model.predict([1.0, 2.0]))


def enable_toyml() -> None:
    """Make the example plugin importable and registered, as ``pip install`` would."""
    if str(EXAMPLE_SRC) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_SRC))
    from autolog_toyml import ToyMLIntegration

    import autolog
    from autolog.integration import integration_classes

    if not any(c.name == "toyml" for c in integration_classes()):
        autolog.register(ToyMLIntegration)


#: name -> (the integration autolog() enables, the training)
WORKLOADS: dict[str, tuple[str, Callable[[Hooks], Any]]] = {
    "sklearn-fit": ("sklearn", sklearn_fit),
    "sklearn-gridsearch": ("sklearn", sklearn_grid),
    "xgboost-train": ("xgboost", xgboost_train),
    "xgboost-classifier": ("xgboost", xgboost_classifier),
    "lightgbm-train": ("lightgbm", lightgbm_train),
    "lightgbm-classifier": ("lightgbm", lightgbm_classifier),
    "keras-fit": ("keras", keras_fit),
    "lightning-fit": ("lightning", lightning_fit),
    "torch-loop": ("torch", torch_loop),
    "toyml-plugin": ("toyml", toyml_plugin),
}


def enable(name: str) -> None:
    """``autolog.autolog(<integration of workload name>)``."""
    import autolog

    integration = WORKLOADS[name][0]
    if integration == "toyml":
        enable_toyml()
    autolog.autolog(integration)
