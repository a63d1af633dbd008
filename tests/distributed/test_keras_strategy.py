"""Keras ``fit`` under a TensorFlow distribution strategy that runs on CPU:
``MirroredStrategy`` over two logical CPU devices (two replicas in sync, one
process) gives one run with one value per epoch, the strategy's aggregate.

A ``MultiWorkerMirroredStrategy`` of two processes (``TF_CONFIG``) is not
tested with a real fit: Keras 3.15's ``fit`` fails under it on CPU here with
or without autolog ("Attempt to convert a value (PerReplica...) to a
Tensor"); which process logs there is ``TF_CONFIG``'s rank
(``tests/distributed/test_process_rank.py``)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")

from tests.distributed.test_torch_ddp import run_script
from tests.integrations.runs import history, only_run

EPOCHS = 3

SCRIPT = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
import autolog

autolog.autolog("keras", "tensorflow", log_models=False)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
X = np.random.RandomState(0).randn(64, 4).astype("float32")
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
history = model.fit(X, X.sum(1, keepdims=True), epochs=int(sys.argv[1]), batch_size=16,
                    verbose=0)
json.dump({"replicas": strategy.num_replicas_in_sync, **history.history},
          open(sys.argv[2], "w"))
"""


def test_keras_mirrored_strategy_on_cpu_gives_one_run(tmp_path):
    out = tmp_path / "history.json"
    run_script(tmp_path, SCRIPT, str(EPOCHS), str(out))
    seen = json.loads(out.read_text())
    assert seen["replicas"] == 2  # really distributed over two replicas
    run = only_run()  # one run; the replicas' steps are no plain TF loop
    assert run.data.tags["mlflow.autologging"] == "keras"
    losses = history(run, "loss")
    assert [s for s, _ in losses] == list(range(EPOCHS))
    assert [v for _, v in losses] == pytest.approx(seen["loss"])  # what fit reported
