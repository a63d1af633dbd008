"""Who may call the server: bearer tokens and basic users from ``--auth-file``.

The file is JSON and holds hashes only, never a secret::

    {
      "tokens": ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
      "users": {"alice": "scrypt:16384:8:1:<salt hex>:<hash hex>"}
    }

Make the lines with ``python -m autolog.server.auth token`` (prints a new random
token and its line) and ``python -m autolog.server.auth password alice`` (reads
the password from stdin). Clients send ``Authorization: Bearer <token>``
(``MLFLOW_TRACKING_TOKEN`` / ``AUTOLOG_TRACKING_TOKEN``) or Basic
(``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``).

Checking is cheap per request: a token costs one SHA-256 and a constant-time
compare against every configured hash; a password costs scrypt once, after
which the SHA-256 of the verified credential is remembered (in memory, per
process), so later requests cost the same as a token's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
from pathlib import Path

from autolog.errors import InvalidParameterError

__all__ = ["Authenticator", "hash_password", "hash_token"]

_SCRYPT = (2**14, 8, 1)
_VERIFIED_LIMIT = 4096


def hash_token(token: str) -> str:
    """The auth file's line for a bearer token."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The auth file's value for a user's password (scrypt, random salt)."""
    salt = salt or os.urandom(16)
    n, r, p = _SCRYPT
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p)
    return f"scrypt:{n}:{r}:{p}:{salt.hex()}:{digest.hex()}"


def _check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split(":")
        if kind != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, bytes.fromhex(digest))


class Authenticator:
    """The credentials of one auth file; ``check(header)`` says whether an
    ``Authorization`` header value is one of them."""

    def __init__(self, tokens: list[str], users: dict[str, str]):
        self._tokens = []
        for line in tokens:
            kind, _, hexdigest = line.partition(":")
            if kind != "sha256" or len(hexdigest) != 64:
                raise InvalidParameterError(
                    f"auth file: token entry {line[:20]!r}... not sha256:<hex>"
                )
            self._tokens.append(bytes.fromhex(hexdigest))
        self._users = dict(users)
        self._verified: dict[bytes, None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Authenticator:
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidParameterError(f"auth file {str(path)!r} cannot be read: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidParameterError(f"auth file {str(path)!r} must hold a JSON object")
        tokens = document.get("tokens") or []
        users = document.get("users") or {}
        if not isinstance(tokens, list) or not isinstance(users, dict):
            raise InvalidParameterError(
                f"auth file {str(path)!r}: 'tokens' is a list, 'users' an object"
            )
        if not tokens and not users:
            raise InvalidParameterError(f"auth file {str(path)!r} names no token and no user")
        return cls([str(t) for t in tokens], {str(k): str(v) for k, v in users.items()})

    @property
    def has_users(self) -> bool:
        return bool(self._users)

    def check(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, credential = header.partition(" ")
        scheme = scheme.lower()
        credential = credential.strip()
        if scheme == "bearer" and self._tokens:
            presented = hashlib.sha256(credential.encode()).digest()
            found = False
            for stored in self._tokens:  # no early exit: the time does not tell which
                found |= hmac.compare_digest(presented, stored)
            return found
        if scheme == "basic" and self._users:
            return self._check_basic(credential)
        return False

    def _check_basic(self, credential: str) -> bool:
        try:
            username, sep, password = base64.b64decode(credential).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not sep:
            return False
        key = hashlib.sha256(f"{username}\0{password}".encode()).digest()
        if key in self._verified:
            return True
        stored = self._users.get(username)
        if stored is None or not _check_password(password, stored):
            return False
        with self._lock:
            if len(self._verified) >= _VERIFIED_LIMIT:
                self._verified.pop(next(iter(self._verified)))
            self._verified[key] = None
        return True


def _main(argv: list[str]) -> int:
    if argv[:1] == ["token"]:
        token = secrets.token_urlsafe(32)
        print(f"token:      {token}\nauth file:  {hash_token(token)}")
        return 0
    if len(argv) == 2 and argv[0] == "password":
        password = sys.stdin.readline().rstrip("\n")
        print(json.dumps({argv[1]: hash_password(password)}))
        return 0
    print("usage: python -m autolog.server.auth token | password <user> (<password on stdin)")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
