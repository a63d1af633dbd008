"""Plain PyTorch loops in real scripts, run as ``__main__`` of a fresh interpreter
(issue 20, items 3 and 6): the model of a ``def main()`` script is saved, and
the run's status says how the script ended (an exception: FAILED; Ctrl-C:
KILLED, the exit status staying Ctrl-C's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import autolog  # noqa: E402
from tests.integrations.runs import artifact_names, history, only_run  # noqa: E402

TIMEOUT_S = 120

# The commonest layout: everything inside main(), nothing left at module level.
SCRIPT = """
import sys
import torch
from torch.utils.data import DataLoader, TensorDataset
import autolog

autolog.autolog("torch")


class ScriptNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def main(epochs, weights_file, fail_at_epoch=None):
    torch.manual_seed(0)
    X = torch.randn(48, 4)
    loader = DataLoader(TensorDataset(X, X.sum(dim=1, keepdim=True)), batch_size=16)
    model = ScriptNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            if epoch == fail_at_epoch:
                raise RuntimeError("boom in the training loop")
            if epoch == 1:
                print("training", flush=True)  # the parent may interrupt from here on
    torch.save(model.state_dict(), weights_file)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], None if sys.argv[3] == "-" else int(sys.argv[3]))
"""


def _start(tmp_path: Path, epochs: int, fail_at: int | None = None) -> subprocess.Popen:
    script = tmp_path / "train_script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the test's store and AUTOLOG_TESTING
    args = [sys.executable, str(script), str(epochs), str(tmp_path / "weights.pt")]
    return subprocess.Popen(
        [*args, "-" if fail_at is None else str(fail_at)],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen) -> str:
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT_S)
    finally:
        proc.kill()
    return stderr


def test_the_model_of_a_main_function_script_is_logged(tmp_path):
    proc = _start(tmp_path, epochs=3)
    stderr = _finish(proc)
    assert proc.returncode == 0, stderr

    run = only_run()
    assert run.info.status == "FINISHED"
    assert [s for s, _ in history(run, "train_loss")] == [0, 1, 2]
    assert "model" in artifact_names(run)
    # the model saved is the trained one: the weights the script ended with
    model = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert type(model).__name__ == "ScriptNet"
    final = torch.load(tmp_path / "weights.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, final[key]), key


def test_an_exception_in_the_loop_ends_the_run_failed(tmp_path):
    proc = _start(tmp_path, epochs=3, fail_at=1)
    stderr = _finish(proc)
    assert proc.returncode == 1 and "boom in the training loop" in stderr

    run = only_run()
    assert run.info.status == "FAILED"
    assert run.info.end_time is not None
    assert [s for s, _ in history(run, "train_loss")] == [0, 1]  # epoch 1: its one step
    assert "model" in artifact_names(run)  # the model as it was when it failed


def test_ctrl_c_in_the_loop_ends_the_run_killed_and_keeps_the_exit_status(tmp_path):
    proc = _start(tmp_path, epochs=100_000)
    try:
        assert proc.stdout.readline().strip() == "training", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
    finally:
        stderr = _finish(proc)
    # Python ends an uncaught KeyboardInterrupt by SIGINT (a shell shows 130)
    assert proc.returncode == -signal.SIGINT, stderr
    assert "KeyboardInterrupt" in stderr

    run = only_run()
    assert run.info.status == "KILLED"
    assert run.info.end_time is not None
    assert len(history(run, "train_loss")) >= 1
