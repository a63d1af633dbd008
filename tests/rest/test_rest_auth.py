"""Credentials from the environment, against ``autolog server`` with auth on:
bearer (``AUTOLOG_TRACKING_TOKEN``, alias ``MLFLOW_TRACKING_TOKEN``), basic
(``AUTOLOG_TRACKING_USERNAME`` / ``_PASSWORD``, aliases ``MLFLOW_*``), user
info in the URI; refusals are typed errors that never show the secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import autolog
from autolog.errors import StoreError
from autolog.server.auth import hash_password, hash_token
from autolog.tracking.stores.rest import RestStore
from tests.rest.servers import autolog_server

TOKEN = "tok-" + "s3cr3t" * 4
PASSWORD = "pa55:w0rd wïth spaces"
_CREDENTIAL_VARS = [
    f"{prefix}_TRACKING_{name}"
    for prefix in ("AUTOLOG", "MLFLOW")
    for name in ("TOKEN", "USERNAME", "PASSWORD")
]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-server")
    auth_file = root / "auth.json"
    auth_file.write_text(
        json.dumps({"tokens": [hash_token(TOKEN)], "users": {"alice": hash_password(PASSWORD)}})
    )
    server = autolog_server(root, None, "--auth-file", str(auth_file)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch):
    for name in _CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)


def _works(url: str) -> None:
    store = RestStore(url)
    assert store.get_experiment("0").name == "Default"
    run = store.create_run("0", "alice", 1_700_000_000_000)
    assert store.get_run(run.info.run_id).info.run_id == run.info.run_id


def _refused(url: str, *secrets: str) -> StoreError:
    with pytest.raises(StoreError, match="credentials") as caught:
        RestStore(url).get_experiment("0")
    for secret in secrets:
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
    return caught.value


def test_no_credentials_are_refused(auth_server):
    assert "401" in str(_refused(auth_server.url))


@pytest.mark.parametrize("variable", ["AUTOLOG_TRACKING_TOKEN", "MLFLOW_TRACKING_TOKEN"])
def test_bearer_token(auth_server, monkeypatch, variable):
    monkeypatch.setenv(variable, TOKEN)
    _works(auth_server.url)


def test_wrong_token_is_refused_and_not_shown(auth_server, monkeypatch):
    wrong = "wrong-" + TOKEN
    monkeypatch.setenv("AUTOLOG_TRACKING_TOKEN", wrong)
    _refused(auth_server.url, wrong)


def test_autolog_variable_wins_over_its_mlflow_alias(auth_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "wrong")
    monkeypatch.setenv("AUTOLOG_TRACKING_TOKEN", TOKEN)
    _works(auth_server.url)


@pytest.mark.parametrize("prefix", ["AUTOLOG", "MLFLOW"])
def test_basic_user(auth_server, monkeypatch, prefix):
    monkeypatch.setenv(f"{prefix}_TRACKING_USERNAME", "alice")
    monkeypatch.setenv(f"{prefix}_TRACKING_PASSWORD", PASSWORD)
    _works(auth_server.url)


def test_wrong_password_is_refused_and_not_shown(auth_server, monkeypatch):
    monkeypatch.setenv("AUTOLOG_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("AUTOLOG_TRACKING_PASSWORD", "not-" + PASSWORD)
    _refused(auth_server.url, "not-" + PASSWORD)


def test_credentials_in_the_uri_are_used_and_masked(auth_server):
    from urllib.parse import quote

    url = auth_server.url.replace("http://", f"http://alice:{quote(PASSWORD, safe='')}@")
    _works(url)
    store = RestStore(url.replace(quote(PASSWORD, safe=""), "bad-pw"))
    assert "bad-pw" not in repr(store) and "***" in repr(store)
    _refused(store.uri, "bad-pw")


def test_fluent_logging_and_artifacts_with_a_token(auth_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOLOG_TRACKING_TOKEN", TOKEN)
    autolog.set_tracking_uri(auth_server.url)
    with autolog.start_run() as run:
        autolog.log_metric("m", 1.5)
        autolog.log_text("secret-free", "notes/a.txt")
    client = autolog.Client()
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.5}
    out = client.download_artifacts(run.info.run_id, "notes/a.txt", tmp_path)
    assert Path(out).read_text() == "secret-free"
