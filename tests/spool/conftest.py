"""Each spool test gets its own spool folder (``AUTOLOG_SPOOL_DIR``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def spool_dir(tmp_path, monkeypatch):
    path = tmp_path / "spool"
    monkeypatch.setenv("AUTOLOG_SPOOL_DIR", str(path))
    monkeypatch.delenv("AUTOLOG_SPOOL_MAX_BYTES", raising=False)
    return path
