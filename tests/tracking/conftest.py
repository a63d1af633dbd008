"""The ``store`` fixture: every test that takes it runs once per store backend.

Add a backend by adding a factory to ``STORE_FACTORIES``: a function of the
test's ``tmp_path`` that returns a fresh, empty store (ARCHITECTURE.md rule 6:
one conformance suite for every store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autolog.tracking.stores.base import AbstractStore
from autolog.tracking.writer import BatchingWriter
from tests.rest.servers import REST_STORE_FACTORIES
from tests.tracking.sql_stores import SQL_STORE_FACTORIES


def make_file_store(tmp_path: Path) -> AbstractStore:
    from autolog.tracking.stores.file import FileStore

    return FileStore(tmp_path / "store")


STORE_FACTORIES: dict[str, Callable[[Path], AbstractStore]] = {
    "file": make_file_store,
    **SQL_STORE_FACTORIES,  # sqlite, postgresql (tests/tracking/sql_stores.py)
    **REST_STORE_FACTORIES,  # autolog server over sqlite, postgresql (tests/rest/servers.py)
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request, tmp_path) -> Iterator[AbstractStore]:
    """A fresh, empty store of each backend in turn."""
    instance = STORE_FACTORIES[request.param](tmp_path)
    yield instance
    instance.close()


@pytest.fixture
def writer() -> Iterator[BatchingWriter]:
    """A writer of its own that drains only when flushed (a long interval, no
    wake threshold), so that what a test sees does not depend on timing."""
    instance = BatchingWriter(interval=60, wake_threshold=10**9)
    yield instance
    instance.discard()
    instance.close(drain=False)
