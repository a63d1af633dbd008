"""Costs of the Hugging Face Trainer and plain TensorFlow loop integrations, and of
the distributed rank check (issue 19, items 1, 5, 6), beside bare training.

- ``transformers``: a whole ``Trainer.train`` of a tiny BERT (bare: the original
  ``Trainer.train`` our wrapper wraps, interleaved with the patched one; model
  saving off, so that what is compared is the training), and what autolog adds
  per logged step: our callback's ``on_log`` with a Trainer log of four values;
  each whole-training row also on the training thread's CPU clock (a torch
  thread of one: the clock sees all of the training);
- ``tensorflow``: what autolog adds to each step of a plain loop
  (``GradientTape.gradient`` + ``apply_gradients`` observed, the loss kept for
  the epoch mean), eager and in a ``tf.function``, as thread CPU time per step
  of rounds alternating autolog off and on, and our two observers alone
  (patched vs the original methods), wall and thread CPU time;
- finding the model a plain TensorFlow loop trains (its first step), from
  the stack and by the heap scan it replaces;
- ``process_rank()``: the rank check each run-opening makes;
- with ``AUTOLOG_BENCH_INSTRUCTIONS=1``, the Trainer's training thread counted by
  callgrind (``_callgrind.py``), which the load does not move.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _callgrind

NAME = "tensorflow"
TF_STEPS = 300
TF_ROUNDS = 15
HF_STEPS = 24  # 96 samples, batch 4, one epoch


def _cpu_per_call(fn, number: int, rounds: int = 9) -> float:
    """Median over ``rounds`` of this thread's CPU time per call of ``fn`` (us): a
    wall time on a loaded machine counts the waits for a core too."""
    samples = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(number):
            fn()
        samples.append((time.thread_time() - start) / number * 1e6)
    return statistics.median(samples)


def _tf_step_cost(h, row: str, traced: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    import autolog

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    X = np.random.RandomState(0).randn(32, 16).astype("float32")
    x, y = tf.constant(X), tf.constant(X[:, :1])

    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def steps(fn) -> float:
        start = time.thread_time()
        for _ in range(TF_STEPS):
            fn()
        return (time.thread_time() - start) / TF_STEPS * 1e6

    bare, logged = [], []
    for round_number in range(TF_ROUNDS):
        # each round traces anew, with or without our ops; which arm runs first
        # alternates, and the row is the median of the rounds' differences (a
        # drifting load moves both arms of a round alike)
        for arm in (0, 1) if round_number % 2 == 0 else (1, 0):
            if arm:
                autolog.autolog("tensorflow", silent=True, log_models=False)
            else:
                autolog.autolog("tensorflow", disable=True)
            fn = tf.function(step) if traced else step
            fn()  # the run opens at the first step: its creation is written
            autolog.flush()  # now, not by the writer during the steps timed
            (logged if arm else bare).append(steps(fn))
            autolog.end_run()
    b, o = statistics.median(bare), statistics.median(logged)
    added = statistics.median(lo - ba for lo, ba in zip(logged, bare))
    h.row(
        row,
        added,
        "us",
        goal="<= 10 us",
        peer=f"bare step {b:.1f} us; with autolog {o:.1f} us; +{added / b * 100:.1f} %",
        notes=f"thread CPU time per step: median of the differences of {TF_ROUNDS} rounds of "
        f"{TF_STEPS} steps with and without autolog (Dense 16->1, batch 32)",
    )


def _tf_hooks(h, row: str) -> None:
    """What the observers run per eager step, timed alone (a whole eager step
    varies by more than our cost on a loaded machine): the loss kept, the step
    counted, through the patched methods themselves."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import autolog

    autolog.autolog("tensorflow", silent=True, log_models=False)
    variable = tf.Variable(1.0)
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    with tf.GradientTape(persistent=True) as tape:
        loss = variable * 2.0
    gradient = tape.gradient(loss, [variable])
    optimizer.apply_gradients(zip(gradient, [variable]))  # opens the run
    unwrapped_gradient = tf.GradientTape.gradient.__wrapped__
    owner = next(c for c in type(optimizer).__mro__ if "apply_gradients" in c.__dict__)
    unwrapped_apply = owner.__dict__["apply_gradients"].__wrapped__
    pairs = [(gradient[0], variable)]

    def bare() -> None:
        unwrapped_gradient(tape, loss, [variable])
        unwrapped_apply(optimizer, pairs)

    def logged() -> None:
        tape.gradient(loss, [variable])
        optimizer.apply_gradients(pairs)

    h.compare(
        row,
        bare,
        logged,
        repeat=7,
        number=500,
        unit="us",
        goal="<= +10 us",
        base_label="unpatched",
        notes="tape.gradient + apply_gradients of one variable, patched vs the originals",
    )
    # What our code adds per eager step without TensorFlow's ops around it
    # (their time varies by more than ours from one round to the next): the two
    # observers called as the patched methods call them, on this thread's CPU clock.
    alone = "tensorflow: our observers per eager step, called directly"
    if h.wanted(alone):
        from autolog._registry import registry

        ours = registry.states[NAME].integration
        args = (loss, [variable])

        def observers() -> None:
            ours._after_gradient(tape, args, {}, None)
            ours._after_apply_gradients(optimizer, (pairs,), {}, None)

        h.row(
            alone,
            _cpu_per_call(observers, 5_000),
            "us",
            goal="<= 10 us",
            notes="thread CPU time, median of 9 rounds of 5,000: the loss kept (summed "
            "every 128 steps), the step counted",
        )
    autolog.end_run()


def _hf_parts():
    import torch
    import transformers

    class Tokens(torch.utils.data.Dataset):
        def __init__(self, n: int):
            g = torch.Generator().manual_seed(0)
            self.x = torch.randint(0, 32, (n, 8), generator=g)
            self.y = (self.x[:, 0] > 16).long()

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": self.x[i], "labels": self.y[i]}

    config = transformers.BertConfig(
        vocab_size=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers, config, Tokens(HF_STEPS * 4)


def _hf_arms():
    """``Trainer.train`` bare and logged (``transformers`` autologged, models off),
    after a first logged training (imports, the first run)."""
    import torch

    import autolog

    transformers, config, data = _hf_parts()
    torch.set_num_threads(1)
    out = tempfile.mkdtemp(prefix="bench-hf-")

    def train(train_fn) -> None:
        torch.manual_seed(0)
        args = transformers.TrainingArguments(
            output_dir=out,
            num_train_epochs=1,
            per_device_train_batch_size=4,
            logging_steps=2,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = transformers.Trainer(
            model=transformers.BertForSequenceClassification(config),
            args=args,
            train_dataset=data,
        )
        train_fn(trainer)

    autolog.autolog("transformers", silent=True, log_models=False)
    original = transformers.Trainer.train.__wrapped__
    train(transformers.Trainer.train)  # warm-up: imports, first run
    return lambda: train(original), lambda: train(transformers.Trainer.train)


def _hf_train(h, row: str) -> None:
    import autolog

    bare, logged = _hf_arms()
    notes = (
        f"tiny BERT (2 layers, hidden 32), {HF_STEPS} steps, a log every 2 steps, "
        "1 torch thread, model saving off"
    )
    h.compare(
        row,
        bare,
        logged,
        repeat=5,
        unit="ms",
        goal="<= +3%",
        base_label="bare",
        notes=notes,
    )
    autolog.flush()
    from bench_overhead import _cpu_rows  # the CPU-time rows of issue 16, shared

    _cpu_rows(
        h,
        f"{row}: training thread CPU",
        bare,
        logged,
        clock="training thread CPU",
        goal="<= +3%",
        repeat=7,
        setup=autolog.flush,
        notes=f"thread CPU time; {notes}",
    )


def _hf_logged_step(h, row: str) -> None:
    import autolog
    from autolog import integrations  # noqa: F401  (the package of the callback)
    from autolog.integrations import transformers as hf

    transformers, _, _ = _hf_parts()
    with autolog.start_run() as run:
        callback = hf.AutologCallback(run.info.run_id)
        state = transformers.TrainerState()
        step = iter(range(10**9))

        def one_log() -> None:
            state.global_step = next(step)
            callback.on_log(
                None,
                state,
                None,
                logs={"loss": 0.69, "grad_norm": 0.2, "learning_rate": 4e-5, "epoch": 0.5},
            )

        h.time(
            row,
            one_log,
            repeat=7,
            number=2_000,
            unit="us",
            goal="<= 10 us",
            notes="AutologCallback.on_log with the Trainer's 4-value log: one enqueue",
        )
        cpu_row = f"{row}: training thread CPU"
        if h.wanted(cpu_row):
            h.row(
                cpu_row,
                _cpu_per_call(one_log, 2_000),
                "us",
                goal="<= 10 us",
                notes="the same call, thread CPU time, median of 9 rounds of 2,000",
            )


def _rank_check(h, row: str) -> None:
    from autolog import plugin

    h.time(
        row,
        plugin.process_rank,
        repeat=7,
        number=20_000,
        unit="us",
        goal="<= 2 us",
        notes="once per run opened: torch.distributed (when imported) and 3 environment reads",
    )


def _tf_model_search(h, row: str) -> None:
    """Finding the model a plain loop trains, once per training at its first
    step: from the loop's stack, against the scan of the heap it replaces."""
    import keras

    from autolog.integrations import tensorflow as tf_integration

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    held = {id(v) for v in model.trainable_variables}
    assert tf_integration.trained_models(held) == [model]
    heap = h.time(
        f"{row}: heap scan",
        lambda: tf_integration._outermost(tf_integration._heap_models(), held),
        repeat=5,
        unit="ms",
        notes="gc.get_objects() in a process that imported TensorFlow",
    )
    h.time(
        row,
        lambda: tf_integration.trained_models(held),
        repeat=5,
        number=200,
        unit="ms",
        goal="<= 1 ms",
        peer=f"heap scan {heap:.1f} ms" if heap else None,
        notes="the model a local of the loop's frame",
    )


def _setup() -> None:
    import logging

    import autolog

    logging.getLogger("transformers").setLevel(logging.ERROR)
    autolog.set_tracking_uri((Path(tempfile.mkdtemp(prefix="bench-intb-")) / "mlruns").as_uri())


def run(h) -> None:
    _setup()
    rows = {
        "transformers: Trainer.train, tiny BERT": _hf_train,
        "transformers: added cost per logged step": _hf_logged_step,
        "tensorflow eager loop: added cost per step": lambda h, r: _tf_step_cost(h, r, False),
        "tensorflow tf.function loop: added cost per step": lambda h, r: _tf_step_cost(h, r, True),
        "tensorflow: observers per eager step": _tf_hooks,
        "tensorflow: finding the trained model": _tf_model_search,
        "distributed: process_rank() per run opened": _rank_check,
    }
    for name, measure in rows.items():
        if h.wanted(name):
            measure(h, name)
    if _callgrind.ASKED:  # the Trainer counted on the training thread (about 10 min)
        _callgrind.rows(h, "transformers Trainer.train", [sys.executable, __file__])


if __name__ == "__main__":  # the callgrind child of the rows above
    import autolog

    _setup()
    _callgrind.count_arms(*_hf_arms(), drain=autolog.flush)
