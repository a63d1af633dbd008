"""The one-call path of a param or tag value (validation and masking inline)
keeps every rule: NUL characters and lengths refused with the same messages,
secret keys, URI passwords and environment secrets masked, non-strings
stringified; whatever was seen before (a key found not secret, the
environment read once)."""

from __future__ import annotations

import os

import pytest

import autolog
from autolog.errors import InvalidParameterError
from autolog.tracking import secrets
from autolog.tracking.validation import (
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    validate_param_value,
    validate_tag_value,
    validated_tags,
)

ENV_SECRET = "s3cr3t-from-the-environment"


def _param(key, value):
    return validate_param_value(key, value)


def _tag(key, value):
    return validate_tag_value(key, value)


def _tags(key, value):
    return validated_tags({key: value})[key]


# (one value checker, its kind, its length limit)
CHECKERS = [
    pytest.param(_param, "param", MAX_PARAM_VALUE_LENGTH, id="validate_param_value"),
    pytest.param(_tag, "tag", MAX_TAG_VALUE_LENGTH, id="validate_tag_value"),
    pytest.param(_tags, "tag", MAX_TAG_VALUE_LENGTH, id="validated_tags"),
]


@pytest.fixture
def env_secret(monkeypatch):
    """ENV_SECRET, the environment's only secret value."""
    for name in list(os.environ):
        if secrets.looks_secret(name):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MY_SERVICE_API_TOKEN", ENV_SECRET)
    secrets._forget_environment()
    yield ENV_SECRET
    monkeypatch.undo()
    secrets._forget_environment()


@pytest.mark.parametrize(("check", "kind", "limit"), CHECKERS)
def test_a_nul_character_is_refused_with_its_message(check, kind, limit):
    check("lr", "0.1")  # the key seen (and found not secret) first
    with pytest.raises(InvalidParameterError) as info:
        check("lr", "0.1\x00x")
    assert str(info.value) == (
        f"{kind} value of 'lr' contains a NUL character (\\x00), which stores "
        "cannot hold (value starts '0.1\\x00x')"
    )


@pytest.mark.parametrize(("check", "kind", "limit"), CHECKERS)
def test_the_length_limit_is_inclusive_and_its_message_kept(check, kind, limit):
    assert check("note", "x" * limit) == "x" * limit
    with pytest.raises(InvalidParameterError) as info:
        check("note", "x" * (limit + 1))
    assert str(info.value) == (
        f"{kind} value of 'note' is {limit + 1} characters long; the limit is {limit} "
        f"(value starts {'x' * 40 + f'... ({limit + 1} characters)'!r})"
    )


@pytest.mark.parametrize(("check", "kind", "limit"), CHECKERS)
def test_a_long_value_with_a_nul_character_is_refused_for_the_nul(check, kind, limit):
    with pytest.raises(InvalidParameterError, match="NUL character"):
        check("note", "\x00" + "x" * limit)


@pytest.mark.parametrize(("check", "kind", "limit"), CHECKERS)
def test_a_secret_key_is_masked_every_time(check, kind, limit):
    for _ in range(3):  # the first time and the cached verdicts after it
        assert check("db_password", "hunter2") == "***"
        assert check("HF_TOKEN", 12345) == "***"
    assert check("db_password", "") == ""  # nothing to hide
    with pytest.raises(InvalidParameterError, match="NUL"):
        check("db_password", "hun\x00ter2")  # validated before it is masked


@pytest.mark.parametrize(("check", "kind", "limit"), CHECKERS)
def test_a_uri_password_is_masked_under_a_key_seen_before(check, kind, limit):
    assert check("db_url", "sqlite:///runs.db") == "sqlite:///runs.db"
    assert check("db_url", "postgresql://me:hunter2@db.local/x") == (
        "postgresql://me:***@db.local/x"
    )
    assert check("db_url", "user@example.com") == "user@example.com"  # no password


@pytest.mark.parametrize(("check", "kind", "limit"), CHECKERS)
def test_an_environment_secret_is_masked_in_any_value(check, kind, limit, env_secret):
    assert check("comment", "plain") == "plain"  # the key seen first
    assert check("comment", f"run with {env_secret} set") == "run with *** set"
    assert check("comment", env_secret) == "***"
    assert check("comment", env_secret[:-1]) == env_secret[:-1]  # shorter: not the secret


def test_an_environment_secret_read_again_after_the_environment_changes(monkeypatch):
    assert _tag("comment", "another-s3cret-value") == "another-s3cret-value"
    monkeypatch.setenv("OTHER_SECRET", "another-s3cret-value")
    secrets._forget_environment()
    try:
        assert _tag("comment", "another-s3cret-value") == "***"
    finally:
        monkeypatch.undo()
        secrets._forget_environment()
    assert _tag("comment", "another-s3cret-value") == "another-s3cret-value"


@pytest.mark.parametrize(("check", "kind", "limit"), CHECKERS)
def test_non_string_values_are_stringified_and_checked(check, kind, limit):
    class Shown:
        def __init__(self, text):
            self.text = text

        def __str__(self):
            return self.text

    assert check("n", 3) == "3"
    assert check("n", 0.5) == "0.5"
    assert check("n", None) == "None"
    assert check("n", True) == "True"
    assert check("n", Shown("postgresql://me:pw@h/db")) == "postgresql://me:***@h/db"
    with pytest.raises(InvalidParameterError, match="NUL"):
        check("n", Shown("a\x00b"))
    with pytest.raises(InvalidParameterError, match="characters long"):
        check("n", Shown("x" * (limit + 1)))


def test_the_tracking_api_stores_what_the_rules_make(env_secret):
    with autolog.start_run(tags={"api_key": "k-123", "note": f"uses {env_secret}"}) as run:
        autolog.log_params({"lr": 0.1, "db": "mysql://u:pw@host/db", "password": "x"})
        autolog.set_tags({"state": "COMPLETE", "token": 42})
        with pytest.raises(InvalidParameterError, match="NUL"):
            autolog.set_tag("state", "bad\x00")
        with pytest.raises(InvalidParameterError, match="characters long"):
            autolog.log_param("long", "x" * (MAX_PARAM_VALUE_LENGTH + 1))
    data = autolog.get_run(run.info.run_id).data
    assert data.params == {"lr": "0.1", "db": "mysql://u:***@host/db", "password": "***"}
    assert {k: data.tags[k] for k in ("api_key", "note", "state", "token")} == {
        "api_key": "***",
        "note": "uses ***",
        "state": "COMPLETE",
        "token": "***",
    }


@pytest.mark.parametrize("with_env_secret", [False, True])
def test_a_value_said_to_need_no_mask_is_what_masking_returns(with_env_secret, request):
    if with_env_secret:
        request.getfixturevalue("env_secret")
    keys = ["lr", "api_key", "db_url", "comment", "HF_TOKEN", "max_tokens"]
    values = ["0.1", "", "x" * 40, "a@b", "postgresql://me:pw@h/db", ENV_SECRET, ENV_SECRET[:-1]]
    for _ in range(2):  # before and after the verdicts are cached
        for key in keys:
            for value in values:
                masked = secrets.mask_value(key, value)
                if not secrets.needs_mask(key, value):
                    assert masked is value, (key, value)
                assert validate_tag_value(key, value) == masked
                assert validate_param_value(key, value) == masked
                assert validated_tags({key: value}) == {key: masked}
