"""What provenance writes in the background goes where the writer keeps it: the
diff and requirements.txt in the run's artifacts lane (an artifact store that
fails holds back none of the run's data, and the files are kept and written
once it works again), the dirty flag in the run's own lane."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import autolog
from autolog.errors import TrackingWriteError
from autolog.tracking import run_state
from tests.provenance.conftest import artifact_text


class _FullDisk:
    """An artifact repository that fails like a full disk while ``failing``."""

    failing = True

    def __init__(self, repository):
        self.repository = repository

    def log_bytes(self, data: bytes, path: str) -> None:
        if _FullDisk.failing:
            raise OSError(28, "No space left on device")
        self.repository.log_bytes(data, path)


def test_provenance_files_wait_in_the_artifacts_lane_and_hold_back_no_data(dirty_repo, monkeypatch):
    real = run_state.artifact_repository
    monkeypatch.setattr(run_state, "artifact_repository", lambda state: _FullDisk(real(state)))
    _FullDisk.failing = True
    client = autolog.Client()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "will retry"
        run = autolog.start_run()
        run_id = run.info.run_id
        autolog.log_metric("loss", 0.5)
        autolog.log_param("lr", 0.1)
        with pytest.raises(TrackingWriteError, match="kept for retry"):
            autolog.flush()
    stored = client.store.get_run(run_id)  # the store itself: no flush, no retry
    assert stored.data.metrics == {"loss": 0.5} and stored.data.params == {"lr": "0.1"}
    assert stored.data.tags["autolog.source.git.dirty"] == "true"  # its own lane: written
    folder = Path(stored.info.artifact_uri.removeprefix("file://"))
    assert not (folder / "provenance").exists()  # not written, and not lost either:

    _FullDisk.failing = False
    autolog.flush()  # retries the held lane
    autolog.end_run()
    assert "DB_PASSWORD = '***'" in artifact_text(run_id, "provenance/git.diff")
    assert "autolog==" in artifact_text(run_id, "provenance/requirements.txt")


def test_a_bug_of_ours_is_reported_once_and_fails_nothing(monkeypatch):
    from autolog import _report
    from autolog.provenance import environment

    def broken() -> str:
        raise KeyError("metadata without a Name")

    monkeypatch.setattr(environment, "requirements_text", broken)
    monkeypatch.delenv("AUTOLOG_TESTING", raising=False)
    monkeypatch.setattr(_report, "_warned", set())  # once per process: this test's
    with pytest.warns(autolog.AutologWarning, match="provenance"):
        with autolog.start_run() as run:
            autolog.log_metric("loss", 1.0)
        autolog.flush()  # raises nothing: the user's data is all written
    assert autolog.get_run(run.info.run_id).data.metrics == {"loss": 1.0}
