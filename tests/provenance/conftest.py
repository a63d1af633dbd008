"""Fixtures of the provenance tests: fresh capture state, and a git work tree
that is dirty and whose remote URL carries credentials."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

REMOTE_TOKEN = "ghp_FAKEremoteTOKEN1234567890"
DIFF_SECRET = "hunter2-in-the-diff"
ARGV_SECRET = "FAKE-argv-token-42"


def _reset() -> None:
    from autolog import provenance
    from autolog.provenance import datasets
    from autolog.tracking import context

    provenance._reset_for_tests()
    datasets._reset_for_tests()
    context._source_tags.cache_clear()


@pytest.fixture(autouse=True)
def fresh_provenance(tmp_path, monkeypatch):
    """Options, cached tags and git answers are read again by each test, whose
    ``__main__`` is a script outside any git work tree (not pytest's, inside
    this checkout) unless the test makes a repository (``dirty_repo``)."""
    script = tmp_path / "outside" / "main.py"
    script.parent.mkdir()
    script.write_text("")
    run_as_script(monkeypatch, script)
    _reset()
    yield
    _reset()


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def run_as_script(monkeypatch, script: Path, *args: str) -> None:
    """Make ``script`` the process's ``__main__`` with ``args`` as its command line."""
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", [str(script), *args])


@pytest.fixture
def dirty_repo(tmp_path, monkeypatch) -> types.SimpleNamespace:
    """A work tree on branch ``feature/provenance`` with one commit, a remote
    whose URL holds a token, a tracked file changed since (its diff holds a
    password) and the training script as ``__main__``, run with a secret flag."""
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "checkout", "-q", "-b", "feature/provenance")
    script = repo / "train.py"
    script.write_text("lr = 0.1\nprint('training')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    url = f"https://alice:{REMOTE_TOKEN}@github.com/acme/project.git"
    git(repo, "remote", "add", "origin", url)
    script.write_text(f"lr = 0.2\nDB_PASSWORD = '{DIFF_SECRET}'\nprint('training')\n")
    run_as_script(monkeypatch, script, "--api-token", ARGV_SECRET, "--lr", "0.2")
    return types.SimpleNamespace(
        root=repo, script=script, commit=git(repo, "rev-parse", "HEAD"), url=url
    )


def artifact_text(run_id: str, path: str) -> str:
    """An artifact of the run, read back through the tracking API."""
    from autolog.tracking.client import Client

    local = Client().download_artifacts(run_id, path)
    return Path(local).read_text(encoding="utf-8")
