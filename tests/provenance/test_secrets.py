"""Secrets never stored: a fake secret in the environment, the command line,
params, tags, URIs and the diff must not appear anywhere in the store (every
file of a file store; every table of a SQLite store, and its files)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import autolog
from autolog.errors import InvalidParameterError
from autolog.tracking import secrets
from autolog.tracking.secrets import looks_secret, mask_argv, mask_text, strip_userinfo
from tests.provenance.conftest import ARGV_SECRET, DIFF_SECRET, REMOTE_TOKEN, run_as_script

ENV_SECRET = "tok-ENV-secret-999"
PARAM_SECRET = "param-secret-77"
TAG_SECRET = "tag-secret-88"
URI_SECRET = "uri-secret-55"
ALLOWED_SECRET = "allowed-but-masked-66"
ALL_SECRETS = (
    ENV_SECRET,
    PARAM_SECRET,
    TAG_SECRET,
    URI_SECRET,
    ALLOWED_SECRET,
    ARGV_SECRET,
    DIFF_SECRET,
    REMOTE_TOKEN,
)


def _log_everything(dirty_repo, monkeypatch) -> str:
    monkeypatch.setenv("MY_SERVICE_API_TOKEN", ENV_SECRET)
    monkeypatch.setenv("DEPLOY_SECRET", ALLOWED_SECRET)
    monkeypatch.setenv("AUTOLOG_CAPTURE_ENV_VARS", "DEPLOY_SECRET,CUDA_VISIBLE_DEVICES")
    secrets._forget_environment()
    run_as_script(
        monkeypatch,
        dirty_repo.script,
        "--api-token",
        ARGV_SECRET,
        "--header",
        ENV_SECRET,  # what the shell made of "$MY_SERVICE_API_TOKEN"
        f"--db=postgresql://bob:{URI_SECRET}@db.local/x",
    )
    with autolog.start_run() as run:
        autolog.log_params({"password": PARAM_SECRET, "lr": 0.1})
        autolog.set_tags({"auth": TAG_SECRET, "db": f"postgresql://bob:{URI_SECRET}@db/x"})
    return run.info.run_id


def _grep(folder: Path, texts: tuple[str, ...], skip: Path | None = None) -> list[str]:
    """Files under ``folder`` (but not under ``skip``) holding any of ``texts``."""
    hits = []
    for path in folder.rglob("*"):
        if skip is not None and path.is_relative_to(skip):
            continue
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {t}" for t in texts if t.encode() in data]
    return hits


def test_no_secret_reaches_any_file_of_the_file_store(dirty_repo, monkeypatch, tracking_uri):
    run_id = _log_everything(dirty_repo, monkeypatch)
    run = autolog.get_run(run_id)
    assert run.data.params["password"] == "***"
    assert run.data.tags["auth"] == "***"
    assert run.data.tags["db"] == "postgresql://bob:***@db/x"
    assert run.data.tags["autolog.env.var.DEPLOY_SECRET"] == "***"
    assert run.data.params["lr"] == "0.1"
    store_dir = Path(tracking_uri.removeprefix("file://"))
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert artifacts.is_relative_to(store_dir)
    assert (artifacts / "provenance" / "git.diff").is_file()
    assert _grep(store_dir, ALL_SECRETS) == []
    # and nothing of ours anywhere else: the only secrets on disk are the project's own
    assert _grep(dirty_repo.root.parent, ALL_SECRETS, skip=dirty_repo.root) == []


def _sqlite_rows(db: Path) -> list[tuple[str, tuple]]:
    rows = []
    with sqlite3.connect(db) as connection:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            if not table.startswith("sqlite_"):
                rows += [(table, row) for row in connection.execute(f'SELECT * FROM "{table}"')]
    return rows


def _postgres_rows(uri: str, schema: str) -> list[tuple[str, tuple]]:
    import psycopg

    from tests.tracking.sql_stores import postgres_uri

    rows = []
    with psycopg.connect(postgres_uri()) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            query = f'SELECT * FROM "{schema}"."{table}"'
            rows += [(table, row) for row in connection.execute(query)]
    return rows


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request, tmp_path):
    """(tracking URI, a function returning every row of every table) of an empty
    SQLite database or PostgreSQL schema; artifacts under ``tmp_path/store``."""
    folder = tmp_path / "store"
    folder.mkdir()
    if request.param == "sqlite":
        db = folder / "runs.db"
        yield f"sqlite:///{db}", lambda: _sqlite_rows(db)
        return
    import uuid

    from tests.tracking.sql_stores import _admin, postgres_schema_uri, require_postgres

    require_postgres()
    schema = f"autolog_secrets_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE SCHEMA "{schema}"')
    uri = postgres_schema_uri(schema)
    try:
        yield uri, lambda: _postgres_rows(uri, schema)
    finally:
        autolog.flush()
        _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_no_secret_reaches_any_table_of_a_sql_store(dirty_repo, monkeypatch, tmp_path, sql_store):
    uri, all_rows = sql_store
    autolog.set_tracking_uri(uri)
    run_id = _log_everything(dirty_repo, monkeypatch)
    assert autolog.get_run(run_id).data.tags["autolog.source.git.dirty"] == "true"
    autolog.flush()
    rows = all_rows()
    tables = {table for table, _row in rows}
    assert {"params", "tags"} <= tables, tables
    dumped = "\n".join(f"{table}: {row!r}" for table, row in rows)
    assert "***" in dumped and "feature/provenance" in dumped  # the rows were read
    assert [s for s in ALL_SECRETS if s in dumped] == []
    artifacts = Path(autolog.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "provenance" / "git.diff").is_file()
    assert _grep(artifacts, ALL_SECRETS) == []
    assert _grep(tmp_path, ALL_SECRETS, skip=dirty_repo.root) == []  # the db file too


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_key", True),
        ("HF_TOKEN", True),
        ("apiKey", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("PGPASSWORD", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("Authorization", True),
        ("basic_auth", True),
        ("client-secret-name", True),
        ("key_dim", False),
        ("max_tokens", False),
        ("tokenizer", False),
        ("n_estimators", False),
        ("author", False),
        ("db_pwd", True),
        ("PWD", False),  # the shell's working directory
        ("OLDPWD", False),
    ],
)
def test_names_that_look_secret(name, secret):
    assert looks_secret(name) is secret


def test_command_lines_lose_secret_values_and_keep_the_rest():
    argv = ["train.py", "--api-token", "abc", "--password=xyz", "API_KEY=zzz", "--lr", "0.1"]
    argv.append("postgresql://u:pw@h/d")
    assert mask_argv(argv) == [
        "train.py",
        "--api-token",
        "***",
        "--password=***",
        "API_KEY=***",
        "--lr",
        "0.1",
        "postgresql://u:***@h/d",
    ]


def test_text_loses_secret_assignments_and_uri_passwords():
    text = '+ api_key = "sk-live-1"\n- "password": "p2", lr = 3\nurl=https://me:t3@h.org/a'
    assert (
        mask_text(text)
        == '+ api_key = "***"\n- "password": "***", lr = 3\nurl=https://me:***@h.org/a'
    )


def test_git_remote_urls_lose_their_user_info():
    assert strip_userinfo("https://x:tok@github.com/a/b.git") == "https://github.com/a/b.git"
    assert strip_userinfo("https://tok@github.com/a/b.git") == "https://github.com/a/b.git"
    assert strip_userinfo("git@github.com:a/b.git") == "git@github.com:a/b.git"


def test_a_secret_param_logged_again_with_another_value_is_refused():
    from autolog.errors import ParamOverwriteError

    with autolog.start_run() as run:
        autolog.log_param("api_key", PARAM_SECRET)
        autolog.log_param("api_key", PARAM_SECRET)  # the same value again: a no-op
        with pytest.raises(ParamOverwriteError, match="api_key") as raised:
            autolog.log_param("api_key", "another-secret-1")
        assert PARAM_SECRET not in str(raised.value)
        assert "another-secret-1" not in str(raised.value)
        autolog.log_params({"lr": 0.1, "db_password": "one-123"})
        with pytest.raises(ParamOverwriteError):  # none of the call is logged
            autolog.log_params({"depth": 3, "db_password": "two-456"})
        client = autolog.Client()
        with pytest.raises(ParamOverwriteError):  # two values in one batch
            twice = [autolog.Param("auth_token", "t-111111"), autolog.Param("auth_token", "t-2")]
            client.log_batch(run.info.run_id, params=twice)
        with pytest.raises(ParamOverwriteError):
            client.log_batch(run.info.run_id, params=[autolog.Param("api_key", "third-3")])
        client.log_batch(run.info.run_id, params=[autolog.Param("api_key", PARAM_SECRET)])
    params = autolog.get_run(run.info.run_id).data.params
    assert params == {"api_key": "***", "lr": "0.1", "db_password": "***"}


def test_a_secret_param_value_is_still_validated_before_it_is_masked():
    with autolog.start_run(), pytest.raises(InvalidParameterError, match="password"):
        autolog.log_param("password", "x" * 7000)


def test_runs_show_masks_what_an_older_writer_stored_in_clear(capsys):
    from autolog.cli import main
    from autolog.tracking.entities import Param, RunTag

    with autolog.start_run() as run:
        pass
    client = autolog.Client()
    client.store.log_batch(  # the store itself, past validation: as an old client would
        run.info.run_id,
        params=[Param("api_key", "legacy-secret-1")],
        tags=[RunTag("db", f"postgresql://bob:{URI_SECRET}@db/x")],
    )
    for extra in ([], ["--json"]):
        assert main(["runs", "show", run.info.run_id, *extra]) == 0
        out = capsys.readouterr().out
        assert "postgresql://bob:***@db/x" in out
        assert URI_SECRET not in out and "legacy-secret-1" not in out


def test_a_path_under_the_working_directory_is_kept(monkeypatch, tmp_path):
    """The shell exports the working directory as PWD: its value is no secret,
    or every data path under it would be stored as ``***/data/x.csv``."""
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("DB_PWD", "hunter2-long")
    secrets._forget_environment()
    try:
        path = f"{tmp_path}/data/x.csv"
        assert secrets.mask_value("data", path) == path
        assert secrets.mask_value("note", "login hunter2-long") == f"login {secrets.MASK}"
    finally:
        monkeypatch.undo()
        secrets._forget_environment()
