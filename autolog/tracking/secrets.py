"""Secrets never stored: how a value that looks secret is masked before it is kept.

A *name* looks secret (:func:`looks_secret`) when it says SECRET, PASSWORD,
CREDENTIAL or AUTHORIZATION anywhere, or ends in TOKEN, KEY or AUTH (``apiKey``,
``db_passwd``, ``aws_secret_access_key``, ``HF_TOKEN``). What is masked, and where:

- a param or tag whose key looks secret: its whole value becomes ``***``
  (:func:`mask_value`, called by the tracking API's validation);
- a URI's password, anywhere in a value or a text: ``postgresql://u:***@host/db``;
- in a command line (``sys.argv``) and in the git diff's text: the value after
  ``--api-token``, in ``PASSWORD=...``, ``"secret": "..."`` and the like
  (:func:`mask_argv`, :func:`mask_text`);
- everywhere: the literal value of any environment variable whose name looks
  secret (what the shell expanded from ``$GITHUB_TOKEN``).

Cheap on the logging path: the verdict on a key is cached, and a value is only
scanned when it could hold a URI or an environment secret.

A leaf of :mod:`autolog.tracking` (it imports nothing of ours): the tracking
API masks with it, and so do provenance, the CLI and the server.
"""

from __future__ import annotations

import functools
import os
import re
import sys

__all__ = [
    "MASK",
    "check_secret_unchanged",
    "looks_secret",
    "mask_argv",
    "mask_mapping",
    "mask_text",
    "mask_value",
    "needs_mask",
    "plain_keys",
    "shortest_env_secret",
    "strip_userinfo",
]

MASK = "***"

# a name with one of these words anywhere looks secret ...
_STRONG_WORDS = frozenset(
    {
        *("SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PWD", "PASSPHRASE"),
        *("CREDENTIAL", "CREDENTIALS", "CREDS", "AUTHORIZATION"),
    }
)
_STRONG_PARTS = ("SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")  # "clientsecret", "PGPASSWORD"
# ... with one of these as its last word (api_key, HF_TOKEN; not key_dim, max_tokens)
_LAST_WORDS = frozenset(
    {"TOKEN", "KEY", "APIKEY", "PRIVATEKEY", "ACCESSKEY", "AUTH", "AUTHTOKEN", "PASS"}
)
_LAST_ENDINGS = ("TOKEN", "APIKEY", "AUTH")  # "accesstoken", "oauth"
# the shell's working directories, not passwords: masking $PWD's value would
# mask every path under the directory training runs in
_NOT_SECRETS = frozenset({"PWD", "OLDPWD"})
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
# scheme://user:password@  (the password may not contain '@' or '/' unencoded)
_URI_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/@:'\"]*):([^\s/@'\"]*)@")
# NAME=value, NAME: value, "name": "value", name = 'value'
_ASSIGNMENT = re.compile(
    r"([A-Za-z_][A-Za-z0-9_.-]*)([\"']?[ \t]*[=:][ \t]*)([\"']?)([^\s\"',;}\]]+)"
)
_MIN_ENV_SECRET = 6  # shorter values ("1", "true") are too common to mask as text


@functools.lru_cache(maxsize=4096)
def looks_secret(name: str) -> bool:
    """Whether ``name`` (an environment variable, param, tag or flag) names a
    secret: SECRET, PASSWORD, CREDENTIAL(S) or AUTHORIZATION anywhere in it, or
    TOKEN, KEY or AUTH as its last word (``api_key``, ``HF_TOKEN``, ``apiKey``,
    ``basic_auth``; not ``key_dim`` or ``max_tokens``, which ML code is full of,
    nor the shell's ``PWD`` and ``OLDPWD``, which ``db_pwd`` is not).
    """
    words = [w.upper() for w in _WORD_SPLIT.split(name) if w]
    if not words or name.upper() in _NOT_SECRETS:
        return False
    if any(w in _STRONG_WORDS for w in words):
        return True
    upper = name.upper()
    if any(part in upper for part in _STRONG_PARTS):
        return True
    last = words[-1]
    return last in _LAST_WORDS or last.endswith(_LAST_ENDINGS)


def _read_environment() -> tuple[re.Pattern[str] | None, int]:
    """The values of this process's environment variables that look secret, as one
    pattern (longest first), and the length of the shortest; read once per
    process (:data:`_environment`, :data:`shortest_env_secret`)."""
    global _environment, shortest_env_secret
    values = sorted(
        {v for k, v in os.environ.items() if looks_secret(k) and len(v) >= _MIN_ENV_SECRET},
        key=len,
        reverse=True,
    )
    pattern = re.compile("|".join(map(re.escape, values))) if values else None
    _environment = (pattern, len(values[-1]) if values else 0)
    shortest_env_secret = len(values[-1]) if values else sys.maxsize
    return _environment


#: (pattern of the environment's secret values or None, the shortest one's length),
#: None until the first mask reads the environment
_environment: tuple[re.Pattern[str] | None, int] | None = None
#: a text shorter than this holds no secret value of the environment: the
#: shortest one's length once the environment is read (0 before: nothing is
#: known yet; ``sys.maxsize`` when it holds none)
shortest_env_secret = 0


def _env_secret_pattern() -> re.Pattern[str] | None:
    """The environment's secret values as one pattern, or None (read once)."""
    return (_environment or _read_environment())[0]


def _forget_environment() -> None:
    """Read the environment again at the next mask (tests change it)."""
    global _environment, shortest_env_secret
    shortest_env_secret = 0  # first: validation's inline test now asks mask_value
    _environment = None


def _mask_env_values(text: str) -> str:
    pattern = _env_secret_pattern()
    return pattern.sub(MASK, text) if pattern is not None else text


def _mask_uris(text: str) -> str:
    return _URI_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text) if "@" in text else text


#: keys :func:`looks_secret` said no to: a set test is no call (bounded; the
#: same set for the life of the process, which validation tests too)
plain_keys: set[str] = set()
_MAX_PLAIN_KEYS = 10_000


def needs_mask(key: str, text: str) -> bool:
    """Whether :func:`mask_value` could change ``text`` under ``key``; False
    only where it would return ``text`` itself. What validation tests inline."""
    return not (key in plain_keys and "@" not in text and len(text) < shortest_env_secret)


def mask_value(key: str, text: str) -> str:
    """``text`` as it may be stored under ``key``: ``***`` when the key looks
    secret, else with URI passwords and environment secrets masked.

    >>> mask_value("db_password", "hunter2")
    '***'
    >>> mask_value("db", "postgresql://me:hunter2@db.local/x")
    'postgresql://me:***@db.local/x'

    Called for every param and tag value the tracking API takes, so written
    as one call (the rules of :func:`looks_secret`, :func:`_mask_uris` and
    :func:`_mask_env_values` inline), and one that the tracking API's
    validation skips where it would change nothing: a key in
    :data:`plain_keys`, a value without ``@`` shorter than
    :data:`shortest_env_secret` (:func:`needs_mask`).
    """
    if key not in plain_keys:
        if looks_secret(key):
            return MASK if text else text
        if len(plain_keys) < _MAX_PLAIN_KEYS:
            plain_keys.add(key)
    if "@" in text:
        text = _URI_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    pattern, shortest = _environment or _read_environment()
    # a text shorter than every secret value cannot hold one
    if pattern is not None and len(text) >= shortest:
        text = pattern.sub(MASK, text)
    return text


def _mask_assignment(match: re.Match[str]) -> str:
    name, between, quote, value = match.groups()
    if not looks_secret(name) or value == MASK:
        return match.group(0)
    return f"{name}{between}{quote}{MASK}"


def mask_mapping(values: dict[str, str]) -> dict[str, str]:
    """``{key: mask_value(key, value)}``: params or tags as they may be shown."""
    return {key: mask_value(key, value) for key, value in values.items()}


def mask_text(text: str) -> str:
    """Free text (a diff, a command line) with secret assignments, URI passwords
    and environment secrets masked."""
    return _mask_env_values(_ASSIGNMENT.sub(_mask_assignment, _mask_uris(text)))


def mask_argv(argv: list[str]) -> list[str]:
    """A command line with secrets masked: ``--api-token VALUE`` and
    ``--password=VALUE`` keep the flag, lose the value."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag, eq, _value = arg.partition("=")
        if arg.startswith("-") and looks_secret(flag.lstrip("-")):
            if eq:
                out.append(f"{flag}={MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(mask_text(arg))
    return out


_FINGERPRINT_KEY = os.urandom(16)  # of this process: a fingerprint proves nothing elsewhere


def check_secret_unchanged(key: str, known: str | None, value: object) -> str:
    """The fingerprint of a param value that is stored masked (``***``); raises
    ParamOverwriteError when ``known`` (the fingerprint of the value logged
    before) differs: params are immutable also when their values are hidden.
    A keyed hash with a key of this process and never stored, so a weak
    password cannot be guessed back from it; the error shows no value."""
    import hashlib

    text = value if type(value) is str else str(value)
    fingerprint = hashlib.blake2b(
        text.encode("utf-8", "surrogatepass"), key=_FINGERPRINT_KEY, digest_size=16
    ).hexdigest()
    if known is not None and known != fingerprint:
        from autolog.errors import ParamOverwriteError

        raise ParamOverwriteError(
            f"param {key!r} was already logged with another value (both are secret, "
            f"stored as {MASK!r}); params are immutable: log a new key or start a new run"
        )
    return fingerprint


def strip_userinfo(url: str) -> str:
    """A URL without its user info (``https://token@github.com/a/b`` ->
    ``https://github.com/a/b``); scp-like git remotes (``git@host:a/b``) keep
    their user, which is no secret."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"
