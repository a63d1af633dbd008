"""Servers for the REST tests: the real ``mlflow server`` and ``autolog server``,
one of each per session (started on first use, stopped at the end)."""

from __future__ import annotations

import pytest

from tests.rest.servers import ServerProcess, mlflow_server, shared_server


@pytest.fixture(autouse=True)
def _fresh_http_clients(tmp_path, monkeypatch):
    """Each test reads the AUTOLOG_TRACKING_* / AUTOLOG_HTTP_* settings afresh;
    an offline spool, if one is written, stays in the test's folder."""
    from autolog.tracking.stores.rest_http import forget_http_clients

    monkeypatch.setenv("AUTOLOG_SPOOL_DIR", str(tmp_path / "spool"))
    forget_http_clients()
    yield
    forget_http_clients()


@pytest.fixture(scope="session")
def real_mlflow_server(tmp_path_factory) -> ServerProcess:
    """``mlflow server`` (the official 3.17.2, its own venv) on SQLite, proxying artifacts."""
    server = mlflow_server(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def our_server() -> ServerProcess:
    """``autolog server`` on SQLite, proxying artifacts (shared with the conformance suite)."""
    return shared_server("sqlite").server


@pytest.fixture(params=["autolog-server", "mlflow-server"])
def any_server(request) -> ServerProcess:
    """Each server in turn."""
    name = "our_server" if request.param == "autolog-server" else "real_mlflow_server"
    return request.getfixturevalue(name)
