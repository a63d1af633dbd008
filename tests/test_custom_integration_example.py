"""The worked third-party integration in examples/custom_integration/.

It is installed for real (pip, into a temporary folder) and used from a fresh
interpreter: autolog() must find it through its entry point alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_integration"

SCRIPT = """
import json, autolog
autolog.autolog()                          # nothing names the plugin
import toyml
model = toyml.Trainer(learning_rate=0.1, epochs=4).train([1.0, 2.0, 3.0])
client = autolog.Client()
[run] = client.search_runs(["0"])
history = client.get_metric_history(run.info.run_id, "loss")
row = next(r for r in autolog.status() if r.name == "toyml")
print(json.dumps({
    "params": run.data.params,
    "tags": run.data.tags,
    "weight": model.weight,
    "final_weight": run.data.metrics["final_weight"],
    "loss_steps": [m.step for m in history],
    "loss_values": [m.value for m in history],
    "state": row.state,
    "targets": row.targets,
}))
"""


def test_installed_plugin_is_discovered_and_logs(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "AUTOLOG_TRACKING_URI": (tmp_path / "mlruns").as_uri(),
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["params"] == {"learning_rate": "0.1", "epochs": "4"}
    assert result["tags"]["mlflow.autologging"] == "toyml"
    assert result["final_weight"] == result["weight"]
    assert result["loss_steps"] == [0, 1, 2, 3]
    losses = result["loss_values"]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]  # it learns
    assert result["state"] == "active"
    assert result["targets"] == ["toyml.Trainer.train"]
