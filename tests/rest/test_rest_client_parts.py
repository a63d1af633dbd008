"""The REST client's parts that need no tracking server: how a batch is split,
the settings read from the environment, error mapping, URI masking."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolog.errors import (
    InvalidFilterError,
    InvalidParameterError,
    ParamOverwriteError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    StoreError,
    TransientStoreError,
)
from autolog.tracking.entities import Metric, Param, RunTag
from autolog.tracking.stores.rest_batch import split_batch
from autolog.tracking.stores.rest_config import HttpSettings
from autolog.tracking.stores.rest_http import error_for


def _batch(n_metrics: int, n_params: int, n_tags: int):
    metrics = [Metric(f"m{i % 7}", float(i), i, i) for i in range(n_metrics)]
    params = [Param(f"p{i}", str(i)) for i in range(n_params)]
    tags = [RunTag(f"t{i}", str(i)) for i in range(n_tags)]
    return metrics, params, tags


def test_split_matches_the_official_client():
    # observed with mlflow 3.17.2: 2500 metrics + 150 params + 150 tags -> 3 requests
    requests = list(split_batch(*_batch(2500, 150, 150)))
    assert [(len(m), len(p), len(t)) for m, p, t in requests] == [
        (800, 100, 100),
        (900, 50, 50),
        (800, 0, 0),
    ]
    assert [len(p) for _m, p, _t in split_batch(*_batch(0, 250, 0))] == [100, 100, 50]
    assert list(split_batch([], [], [])) == []


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 3500),
    st.integers(0, 350),
    st.integers(0, 350),
)
def test_split_stays_within_the_limits_and_keeps_everything(n_metrics, n_params, n_tags):
    metrics, params, tags = _batch(n_metrics, n_params, n_tags)
    requests = list(split_batch(metrics, params, tags))
    for m, p, t in requests:
        assert len(m) <= 1000 and len(p) <= 100 and len(t) <= 100
        assert len(m) + len(p) + len(t) <= 1000
        assert m or p or t
    assert [x for m, _p, _t in requests for x in m] == metrics  # order kept
    assert [x for _m, p, _t in requests for x in p] == params
    assert [x for _m, _p, t in requests for x in t] == tags


def test_split_folds_repeats_but_keeps_a_param_conflict():
    params = [Param("a", "1"), Param("a", "1"), Param("a", "2")]
    tags = [RunTag("t", "old"), RunTag("t", "new")]
    [(_m, sent_params, sent_tags)] = split_batch([], params, tags)
    assert list(sent_params) == [Param("a", "1"), Param("a", "2")]  # the server refuses it
    assert list(sent_tags) == [RunTag("t", "new")]  # what applying both in order leaves


def test_settings_defaults_and_aliases():
    default = HttpSettings.from_env({})
    assert (default.max_retries, default.timeout, default.max_retry_time) == (7, 120.0, 60.0)
    assert default.authorization is None and not default.insecure_tls
    aliased = HttpSettings.from_env(
        {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
            "AUTOLOG_HTTP_REQUEST_TIMEOUT": "7.5",
            "MLFLOW_TRACKING_INSECURE_TLS": "true",
            "MLFLOW_TRACKING_CLIENT_CERT_PATH": "/c.pem",
        }
    )
    assert aliased.max_retries == 2 and aliased.timeout == 7.5  # AUTOLOG_ wins
    assert aliased.insecure_tls and aliased.client_cert == "/c.pem"


def test_settings_credentials():
    assert HttpSettings.from_env({"AUTOLOG_TRACKING_TOKEN": "abc"}).authorization == "Bearer abc"
    both = HttpSettings.from_env(
        {
            "MLFLOW_TRACKING_TOKEN": "abc",
            "MLFLOW_TRACKING_USERNAME": "u",
            "MLFLOW_TRACKING_PASSWORD": "p:w",
        }
    )
    # as the official client does: basic wins when a user and a password are set
    assert both.authorization == "Basic " + base64.b64encode(b"u:p:w").decode()
    assert "p:w" not in repr(both) and "abc" not in repr(both)
    assert both.auth_kind == "basic"
    from_uri = HttpSettings.from_env({}, uri_credentials=("u", "pw"))
    assert from_uri.auth_kind == "basic"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AUTOLOG_HTTP_REQUEST_MAX_RETRIES": "many"}, "AUTOLOG_HTTP_REQUEST_MAX_RETRIES"),
        ({"AUTOLOG_HTTP_REQUEST_MAX_RETRIES": "1.5"}, "AUTOLOG_HTTP_REQUEST_MAX_RETRIES"),
        ({"MLFLOW_HTTP_REQUEST_TIMEOUT": "-1"}, "AUTOLOG_HTTP_REQUEST_TIMEOUT"),
        ({"AUTOLOG_HTTP_REQUEST_MAX_RETRY_TIME": "nan"}, "AUTOLOG_HTTP_REQUEST_MAX_RETRY_TIME"),
        ({"AUTOLOG_TRACKING_INSECURE_TLS": "maybe"}, "AUTOLOG_TRACKING_INSECURE_TLS"),
        (
            {"AUTOLOG_TRACKING_INSECURE_TLS": "1", "AUTOLOG_TRACKING_SERVER_CERT_PATH": "/ca"},
            "AUTOLOG_TRACKING_SERVER_CERT_PATH",
        ),
    ],
)
def test_bad_settings_name_the_variable(env, named):
    with pytest.raises(InvalidParameterError, match=named):
        HttpSettings.from_env(env)


def _body(code: str, message: str = "m", **extra) -> bytes:
    return json.dumps({"error_code": code, "message": message, **extra}).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, _body("RESOURCE_DOES_NOT_EXIST"), ResourceNotFoundError),
        (400, _body("RESOURCE_ALREADY_EXISTS"), ResourceAlreadyExistsError),
        (400, _body("INVALID_PARAMETER_VALUE"), InvalidParameterError),
        (
            400,
            _body("INVALID_PARAMETER_VALUE", "Changing param values is not allowed. Param..."),
            ParamOverwriteError,
        ),
        (
            400,
            _body("INVALID_PARAMETER_VALUE", autolog_error="InvalidFilterError"),
            InvalidFilterError,
        ),
        (400, _body("INVALID_PARAMETER_VALUE", autolog_error="os.system"), InvalidParameterError),
        (401, b"Unauthorized", StoreError),
        (404, b"<html>Not Found</html>", StoreError),
        (503, _body("TEMPORARILY_UNAVAILABLE"), TransientStoreError),
    ],
)
def test_error_mapping(status, body, expected):
    error = error_for(status, body, "GET http://h/x")
    assert type(error) is expected
    assert f"HTTP {status}" in str(error)
