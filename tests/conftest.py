"""Shared test set-up: our internal errors raise, each test gets a fresh store.

``AUTOLOG_TESTING=1`` makes the patch manager re-raise autolog's own errors
instead of warning (ARCHITECTURE.md rule 1), so a bug in an integration fails
the test that exposes it.
"""

from __future__ import annotations

import os
import sys
import textwrap
import uuid

import pytest

os.environ["AUTOLOG_TESTING"] = "1"


def _reset_autolog() -> None:
    """Undo every patch and forget runs and URIs; only touches loaded modules.
    Integrations forget their own state when they are disabled (their unpatch)."""
    integration = sys.modules.get("autolog.integration")
    if integration is not None:
        integration._reset_for_tests()
    fluent = sys.modules.get("autolog.tracking.fluent")
    if fluent is not None:
        fluent._reset_for_tests()
    elif (run_state := sys.modules.get("autolog.tracking.run_state")) is not None:
        run_state.reset()  # a test that used only the Client
    flavors = sys.modules.get("autolog.flavors")
    if flavors is not None:
        flavors._reset_for_tests()


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_servers():
    """Stop the tracking servers kept for the whole session (tests/rest/servers.py)."""
    yield
    servers = sys.modules.get("tests.rest.servers")
    if servers is not None:
        servers.stop_all()


@pytest.fixture(autouse=True)
def tracking_uri(tmp_path, monkeypatch) -> str:
    """A fresh file store per test, through the environment variable users set."""
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("AUTOLOG_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    _reset_autolog()
    yield uri
    _reset_autolog()


@pytest.fixture
def make_module(tmp_path, monkeypatch):
    """Write a fresh, never-imported framework module; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(source: str | None = None) -> str:
        from tests.patch_targets import FRAMEWORK_SOURCE

        name = f"fakefw_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source or FRAMEWORK_SOURCE))
        names.append(name)
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)
