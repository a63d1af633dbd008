"""Real stores for the spool tests, and a switch that takes one offline.

The spool replays into any store, so the replay tests use a real SQLite store
(rows checked on it); :class:`Outage` stands in front of it and raises
TransientStoreError while "down", which is what the REST store raises when the
server cannot be reached. The HTTP tests (test_outage*.py) use the real
server instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autolog.errors import TransientStoreError
from autolog.tracking.stores.sql import SqlStore


def sqlite_store(tmp_path: Path, name: str = "store.db") -> SqlStore:
    return SqlStore(f"sqlite:///{tmp_path / name}")


class Outage:
    """``store`` with an off switch: while ``down`` (or after ``fail_after`` more
    calls) every call raises TransientStoreError; ``calls`` counts the writes."""

    def __init__(self, store: Any, assigns_run_ids: bool = False):
        self.store = store
        self.uri = "http://127.0.0.1:9/outage"
        self.down = False
        self.fail_after: int | None = None
        self.calls = 0
        self._assigns = assigns_run_ids

    @property
    def assigns_run_ids(self) -> bool:
        self._check()
        return self._assigns

    def _check(self) -> None:
        if self.fail_after is not None:
            if self.fail_after <= 0:
                self.down = True
            self.fail_after -= 1
        if self.down:
            raise TransientStoreError("connection refused (test outage)")

    def create_run(self, *args: Any, run_id: str | None = None, **kwargs: Any) -> Any:
        self._check()
        self.calls += 1
        if self._assigns:
            run_id = None  # as a real mlflow server: it picks the id
        return self.store.create_run(*args, run_id=run_id, **kwargs)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr) or name in ("close", "batch"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._check()
            self.calls += 1
            return attr(*args, **kwargs)

        return call
