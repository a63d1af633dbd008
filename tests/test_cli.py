"""The ``autolog`` command line, run in-process through ``main([...])`` and once
as the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from autolog import Client, Metric, Param, RunTag
from autolog.cli import format_status, main
from autolog.integration import IntegrationStatus


@pytest.fixture
def client(tracking_uri) -> Client:
    return Client(tracking_uri)


@pytest.fixture
def runs(client, tmp_path) -> dict[str, str]:
    """Three runs in experiment 'churn': name -> run id (rf_a, xgb, rf_b newest)."""
    experiment_id = client.create_experiment("churn", tags={"team": "a"})
    ids = {}
    for i, (name, model, acc) in enumerate(
        [("rf_a", "rf", 0.9), ("xgb", "xgb", 0.95), ("rf_b", "rf", 0.7)]
    ):
        run = client.create_run(experiment_id, start_time=1_000_000 + i * 1000, run_name=name)
        run_id = run.info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("loss", 1.0 / (s + 1), 5000 + s, s) for s in range(3)]
            + [Metric("acc", acc, 6000, 0)],
            params=[Param("model", model), Param("depth", str(i + 3))],
            tags=[RunTag("stage", "dev")],
        )
        client.log_text(run_id, f"notes of {name}", "notes/readme.txt")
        client.set_terminated(run_id, end_time=1_000_000 + i * 1000 + 500)
        ids[name] = run_id
    return ids


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_experiments_list(capsys, runs):
    code, out, _ = run_cli(capsys, "experiments", "list")
    assert code == 0
    header, _dashes, *rows = out.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "CREATED"]
    assert {row.split()[1] for row in rows} == {"Default", "churn"}
    code, out, _ = run_cli(capsys, "experiments", "list", "--json")
    by_name = {e["name"]: e for e in json.loads(out)}
    assert by_name["churn"]["tags"] == {"team": "a"}


def test_runs_list_table_has_the_common_params_and_metrics(capsys, runs, monkeypatch):
    # the columns shown depend on the terminal's width: a pytest-xdist worker's
    # may be narrow, so the test names the width it is about
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = run_cli(capsys, "runs", "list", "--experiment", "churn")
    assert code == 0
    lines = out.splitlines()
    for column in ("RUN ID", "NAME", "STATUS", "metrics.acc", "metrics.loss", "params.model"):
        assert column in lines[0]
    # newest first by default, one row per run, then the count
    assert [line.split()[0] for line in lines[2:5]] == [runs["rf_b"], runs["xgb"], runs["rf_a"]]
    assert lines[-1] == "3 runs"
    assert "0.95" in lines[3] and "xgb" in lines[3]


def test_runs_list_filter_order_max_and_json(capsys, runs):
    code, out, _ = run_cli(
        capsys,
        "runs",
        "list",
        "--filter",
        "params.model = 'rf' OR metrics.acc > 0.94",
        "--order-by",
        "metrics.acc DESC",
        "--json",
    )
    assert code == 0
    listed = json.loads(out)
    assert [r["run_name"] for r in listed] == ["xgb", "rf_a", "rf_b"]
    assert listed[0]["metrics"] == {"acc": 0.95, "loss": pytest.approx(1 / 3)}
    assert listed[0]["params"] == {"model": "xgb", "depth": "4"}
    code, out, _ = run_cli(capsys, "runs", "list", "--order-by", "params.depth", "--max", "1")
    assert out.splitlines()[2].split()[0] == runs["rf_a"]
    assert out.splitlines()[-1] == "1 run (more with --max)"
    code, out, _ = run_cli(capsys, "runs", "list", "--filter", "metrics.acc > 2")
    assert (code, out) == (0, "No runs.\n")


def test_columns_are_capped_to_the_terminal_width(capsys, client, monkeypatch):
    experiment_id = client.create_experiment("wide")
    for i in range(3):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        params = [Param(f"p{k:02d}", "v" * 10) for k in range(12)]
        if i == 0:
            params.append(Param("rare", "x"))
        client.log_batch(run_id, params=params, metrics=[Metric("common", 1.0, 1, 0)])
    monkeypatch.setenv("COLUMNS", "150")
    _code, out, _ = run_cli(capsys, "runs", "list", "--experiment", "wide")
    header = out.splitlines()[0]
    assert "metrics.common" in header and "params.p00" in header
    assert "params.p11" not in header and "params.rare" not in header  # did not fit / rare
    assert all(len(line) <= 150 for line in out.splitlines())


def test_columns_named_by_the_filter_and_the_sort_come_first(capsys, client, monkeypatch):
    """Alphabetically, ``holdout_accuracy`` and ``seed`` would not fit; named by the
    filter and the sort, they are the first columns after the fixed ones."""
    experiment_id = client.create_experiment("named")
    for i in range(3):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(f"a{k:02d}", 1.0, 1, 0) for k in range(10)]
            + [Metric("holdout_accuracy", 0.5 + i / 10, 1, 0)],
            params=[Param(f"b{k:02d}", "v" * 10) for k in range(10)] + [Param("seed", str(i))],
            tags=[RunTag("team", f"t{i}")],
        )
    monkeypatch.setenv("COLUMNS", "150")
    argv = ["runs", "list", "--experiment", "named", "--filter"]
    _code, out, _ = run_cli(
        capsys,
        *argv,
        "metrics.holdout_accuracy > 0.55 and tags.team != 'x'",
        "--order-by",
        "params.seed DESC",
    )
    header, _dashes, *rows = out.splitlines()
    first = header.index("metrics.holdout_accuracy")
    assert header[:first].split()[-1] == "DURATION"  # right after the fixed columns
    columns = header[first:].split()
    assert columns[:3] == ["metrics.holdout_accuracy", "tags.team", "params.seed"]
    assert [row[first:].split()[:3] for row in rows[:2]] == [["0.7", "t2", "2"], ["0.6", "t1", "1"]]
    assert "metrics.a00" in columns  # the rest as before, while they fit
    assert all(len(line) <= 150 for line in out.splitlines())
    # without a filter or a sort: the most common keys, alphabetically
    _code, out, _ = run_cli(capsys, "runs", "list", "--experiment", "named")
    assert "metrics.holdout_accuracy" not in out.splitlines()[0]


def test_runs_show(capsys, client, runs):
    from autolog.tracking.stores import file_uri_to_path

    run_id = runs["xgb"]
    code, out, _ = run_cli(capsys, "runs", "show", run_id)
    assert code == 0
    assert out.startswith(f"Run {run_id} (xgb)")
    folder = file_uri_to_path(client.get_run(run_id).info.artifact_uri)
    listed = sum(len(d) + len(f) for _r, d, f in os.walk(folder))  # provenance/ included
    for section in ("Params: 2", "Metrics (latest): 2", f"Artifacts: {listed}"):
        assert section in out
    assert "model  xgb" in out and "stage" in out and "mlflow.runName" in out
    assert "notes/readme.txt" in out and "FINISHED" in out
    code, out, _ = run_cli(capsys, "runs", "show", run_id, "--json")
    shown = json.loads(out)
    assert shown["tags"]["stage"] == "dev"
    assert {"path": "notes/readme.txt", "is_dir": False, "file_size": 12} in shown["artifacts"]


def test_runs_metric_prints_the_history(capsys, runs):
    code, out, _ = run_cli(capsys, "runs", "metric", runs["rf_a"], "loss")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [(row[0], row[-1]) for row in rows] == [("0", "1"), ("1", "0.5"), ("2", "0.333333")]
    code, out, _ = run_cli(capsys, "runs", "metric", runs["rf_a"], "loss", "--json")
    assert [p["step"] for p in json.loads(out)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "list", "--filter", "metrics.acc = 'high'"], "position 14: expected a number"),
        (["runs", "list", "--filter", "params.x = '1' OR 1=1 --"], "Invalid filter at position"),
        (["runs", "list", "--order-by", "metrics.acc DOWN"], "Invalid order_by clause"),
        (["runs", "list", "--experiment", "nope"], "No experiment named 'nope'"),
        (["runs", "show", "0" * 32], "No run with id"),
        (["runs", "metric", "RUN", "nope"], "has no metric 'nope' (its metrics: acc, loss)"),
        (["migrate", "--from", "./a", "--to", "./a"], "are the same store"),
        (["--tracking-uri", "gopher://x", "runs", "list"], "unsupported tracking URI"),
    ],
)
def test_typed_errors_exit_2_with_one_line(capsys, runs, argv, message):
    argv = [runs["rf_a"] if a == "RUN" else a for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("autolog: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert out == ""


def test_no_command_prints_usage_and_exits_2(capsys):
    code, _out, err = run_cli(capsys)
    assert code == 2 and "usage: autolog" in err
    code, _out, err = run_cli(capsys, "runs")
    assert code == 2 and "usage: autolog runs" in err


def test_tracking_uri_option_before_or_after_the_command(capsys, runs, tracking_uri, monkeypatch):
    monkeypatch.setenv("AUTOLOG_TRACKING_URI", "file:///nonexistent-elsewhere/mlruns")
    for argv in (
        ["--tracking-uri", tracking_uri, "runs", "list", "--json"],
        ["runs", "list", "--json", "--tracking-uri", tracking_uri],
    ):
        code, out, _ = run_cli(capsys, *argv)
        assert code == 0 and len(json.loads(out)) == 3


def _assert_same_runs(source: Client, target: Client, run_ids) -> None:
    for run_id in run_ids:
        before, after = source.get_run(run_id), target.get_run(run_id)
        assert after.data.params == before.data.params
        assert after.data.metrics == before.data.metrics
        assert after.data.tags == before.data.tags
        for field in ("run_name", "status", "start_time", "end_time", "user_id"):
            assert getattr(after.info, field) == getattr(before.info, field), field
        assert target.get_experiment(after.info.experiment_id).name == "churn"
        for key in before.data.metrics:
            assert target.get_metric_history(run_id, key) == source.get_metric_history(run_id, key)
        local = target.download_artifacts(run_id, "notes/readme.txt")
        with open(local) as f:
            assert f.read() == f"notes of {before.info.run_name}"


@pytest.mark.parametrize("target_kind", ["file", "sqlite"])
def test_migrate_copies_everything(capsys, client, runs, tmp_path, target_kind):
    client.delete_run(runs["rf_b"])
    target_uri = (
        (tmp_path / "copy").as_uri() if target_kind == "file" else f"sqlite:///{tmp_path}/copy.db"
    )
    code, out, _ = run_cli(capsys, "migrate", "--from", client.tracking_uri, "--to", target_uri)
    assert code == 0, out
    from autolog.tracking.stores import file_uri_to_path

    files = sum(  # the runs' own 3 files and what autolog records of each run
        len(names)
        for run_id in runs.values()
        for _folder, _subfolders, names in os.walk(
            file_uri_to_path(client.get_run(run_id).info.artifact_uri)
        )
    )
    assert f"2 experiments, 3 runs (0 already there), 12 metric points and {files} artifact" in out
    target = Client(target_uri)
    _assert_same_runs(client, target, runs.values())
    churn = target.get_experiment_by_name("churn")
    assert churn.tags == {"team": "a"}
    assert target.get_run(runs["rf_b"]).info.lifecycle_stage == "deleted"
    active = target.search_runs([churn.experiment_id])
    assert sorted(r.info.run_id for r in active) == sorted([runs["rf_a"], runs["xgb"]])
    # a second migrate finds every run there already and copies nothing twice
    code, out, _ = run_cli(
        capsys, "migrate", "--from", client.tracking_uri, "--to", target_uri, "--quiet"
    )
    assert code == 0 and out.count("\n") == 1
    assert "0 runs (3 already there)" in out
    assert len(target.get_metric_history(runs["rf_a"], "loss")) == 3


def test_migrate_reuses_an_experiment_of_the_same_name(capsys, client, runs, tmp_path):
    target_uri = (tmp_path / "copy").as_uri()
    target = Client(target_uri)
    existing = target.create_experiment("churn")
    code, _out, _ = run_cli(capsys, "migrate", "--from", client.tracking_uri, "--to", target_uri)
    assert code == 0
    assert {target.get_run(r).info.experiment_id for r in runs.values()} == {existing}


def test_status_formats_the_rows(capsys):
    rows = [
        IntegrationStatus(
            "sklearn",
            "scikit-learn",
            "1.9.0",
            ">=1.3",
            "active",
            "",
            ("sklearn.base.BaseEstimator.fit", "sklearn.pipeline.Pipeline.fit"),
        ),
        IntegrationStatus(
            "oldlib", "oldlib", "0.1", ">=2", "unsupported version", "oldlib 0.1 is not >=2", ()
        ),
    ]
    text = format_status(rows)
    header, _dashes, first, second = text.splitlines()
    assert header.split()[:3] == ["INTEGRATION", "STATE", "INSTALLED"]
    assert first.split()[:5] == ["sklearn", "active", "1.9.0", ">=1.3", "2"]
    assert "unsupported version" in second and "oldlib 0.1 is not >=2" in second
    assert "sklearn.pipeline.Pipeline.fit" in format_status(rows, verbose=True)
    assert format_status([]) == "No integrations registered."
    code, out, _ = run_cli(capsys, "status")
    assert code == 0 and out.startswith("INTEGRATION")


def test_console_script_runs(runs, tracking_uri):
    script = shutil.which("autolog", path=os.path.dirname(sys.executable))
    assert script, "the autolog console script is not installed next to this python"
    done = subprocess.run(
        [script, "runs", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AUTOLOG_TRACKING_URI": tracking_uri},
    )
    assert done.returncode == 0, done.stderr
    assert sorted(r["run_name"] for r in json.loads(done.stdout)) == ["rf_a", "rf_b", "xgb"]
    bad = subprocess.run(
        [script, "runs", "list", "--filter", "metrics.x = "],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_importing_the_cli_stays_light():
    code = (
        "import sys, autolog.cli; "
        "heavy = ('autolog.tracking.client', 'sqlalchemy', 'json', 'autolog.integration'); "
        "print([m for m in heavy if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
