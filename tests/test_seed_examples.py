"""Every concept and example of the user's reference document (shared/seed,
an MLflow tutorial) works under our names: ``mlflow.x`` -> ``autolog.x``,
``MlflowClient`` -> ``autolog.Client``. One test per section of the document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import autolog


@pytest.fixture
def model():
    from sklearn.ensemble import RandomForestClassifier

    X = [[0, 0], [1, 1], [0, 1], [1, 0]] * 5
    y = [0, 1, 0, 1] * 5
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), X


def test_1_experiments():
    autolog.set_experiment("Customer_Churn_Prediction")
    experiment = autolog.get_experiment_by_name("Customer_Churn_Prediction")
    assert experiment.experiment_id != "0" and experiment.name == "Customer_Churn_Prediction"


def test_2_anatomy_of_a_run(model, tmp_path):
    fitted, X = model
    (tmp_path / "feature_importance.png").write_bytes(b"\x89PNG fake")
    with autolog.start_run(run_name="random_forest_v1"):
        autolog.log_param("n_estimators", 100)
        autolog.log_param("max_depth", 10)
        autolog.log_metric("accuracy", 0.95)
        autolog.log_metric("f1_score", 0.93)
        autolog.log_model(fitted, "model")
        autolog.log_artifact("feature_importance.png")
        autolog.set_tag("model_type", "Random Forest")
        run = autolog.active_run()
        run_id = run.info.run_id
    got = autolog.get_run(run_id)
    assert len(run_id) == 32 and got.info.run_name == "random_forest_v1"
    assert got.data.params == {"n_estimators": "100", "max_depth": "10"}
    assert got.data.metrics == {"accuracy": 0.95, "f1_score": 0.93}
    assert got.data.tags["model_type"] == "Random Forest"
    artifacts = {f.path for f in autolog.Client().list_artifacts(run_id)}
    assert artifacts == {"model", "feature_importance.png", "provenance"}  # + requirements.txt
    loaded = autolog.load_model(f"runs:/{run_id}/model")
    assert list(loaded.predict(X)) == list(fitted.predict(X))


def test_2_nested_runs():
    with autolog.start_run(run_name="hyperparameter_tuning") as parent:
        for lr in [0.01, 0.1, 1.0]:
            with autolog.start_run(run_name=f"lr_{lr}", nested=True):
                autolog.log_param("lr", lr)
    children = autolog.Client().search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert sorted(r.info.run_name for r in children) == ["lr_0.01", "lr_0.1", "lr_1.0"]


def test_3_parameters_single_dict_and_immutable():
    with autolog.start_run() as run:
        autolog.log_param("learning_rate", 0.01)
        autolog.log_param("train_size", 0.8)
        autolog.log_param("random_state", 42)
        autolog.log_param("scaler", "StandardScaler")
        autolog.log_params({"n_estimators": 100, "max_depth": 10, "min_samples_split": 2})
        with pytest.raises(autolog.ParamOverwriteError, match="learning_rate"):
            autolog.log_param("learning_rate", 0.02)  # "cannot be updated once logged"
    params = autolog.get_run(run.info.run_id).data.params
    assert params["learning_rate"] == "0.01" and params["random_state"] == "42"
    assert params["n_estimators"] == "100" and all(isinstance(v, str) for v in params.values())


def test_4_metrics_with_steps_and_dicts():
    with autolog.start_run() as run:
        for epoch in range(10):
            autolog.log_metric("train_loss", 1.0 / (epoch + 1), step=epoch)
            autolog.log_metric("val_loss", 1.5 / (epoch + 1), step=epoch)
        autolog.log_metrics({"accuracy": 0.95, "precision": 0.93, "recall": 0.91})
    client = autolog.Client()
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == list(range(10))
    assert history[-1].value == pytest.approx(0.1)
    metrics = client.get_run(run.info.run_id).data.metrics
    assert metrics["accuracy"] == 0.95 and metrics["val_loss"] == pytest.approx(0.15)


def test_5_artifacts_figure_files_json_and_folders(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [4, 5, 6])
    output_dir = tmp_path / "output_dir"
    output_dir.mkdir()
    (output_dir / "report.txt").write_text("r")
    for name in ("model.pkl", "plot.png", "data.csv", "predictions.csv"):
        (tmp_path / name).write_text(name)
    with autolog.start_run() as run:
        autolog.log_figure(fig, "line_plot.png")
        plt.savefig("histogram.png")
        autolog.log_artifact("histogram.png")
        autolog.log_artifact("predictions.csv")
        with open("config.json", "w") as f:
            json.dump({"param1": "value1"}, f)
        autolog.log_artifact("config.json")
        autolog.log_artifacts("output_dir/", artifact_path="outputs")
        autolog.log_artifact("model.pkl", artifact_path="models")
        autolog.log_artifact("plot.png", artifact_path="visualizations")
        autolog.log_artifact("data.csv", artifact_path="data")
    plt.close(fig)
    client = autolog.Client()
    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert top == {
        "provenance",  # requirements.txt, recorded for every top-level run
        "line_plot.png",
        "histogram.png",
        "predictions.csv",
        "config.json",
        "outputs",
        "models",
        "visualizations",
        "data",
    }
    assert [f.path for f in client.list_artifacts(run.info.run_id, "outputs")] == [
        "outputs/report.txt"
    ]
    local = Path(client.download_artifacts(run.info.run_id, "config.json", dst_path=tmp_path / "d"))
    assert json.loads(local.read_text()) == {"param1": "value1"}


def test_6_tags_and_search_by_tag():
    experiment_id = autolog.set_experiment("tagged").experiment_id
    with autolog.start_run() as rf:
        autolog.set_tag("model_type", "Random Forest")
        autolog.set_tag("version", "v1.0")
        autolog.set_tag("environment", "production")
        autolog.set_tag("developer", "João Silva")
    with autolog.start_run():
        autolog.set_tag("model_type", "XGBoost")
    client = autolog.Client()
    runs = client.search_runs(
        experiment_ids=[experiment_id], filter_string="tags.model_type = 'Random Forest'"
    )
    assert [r.info.run_id for r in runs] == [rf.info.run_id]
    tags = runs[0].data.tags
    assert tags["developer"] == "João Silva"
    assert {"mlflow.source.name", "mlflow.source.type", "mlflow.user"} <= set(tags)


def test_7_tracking_uri(tmp_path):
    autolog.set_tracking_uri("file:./mlruns")
    assert autolog.get_tracking_uri() == (tmp_path / "mlruns").as_uri()
    autolog.set_tracking_uri("sqlite:///mlflow.db")
    assert autolog.get_tracking_uri() == "sqlite:///mlflow.db"
    autolog.set_tracking_uri("postgresql://user:password@localhost:5432/mlflow")
    assert autolog.get_tracking_uri().startswith("postgresql://")


def test_10_client_usage(tmp_path):
    autolog.set_experiment("client_demo")
    with autolog.start_run() as run:
        autolog.log_metric("accuracy", 0.9)
        autolog.log_text("weights", "model/weights.txt")
    client = autolog.Client()
    experiments = client.search_experiments()
    assert "client_demo" in {e.name for e in experiments}
    experiment_id = run.info.experiment_id
    assert [r.info.run_id for r in client.search_runs(experiment_ids=[experiment_id])] == [
        run.info.run_id
    ]
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "accuracy")] == [0.9]
    local = client.download_artifacts(run.info.run_id, "model", dst_path="./")
    assert (Path(local) / "weights.txt").read_text() == "weights"
