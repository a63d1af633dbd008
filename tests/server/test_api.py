"""The REST API's wire behaviour, as the reference observed MLflow's: field
encodings, error codes and statuses, pages, limits, lifecycle, our extensions."""

from __future__ import annotations

import base64
import json

import pytest

from autolog.server import ServerSettings, create_app
from tests.server.servers import call, serving

A = "/api/2.0/mlflow"


def strict(body: bytes) -> dict:
    """JSON as the official client parses it: a bare NaN / Infinity is an error."""

    def refuse(token):
        raise AssertionError(f"bare {token} in a response")

    return json.loads(body, parse_constant=refuse)


@pytest.fixture
def api(tmp_path):
    settings = ServerSettings(
        backend_store_uri=f"sqlite:///{tmp_path / 'db.sqlite'}",
        artifacts_destination=str(tmp_path / "art"),
    )
    with serving(create_app(settings)) as url:

        def request(method: str, path: str, body: dict | None = None, status: int = 200):
            full = path if path.startswith(("/api/", "/ajax-api/")) else A + path
            got, _, raw = call(url, method, full, body)
            assert got == status, (method, path, got, raw)
            return strict(raw) if raw else {}

        yield request


def _run(api, experiment_id="0", **fields) -> str:
    body = {"experiment_id": experiment_id, "start_time": 1000, **fields}
    return api("POST", "/runs/create", body)["run"]["info"]["run_id"]


def test_experiments_ids_are_strings_and_errors_are_mlflows(api):
    default = api("GET", "/experiments/get?experiment_id=0")["experiment"]
    assert default["experiment_id"] == "0" and default["name"] == "Default"
    created = api(
        "POST", "/experiments/create", {"name": "e1", "tags": [{"key": "k", "value": "v"}]}
    )
    assert isinstance(created["experiment_id"], str)
    got = api("GET", "/experiments/get-by-name?experiment_name=e1")["experiment"]
    assert got["tags"] == [{"key": "k", "value": "v"}] and got["lifecycle_stage"] == "active"
    error = api("POST", "/experiments/create", {"name": "e1"}, status=400)
    assert error["error_code"] == "RESOURCE_ALREADY_EXISTS"
    error = api("GET", "/experiments/get-by-name?experiment_name=nope", status=404)
    assert error["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert api("GET", "/experiments/get?experiment_id=999", status=404)["error_code"] == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    assert api("POST", "/experiments/create", {}, status=400)["error_code"] == (
        "INVALID_PARAMETER_VALUE"
    )
    api(
        "POST", "/experiments/update", {"experiment_id": created["experiment_id"], "new_name": "e2"}
    )
    api("POST", "/experiments/delete", {"experiment_id": created["experiment_id"]})
    deleted = api("GET", "/experiments/get-by-name?experiment_name=e2")["experiment"]
    assert deleted["lifecycle_stage"] == "deleted"
    error = api("POST", "/runs/create", {"experiment_id": created["experiment_id"]}, status=400)
    assert "active" in error["message"]
    api("POST", "/experiments/restore", {"experiment_id": created["experiment_id"]})
    api("POST", "/experiments/set-experiment-tag",
        {"experiment_id": created["experiment_id"], "key": "a", "value": "b"})  # fmt: skip


def test_experiment_search_pages_with_base64_tokens(api):
    for i in range(5):
        api("POST", "/experiments/create", {"name": f"p{i}"})
    names, token, pages = [], None, 0
    while True:
        body = {"max_results": 2, "order_by": ["name ASC"]} | (
            {"page_token": token} if token else {}
        )
        page = api("POST", "/experiments/search", body)
        names += [e["name"] for e in page.get("experiments", [])]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break
        assert json.loads(base64.urlsafe_b64decode(token))["offset"] == 2 * pages
    assert names == ["Default", "p0", "p1", "p2", "p3", "p4"] and pages == 3
    error = api("POST", "/experiments/search", {"max_results": 2, "page_token": "zzz"}, status=400)
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert api("POST", "/experiments/search", {"max_results": 0}, status=400)


def test_runs_carry_run_id_and_run_uuid_and_a_generated_name(api):
    run = api("POST", "/runs/create", {"experiment_id": "0", "start_time": 5})["run"]
    info = run["info"]
    assert info["run_id"] == info["run_uuid"] and len(info["run_id"]) == 32
    assert (
        info["run_name"]
        and {"key": "mlflow.runName", "value": info["run_name"]} in (run["data"]["tags"])
    )
    assert info["artifact_uri"] == f"mlflow-artifacts:/0/{info['run_id']}/artifacts"
    assert "end_time" not in info
    got = api("GET", f"/runs/get?run_uuid={info['run_id']}&run_id={info['run_id']}")["run"]
    assert got["info"] == info
    finish = {"run_id": info["run_id"], "status": "FINISHED", "end_time": 9}
    updated = api("POST", "/runs/update", finish)["run_info"]
    assert updated["status"] == "FINISHED" and updated["end_time"] == 9
    # an unknown status name is dropped (MLflow's parser), the status stays
    updated = api("POST", "/runs/update", {"run_id": info["run_id"], "status": "BOGUS"})
    assert updated["run_info"]["status"] == "FINISHED"
    assert api("GET", "/runs/get?run_id=" + "f" * 32, status=404)["error_code"] == (
        "RESOURCE_DOES_NOT_EXIST"
    )


def test_a_client_chosen_run_id_is_kept_and_a_retry_is_idempotent(api):
    run_id = "0123456789abcdef0123456789abcdef"
    body = {"experiment_id": "0", "start_time": 77, "run_id": run_id, "run_name": "mine"}
    first = api("POST", "/runs/create", body)["run"]
    assert first["info"]["run_id"] == run_id
    again = api("POST", "/runs/create", body)["run"]
    assert again["info"] == first["info"]
    clash = api("POST", "/runs/create", {**body, "start_time": 78}, status=400)
    assert clash["error_code"] == "RESOURCE_ALREADY_EXISTS"
    bad = api("POST", "/runs/create", {**body, "run_id": "../x"}, status=400)
    assert bad["error_code"] == "INVALID_PARAMETER_VALUE"
    found = api("POST", "/runs/search", {"experiment_ids": ["0"], "max_results": 10})
    assert [r["info"]["run_id"] for r in found["runs"]] == [run_id]


def test_nan_and_infinities_travel_as_quoted_strings(api):
    run_id = _run(api)
    metrics = [
        {"key": "m", "value": v, "timestamp": 1, "step": i}
        for i, v in enumerate(["NaN", "Infinity", "-Infinity", 1.5, "2.5"])
    ]
    api("POST", "/runs/log-batch", {"run_id": run_id, "metrics": metrics})
    history = api("GET", f"/metrics/get-history?run_id={run_id}&metric_key=m")["metrics"]
    assert [m["value"] for m in history] == ["NaN", "Infinity", "-Infinity", 1.5, 2.5]
    assert [m["step"] for m in history] == [0, 1, 2, 3, 4]
    latest = api("GET", f"/runs/get?run_id={run_id}")["run"]["data"]["metrics"]
    assert latest == [{"key": "m", "value": 2.5}]
    for bad in ({"key": "m", "value": None, "timestamp": 1}, {"key": "m", "value": 1}):
        error = api("POST", "/runs/log-metric", {"run_id": run_id, **bad}, status=400)
        assert error["error_code"] == "INVALID_PARAMETER_VALUE"


def test_log_batch_limits_and_bodies_over_one_megabyte(api):
    run_id = _run(api)
    too_many = [{"key": f"k{i}", "value": 1, "timestamp": 1} for i in range(1001)]
    error = api("POST", "/runs/log-batch", {"run_id": run_id, "metrics": too_many}, status=400)
    assert "at most 1000 metrics" in error["message"]
    params = [{"key": f"p{i}", "value": "x" * 6000} for i in range(100)]
    tags = [{"key": f"t{i}", "value": "y" * 8000} for i in range(100)]
    body = {"run_id": run_id, "params": params, "tags": tags}
    assert len(json.dumps(body)) > 1_300_000
    api("POST", "/runs/log-batch", body)
    data = api("GET", f"/runs/get?run_id={run_id}")["run"]["data"]
    assert len(data["params"]) == 100 and {"key": "t7", "value": "y" * 8000} in data["tags"]


def test_params_are_immutable_and_deleted_runs_refuse_writes(api):
    run_id = _run(api)
    api("POST", "/runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    api("POST", "/runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    error = api("POST", "/runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.2"},
                status=400)  # fmt: skip
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    api("POST", "/runs/delete", {"run_id": run_id})
    writes = [
        ("/runs/log-metric", {"key": "m", "value": 1, "timestamp": 1}),
        ("/runs/log-parameter", {"key": "x", "value": "1"}),
        ("/runs/set-tag", {"key": "t", "value": "1"}),
        ("/runs/log-batch", {"metrics": [{"key": "m", "value": 1, "timestamp": 1}]}),
        ("/runs/update", {"status": "FINISHED"}),
    ]
    for path, body in writes:
        error = api("POST", path, {"run_id": run_id, **body}, status=400)
        assert error["error_code"] == "INVALID_PARAMETER_VALUE", path
        assert error["autolog_error"] == "RunStateError" and "deleted" in error["message"], path
    assert "metrics" not in api("GET", f"/runs/get?run_id={run_id}")["run"]["data"]
    api("POST", "/runs/restore", {"run_id": run_id})
    api("POST", "/runs/set-tag", {"run_id": run_id, "key": "t", "value": "1"})
    api("POST", "/runs/delete-tag", {"run_id": run_id, "key": "t"})


def test_our_search_language_works_over_the_wire(api):
    ids = {}
    for name, acc, model in (("a", 0.9, "rf"), ("b", 0.5, "svm"), ("c", 0.7, "rf")):
        ids[name] = _run(api, run_name=name)
        api("POST", "/runs/log-batch", {
            "run_id": ids[name],
            "metrics": [{"key": "acc", "value": acc, "timestamp": 1}],
            "params": [{"key": "model", "value": model}],
        })  # fmt: skip

    def names(filter_string, order_by=("metrics.acc DESC",)):
        body = {"experiment_ids": ["0"], "filter": filter_string, "order_by": list(order_by)}
        return [r["info"]["run_name"] for r in api("POST", "/runs/search", body).get("runs", [])]

    assert names("metrics.acc > 0.8 OR params.model = 'svm'") == ["a", "b"]
    assert names("NOT (params.model = 'rf' AND metrics.acc < 0.8)") == ["a", "b"]
    assert names("") == ["a", "c", "b"]
    error = api("POST", "/runs/search", {"experiment_ids": ["0"], "filter": "metrics.acc >"},
                status=400)  # fmt: skip
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert api("POST", "/runs/search", {"experiment_ids": []}) == {}
    page = api("POST", "/runs/search", {"experiment_ids": ["0"], "max_results": 2})
    second = {"experiment_ids": ["0"], "max_results": 2, "page_token": page["next_page_token"]}
    rest = api("POST", "/runs/search", second)
    assert len(page["runs"]) == 2 and len(rest["runs"]) == 1 and "next_page_token" not in rest


def test_metric_history_pages(api):
    run_id = _run(api)
    points = [{"key": "loss", "value": i / 10, "timestamp": 100 + i, "step": i} for i in range(5)]
    api("POST", "/runs/log-batch", {"run_id": run_id, "metrics": points})
    steps, token = [], None
    while True:
        query = f"/metrics/get-history?run_id={run_id}&metric_key=loss&max_results=2"
        page = api("GET", query + (f"&page_token={token}" if token else ""))
        steps += [m["step"] for m in page["metrics"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert steps == [0, 1, 2, 3, 4]
    assert api("GET", f"/metrics/get-history?run_id={run_id}&metric_key=other") == {}


def test_meta_endpoints_and_the_ajax_prefix(api):
    assert api("POST", "/logged-models/search", {"experiment_ids": ["0"]}) == {}
    info = api("GET", "/api/3.0/mlflow/server-info")
    assert info["multipart_uploads_enabled"] is False and info["autolog"]["client_run_ids"]
    assert api("GET", "/ajax-api/2.0/mlflow/experiments/get?experiment_id=0")["experiment"]
    assert api("GET", "/nope", status=404)["error_code"] == "ENDPOINT_NOT_FOUND"


def test_deterministic_errors_are_never_retried_statuses(api):
    """Bad input of every kind is a 4xx: the official client retries 408/429/5xx."""
    run_id = _run(api)
    bad = [
        ("POST", "/runs/log-batch", {"run_id": run_id, "metrics": "x"}),
        ("POST", "/runs/log-batch", {"run_id": run_id, "metrics": [{"key": "../x", "value": 1,
                                                                     "timestamp": 1}]}),
        ("POST", "/runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": "1"},
                                                                  {"key": "p", "value": "2"}]}),
        ("POST", "/runs/log-metric", {"run_id": run_id, "key": "m", "value": "abc",
                                      "timestamp": 1}),
        ("POST", "/runs/log-metric", {"run_id": run_id, "key": "m", "value": 1,
                                      "timestamp": 1.5}),
        ("POST", "/runs/set-tag", {"run_id": run_id, "key": "k" * 300, "value": "v"}),
        ("POST", "/runs/create", {"experiment_id": "abc"}),
        ("POST", "/runs/search", {"experiment_ids": ["0"], "max_results": 10**9}),
        ("POST", "/runs/search", {"experiment_ids": ["0"], "order_by": ["bogus.x"]}),
        ("GET", "/runs/get", None),
        ("GET", "/metrics/get-history?run_id=" + run_id, None),
    ]  # fmt: skip
    for method, path, body in bad:
        result = api(method, path, body, status=_status(method, path, body))
        assert result["error_code"] in (
            "INVALID_PARAMETER_VALUE",
            "RESOURCE_DOES_NOT_EXIST",
        ), path


def _status(method, path, body) -> int:
    return 404 if body == {"experiment_id": "abc"} else 400


def test_run_relative_artifact_listing(api, tmp_path):
    run = api("POST", "/runs/create", {"experiment_id": "0", "start_time": 1})["run"]["info"]
    base = f"/api/2.0/mlflow-artifacts/artifacts/0/{run['run_id']}/artifacts"
    folder = tmp_path / "art" / "0" / run["run_id"] / "artifacts" / "plots"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png")
    listed = api("GET", f"/artifacts/list?run_id={run['run_id']}&path=plots")
    assert listed == {
        "root_uri": run["artifact_uri"],
        "files": [{"path": "plots/a.png", "is_dir": False, "file_size": 3}],
    }
    root = api("GET", f"/artifacts/list?run_id={run['run_id']}")
    assert root["files"] == [{"path": "plots", "is_dir": True}]
    proxied = api(
        "GET", f"/api/2.0/mlflow-artifacts/artifacts?path=0/{run['run_id']}/artifacts/plots"
    )
    assert proxied == {"files": [{"path": "a.png", "is_dir": False, "file_size": 3}]}
    error = api("GET", f"{base}/plots", status=400)  # a folder is not a file to download
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
