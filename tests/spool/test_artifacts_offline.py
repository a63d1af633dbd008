"""Artifacts written while the server is down wait in the spool with the run's
other writes: ``log_artifact``, the writer's ``log_dict``, the provenance files
of a run started offline; none holds ``flush()`` up, all arrive once it is back."""

from __future__ import annotations

import warnings

import autolog
from autolog.tracking.artifacts import repository_for
from autolog.tracking.stores import store_for_uri
from tests.rest.servers import autolog_server
from tests.spool.training import wait_until


def test_artifacts_of_a_run_started_offline_arrive_when_the_server_is_back(tmp_path):
    server = autolog_server(tmp_path).start()
    try:
        autolog.set_tracking_uri(server.url)
        store = store_for_uri(server.url)
        autolog.get_experiment("0")  # seen once online: start_run works offline
        server.stop()
        note = tmp_path / "note.txt"
        note.write_text("written offline")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with autolog.start_run() as run:  # top level: provenance queues its files too
                autolog.log_artifact(note, "docs")
                autolog.log_dict({"lr": 0.1}, "config.json")
                autolog.log_metric("m", 1.0)
                autolog.flush()  # returns: artifacts and points are durable in the spool
            note.unlink()  # the spool kept its own copy
            assert store.spooling
            assert any((store.spool.path / "blobs").iterdir())
            server.start()
            wait_until(lambda: not store.spooling, what="the spool to drain")
        on_server = store.inner.get_run(run.info.run_id)
        repository = repository_for(on_server.info.artifact_uri, server.url)
        target = tmp_path / "download"
        repository.download_artifacts("", target)
        assert (target / "docs" / "note.txt").read_text() == "written offline"
        assert (target / "config.json").exists()
        assert (target / "provenance" / "requirements.txt").exists()
        assert on_server.data.metrics == {"m": 1.0}
        assert list((store.spool.path / "blobs").iterdir()) == []  # copies removed
    finally:
        server.stop()
