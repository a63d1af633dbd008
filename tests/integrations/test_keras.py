"""Keras autologging against the real Keras 3 / TensorFlow: every test trains a
tiny dense network for a few epochs and reads the run back from the store."""

from __future__ import annotations

import os
import pickle
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

import autolog
from autolog.integrations import keras as keras_integration
from tests.integrations.runs import artifact_names, history, only_run
from tests.models_roundtrip import assert_roundtrip_in_fresh_process, run_python

ROWS, FEATURES = 64, 4


@pytest.fixture(autouse=True)
def _autolog_keras():
    autolog.autolog("keras")
    keras.utils.set_random_seed(0)


def data(rows: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.rand(rows, FEATURES).astype("float32")
    return X, (X[:, 0] > 0.5).astype("float32")


def tiny_model(learning_rate: float = 0.01) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(4, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="out"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


def test_numpy_fit_with_validation_split_logs_params_metrics_summary_and_model():
    X, y = data()
    model = tiny_model()
    fitted = model.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0)

    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "keras"
    params = run.data.params
    assert params["epochs"] == "3"
    assert params["batch_size"] == "16"
    assert params["validation_split"] == "0.25"
    assert params["initial_epoch"] == "0"
    assert params["shuffle"] == "True"
    assert params["steps_per_epoch"] == "None"
    assert params["has_class_weight"] == params["has_sample_weight"] == "False"
    assert params["optimizer"] == "Adam"
    assert params["optimizer.learning_rate"] == "0.01"  # not 0.009999999776482582
    assert params["optimizer.beta_1"] == "0.9"
    assert params["loss"] == "binary_crossentropy"
    assert params["metrics"] == "accuracy, auc"
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "auc", "val_auc"):
        steps_values = history(run, key)
        assert [step for step, _ in steps_values] == [0, 1, 2], key
        assert [v for _, v in steps_values] == pytest.approx(fitted.history[key], rel=1e-6)
    assert [v for _, v in history(run, "learning_rate")] == pytest.approx([0.01] * 3)

    assert {"model", "model_summary.txt"} <= artifact_names(run)
    assert {"model/model.keras", "model/model.json"} <= artifact_names(run, "model")
    summary_dir = autolog.Client().download_artifacts(run.info.run_id, "model_summary.txt")
    with open(summary_dir, encoding="utf-8") as file:
        summary = file.read()
    assert "hidden (Dense)" in summary and "Total params: 25" in summary
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))


def test_array_default_batch_size_and_weights_given():
    X, y = data()
    model = tiny_model()
    model.fit(X, y, epochs=1, verbose=0, class_weight={0: 1.0, 1: 2.0}, sample_weight=None)
    params = only_run().data.params
    assert params["batch_size"] == "32"  # Keras' default for arrays
    assert params["has_class_weight"] == "True"
    assert params["has_sample_weight"] == "False"


def test_tf_data_dataset_batch_size_read_from_the_pipeline():
    X, y = data()
    dataset = tf.data.Dataset.from_tensor_slices((X, y)).shuffle(8).batch(8)
    dataset = dataset.map(lambda a, b: (a * 1.0, b)).prefetch(1)
    validation = tf.data.Dataset.from_tensor_slices((X, y)).batch(16, drop_remainder=True)
    tiny_model().fit(dataset, validation_data=validation, epochs=2, verbose=0)

    run = only_run()
    assert run.data.params["batch_size"] == "8"
    assert [step for step, _ in history(run, "val_loss")] == [0, 1]
    # A static batch dimension and a pipeline that unbatches:
    assert keras_integration._batch_size(validation, None) == 16
    assert keras_integration._batch_size(dataset.unbatch().map(lambda a, b: (a, b)), None) is None


def test_generator_batch_size_from_the_batch_keras_takes_itself():
    X, y = data()
    taken = []

    def batches():
        while True:
            for start in range(0, ROWS, 16):
                taken.append(start)
                yield X[start : start + 16], y[start : start + 16]

    model = tiny_model()
    fitted = model.fit(batches(), steps_per_epoch=4, epochs=2, verbose=0)

    run = only_run()
    assert run.data.params["batch_size"] == "16"
    assert run.data.params["steps_per_epoch"] == "4"
    assert [v for _, v in history(run, "loss")] == pytest.approx(fitted.history["loss"], rel=1e-6)


class ArrayBatches(keras.utils.PyDataset):
    def __init__(self, X, y, batch_size=None, **kwargs):
        super().__init__(**kwargs)
        self.X, self.y = X, y
        self.size = batch_size or 16
        if batch_size is not None:
            self.batch_size = batch_size

    def __len__(self):
        return len(self.X) // self.size

    def __getitem__(self, index):
        part = slice(index * self.size, (index + 1) * self.size)
        return self.X[part], self.y[part]


def test_py_dataset_batch_size_attribute_or_none():
    X, y = data()
    tiny_model().fit(ArrayBatches(X, y, batch_size=8), epochs=1, verbose=0)
    assert only_run().data.params["batch_size"] == "8"
    assert keras_integration._batch_size(ArrayBatches(X, y), None) is None


def test_validation_data_metrics_per_epoch():
    X, y = data()
    tiny_model().fit(X, y, validation_data=(X[:16], y[:16]), epochs=2, verbose=0)
    run = only_run()
    assert run.data.params["validation_split"] == "0.0"
    assert [step for step, _ in history(run, "val_accuracy")] == [0, 1]


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_user_callbacks_run_unchanged_and_early_stopping_is_summarised():
    X, y = data()
    # min_delta no loss can beat: the first epoch stays best, training stops at
    # epoch 1 and restores epoch 0's weights.
    early = keras.callbacks.EarlyStopping(
        monitor="loss", min_delta=10.0, patience=0, restore_best_weights=True
    )
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=0, min_delta=10.0
    )
    recorder = EpochRecorder()
    callbacks = [recorder, early, plateau]
    before = list(callbacks)
    model = tiny_model()
    model.fit(X, y, epochs=5, verbose=0, callbacks=callbacks)

    assert callbacks == before  # the same list, same objects, nothing added
    assert recorder.epochs == [0, 1]
    run = only_run()
    params = run.data.params
    assert params["early_stopping_monitor"] == "loss"
    assert params["early_stopping_patience"] == "0"
    assert params["early_stopping_min_delta"] == "10.0"
    assert params["early_stopping_restore_best_weights"] == "True"
    assert params["reduce_lr_on_plateau_factor"] == "0.5"
    assert params["reduce_lr_on_plateau_monitor"] == "loss"
    metrics = run.data.metrics
    assert metrics["stopped_epoch"] == 1
    assert metrics["restored_epoch"] == 0
    assert metrics["best_score"] == pytest.approx(history(run, "loss")[0][1])
    # ReduceLROnPlateau reports the rate epoch 1 ran with, then halves it.
    assert [v for _, v in history(run, "learning_rate")] == pytest.approx([0.01, 0.01])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)


def test_single_callback_object_and_tuple_are_accepted():
    X, y = data()
    recorder = EpochRecorder()
    tiny_model().fit(X, y, epochs=2, verbose=0, callbacks=(recorder,))
    assert recorder.epochs == [0, 1]
    assert [step for step, _ in history(only_run(), "loss")] == [0, 1]


class InterruptAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_keyboard_interrupt_ends_the_run_killed_with_the_epochs_so_far():
    X, y = data()
    with pytest.raises(KeyboardInterrupt):
        tiny_model().fit(X, y, epochs=5, verbose=0, callbacks=[InterruptAt(2)])
    run = only_run()
    assert run.info.status == "KILLED"
    assert [step for step, _ in history(run, "loss")] == [0, 1]
    assert run.data.params["epochs"] == "5"
    assert "model" not in artifact_names(run)


def test_repeated_fits_without_a_run_give_one_run_each():
    X, y = data()
    model = tiny_model()
    model.fit(X, y, epochs=2, verbose=0)
    model.fit(X, y, epochs=1, verbose=0)
    runs = autolog.search_runs()
    assert sorted(r.data.params["epochs"] for r in runs) == ["1", "2"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_repeated_fits_in_the_users_run_keep_first_params_and_continue_metrics():
    X, y = data()
    model = tiny_model()
    with autolog.start_run() as run:
        autolog.log_param("note", "fine-tuning")
        model.fit(X, y, epochs=2, verbose=0)
        model.fit(X, y, epochs=4, initial_epoch=2, verbose=0)
        assert autolog.active_run().info.run_id == run.info.run_id  # not ended by us
    [stored] = autolog.search_runs()
    assert stored.info.run_id == run.info.run_id
    assert stored.info.status == "FINISHED"
    params = stored.data.params
    assert params["epochs"] == "2"  # params are immutable: the first value stays
    assert params["initial_epoch"] == "0"
    assert params["note"] == "fine-tuning"
    assert stored.data.tags["autolog.skipped_params"] == "epochs,initial_epoch"
    assert [step for step, _ in history(stored, "loss")] == [0, 1, 2, 3]


def test_log_every_n_steps_logs_batch_values():
    autolog.autolog("keras", log_every_n_steps=3)
    X, y = data()
    tiny_model().fit(X, y, epochs=2, batch_size=16, verbose=0)  # 4 steps per epoch
    run = only_run()
    assert [step for step, _ in history(run, "batch_loss")] == [3, 6]
    assert [step for step, _ in history(run, "loss")] == [0, 1]


def test_no_batch_hook_by_default_and_callback_pickles():
    default = keras_integration._callback_class(False)("0" * 32)
    assert keras.src.utils.is_default(default.on_train_batch_end)  # async dispatch stays on
    batch = keras_integration._callback_class(True)("1" * 32, 5)
    copy = pickle.loads(pickle.dumps(batch))
    assert type(copy).__qualname__ == "AutologBatchCallback"
    assert (copy.run_id, copy.log_every_n_steps) == ("1" * 32, 5)


def test_log_models_off_logs_no_model():
    autolog.autolog("keras", log_models=False)
    X, y = data()
    tiny_model().fit(X, y, epochs=1, verbose=0)
    assert "model" not in artifact_names(only_run())


def test_input_example_of_array_inputs_when_asked():
    autolog.autolog("keras", log_input_examples=True)
    X, y = data()
    tiny_model().fit(X, y, epochs=1, verbose=0)
    uri = f"runs:/{only_run().info.run_id}/model"
    np.testing.assert_array_equal(autolog.models.load_input_example(uri), X[:5])


def test_model_loads_in_a_fresh_process_with_identical_predictions():
    result = assert_roundtrip_in_fresh_process(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import numpy as np
        import keras
        keras.utils.set_random_seed(0)
        X = np.random.RandomState(0).rand(32, 4).astype("float32")
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(X, X[:, :1], epochs=2, verbose=0)
        """,
        predict="model.predict(X, verbose=0)",
        expected_flavor="keras",
    )
    assert result.loaded_type == "Sequential"
    assert result.metadata["framework"]["distribution"] == "keras"
    assert result.metadata["flavor_metadata"]["backend"] == keras.backend.backend()
    assert any(req.startswith("tensorflow") for req in result.metadata["requirements"])


class TwiceAsLong(keras.Sequential):
    """A user's model class whose fit override calls Keras' own."""

    def fit(self, x=None, y=None, epochs=1, **kwargs):
        return super().fit(x, y, epochs=epochs * 2, **kwargs)


def test_users_fit_override_gives_one_run_with_kerass_arguments():
    X, y = data()
    model = TwiceAsLong([keras.Input((FEATURES,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, y, epochs=1, verbose=0)
    run = only_run()
    assert run.data.params["epochs"] == "2"  # what Keras' fit was called with
    assert run.data.params["optimizer"] == "SGD"
    assert [step for step, _ in history(run, "loss")] == [0, 1]


def test_users_callback_list_is_used_as_is():
    X, y = data()
    early = keras.callbacks.EarlyStopping(monitor="loss", patience=3)
    recorder = EpochRecorder()
    model = tiny_model()
    callback_list = keras.callbacks.CallbackList([recorder, early], add_history=True, model=model)
    before = list(callback_list.callbacks)
    model.fit(X, y, epochs=2, verbose=0, callbacks=callback_list)
    assert callback_list.callbacks == before
    assert recorder.epochs == [0, 1]
    run = only_run()
    assert run.data.params["early_stopping_patience"] == "3"
    assert "loss" not in run.data.metrics  # no callback of ours inside the user's list
    assert "model" in artifact_names(run)


class Explosive:
    def __float__(self):
        raise RuntimeError("this value breaks whoever reads it")


class OddKey(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["odd"] = Explosive()  # our callback reads it after this one


def test_our_failure_in_an_epoch_warns_once_and_training_goes_on(monkeypatch):
    monkeypatch.setenv("AUTOLOG_TESTING", "0")  # production behaviour: warn, do not raise
    X, y = data()
    with pytest.warns(autolog.AutologWarning, match="on_epoch_end") as warned:
        fitted = tiny_model().fit(X, y, epochs=3, verbose=0, callbacks=[OddKey()])
    assert len([w for w in warned if "on_epoch_end" in str(w.message)]) == 1
    assert len(fitted.history["loss"]) == 3
    run = only_run()
    assert run.info.status == "FINISHED"
    assert "model" in artifact_names(run)


@pytest.mark.slow
def test_torch_backend_is_patched_on_its_own_trainer(tmp_path):
    # A fresh process: the Keras backend is chosen once, at keras' first import.
    script = """
        import os
        os.environ["KERAS_BACKEND"] = "torch"
        import autolog
        autolog.autolog("keras", silent=True)
        import numpy as np, keras
        X = np.random.RandomState(0).rand(32, 4).astype("float32")
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(X, X[:, :1], epochs=2, verbose=0, validation_split=0.25)
        [row] = [s for s in autolog.status() if s.name == "keras"]
        assert row.targets == ("keras.src.backend.torch.trainer.TorchTrainer.fit",), row
        """
    run_python(textwrap.dedent(script), tmp_path)
    run = only_run()
    assert run.data.params["epochs"] == "2"
    assert [step for step, _ in history(run, "val_loss")] == [0, 1]
    metadata = autolog.models.read_model_metadata(f"runs:/{run.info.run_id}/model")
    assert metadata["flavor"] == "keras"
    assert metadata["flavor_metadata"]["backend"] == "torch"
    assert "torch" in {req.split("==")[0] for req in metadata["requirements"]}


def test_the_run_says_what_autolog_cost_its_fit():
    X, y = data()
    start = time.perf_counter()
    tiny_model().fit(X, y, epochs=1, validation_split=0.25, verbose=0)
    wall_ms = (time.perf_counter() - start) * 1e3
    metrics = only_run().data.metrics
    assert 0 < metrics["autolog.overhead_ms"] < metrics["autolog.training_ms"] <= wall_ms


def test_the_snapshot_is_the_model_when_it_was_taken_and_archives_later():
    """The flavor copies the model's state on the caller's thread and builds the
    .keras archive from that copy (on the writer thread): training on after the
    snapshot changes nothing in the archive, which loads with its optimizer state."""
    X, y = data()
    model = tiny_model()
    model.fit(X, y, epochs=1, verbose=0)
    snapshot = keras_integration.KerasFlavor().snapshot(model)
    assert snapshot.files == {} and list(snapshot.deferred) == ["model.keras"]
    expected = model.predict(X, verbose=0)
    steps = int(model.optimizer.iterations.numpy())
    model.fit(X, y, epochs=2, verbose=0)  # the live model moves on
    assert not np.allclose(model.predict(X, verbose=0), expected)

    archive = snapshot.deferred["model.keras"]()
    path = Path(tempfile.mkdtemp()) / "model.keras"
    path.write_bytes(archive)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), expected, rtol=1e-5)
    assert int(loaded.optimizer.iterations.numpy()) == steps
    with zipfile.ZipFile(path) as zipped:
        assert sorted(zipped.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]


def test_save_options_make_the_archive_with_model_save():
    X, y = data()
    model = tiny_model()
    model.fit(X, y, epochs=1, verbose=0)
    snapshot = keras_integration.KerasFlavor().snapshot(model, include_optimizer=False)
    assert snapshot.deferred == {} and set(snapshot.files) == {"model.keras"}


def printed_summary(model: keras.Model) -> str:
    parts: list[str] = []
    model.summary(print_fn=lambda text, **_: parts.append(str(text)))
    return "\n".join(parts)


class SummaryAtStart(keras.callbacks.Callback):
    """``model.summary()`` as printed when training begins, where ours asks for it."""

    def on_train_begin(self, logs=None):
        self.text = printed_summary(self.model)


def summary_of(run) -> str:
    path = autolog.Client().download_artifacts(run.info.run_id, "model_summary.txt")
    return Path(path).read_text(encoding="utf-8")


def test_summary_drawn_later_is_the_one_printed_when_training_began():
    """The writer thread draws the summary: the text is the one model.summary()
    prints at on_train_begin, without the optimizer in the first fit (it builds
    in the first step) and with it in the next."""
    X, y = data()
    model = tiny_model()
    first, second = SummaryAtStart(), SummaryAtStart()
    model.fit(X, y, epochs=1, verbose=0, callbacks=[first])
    model.fit(X, y, epochs=1, verbose=0, callbacks=[second])
    runs = autolog.search_runs(order_by=["attributes.start_time ASC"])
    assert [summary_of(run) for run in runs] == [first.text, second.text]
    assert "Optimizer params" not in first.text and "Optimizer params" in second.text


def test_summary_counts_the_weights_trainable_when_it_was_asked_for():
    X, y = data()
    model = tiny_model()
    model.fit(X, y, epochs=1, verbose=0)
    render = keras_integration._summary_renderer(model)
    before = printed_summary(model)
    model.get_layer("hidden").trainable = False  # a fine-tuning step freezing a layer
    assert printed_summary(model) != before
    assert render() == before


def test_a_deferred_archive_that_fails_is_written_by_model_save(monkeypatch):
    def unsuited(self):
        raise ValueError("a saveable our copying stores do not take")

    monkeypatch.setattr(keras_integration._CopiedState, "archive", unsuited)
    X, y = data()
    model = tiny_model()
    model.fit(X, y, epochs=1, verbose=0)
    loaded = autolog.load_model(f"runs:/{only_run().info.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    snapshot = keras_integration.KerasFlavor().snapshot(model)  # now whole, here
    assert snapshot.deferred == {} and set(snapshot.files) == {"model.keras"}


def test_a_fit_just_before_the_script_ends_keeps_its_model(tmp_path):
    """The deferred archive is made at exit before h5py's exit handler
    unregisters the conversions an .h5 file needs."""
    script = textwrap.dedent(
        f"""
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import numpy as np
        import autolog
        autolog.set_tracking_uri({str(tmp_path / "mlruns")!r})
        autolog.autolog("keras")
        import keras
        X = np.random.RandomState(0).rand(32, 4).astype("float32")
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])
        model.compile(optimizer="adam", loss="mse")
        model.fit(X, X[:, :1], epochs=1, verbose=0)
        kernel, bias = model.get_layer("out").get_weights()  # a fit, then at once the end
        np.save({str(tmp_path / "expected.npy")!r}, X @ kernel + bias)
        """
    )
    run_python(script, tmp_path)  # no flush: the interpreter's exit writes the run
    autolog.set_tracking_uri(str(tmp_path / "mlruns"))
    [run] = autolog.search_runs()
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    X = np.random.RandomState(0).rand(32, 4).astype("float32")
    expected = np.load(tmp_path / "expected.npy")
    np.testing.assert_allclose(loaded.predict(X, verbose=0), expected, rtol=1e-5)


def test_a_rate_nothing_can_change_is_read_once(monkeypatch):
    reads = []
    original = keras_integration._learning_rate
    monkeypatch.setattr(
        keras_integration, "_learning_rate", lambda model: reads.append(1) or original(model)
    )
    X, y = data()
    early = keras.callbacks.EarlyStopping(patience=5)  # Keras' own: it never sets the rate
    tiny_model().fit(X, y, epochs=3, validation_split=0.25, callbacks=[early], verbose=0)
    assert [v for _, v in history(only_run(), "learning_rate")] == pytest.approx([0.01] * 3)
    assert len(reads) == 1


class HalvesTheRate(keras.callbacks.Callback):
    """A warm-up of the user's: it sets the rate and does not report it."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.model.optimizer.learning_rate = 0.005


def test_a_rate_a_users_callback_or_a_schedule_changes_is_read_each_epoch():
    X, y = data()
    tiny_model().fit(X, y, epochs=3, callbacks=[HalvesTheRate()], verbose=0)
    assert [v for _, v in history(only_run(), "learning_rate")] == pytest.approx(
        [0.01, 0.005, 0.005]
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    model.fit(X, y, epochs=2, batch_size=32, verbose=0)  # 2 steps an epoch
    [run] = [r for r in autolog.search_runs() if r.data.params.get("optimizer") == "SGD"]
    assert [v for _, v in history(run, "learning_rate")] == pytest.approx([0.1 / 4, 0.1 / 16])


class WatchesTheRate(keras.callbacks.Callback):
    """A callback of the user's that never sets the rate; it copies the rate
    variable mid-fit and fails the fit when asked."""

    def __init__(self, fail_at: int | None = None):
        super().__init__()
        self.fail_at = fail_at
        self.copies: list = []

    def on_epoch_begin(self, epoch, logs=None):
        import copy
        import pickle

        variable = self.model.optimizer.learning_rate
        self.copies.append(copy.deepcopy(variable))
        self.copies.append(pickle.loads(pickle.dumps(variable)))
        if epoch == self.fail_at:
            raise RuntimeError("the user's failure")


def _counting_reads(monkeypatch) -> list[int]:
    reads: list[int] = []
    original = keras_integration._learning_rate
    monkeypatch.setattr(
        keras_integration, "_learning_rate", lambda model: reads.append(1) or original(model)
    )
    return reads


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="watched on TensorFlow only")
def test_a_users_callback_that_never_sets_the_rate_has_it_read_once(monkeypatch):
    reads = _counting_reads(monkeypatch)
    X, y = data()
    model = tiny_model()
    own_class = type(model.optimizer.learning_rate)
    watcher = WatchesTheRate()
    model.fit(X, y, epochs=3, callbacks=[watcher], verbose=0)
    assert [v for _, v in history(only_run(), "learning_rate")] == pytest.approx([0.01] * 3)
    assert len(reads) == 1
    # the variable is of its own class again; copies made meanwhile always were
    assert type(model.optimizer.learning_rate) is own_class
    assert {type(c) for c in watcher.copies} == {own_class}
    assert all(float(c) == pytest.approx(0.01) for c in watcher.copies)
    model.optimizer.learning_rate.assign(0.002)  # after the fit: a plain variable
    assert float(model.optimizer.learning_rate) == pytest.approx(0.002)
    assert float(watcher.copies[0]) == pytest.approx(0.01)  # a copy is its own variable


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="watched on TensorFlow only")
def test_a_rate_set_by_the_users_callback_is_read_after_each_assignment_only(monkeypatch):
    reads = _counting_reads(monkeypatch)
    X, y = data()
    tiny_model().fit(X, y, epochs=4, callbacks=[HalvesTheRate()], verbose=0)
    assert [v for _, v in history(only_run(), "learning_rate")] == pytest.approx(
        [0.01, 0.005, 0.005, 0.005]
    )
    assert len(reads) == 1  # the first epoch's end: then the value assigned is the rate


class HalvesTheRateInAFunction(keras.callbacks.Callback):
    """A warm-up that assigns the rate inside a tf.function: its calls after
    the first (which traces it) run no Python."""

    def on_epoch_begin(self, epoch, logs=None):
        import tensorflow as tf

        if not hasattr(self, "set_rate"):
            variable = self.model.optimizer.learning_rate
            self.set_rate = tf.function(lambda value: variable.assign(value))
        self.set_rate(0.01 / 2**epoch)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="watched on TensorFlow only")
def test_a_rate_assigned_in_a_tf_function_during_the_fit_is_read_each_epoch(monkeypatch):
    reads = _counting_reads(monkeypatch)
    X, y = data()
    tiny_model().fit(X, y, epochs=3, callbacks=[HalvesTheRateInAFunction()], verbose=0)
    assert [v for _, v in history(only_run(), "learning_rate")] == pytest.approx(
        [0.01, 0.005, 0.0025]
    )
    assert len(reads) == 3


def test_a_fit_that_fails_gives_the_rate_variable_its_own_class_back():
    X, y = data()
    model = tiny_model()
    own_class = type(model.optimizer.learning_rate)
    with pytest.raises(RuntimeError, match="the user's failure"):
        model.fit(X, y, epochs=3, callbacks=[WatchesTheRate(fail_at=1)], verbose=0)
    assert type(model.optimizer.learning_rate) is own_class
    model.fit(X, y, epochs=2, callbacks=[HalvesTheRate()], verbose=0)  # a second fit: watched anew
    runs = autolog.search_runs(order_by=["attributes.start_time DESC"])
    assert [v for _, v in history(runs[0], "learning_rate")] == pytest.approx([0.01, 0.005])
