"""The seed's sequence, written for the OFFICIAL mlflow client (run with its
interpreter by the tests, never imported by autolog). It prints one JSON
object of what it read back."""

import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient

work = Path(tempfile.mkdtemp())
mlflow.set_experiment("seed-exp")
with mlflow.start_run(run_name="parent") as parent:
    mlflow.log_params({"lr": "0.01", "depth": 3})
    for step, loss in enumerate([1.0, 0.5, 0.25]):
        mlflow.log_metric("loss", loss, step=step)
    mlflow.log_metric("acc", 0.9)
    mlflow.set_tags({"team": "vision", "stage": "dev"})
    note = work / "note.txt"
    note.write_text("hello")
    mlflow.log_artifact(str(note))
    folder = work / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("A")
    (folder / "sub" / "b.txt").write_text("BB")
    mlflow.log_artifacts(str(folder), artifact_path="plots")
    mlflow.log_dict({"x": 1}, "config/params.json")
    with mlflow.start_run(run_name="child", nested=True) as child:
        mlflow.log_metric("loss", 0.1)
        mlflow.set_tag("team", "vision")
parent_id, child_id = parent.info.run_id, child.info.run_id
# a second top-level run, to order against
with mlflow.start_run(run_name="other"):
    mlflow.log_metric("loss", 2.0)
    mlflow.set_tag("team", "nlp")

client = MlflowClient()
by_tag = mlflow.search_runs(filter_string="tags.team = 'vision'", output_format="list")
by_metric = mlflow.search_runs(
    filter_string="metrics.loss < 1.5", order_by=["metrics.loss ASC"], output_format="list"
)
history = client.get_metric_history(parent_id, "loss")
listed = [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(parent_id, "plots")]
root_listed = sorted(f.path for f in client.list_artifacts(parent_id))
down = Path(mlflow.artifacts.download_artifacts(run_id=parent_id, dst_path=str(work / "down")))
downloaded = sorted(str(p.relative_to(down)) for p in down.rglob("*") if p.is_file())
sub = Path(client.download_artifacts(parent_id, "plots/sub", str(work / "down2")))
experiments = [e.name for e in mlflow.search_experiments()]
run = client.get_run(parent_id)
child_run = client.get_run(child_id)
print(
    json.dumps(
        {
            "parent_id": parent_id,
            "child_id": child_id,
            "status": run.info.status,
            "run_name": run.info.run_name,
            "artifact_uri": run.info.artifact_uri,
            "params": run.data.params,
            "metrics": run.data.metrics,
            "tags": {k: v for k, v in run.data.tags.items()},
            "child_parent": child_run.data.tags.get("mlflow.parentRunId"),
            "by_tag": sorted(r.info.run_name for r in by_tag),
            "by_metric": [r.info.run_name for r in by_metric],
            "history": [(m.step, m.value) for m in history],
            "listed": listed,
            "root_listed": root_listed,
            "downloaded": downloaded,
            "note": (down / "note.txt").read_text(),
            "config": json.loads((down / "config/params.json").read_text()),
            "sub_b": (sub / "b.txt").read_text(),
            "experiments": experiments,
            "python": sys.executable,
            "token_env": bool(os.environ.get("MLFLOW_TRACKING_TOKEN")),
        }
    )
)
