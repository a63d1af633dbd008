"""A search-runs answer is served again only while nothing was committed to the
database, by this server or by any other process (SQLite's change stamp)."""

from __future__ import annotations

import json
import subprocess
import sys

from autolog.server.app import create_app
from autolog.server.settings import ServerSettings
from autolog.tracking.entities import Metric, RunTag
from autolog.tracking.stores.sql import SqlStore
from tests.server.servers import call, serving

A = "/api/2.0/mlflow"
_OTHER_PROCESS_TAG = """
import sys
from autolog.tracking.entities import RunTag
from autolog.tracking.stores.sql import SqlStore
store = SqlStore(sys.argv[1], artifact_root=sys.argv[2])
store.log_batch(sys.argv[3], tags=[RunTag("team", "b")])
store.close()
"""


def _search(url: str, filter_string: str) -> list[str]:
    body = {"experiment_ids": ["0"], "filter": filter_string, "max_results": 10}
    status, _headers, raw = call(url, "POST", A + "/runs/search", body)
    assert status == 200, raw
    return sorted(run["info"]["run_id"] for run in json.loads(raw).get("runs", []))


def test_the_stamp_moves_on_every_commit_of_any_process(tmp_path):
    uri = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = SqlStore(uri, artifact_root=str(tmp_path / "a"))
    run_id = store.create_run("0", "u", 1).info.run_id
    first = store.change_stamp()
    assert store.change_stamp() == first  # nothing committed: the same
    store.log_batch(run_id, metrics=[Metric("m", 1.0, 1)])
    second = store.change_stamp()
    assert second != first
    subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS_TAG, uri, str(tmp_path / "a"), run_id], check=True
    )
    assert store.change_stamp() != second
    with store.batch():
        store.log_batch(run_id, tags=[RunTag("t", "v")])
    third = store.change_stamp()
    assert third != second and store.change_stamp() == third
    store.close()


def test_a_cached_answer_never_hides_a_commit(tmp_path):
    uri = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = SqlStore(uri, artifact_root=str(tmp_path / "a"))
    app = create_app(ServerSettings(backend_store_uri=uri), store=store)
    run_id = store.create_run("0", "u", 1).info.run_id
    store.log_batch(run_id, tags=[RunTag("team", "a")])
    with serving(app) as url:
        assert _search(url, "tags.team = 'a'") == [run_id]
        assert _search(url, "tags.team = 'a'") == [run_id]  # served again
        # a write through the server
        status, _h, raw = call(
            url, "POST", A + "/runs/set-tag", {"run_id": run_id, "key": "team", "value": "c"}
        )
        assert status == 200, raw
        assert _search(url, "tags.team = 'a'") == []
        assert _search(url, "tags.team = 'c'") == [run_id]
        # a write by another process, straight to the database
        subprocess.run(
            [sys.executable, "-c", _OTHER_PROCESS_TAG, uri, str(tmp_path / "a"), run_id],
            check=True,
        )
        assert _search(url, "tags.team = 'c'") == []
        assert _search(url, "tags.team = 'b'") == [run_id]
    store.close()


def test_stores_without_a_stamp_are_searched_every_time(tmp_path):
    from autolog.tracking.stores.file import FileStore

    store = FileStore(tmp_path / "mlruns")
    app = create_app(ServerSettings(backend_store_uri=str(tmp_path / "mlruns")), store=store)
    run_id = store.create_run("0", "u", 1).info.run_id
    with serving(app) as url:
        assert _search(url, "tags.team = 'x'") == []
        store.log_batch(run_id, tags=[RunTag("team", "x")])
        assert _search(url, "tags.team = 'x'") == [run_id]
