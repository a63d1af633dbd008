"""Real multi-process trainings (2 CPU processes, gloo): exactly one run, logged
by rank 0 with the metrics rank 0 sees, and no process waiting on another
because of autolog."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

import autolog  # noqa: E402
from tests.integrations.runs import artifact_names, history, only_run  # noqa: E402

TIMEOUT_S = 240
EPOCHS = 3

# A plain DDP loop started by mp.spawn: each rank trains on its own shard and
# writes the losses it saw, so the test can compare rank 0's with the run.
DDP_SCRIPT = """
import json, os, sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, TensorDataset
import autolog


def worker(rank, world, port, out):
    autolog.autolog("torch")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    torch.manual_seed(rank)
    X = torch.randn(32, 4)
    loader = DataLoader(TensorDataset(X, X.sum(1, keepdim=True)), batch_size=8)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    means = []
    for epoch in range(int(sys.argv[2])):
        losses = []
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        means.append(sum(losses) / len(losses))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(means, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(2, int(sys.argv[1]), sys.argv[3]), nprocs=2, join=True)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_script(tmp_path, source: str, *args: str) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert out.returncode == 0, out.stderr[-4000:]


@pytest.mark.slow
def test_torch_ddp_by_mp_spawn_gives_one_run_from_rank_0(tmp_path):
    import json

    run_script(tmp_path, DDP_SCRIPT, str(free_port()), str(EPOCHS), str(tmp_path))
    run = only_run()  # one run for two processes
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "torch"
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    losses = history(run, "train_loss")
    assert [s for s, _ in losses] == list(range(EPOCHS))  # the expected metric count
    assert [v for _, v in losses] == pytest.approx(rank0, rel=1e-5)  # rank 0's own losses
    assert [v for _, v in losses] != pytest.approx(rank1, rel=1e-5)
    assert history(run, "steps") == [(e, 4.0) for e in range(EPOCHS)]
    assert "model" in artifact_names(run)
    model = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert isinstance(model, torch.nn.Linear)  # DDP's wrapper unwrapped
