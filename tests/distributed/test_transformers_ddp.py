"""The Hugging Face Trainer under ``torchrun`` (2 CPU processes, gloo): one run,
logged by the main process, with the losses the main process's Trainer logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("transformers")

from tests.distributed.test_torch_ddp import TIMEOUT_S, free_port
from tests.integrations.runs import history, only_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import json, os, sys
import torch.distributed as dist
import transformers
import autolog
from tests.integrations import test_transformers as t

autolog.autolog("transformers", log_models=False)
out = sys.argv[1]
trainer = t.trainer_for(
    t.Path(out), eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
    ddp_backend="gloo",
)
trainer.train()
losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
rank = int(os.environ["RANK"])
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump({"losses": losses, "world": trainer.args.world_size,
               "steps": trainer.state.global_step}, f)
"""


@pytest.mark.slow
def test_trainer_under_torchrun_gives_one_run_from_the_main_process(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
    ]
    out = subprocess.run(
        [*torchrun, str(script), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    assert rank0["world"] == 2  # really two processes training together
    run = only_run()  # rank 1's train() opened no run
    assert run.data.tags["mlflow.autologging"] == "transformers"
    losses = history(run, "loss")
    assert [v for _, v in losses] == pytest.approx(rank0["losses"])
    assert len(losses) == rank0["steps"] // 2  # a log every 2 steps, each logged once
