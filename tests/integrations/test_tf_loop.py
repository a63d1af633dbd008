"""Plain TensorFlow loops (``tf.GradientTape`` + a Keras optimizer's
``apply_gradients``), eager and traced: one run, the optimizer's params, the
per-epoch mean loss, steps and learning rate, the model; nothing inside
Keras' own ``fit``."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")

import autolog  # noqa: E402
from tests.integrations.runs import artifact_names, history, only_run  # noqa: E402

EPOCHS = 3


def data(n: int = 64, batch: int = 16, seed: int = 0):
    X = np.random.RandomState(seed).randn(n, 4).astype("float32")
    return tf.data.Dataset.from_tensor_slices((X, X.sum(1, keepdims=True))).batch(batch)


def new_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )


def train(model, optimizer, dataset, epochs=EPOCHS, traced=False, validation=None):
    """A textbook custom loop; returns the mean loss of each epoch as it computed it."""

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    if traced:
        step = tf.function(step)
    means = []
    for _ in range(epochs):
        losses = [float(step(x, y)) for x, y in dataset]
        means.append(float(np.mean(losses)))
        for x, _ in validation or ():  # evaluation: no gradient, never counted
            model(x, training=False)
    return means


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
def test_a_loop_logs_params_epoch_losses_steps_rate_and_model(traced):
    autolog.autolog("tensorflow")
    model, optimizer = new_model(), keras.optimizers.Adam(learning_rate=0.01)
    means = train(model, optimizer, data(), traced=traced, validation=data(16, seed=1))
    autolog.end_run()

    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "tensorflow"
    params = run.data.params
    assert params["optimizer"] == "Adam" and params["optimizer.learning_rate"] == "0.01"
    assert params["optimizer.beta_1"] == "0.9"
    assert params["parameter_count"] == str(4 * 8 + 8 + 8 + 1)
    losses = history(run, "train_loss")
    assert [s for s, _ in losses] == list(range(EPOCHS))
    assert [v for _, v in losses] == pytest.approx(means, rel=1e-5)
    assert history(run, "steps") == [(e, 4.0) for e in range(EPOCHS)]
    assert [v for _, v in history(run, "learning_rate")] == pytest.approx([0.01] * EPOCHS)

    assert "model" in artifact_names(run) and "model_1" not in artifact_names(run)
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    x = np.ones((2, 4), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
def test_two_losses_and_two_optimizers_a_step_log_the_mean_of_every_loss(traced):
    # a GAN-like step: two gradients, two optimizer steps, a float64 loss
    autolog.autolog("tensorflow", log_models=False)
    keras.utils.set_random_seed(0)
    generator = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    critic = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    critic_optimizer = keras.optimizers.Adam(learning_rate=0.01)
    generator_optimizer = keras.optimizers.SGD(learning_rate=0.01)

    def step(x, y):
        with tf.GradientTape() as tape:
            critic_loss = tf.reduce_mean(tf.square(critic(y) - 1.0))
        grads = tape.gradient(critic_loss, critic.trainable_variables)
        critic_optimizer.apply_gradients(zip(grads, critic.trainable_variables))
        with tf.GradientTape() as tape:
            loss = tf.cast(tf.reduce_mean(tf.square(generator(x) - y)), tf.float64)
        grads = tape.gradient(loss, generator.trainable_variables)
        generator_optimizer.apply_gradients(zip(grads, generator.trainable_variables))
        return critic_loss, loss

    if traced:
        step = tf.function(step)
    dataset, means = data(), []
    for _ in range(2):
        losses = [float(v) for x, y in dataset for v in step(x, y)]
        means.append(float(np.mean(losses)))
    autolog.end_run()

    run = only_run()
    assert run.data.params["optimizer"] == "Adam" and run.data.params["optimizer1"] == "SGD"
    assert [v for _, v in history(run, "train_loss")] == pytest.approx(means, rel=1e-5)
    assert history(run, "steps") == [(0, 4.0), (1, 4.0)]  # the first optimizer's


def test_a_schedule_shows_in_the_learning_rate():
    autolog.autolog("tensorflow", log_models=False)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    train(new_model(), keras.optimizers.SGD(learning_rate=schedule), data())
    autolog.end_run()
    rates = [v for _, v in history(only_run(), "learning_rate")]
    assert rates == pytest.approx([0.05, 0.025, 0.0125])  # halved every epoch of 4 steps


def test_two_trainings_give_two_runs():
    autolog.autolog("tensorflow", log_models=False)
    train(new_model(), keras.optimizers.SGD(learning_rate=0.01), data(), epochs=2)
    train(new_model(), keras.optimizers.SGD(learning_rate=0.05), data(seed=3), epochs=1)
    autolog.end_run()
    runs = autolog.Client().search_runs(["0"], order_by=["attributes.start_time"])
    assert [r.data.params["optimizer.learning_rate"] for r in runs] == ["0.01", "0.05"]
    assert [len(history(r, "train_loss")) for r in runs] == [2, 1]


def test_a_loop_in_the_users_run_logs_there():
    autolog.autolog("tensorflow", log_models=False)
    with autolog.start_run() as run:
        train(new_model(), keras.optimizers.Adam(), data(), epochs=2)
    logged = only_run()
    assert logged.info.run_id == run.info.run_id
    assert [s for s, _ in history(logged, "train_loss")] == [0, 1]


def test_keras_fit_is_left_to_the_keras_integration():
    autolog.autolog("tensorflow", "keras", log_models=False)
    model = new_model()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(data(), epochs=2, verbose=0)
    run = only_run()
    assert run.data.tags["mlflow.autologging"] == "keras"
    assert "train_loss" not in run.data.metrics and "loss" in run.data.metrics


def test_tensorflow_alone_does_not_log_a_keras_fit():
    autolog.autolog("tensorflow", log_models=False)
    model = new_model()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(data(), epochs=1, verbose=0)  # fit applies gradients with optimizer.apply
    autolog.end_run()
    assert autolog.Client().search_runs(["0"]) == []


def test_autolog_status_lists_it_with_what_it_patches():
    autolog.autolog("tensorflow")
    row = next(r for r in autolog.status() if r.name == "tensorflow")
    assert row.installed_version == keras.__version__ and row.state == "active"
    assert {t.rsplit(".", 1)[-1] for t in row.targets} == {
        "apply_gradients",
        "gradient",
        "__iter__",
    }


# -- finding the model: the loop's stack first, the heap only when it must ------------


class Box:
    """A plain object holding things as attributes."""


@pytest.fixture
def heap_scans(monkeypatch) -> list[int]:
    """One entry per scan of the heap for Keras models."""
    from autolog.integrations import tensorflow as tf_integration

    scans: list[int] = []
    original = tf_integration._heap_models

    def counted():
        scans.append(1)
        return original()

    monkeypatch.setattr(tf_integration, "_heap_models", counted)
    return scans


def _loop(dataset, optimizer, predict, variables) -> None:
    """Steps whose model, if any, is reached only through ``predict`` and ``variables``."""
    for x, y in dataset:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(predict(x) - y))
        grads = tape.gradient(loss, variables())
        optimizer.apply_gradients(zip(grads, variables()))


def _logged_model(run) -> np.ndarray:
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    return loaded.predict(np.ones((2, 4), "float32"), verbose=0)


def test_the_loops_model_is_found_on_its_stack_without_a_heap_scan(heap_scans):
    autolog.autolog("tensorflow")
    model = new_model()
    train(model, keras.optimizers.SGD(learning_rate=0.01), data(), epochs=1)
    autolog.end_run()
    assert heap_scans == []
    expected = model.predict(np.ones((2, 4), "float32"), verbose=0)
    np.testing.assert_allclose(_logged_model(only_run()), expected)


def test_a_model_the_stack_does_not_reach_is_found_on_the_heap(heap_scans):
    autolog.autolog("tensorflow")
    box = Box()
    box.inner = Box()
    box.inner.model = new_model()  # two attributes deep: not looked at on the stack
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    _loop(
        data(),
        optimizer,
        lambda x: box.inner.model(x, training=True),
        lambda: box.inner.model.trainable_variables,
    )
    autolog.end_run()
    assert heap_scans == [1]
    expected = box.inner.model.predict(np.ones((2, 4), "float32"), verbose=0)
    np.testing.assert_allclose(_logged_model(only_run()), expected)


def test_plain_variables_trained_beside_or_without_a_model_need_no_heap_scan(heap_scans):
    autolog.autolog("tensorflow")
    model = new_model()
    scale = tf.Variable(1.0)  # no Keras layer holds a plain variable
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    _loop(
        data(),
        optimizer,
        lambda x: model(x, training=True) * scale,
        lambda: [*model.trainable_variables, scale],
    )
    autolog.end_run()
    with_model = only_run()
    assert "model" in artifact_names(with_model)

    w = tf.Variable(tf.zeros((4, 1)))
    _loop(data(), keras.optimizers.SGD(learning_rate=0.01), lambda x: x @ w, lambda: [w])
    autolog.end_run()
    runs = autolog.Client().search_runs(["0"])
    without = next(r for r in runs if r.info.run_id != with_model.info.run_id)
    assert without.data.params["parameter_count"] == "4"
    assert "model" not in artifact_names(without)
    assert heap_scans == []
