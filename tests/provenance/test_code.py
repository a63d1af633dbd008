"""Code capture: commit, branch, remote (credentials stripped), dirty flag, the
diff artifact, the command line; git runs at most once per process."""

from __future__ import annotations

import sys

import pytest

import autolog
from autolog import provenance
from autolog.provenance import git as git_files
from tests.provenance.conftest import (
    ARGV_SECRET,
    DIFF_SECRET,
    REMOTE_TOKEN,
    artifact_text,
    git,
    run_as_script,
)


def _finished_run(**start: object) -> autolog.Run:
    with autolog.start_run(**start) as run:
        autolog.log_metric("loss", 0.5)
    return autolog.get_run(run.info.run_id)


def test_dirty_tree_gives_branch_remote_without_credentials_dirty_flag_and_masked_diff(
    dirty_repo,
):
    run = _finished_run()
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == dirty_repo.commit
    assert tags["mlflow.source.git.branch"] == "feature/provenance"
    assert tags["mlflow.source.git.repoURL"] == "https://github.com/acme/project.git"
    assert tags["autolog.source.git.dirty"] == "true"
    diff = artifact_text(run.info.run_id, "provenance/git.diff")
    assert "-lr = 0.1" in diff and "+lr = 0.2" in diff  # git's own diff of the change
    assert "DB_PASSWORD = '***'" in diff
    assert DIFF_SECRET not in diff and REMOTE_TOKEN not in str(tags)


def test_command_line_is_recorded_with_the_secret_flag_value_masked(dirty_repo):
    tags = _finished_run().data.tags
    command = tags["autolog.source.command"]
    assert command.startswith(str(dirty_repo.script))
    assert "--api-token '***'" in command and "--lr 0.2" in command
    assert ARGV_SECRET not in command


def test_clean_tree_is_not_dirty_and_has_no_diff(dirty_repo):
    git(dirty_repo.root, "commit", "-q", "-am", "second")
    run = _finished_run()
    assert run.data.tags["autolog.source.git.dirty"] == "false"
    paths = [a.path for a in autolog.Client().list_artifacts(run.info.run_id, "provenance")]
    assert "provenance/git.diff" not in paths
    assert "provenance/requirements.txt" in paths


def test_git_runs_once_per_process_not_once_per_run(dirty_repo, monkeypatch):
    calls: list[tuple[str, ...]] = []
    real = git_files._git

    def counting(root, *args):
        calls.append(args)
        return real(root, *args)

    monkeypatch.setattr(git_files, "_git", counting)
    for _ in range(3):
        run = _finished_run()
        assert run.data.tags["autolog.source.git.dirty"] == "true"
    assert [args[0] for args in calls] == ["status", "diff"]


def test_diff_is_capped_at_max_diff_bytes_and_says_so(dirty_repo):
    dirty_repo.script.write_text("x = 1\n" * 5000)
    provenance.configure(max_diff_bytes=2000)
    diff = artifact_text(_finished_run().info.run_id, "provenance/git.diff")
    body, _, note = diff.rpartition("# autolog: diff truncated to 2000 of ")
    assert note and len(body.encode()) <= 2001


def test_switches_turn_off_the_git_tags_the_diff_and_the_command(dirty_repo):
    provenance.configure(git=False, command=False)
    run = _finished_run()
    tags = run.data.tags
    assert "mlflow.source.git.commit" in tags  # the commit is the core's, always on
    for key in ("mlflow.source.git.branch", "autolog.source.git.dirty", "autolog.source.command"):
        assert key not in tags
    paths = [a.path for a in autolog.Client().list_artifacts(run.info.run_id, "provenance")]
    assert paths == ["provenance/requirements.txt"]


def test_diff_switch_alone_keeps_the_dirty_flag(dirty_repo):
    provenance.configure(git_diff=False)
    run = _finished_run()
    assert run.data.tags["autolog.source.git.dirty"] == "true"
    paths = [a.path for a in autolog.Client().list_artifacts(run.info.run_id, "provenance")]
    assert "provenance/git.diff" not in paths


def test_nested_runs_leave_the_artifacts_to_their_parent(dirty_repo):
    with autolog.start_run() as parent, autolog.start_run(nested=True) as child:
        pass
    client = autolog.Client()
    assert client.list_artifacts(child.info.run_id) == []
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "provenance")} == {
        "provenance/git.diff",
        "provenance/requirements.txt",
    }
    child_tags = autolog.get_run(child.info.run_id).data.tags
    assert child_tags["mlflow.source.git.branch"] == "feature/provenance"


def test_no_work_tree_means_no_git_tags(tmp_path, monkeypatch):
    script = tmp_path / "plain" / "train.py"
    script.parent.mkdir()
    script.write_text("")
    run_as_script(monkeypatch, script)
    tags = _finished_run().data.tags
    assert not any("git" in key for key in tags)


def test_remote_of_the_branch_wins_and_scp_style_urls_keep_their_user(dirty_repo):
    git(dirty_repo.root, "remote", "add", "upstream", "git@gitlab.com:acme/project.git")
    git(dirty_repo.root, "config", "branch.feature/provenance.remote", "upstream")
    tags = _finished_run().data.tags
    assert tags["mlflow.source.git.repoURL"] == "git@gitlab.com:acme/project.git"


def test_detached_head_has_a_commit_and_no_branch(dirty_repo):
    git(dirty_repo.root, "checkout", "-q", "--detach")
    tags = _finished_run().data.tags
    assert tags["mlflow.source.git.commit"] == dirty_repo.commit
    assert "mlflow.source.git.branch" not in tags


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        ({"JPY_SESSION_NAME": "/home/me/analysis.ipynb"}, "/home/me/analysis.ipynb"),
        ({"__vsc_ipynb_file__": "/home/me/vscode.ipynb"}, "/home/me/vscode.ipynb"),
    ],
)
def test_notebook_path_is_the_source_name_where_the_kernel_tells_it(monkeypatch, kernel, expected):
    import types

    main = types.ModuleType("__main__")
    for key, value in kernel.items():
        if key.startswith("__"):
            setattr(main, key, value)
        else:
            monkeypatch.setenv(key, value)
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    tags = _finished_run().data.tags
    assert tags["mlflow.source.type"] == "NOTEBOOK"
    assert tags["mlflow.source.name"] == expected
