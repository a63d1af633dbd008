"""Plain PyTorch loops: one run from the first optimizer step, per-epoch loss,
learning rates and steps, optimizer params, the model, and no per-step sync."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import autolog  # noqa: E402
from autolog.integrations.torch import TorchFlavor, trained_modules  # noqa: E402
from tests.integrations.runs import history, only_run  # noqa: E402
from tests.models_roundtrip import assert_roundtrip_in_fresh_process  # noqa: E402

EPOCHS, ROWS, BATCH = 3, 48, 16  # 3 steps per epoch


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.body(x))


def _data():
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    X = torch.randn(ROWS, 4, generator=g)
    y = X.sum(dim=1, keepdim=True)
    return DataLoader(TensorDataset(X, y), batch_size=BATCH), DataLoader(
        TensorDataset(X, y), batch_size=ROWS
    )


def _train(
    record_losses: list[list[float]] | None = None,
    epochs: int = EPOCHS,
    backward=lambda loss: loss.backward(),
):
    """An unmodified loop: StepLR scheduler, validation under no_grad each epoch."""
    torch.manual_seed(0)
    train_loader, val_loader = _data()
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    losses: list[torch.Tensor] = []
    for _ in range(epochs):
        model.train()
        epoch_losses = []
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            backward(loss)
            optimizer.step()
            epoch_losses.append(loss.detach())
        losses.append(torch.stack(epoch_losses))
        scheduler.step()
        model.eval()
        with torch.no_grad():
            for x, y in val_loader:
                torch.nn.functional.mse_loss(model(x), y)  # not a training loss
    if record_losses is not None:
        record_losses.extend(t.tolist() for t in losses)
    return model


def test_a_plain_loop_logs_one_run_with_epochs_params_and_model():
    autolog.autolog("torch")
    losses: list[list[float]] = []
    model = _train(losses)
    run_id = autolog.active_run().info.run_id  # the loop's run is the thread's active run
    autolog.end_run()

    run = only_run()
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "torch"
    loss_history = history(run_id, "train_loss")
    assert [step for step, _ in loss_history] == list(range(EPOCHS))
    for (_, logged), epoch_losses in zip(loss_history, losses):
        assert logged == pytest.approx(sum(epoch_losses) / len(epoch_losses), rel=1e-6)
    assert history(run_id, "learning_rate") == [(0, 0.1), (1, 0.05), (2, 0.025)]
    assert history(run_id, "steps") == [(e, ROWS / BATCH) for e in range(EPOCHS)]

    params = run.data.params
    assert params["optimizer"] == "SGD"
    assert params["optimizer.lr"] == "0.1"
    assert params["optimizer.momentum"] == "0.9"
    assert params["optimizer.weight_decay"] == "0.0001"
    assert "optimizer.initial_lr" not in params and "optimizer.params" not in params
    assert params["parameter_count"] == str(sum(p.numel() for p in model.parameters()))

    loaded = autolog.load_model(f"runs:/{run_id}/model")
    assert type(loaded) is Net
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), model(x))
    state = torch.load(
        autolog.Client().download_artifacts(run_id, "model/state_dict.pt"), weights_only=True
    )
    assert set(state) == set(model.state_dict())


def _item_calls_per_epoch() -> list[int]:
    """``Tensor.item`` calls in each epoch of a loop that never calls it itself
    (Adam does, once per parameter and step: the same with or without autolog)."""
    calls = {"item": 0}
    original_item = torch.Tensor.item

    def counting_item(self):
        calls["item"] += 1
        return original_item(self)

    torch.manual_seed(0)
    train_loader, _ = _data()
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    per_epoch = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "item", counting_item)
        for _ in range(EPOCHS):
            before = calls["item"]
            for x, y in train_loader:
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
            per_epoch.append(calls["item"] - before)
    return per_epoch


def test_losses_are_read_once_per_epoch_not_per_step():
    bare = _item_calls_per_epoch()
    autolog.autolog("torch", log_models=False)
    logged = _item_calls_per_epoch()
    added = [b - a for a, b in zip(bare, logged)]
    # Epoch 0's loss is read when the second iteration over the loader starts
    # (inside the next epoch's `for`): nothing in epoch 0, then one read per epoch,
    # however many steps an epoch has.
    assert added == [0] + [1] * (EPOCHS - 1)
    autolog.end_run()
    assert len(history(only_run().info.run_id, "train_loss")) == EPOCHS


def test_the_users_run_is_used_and_left_open():
    autolog.autolog("torch", log_models=False)
    with autolog.start_run() as run:
        _train(epochs=2)
        assert autolog.active_run().info.run_id == run.info.run_id
    assert only_run().info.run_id == run.info.run_id
    assert [step for step, _ in history(run.info.run_id, "train_loss")] == [0, 1]
    assert "mlflow.autologging" not in only_run().data.tags


def test_exclusive_leaves_the_users_run_alone():
    autolog.autolog("torch", exclusive=True)
    with autolog.start_run() as run:
        _train(epochs=1)
    assert autolog.get_run(run.info.run_id).data.metrics == {}
    assert len(autolog.search_runs(output_format="list")) == 1


def test_a_loop_without_a_dataloader_is_one_epoch_and_a_later_loop_a_new_run():
    autolog.autolog("torch", log_models=False)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(
        [{"params": [model.weight], "lr": 0.1}, {"params": [model.bias], "lr": 0.01}]
    )
    x = torch.randn(8, 3)
    for _ in range(4):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
    first = autolog.active_run().info.run_id
    autolog.end_run()
    assert history(first, "steps") == [(0, 4.0)]
    assert history(first, "learning_rate_group_0") == [(0, 0.1)]
    assert history(first, "learning_rate_group_1") == [(0, 0.01)]
    params = autolog.get_run(first).data.params
    assert params["optimizer.group0.lr"] == "0.1" and params["optimizer.group1.lr"] == "0.01"

    optimizer.step()  # a step after the run ended opens a new one
    second = autolog.active_run().info.run_id
    autolog.end_run()
    assert second != first
    assert history(second, "steps") == [(0, 1.0)]


def test_lightning_or_other_sessions_are_not_logged_by_the_plain_loop_integration():
    from autolog._calls import _SESSIONS, Session

    autolog.autolog("torch")
    token = _SESSIONS.set((Session("lightning", None),))
    try:
        _train(epochs=1)
    finally:
        _SESSIONS.reset(token)
    assert autolog.active_run() is None
    assert autolog.search_runs(output_format="list") == []


def test_disable_removes_the_hook_and_the_wraps():
    originals = (torch.autograd.backward, torch.utils.data.DataLoader.__iter__)
    autolog.autolog("torch")
    assert torch.autograd.backward is not originals[0]
    row = next(r for r in autolog.status() if r.name == "torch")
    assert row.state == "active"
    assert set(row.targets) == {
        "torch.autograd.backward",
        "torch.utils.data.dataloader.DataLoader.__iter__",
    }
    autolog.autolog("torch", disable=True)
    assert torch.autograd.backward is originals[0]
    assert torch.utils.data.DataLoader.__iter__ is originals[1]
    from torch.optim.optimizer import _global_optimizer_post_hooks

    assert not _global_optimizer_post_hooks
    _train(epochs=1)
    assert autolog.active_run() is None


def test_trained_modules_are_the_outermost_ones_with_trained_parameters():
    backbone = Net()
    frozen = torch.nn.Linear(4, 4).requires_grad_(False)
    model = torch.nn.Sequential(frozen, backbone)
    other = torch.nn.Linear(2, 2)  # not trained
    held = {id(p) for p in backbone.parameters()}
    found = trained_modules(held)
    assert found == [model]  # frozen parameters do not count; submodules are inside
    assert other not in found
    assert TorchFlavor().handles(model) and not TorchFlavor().handles(object())


def test_opening_the_run_counts_in_its_training_time_as_in_its_overhead(monkeypatch):
    import time

    from autolog import plugin
    from autolog.training import OVERHEAD_METRIC, TRAINING_MS_METRIC

    opening = plugin.training_run

    def slow_opening(*args, **kwargs):  # a store that takes its time to open a run
        time.sleep(0.1)
        return opening(*args, **kwargs)

    monkeypatch.setattr(plugin, "training_run", slow_opening)
    autolog.autolog("torch")
    _train(epochs=1)
    run_id = autolog.active_run().info.run_id
    autolog.end_run()
    metrics = autolog.get_run(run_id).data.metrics
    # the run's time starts with the step hook that opened it, as a fit's with its call
    assert 100 <= metrics[OVERHEAD_METRIC] < metrics[TRAINING_MS_METRIC]


def test_model_from_a_script_loads_in_a_fresh_process():
    result = assert_roundtrip_in_fresh_process(
        """
        import torch

        class ScriptNet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(3, 2)

            def forward(self, x):
                return torch.tanh(self.linear(x))

        torch.manual_seed(0)
        model = ScriptNet()
        X = torch.randn(4, 3)
        """,
        predict="model(X)",
        expected_flavor="torch",
    )
    assert result.loaded_type == "ScriptNet"
    assert result.metadata["framework"]["distribution"] == "torch"
    assert "model.pt" in result.metadata["files"] and "state_dict.pt" in result.metadata["files"]


@pytest.mark.parametrize("style", ["loss.backward()", "torch.autograd.backward(loss)"])
def test_each_loss_counts_once_through_either_backward(style):
    from autolog._registry import registry

    def backward(loss):  # looked up at call time, as user code does
        return loss.backward() if style == "loss.backward()" else torch.autograd.backward(loss)

    autolog.autolog("torch")
    losses: list[list[float]] = []
    _train(losses, epochs=2, backward=backward)
    tracker = registry.states["torch"].integration.tracker()
    counted = tracker.loss_count + len(tracker.pending_losses)
    run_id = autolog.active_run().info.run_id
    autolog.end_run()
    assert counted == len(losses[-1])  # the open epoch: one loss per step, not two
    logged = [v for _, v in history(run_id, "train_loss")]
    assert logged == pytest.approx([sum(e) / len(e) for e in losses], rel=1e-6)


def test_the_snapshot_is_a_copy_saved_later_and_training_on_changes_nothing_in_it(tmp_path):
    import io

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    snapshot = TorchFlavor().snapshot(model)
    assert snapshot.files == {} and set(snapshot.deferred) == {"model.pt", "state_dict.pt"}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)  # training goes on after the snapshot
    whole = torch.load(io.BytesIO(snapshot.deferred["model.pt"]()), weights_only=False)
    weights = torch.load(io.BytesIO(snapshot.deferred["state_dict.pt"]()), weights_only=True)
    for key, value in expected.items():
        assert torch.equal(whole.state_dict()[key], value) and torch.equal(weights[key], value)

    # a module that does not deep-copy is saved at once, as it is
    class NoCopies:
        def __deepcopy__(self, memo):
            raise TypeError("no copies of this one")

    model.handle = NoCopies()
    held = TorchFlavor().snapshot(model)
    assert held.deferred == {} and set(held.files) == {"model.pt", "state_dict.pt"}


def test_the_save_finds_the_submodules_cloudpickle_would_and_restores_cloudpickle():
    import json
    import sys

    import cloudpickle.cloudpickle as cp

    from autolog.integrations import torch as torch_integration

    original = cp._find_imported_submodules

    def uses():  # submodules addressed through their package, as cloudpickle looks for
        return torch.nn.functional.relu, json.decoder, torch.optim.lr_scheduler

    globals_ = [torch, json, 3, None]
    found = torch_integration._find_imported_submodules(uses.__code__, globals_)
    assert found == original(uses.__code__, globals_)
    assert {m.__name__ for m in found} >= {"torch.nn.functional", "json.decoder"}

    # a module imported since the index was built is found too
    def tool():
        return json.tool

    sys.modules.pop("json.tool", None)
    assert torch_integration._find_imported_submodules(tool.__code__, [json]) == []
    import json.tool

    found = torch_integration._find_imported_submodules(tool.__code__, [json])
    assert found == original(tool.__code__, [json]) and found[0].__name__ == "json.tool"
    # the save uses it and gives cloudpickle its own back
    TorchFlavor().snapshot(Net()).deferred["model.pt"]()
    assert cp._find_imported_submodules is original
