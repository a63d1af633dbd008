"""Every autologged run says what autolog cost it: autolog.overhead_ms, .training_ms, .overhead_pct.

The accounting is checked exactly with a throwaway integration whose handler
and callback take known times; the built-in integrations are checked for the
metric's presence and its bounds (positive, below the training's wall time,
which is below the wall time measured around the user's call).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import autolog
from autolog import plugin
from autolog.training import OVERHEAD_METRIC, OVERHEAD_PCT_METRIC, TRAINING_MS_METRIC
from tests.integrations.runs import only_run
from tests.patch_targets import fake_integration

OURS, FIT, CALLBACK = 0.1, 0.05, 0.1  # seconds
SLACK_MS = 60  # what a loaded machine adds to a sleep, well below OURS and CALLBACK


def _assert_bounded(run, wall_ms: float) -> dict[str, float]:
    metrics = run.data.metrics
    spent, training, pct = (
        metrics[OVERHEAD_METRIC],
        metrics[TRAINING_MS_METRIC],
        metrics[OVERHEAD_PCT_METRIC],
    )
    assert 0 < spent < training <= wall_ms
    assert pct == pytest.approx(100 * spent / training)
    return metrics


def test_handler_and_callback_time_count_and_the_users_fit_does_not(make_module):
    fw = __import__(make_module())

    def on_fit(call):
        time.sleep(OURS)  # our work before the user's call (params, callbacks)

        def callback(model, x):  # the framework calls it during fit
            start = time.perf_counter_ns()
            time.sleep(CALLBACK)
            plugin.add_overhead(call.run_id, time.perf_counter_ns() - start)
            time.sleep(FIT)  # the framework's own work, after our callback

        call.set_argument("callbacks", [callback])
        yield

    autolog.register(fake_integration(fw.__name__, _wrapping_fit(on_fit)))
    autolog.autolog("fake")
    start = time.perf_counter()
    fw.Model().fit(1)
    wall_ms = (time.perf_counter() - start) * 1e3
    metrics = _assert_bounded(only_run(), wall_ms)
    assert metrics[OVERHEAD_METRIC] >= (OURS + CALLBACK) * 1e3  # the handler's and callback's
    # what is not ours is the framework's sleep: not the handler's, not the callback's time
    theirs = metrics[TRAINING_MS_METRIC] - metrics[OVERHEAD_METRIC]
    assert FIT * 1e3 <= theirs < FIT * 1e3 + SLACK_MS


def _wrapping_fit(handler):
    def patch(self, patcher, module):
        patcher.wrap(module.Model, "fit", handler)

    return patch


def test_a_failed_fit_gets_its_overhead_too(make_module):
    fw = __import__(make_module())

    def on_fit(call):
        time.sleep(OURS)
        yield

    autolog.register(fake_integration(fw.__name__, _wrapping_fit(on_fit)))
    autolog.autolog("fake")
    with pytest.raises(ValueError):
        fw.Model().fit("boom")
    run = only_run()
    assert run.info.status == "FAILED"
    assert run.data.metrics[OVERHEAD_METRIC] >= OURS * 1e3


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype("float32")
    return X, (X[:, 0] > 0).astype(int)


def test_sklearn(data):
    from sklearn.linear_model import LogisticRegression

    autolog.autolog("sklearn")
    wall = _timed(lambda: LogisticRegression().fit(*data))
    _assert_bounded(only_run(), wall)


def test_sklearn_in_the_users_run(data):
    from sklearn.linear_model import LogisticRegression

    autolog.autolog("sklearn")
    with autolog.start_run() as run:
        wall = _timed(lambda: LogisticRegression().fit(*data))
    _assert_bounded(autolog.get_run(run.info.run_id), wall)


def test_xgboost(data):
    import xgboost as xgb

    autolog.autolog("xgboost")
    train = xgb.DMatrix(*data)
    wall = _timed(lambda: xgb.train({"nthread": 1}, train, 5, evals=[(train, "train")]))
    _assert_bounded(only_run(), wall)


def test_lightgbm(data):
    import lightgbm as lgb

    autolog.autolog("lightgbm")
    train = lgb.Dataset(*data)
    params = {"verbose": -1, "num_threads": 1, "min_data_in_leaf": 5}
    wall = _timed(lambda: lgb.train(params, train, 5, valid_sets=[train]))
    _assert_bounded(only_run(), wall)


def test_plain_torch_loop(data):
    import torch

    autolog.autolog("torch")
    X, y = torch.tensor(data[0]), torch.tensor(data[1], dtype=torch.float32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=50)
    model = torch.nn.Linear(5, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def train() -> None:
        for _ in range(2):
            for xb, yb in loader:
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(xb).squeeze(1), yb).backward()
                optimizer.step()
        autolog.end_run()  # the loop's run ends here: the model and the overhead are logged

    wall = _timed(train)
    _assert_bounded(only_run(), wall)
