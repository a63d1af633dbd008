"""The servers and databases the reliability cells share, started once.

- ``postgresql``: one throwaway schema for the session (each cell uses an
  experiment of its own in it);
- ``rest``: one ``autolog server`` over SQLite, reached directly or through a
  :class:`~tests.reliability.faults.Forwarder` that plays the outage.

The REST client's timeouts are short here so that a slow server's timeouts
fire within a cell (the spool takes what times out).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def reliability_env(tmp_path_factory):
    env: dict = {}
    yield env
    server = env.get("rest")
    if server is not None:
        server.stop()
    schema = env.get("postgresql_schema")
    if schema is not None:
        from tests.tracking.sql_stores import _admin

        _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    root = env.get("root")
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cell_env(reliability_env, request, monkeypatch):
    """The shared resources the cell's store needs, started on first use."""
    monkeypatch.delenv("AUTOLOG_TESTING")  # the user's view: our errors become warnings
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_TIMEOUT", "0.5")
    monkeypatch.setenv("AUTOLOG_HTTP_CONNECT_TIMEOUT", "0.5")
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_BACKOFF_FACTOR", "0.05")
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_BACKOFF_JITTER", "0")
    store = request.node.callspec.params.get("store")
    if "root" not in reliability_env:
        reliability_env["root"] = Path(tempfile.mkdtemp(prefix="autolog-reliability-"))
    root = reliability_env["root"]
    if store == "postgresql" and "postgresql" not in reliability_env:
        from tests.tracking.sql_stores import _admin, postgres_schema_uri, require_postgres

        require_postgres()
        schema = f"autolog_rel_{uuid.uuid4().hex[:12]}"
        _admin(f'CREATE SCHEMA "{schema}"')
        reliability_env["postgresql_schema"] = schema
        reliability_env["postgresql"] = postgres_schema_uri(schema)
    if store == "rest" and "rest" not in reliability_env:
        from tests.rest.servers import autolog_server

        reliability_env["rest"] = autolog_server(root).start()
    return reliability_env


def pytest_terminal_summary(terminalreporter):
    """The matrix's totals: cells run and passed, points written and read back
    (``AUTOLOG_RELIABILITY_REPORT=path`` also writes them there as JSON, for
    ``benchmarks/run.py reliability``)."""
    import json
    import os

    from tests.reliability.cells import FAULTS, RESULTS, summary

    if not RESULTS:
        return
    totals = summary(RESULTS)
    write = terminalreporter.write_line
    write("")
    write("reliability matrix (issue 17)")
    for line in totals["lines"]:
        write("  " + line)
    for fault, (applies, why) in FAULTS.items():
        if why:
            write(f"  {fault}: only {', '.join(applies)} ({why})")
    path = os.environ.get("AUTOLOG_RELIABILITY_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump({k: v for k, v in totals.items() if k != "lines"}, out, indent=1)
