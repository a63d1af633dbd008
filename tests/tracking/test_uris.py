"""Tracking URIs a new user mistypes (issue 20, items 8 to 10): typed errors that
show the right spelling, blank URIs refused, a missing migrate source refused
without creating anything, and passwords masked wherever a URI is printed."""

from __future__ import annotations

import uuid

import pytest

import autolog
from autolog import cli
from autolog.errors import InvalidParameterError, ResourceNotFoundError, StoreError
from autolog.tracking.migrate import migrate
from autolog.tracking.stores import mask_uri
from autolog.tracking.stores.sql import SqlStore
from tests.tracking.sql_stores import _admin, postgres_schema_uri, require_postgres


@pytest.mark.parametrize(
    ("uri", "spelling"),
    [
        ("sqlite://mlflow.db", "sqlite:///mlflow.db"),
        ("sqlite:mlflow.db", "sqlite:///mlflow.db"),
        ("sqlite://", "sqlite:///mlflow.db"),
        ("postgresql:localhost/db", "postgresql://user:password@host:5432/dbname"),
    ],
)
def test_malformed_sql_uris_are_a_typed_error_showing_the_right_spelling(uri, spelling, tmp_path):
    for attempt in (
        lambda: autolog.set_tracking_uri(uri),
        lambda: autolog.Client(uri),
        lambda: SqlStore(uri),
    ):
        with pytest.raises(InvalidParameterError) as raised:
            attempt()
        assert spelling in str(raised.value) and repr(uri) in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # no database file appeared anywhere
    assert autolog.get_tracking_uri() == (tmp_path / "mlruns").as_uri()  # unchanged


def test_the_cli_prints_the_error_without_a_traceback(capsys):
    assert cli.main(["runs", "list", "--tracking-uri", "sqlite://mlflow.db"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autolog: error: ") and "sqlite:///mlflow.db" in err
    assert "Traceback" not in err and "ArgumentError" not in err


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_blank_tracking_uris_are_an_error(blank):
    with pytest.raises(InvalidParameterError, match="blank"):
        autolog.set_tracking_uri(blank)
    with pytest.raises(InvalidParameterError, match="blank"):
        autolog.Client(blank)
    assert autolog.get_tracking_uri().endswith("/mlruns")


@pytest.mark.parametrize("uri", ["FILE://[", "file://[::1/runs", "file://]x/runs"])
def test_a_malformed_file_uri_is_a_typed_error_and_changes_nothing(uri):
    before = autolog.get_tracking_uri()
    with pytest.raises(InvalidParameterError, match="malformed"):
        autolog.set_tracking_uri(uri)
    with pytest.raises(InvalidParameterError, match="malformed"):
        autolog.Client(uri)
    assert autolog.get_tracking_uri() == before


@pytest.mark.parametrize("uri", ["~no-such-user-here/runs", "file:~no-such-user-here"])
def test_the_home_of_an_unknown_user_is_a_typed_error_and_changes_nothing(uri, tmp_path):
    """pathlib raises a bare RuntimeError for it (hypothesis found ``~0``)."""
    before = autolog.get_tracking_uri()
    with pytest.raises(InvalidParameterError, match="home directory"):
        autolog.set_tracking_uri(uri)
    assert autolog.get_tracking_uri() == before
    with pytest.raises(InvalidParameterError, match="home directory"):
        SqlStore("sqlite:///~no-such-user-here/x.db", artifact_root=str(tmp_path))


def test_mask_uri_hides_passwords_and_secret_query_values():
    assert mask_uri("postgresql://me:s3cret@db:5432/runs") == "postgresql://me:***@db:5432/runs"
    assert mask_uri("https://u:p%40ss@host/x?token=abc&page=2") == (
        "https://u:***@host/x?token=***&page=2"
    )
    assert mask_uri("postgresql://me@db/runs") == "postgresql://me@db/runs"  # no password
    assert mask_uri("sqlite:///a.db") == "sqlite:///a.db"
    assert mask_uri("/plain/path") == "/plain/path"


def test_a_database_error_does_not_print_the_password():
    require_postgres()
    uri = postgres_schema_uri("public").replace("autolog:autolog@", "autolog:wrong-pw-123@")
    with pytest.raises(StoreError) as raised:
        SqlStore(uri)
    assert "wrong-pw-123" not in str(raised.value) and "autolog:***@" in str(raised.value)


@pytest.mark.parametrize("source", ["./nope", "sqlite:///typo.db"])
def test_migrate_from_a_missing_store_is_an_error_and_creates_nothing(source, tmp_path, capsys):
    assert cli.main(["migrate", "--from", source, "--to", "sqlite:///target.db"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and source.rsplit("/", 1)[-1] in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither source nor target
    with pytest.raises(ResourceNotFoundError):
        migrate(source, "sqlite:///target.db")
    assert list(tmp_path.iterdir()) == []


def test_migrate_from_a_database_without_tables_is_an_error():
    require_postgres()
    schema = f"autolog_test_{uuid.uuid4().hex[:16]}"
    _admin(f'CREATE SCHEMA "{schema}"')
    try:
        with pytest.raises(ResourceNotFoundError, match="no tables"):
            migrate(postgres_schema_uri(schema), "./copy")
        _admin(f'DROP SCHEMA "{schema}" CASCADE')  # nothing was created in it
        _admin(f'CREATE SCHEMA "{schema}"')
    finally:
        _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_migrate_summary_masks_the_password(tmp_path, capsys):
    require_postgres()
    with autolog.start_run():
        autolog.log_metric("m", 1.0)
    schema = f"autolog_test_{uuid.uuid4().hex[:16]}"
    _admin(f'CREATE SCHEMA "{schema}"')
    try:
        target = postgres_schema_uri(schema)
        assert ":autolog@" in target  # the test server's password is in the URI
        assert cli.main(["migrate", "--from", "./mlruns", "--to", target]) == 0
        out = capsys.readouterr().out
        assert "1 runs" in out and "autolog:***@" in out and ":autolog@" not in out
    finally:
        autolog.tracking.stores._forget_stores()
        _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
