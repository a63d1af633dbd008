"""Keras autologging costs (issue 7): what our callback adds per epoch, and a whole
5-epoch fit of a small dense network on 2,000 x 20 rows, bare vs autolog, model
saving included (MLflow 3.17's autolog adds about 6.3 s to a 0.65 s fit on this
machine kind).

The bare fit calls the original ``fit`` (the object our wrapper wraps) on the
same model, interleaved with the patched one, so both run warm (traced) and
meet the same machine noise.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROWS, FEATURES, EPOCHS = 2_000, 20, 5
EPOCH_LOGS = {
    "loss": 0.5,
    "accuracy": 0.75,
    "auc": 0.8,
    "val_loss": 0.55,
    "val_accuracy": 0.7,
    "val_auc": 0.78,
}


def _model_and_data():
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    X = np.random.RandomState(0).rand(ROWS, FEATURES).astype("float32")
    y = (X[:, 0] + X[:, 1] > 1).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model, X, y


def run(h) -> None:
    epoch_row = "callback on_epoch_end (6 values + learning rate)"
    fit_row = f"{EPOCHS}-epoch fit {ROWS:,} x {FEATURES}, model saved"
    fixed_row = "fixed cost per fit (epochs=0), model saved"
    if not any(h.wanted(row) for row in (epoch_row, fit_row, fixed_row)):
        return
    import autolog
    from autolog.integrations import keras as keras_integration

    autolog.set_tracking_uri((Path(tempfile.mkdtemp(prefix="bench-keras-")) / "mlruns").as_uri())
    autolog.autolog("keras", silent=True)
    model, X, y = _model_and_data()
    model.fit(X, y, epochs=1, verbose=0)  # traces the train step; opens and ends one run

    if h.wanted(epoch_row):
        with autolog.start_run() as run_:
            callback = keras_integration._callback_class(False)(run_.info.run_id)
            callback.set_model(model)
            epoch = iter(range(10**9))
            h.time(
                epoch_row,
                lambda: callback.on_epoch_end(next(epoch), EPOCH_LOGS),
                repeat=7,
                number=2_000,
                unit="us",
                goal="<= 1,000 us",
                notes="caller thread: dict copy, learning-rate read, one enqueue",
                setup=autolog.flush,
            )

    owner = next(cls for cls in type(model).__mro__ if "fit" in cls.__dict__)
    original_fit = owner.__dict__["fit"].__wrapped__

    def bare(epochs=EPOCHS):
        original_fit(model, X, y, epochs=epochs, validation_split=0.2, verbose=0)

    def autologged(epochs=EPOCHS):
        model.fit(X, y, epochs=epochs, validation_split=0.2, verbose=0)

    if h.wanted(fit_row):
        h.compare(
            fit_row,
            bare,
            autologged,
            repeat=7,
            unit="ms",
            base_label="bare",
            goal="<= +10%",
            notes="autolog: params, summary, 5 epochs of metrics, .keras model, run end "
            "(flushed); mlflow not installed here (peer: +6.3 s on 0.65 s)",
        )
    if h.wanted(fixed_row):
        h.compare(
            fixed_row,
            lambda: bare(0),
            lambda: autologged(0),
            repeat=7,
            number=3,
            unit="ms",
            base_label="bare",
            notes="what autolog adds to any fit: the difference is the cost",
        )
    autolog.autolog("keras", disable=True)
