"""Plain PyTorch loops: where one training ends and the next begins (issue 20, item 4).

A new optimizer over new parameters, stepping over a new ``DataLoader``, is a new
training and gets a run of its own; a GAN's second optimizer (same loader) and
a fine-tuning optimizer (same parameters) stay in the run.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import autolog  # noqa: E402
from tests.integrations.runs import artifact_names, history  # noqa: E402

ROWS, BATCH = 48, 16  # 3 steps per epoch


def _loader(seed: int):
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    X = torch.randn(ROWS, 4, generator=g)
    return DataLoader(TensorDataset(X, X.sum(dim=1, keepdim=True)), batch_size=BATCH)


def train(lr: float, epochs: int, losses: list[float], keep: list | None = None, seed: int = 0):
    """Its own model, optimizer and loader; ``losses`` gets each epoch's true mean
    loss. ``keep`` keeps the optimizer and loader alive after the call."""
    torch.manual_seed(seed)
    loader = _loader(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        epoch = []
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            epoch.append(loss.item())
        losses.append(sum(epoch) / len(epoch))
    if keep is not None:
        keep.extend([optimizer, loader])


def _runs_oldest_first():
    return autolog.search_runs(output_format="list", order_by=["attributes.start_time ASC"])


@pytest.mark.parametrize("keep_alive", [False, True], ids=["freed", "optimizer-kept-alive"])
def test_two_trainings_in_one_script_are_two_runs_each_with_its_model(keep_alive):
    autolog.autolog("torch")
    keep: list | None = [] if keep_alive else None
    first_losses: list[float] = []
    second_losses: list[float] = []
    train(0.1, 4, first_losses, keep, seed=0)
    first_id = autolog.active_run().info.run_id
    train(0.5, 3, second_losses, keep, seed=1)
    second_id = autolog.active_run().info.run_id
    assert second_id != first_id
    # the first run ended when the second training began, with its model
    assert autolog.get_run(first_id).info.status == "FINISHED"
    autolog.end_run()

    first, second = _runs_oldest_first()
    assert (first.info.run_id, second.info.run_id) == (first_id, second_id)
    assert first.data.params["optimizer.lr"] == "0.1"
    assert second.data.params["optimizer.lr"] == "0.5"
    for run in (first, second):
        assert not [k for k in run.data.params if k.startswith("optimizer1")]
        assert "model" in artifact_names(run)
    # each training's own epochs, with its own true mean losses
    assert [v for _, v in history(first, "train_loss")] == pytest.approx(first_losses, rel=1e-5)
    assert [v for _, v in history(second, "train_loss")] == pytest.approx(second_losses, rel=1e-5)
    assert [s for s, _ in history(second, "steps")] == [0, 1, 2]
    assert {v for _, v in history(second, "steps")} == {ROWS / BATCH}


def test_a_second_optimizer_on_the_same_loader_stays_in_the_run():
    """A GAN: generator and discriminator, disjoint parameters, one loader."""
    autolog.autolog("torch", log_models=False)
    loader = _loader(0)
    generator, critic = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
    g_opt = torch.optim.Adam(generator.parameters(), lr=1e-3)
    c_opt = torch.optim.SGD(critic.parameters(), lr=1e-2)
    for epoch in range(2):
        for x, _ in loader:
            c_opt.zero_grad()
            critic(generator(x).detach()).mean().backward()
            c_opt.step()
            if epoch == 1:  # the generator starts in the second epoch
                g_opt.zero_grad()
                (-critic(generator(x)).mean()).backward()
                g_opt.step()
    autolog.end_run()
    (run,) = _runs_oldest_first()
    assert run.data.params["optimizer"] == "SGD" and run.data.params["optimizer1"] == "Adam"
    assert [s for s, _ in history(run, "steps")] == [0, 1]


def test_fine_tuning_over_the_same_parameters_stays_in_the_run():
    autolog.autolog("torch", log_models=False)
    losses: list[float] = []
    model = torch.nn.Linear(4, 1)
    for lr in (0.1, 0.01):  # a new optimizer and a new loader, the same parameters
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        for x, y in _loader(0):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    autolog.end_run()
    (run,) = _runs_oldest_first()
    assert run.data.params["optimizer.lr"] == "0.1"
    assert run.data.params["optimizer1.lr"] == "0.01"


def test_in_the_users_run_a_second_training_is_a_child_run_ended_with_it():
    autolog.autolog("torch")
    with autolog.start_run() as parent:
        train(0.1, 2, [])
        train(0.5, 2, [])
        child_id = autolog.active_run().info.run_id
        assert child_id != parent.info.run_id
        autolog.log_metric("user_metric", 1.0)  # the user's own logging goes to the child
    runs = {r.info.run_id: r for r in _runs_oldest_first()}
    assert set(runs) == {parent.info.run_id, child_id}
    parent_run, child = runs[parent.info.run_id], runs[child_id]
    assert parent_run.info.status == child.info.status == "FINISHED"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.tags["mlflow.autologging"] == "torch"
    assert parent_run.data.params["optimizer.lr"] == "0.1"
    assert child.data.params["optimizer.lr"] == "0.5"
    assert "model" in artifact_names(parent_run) and "model" in artifact_names(child)
    assert child.data.metrics["user_metric"] == 1.0
    assert autolog.active_run() is None
