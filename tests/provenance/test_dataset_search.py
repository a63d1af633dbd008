"""``datasets.*`` filters on every kind of store: the file and SQL stores (see
test_datasets.py), ``autolog server`` over REST, and a real ``mlflow server``,
to which the REST store sends them rewritten as tag comparisons."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import autolog
from autolog.errors import InvalidFilterError
from autolog.provenance.datasets import record_dataset
from autolog.tracking.search_mlflow import for_mlflow_server

DIGEST_TAG = "tags.`autolog.datasets.digest`"


def test_only_the_dataset_comparisons_are_rewritten():
    text = "metrics.acc > 0.9 and datasets.digest = 'a1b2' AND tags.note = 'datasets.name = 1'"
    assert for_mlflow_server(text) == (
        f"metrics.acc > 0.9 and {DIGEST_TAG} LIKE '%|a1b2|%' AND tags.note = 'datasets.name = 1'"
    )
    assert for_mlflow_server("dataset.name LIKE 'X_%'") == (
        "tags.`autolog.datasets.name` LIKE '%|X_%|%'"
    )
    assert for_mlflow_server("datasets.context ILIKE 'TRAIN'") == (
        "tags.`autolog.datasets.context` ILIKE '%|TRAIN|%'"
    )
    assert for_mlflow_server("datasets.name IN ('X')") == (
        "tags.`autolog.datasets.name` LIKE '%|X|%'"
    )


@pytest.mark.parametrize(
    "text",
    [
        "params.alpha = '1'",
        "tags.`datasets.digest` = 'x'",  # a tag of that name, not a dataset field
        "params.datasets.name = 'x'",
        "tags.note = \"it's datasets.name = 'x'\"",
        "",
    ],
)
def test_a_filter_without_dataset_comparisons_is_sent_as_written(text):
    assert for_mlflow_server(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "datasets.digest != 'a'",
        "datasets.name NOT IN ('a')",
        "datasets.name IN ('a', 'b')",
        "datasets.name IS NULL",
    ],
)
def test_what_mlflows_filter_language_cannot_say_is_a_typed_error(text):
    with pytest.raises(InvalidFilterError, match="mlflow server"):
        for_mlflow_server(text)


def test_a_malformed_dataset_comparison_is_the_parsers_typed_error():
    with pytest.raises(InvalidFilterError, match="datasets"):
        for_mlflow_server("datasets.size = '3'")


@pytest.fixture(autouse=True)
def _spool_in_tmp(tmp_path, monkeypatch):
    from autolog.tracking.stores.rest_http import forget_http_clients

    monkeypatch.setenv("AUTOLOG_SPOOL_DIR", str(tmp_path / "spool"))
    forget_http_clients()
    yield
    forget_http_clients()


@pytest.fixture(scope="module")
def mlflow_server_url(tmp_path_factory):
    from tests.rest.servers import mlflow_server

    server = mlflow_server(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["autolog-server", "mlflow-server"])
def server(request) -> tuple[str, str]:
    """(which server, its URL)"""
    if request.param == "autolog-server":
        from tests.rest.servers import shared_server

        return request.param, shared_server("sqlite").server.url
    return request.param, request.getfixturevalue("mlflow_server_url")


@pytest.mark.slow  # a real mlflow server starts in ~10 s
def test_dataset_filters_over_rest(server):
    kind, url = server
    autolog.set_tracking_uri(url)
    experiment = autolog.set_experiment(f"datasets-{uuid.uuid4().hex[:8]}")
    with autolog.start_run() as run:
        record = record_dataset(np.arange(12.0).reshape(6, 2), "X_train")
        autolog.log_metric("acc", 0.95)
    with autolog.start_run() as other:
        record_dataset(np.zeros(4), "X_test", context="eval")
        autolog.log_metric("acc", 0.5)
    autolog.flush()

    def found(text: str) -> set[str]:
        runs = autolog.search_runs([experiment.experiment_id], filter_string=text)
        return {r.info.run_id for r in runs}

    mine, theirs = run.info.run_id, other.info.run_id
    assert found(f"datasets.digest = '{record['digest']}'") == {mine}
    assert found("datasets.name LIKE 'X_%'") == {mine, theirs}
    assert found("datasets.context = 'eval' AND metrics.acc < 0.9") == {theirs}
    assert found("datasets.name IN ('X_test')") == {theirs}
    if kind == "autolog-server":  # which parses the filter itself
        assert found("datasets.name != 'X_test'") == {mine}
        assert found("datasets.name IN ('X_test', 'X_train')") == {mine, theirs}
    else:
        with pytest.raises(InvalidFilterError, match="mlflow server"):
            found("datasets.name != 'X_test'")
