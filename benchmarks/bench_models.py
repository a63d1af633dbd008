"""How long ``log_model`` holds the caller, per flavor, for a small model.

Two rows per framework: the caller-thread time (snapshot + metadata +
enqueue; what training waits for) and the time until the files are written
(``log_model`` + ``flush``). A framework whose flavor is not written yet (the
model is saved with the ``python`` fallback instead) or that is not installed
gets no row.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


class Thresholder:
    """The typical python-flavor model: a custom class with ``predict``."""

    def __init__(self, weights):
        self.weights = weights

    def predict(self, X):
        return (X @ self.weights > 0).astype(int)


def _data():
    import numpy as np

    rng = np.random.RandomState(0)
    X = rng.rand(200, 4).astype("float32")
    return X, (X[:, 0] + X[:, 1] > 1).astype(int)


def _python():
    X, _ = _data()
    return Thresholder(X[0])


def _sklearn():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(*_data())


def _xgboost():
    import xgboost

    return xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(*_data())


def _lightgbm():
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1).fit(*_data())


def _keras():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _torch():
    import torch

    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


# label -> (flavor expected, builder of a small trained model)
CASES = {
    "python": ("python", _python),
    "sklearn LogisticRegression": ("sklearn", _sklearn),
    "xgboost 10 trees": ("xgboost", _xgboost),
    "lightgbm 10 trees": ("lightgbm", _lightgbm),
    "keras 2 Dense": ("keras", _keras),
    "torch 2 Linear": ("torch", _torch),
}


def run(h) -> None:
    import autolog
    from autolog.models import flavor_classes

    written = {flavor_class.name for flavor_class in flavor_classes()}
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        autolog.set_tracking_uri((Path(tmp) / "mlruns").as_uri())
        with autolog.start_run():
            for label, (flavor, build) in CASES.items():
                caller, until_written = f"log_model {label} (caller)", f"log_model {label} + flush"
                if flavor not in written or not (h.wanted(caller) or h.wanted(until_written)):
                    continue
                try:
                    model = build()
                except ImportError:
                    continue
                info = autolog.log_model(model, "warmup")
                if info.flavor != flavor:  # flavor not written yet: python fallback
                    continue
                note = f"flavor {info.flavor}; files {', '.join(info.metadata['files'])}"
                h.time(
                    caller,
                    lambda model=model: autolog.log_model(model, "m"),
                    repeat=7,
                    number=3,
                    unit="ms",
                    goal="<= 5 ms",
                    notes=note,
                    setup=autolog.flush,
                )
                h.time(
                    until_written,
                    lambda model=model: (autolog.log_model(model, "m"), autolog.flush()),
                    repeat=5,
                    number=2,
                    unit="ms",
                    notes="until written to the file store",
                )
