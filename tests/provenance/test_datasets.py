"""Dataset records: name, shape, dtypes and a cheap digest per fit, on the run,
shown by ``autolog runs show`` and searchable with ``datasets.digest``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import autolog
from autolog import provenance
from autolog.cli import main
from autolog.provenance.datasets import dataset_record, record_dataset


def test_digest_changes_with_the_data_and_not_with_a_copy():
    data = np.arange(300, dtype=np.float64).reshape(100, 3)
    first = dataset_record(data, "X")
    assert dataset_record(data.copy(), "X")["digest"] == first["digest"]
    changed = data.copy()
    changed[50, 1] = -1
    assert dataset_record(changed, "X")["digest"] != first["digest"]
    assert first["shape"] == [100, 3] and first["dtypes"] == "float64"
    assert first["digest_method"] == "sha256/full" and first["source"] == "numpy.ndarray"


def test_large_arrays_are_digested_on_a_recorded_sample():
    data = np.zeros((200_000, 8), dtype=np.float32)
    record = dataset_record(data, "X_big")
    assert record["digest_method"] == "sha256/sample:256 of 200000 rows"
    sampled_row = np.zeros_like(data)
    sampled_row[-1, 0] = 1.0  # the last rows are always in the sample
    assert dataset_record(sampled_row, "X_big")["digest"] != record["digest"]
    assert record["profile"] == {"num_rows": 200_000}


def test_data_frames_record_their_columns_and_dtypes():
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 0.1, 0.2], "c": ["x", "y", "z"]})
    record = dataset_record(frame, "df")
    assert record["shape"] == [3, 3] and record["source"] == "pandas.DataFrame"
    assert set(record["dtypes"].split(",")) == {"float64", "int64", str(frame["c"].dtype)}
    renamed = frame.rename(columns={"c": "d"})
    assert dataset_record(renamed, "df")["digest"] != record["digest"]
    edited = frame.copy()
    edited.loc[1, "c"] = "q"
    assert dataset_record(edited, "df")["digest"] != record["digest"]


def test_large_frames_are_digested_on_sampled_rows_of_every_column_kind():
    rows = 50_000
    frame = pd.DataFrame(
        {
            "x": np.arange(rows, dtype=np.float64),
            "n": pd.array(np.arange(rows) % 7, dtype="Int64"),  # nullable: an extension array
            "city": pd.Categorical(np.where(np.arange(rows) % 2, "paris", "rome")),
            "label": np.where(np.arange(rows) % 3, "yes", "no").astype(object),
        }
    )
    record = dataset_record(frame, "df")
    assert record["digest_method"] == f"sha256/sample:256 of {rows} rows"
    for column, value in (("x", -1.0), ("n", 99), ("city", "rome"), ("label", "maybe")):
        edited = frame.copy()
        edited.loc[rows - 1, column] = value  # the last rows are always in the sample
        assert dataset_record(edited, "df")["digest"] != record["digest"], column
    assert dataset_record(frame.copy(), "df")["digest"] == record["digest"]


def test_a_record_is_attached_to_the_run_shown_by_the_cli_and_searchable(store_uri, capsys):
    autolog.set_tracking_uri(store_uri)
    train = np.ones((40, 2))
    with autolog.start_run() as run:
        record = record_dataset(train, "X_train")
        record_dataset(train, "X_train")  # the same data twice: one record
        record_dataset(np.zeros(5), "y_eval", context="eval")
    with autolog.start_run() as other:
        record_dataset(np.full((3, 3), 7.0), "X_other")
    tags = autolog.get_run(run.info.run_id).data.tags
    records = json.loads(tags["autolog.datasets"])
    assert [(r["name"], r["context"]) for r in records] == [
        ("X_train", "train"),
        ("y_eval", "eval"),
    ]
    assert records[0]["digest"] == record["digest"]

    def found(text: str) -> set[str]:
        return {r.info.run_id for r in autolog.search_runs(filter_string=text)}

    mine, theirs = run.info.run_id, other.info.run_id
    assert found(f"datasets.digest = '{record['digest']}'") == {mine}
    assert found(f"datasets.digest != '{record['digest']}'") == {theirs}
    assert found("datasets.name IN ('X_other', 'nope')") == {theirs}
    assert found("datasets.context = 'eval'") == {mine}
    assert found("datasets.name LIKE 'X_%'") == {mine, theirs}

    assert main(["runs", "show", mine, "--tracking-uri", store_uri]) == 0
    out = capsys.readouterr().out
    assert "Datasets: 2" in out and record["digest"] in out and "X_train" in out


def test_records_that_would_overflow_the_tag_are_left_out_not_failed():
    with autolog.start_run() as run:
        for i in range(30):
            record_dataset(np.full(3, float(i)), f"{'long_name_' * 40}{i}")
    tags = autolog.get_run(run.info.run_id).data.tags
    records = json.loads(tags["autolog.datasets"])
    assert 1 <= len(records) < 30
    assert [r["name"][-1] for r in records] == [str(i)[-1] for i in range(len(records))]
    assert all(len(v) <= 8000 for k, v in tags.items() if k.startswith("autolog.datasets"))


def test_switch_off_records_nothing():
    provenance.configure(datasets=False)
    with autolog.start_run() as run:
        assert record_dataset(np.ones(3), "X") is None
    assert "autolog.datasets" not in autolog.get_run(run.info.run_id).data.tags


def test_unknown_dataset_key_in_a_filter_is_a_typed_error():
    from autolog.errors import InvalidFilterError

    with pytest.raises(InvalidFilterError, match="datasets"):
        autolog.search_runs(filter_string="datasets.size = '3'")


@pytest.fixture(params=["file", "sqlite"])
def store_uri(request, tmp_path) -> str:
    if request.param == "file":
        return (tmp_path / "runs").as_uri()
    return f"sqlite:///{tmp_path / 'runs.db'}"


def test_runs_show_json_carries_the_dataset_records(capsys):
    with autolog.start_run() as run:
        record = record_dataset(np.arange(6).reshape(3, 2), "X")
    assert main(["runs", "show", run.info.run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["datasets"] == [record]
