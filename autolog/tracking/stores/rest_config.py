"""The settings of the REST client, read from the environment once per store.

Each ``AUTOLOG_*`` variable has the MLflow name as an alias (the ``AUTOLOG_``
one wins when both are set), so a script configured for an MLflow server works
unchanged:

==========================================  ======================================  =========
variable                                    MLflow alias                            default
==========================================  ======================================  =========
``AUTOLOG_TRACKING_TOKEN``                  ``MLFLOW_TRACKING_TOKEN``               (bearer)
``AUTOLOG_TRACKING_USERNAME`` / ``_PASSWORD`` ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD`` (basic)
``AUTOLOG_TRACKING_INSECURE_TLS``           ``MLFLOW_TRACKING_INSECURE_TLS``        false
``AUTOLOG_TRACKING_SERVER_CERT_PATH``       ``MLFLOW_TRACKING_SERVER_CERT_PATH``    system CAs
``AUTOLOG_TRACKING_CLIENT_CERT_PATH``       ``MLFLOW_TRACKING_CLIENT_CERT_PATH``    none
``AUTOLOG_TRACKING_CLIENT_KEY_PATH``        (none; else the key is in the cert file) none
``AUTOLOG_HTTP_REQUEST_TIMEOUT``            ``MLFLOW_HTTP_REQUEST_TIMEOUT``         120 s
``AUTOLOG_HTTP_CONNECT_TIMEOUT``            (none)                                  10 s
``AUTOLOG_HTTP_REQUEST_MAX_RETRIES``        ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``     7
``AUTOLOG_HTTP_REQUEST_BACKOFF_FACTOR``     ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``  2 s
``AUTOLOG_HTTP_REQUEST_BACKOFF_JITTER``     ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER``  1 s
``AUTOLOG_HTTP_REQUEST_MAX_RETRY_TIME``     (none)                                  60 s
==========================================  ======================================  =========

With a username and a password the client sends HTTP Basic (as MLflow's
client does, even when a token is set too); else a token is sent as
``Authorization: Bearer``. Credentials in the URI (``https://user:pw@host``)
are used when no variable gives any. Secrets never appear in a message or a
``repr``: messages show URIs through ``autolog.tracking.stores.mask_uri``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from autolog.errors import InvalidParameterError

__all__ = ["HttpSettings", "split_credentials"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def split_credentials(uri: str) -> tuple[str, tuple[str, str] | None]:
    """``uri`` without its user info, and the (user, password) it carried, if any."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit(parts._replace(netloc=host))
    if parts.username is None:
        return bare, None
    return bare, (unquote(parts.username), unquote(parts.password or ""))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@dataclass(frozen=True)
class HttpSettings:
    """How the REST client connects: TLS, credentials, timeouts and retries."""

    timeout: float = 120.0
    connect_timeout: float = 10.0
    max_retries: int = 7
    backoff_factor: float = 2.0
    backoff_jitter: float = 1.0
    max_retry_time: float = 60.0
    insecure_tls: bool = False
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    #: the ``Authorization`` header value; never shown by ``repr``
    authorization: str | None = field(default=None, repr=False)

    @property
    def auth_kind(self) -> str:
        """``"basic"``, ``"bearer"`` or ``"none"``: what is sent, without the secret."""
        if self.authorization is None:
            return "none"
        return self.authorization.split(" ", 1)[0].lower()

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        uri_credentials: tuple[str, str] | None = None,
    ) -> HttpSettings:
        """Settings from ``environ`` (default ``os.environ``); a malformed value
        raises InvalidParameterError naming the variable."""
        env = os.environ if environ is None else environ

        def get(name: str, alias: bool = True) -> str | None:
            """``AUTOLOG_<name>``, else (``alias``) ``MLFLOW_<name>``."""
            value = env.get(f"AUTOLOG_{name}")
            if value is None and alias:
                value = env.get(f"MLFLOW_{name}")
            return value

        def number(name: str, default: float, alias: bool = True, lo: float = 0) -> float:
            text = get(name, alias)
            if text is None or not text.strip():
                return default
            try:
                value = float(text)
            except ValueError:
                value = float("nan")
            if not value >= lo:  # NaN fails too
                raise InvalidParameterError(
                    f"AUTOLOG_{name}={text!r}: expected a number >= {lo:g}"
                ) from None
            return value

        def flag(name: str) -> bool:
            text = (get(name) or "").strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise InvalidParameterError(f"AUTOLOG_{name}={text!r}: expected true or false")

        user, password = get("TRACKING_USERNAME"), get("TRACKING_PASSWORD")
        token = get("TRACKING_TOKEN")
        if user and password is not None:
            authorization: str | None = _basic(user, password)
        elif token:
            authorization = f"Bearer {token}"
        elif uri_credentials is not None:
            authorization = _basic(*uri_credentials)
        else:
            authorization = None
        insecure = flag("TRACKING_INSECURE_TLS")
        ca_bundle = get("TRACKING_SERVER_CERT_PATH") or None
        if insecure and ca_bundle:
            raise InvalidParameterError(
                "AUTOLOG_TRACKING_INSECURE_TLS and AUTOLOG_TRACKING_SERVER_CERT_PATH are both "
                "set: trust a CA bundle or skip verification, not both"
            )
        retries = number("HTTP_REQUEST_MAX_RETRIES", 7)
        if retries != int(retries):
            raise InvalidParameterError(
                f"AUTOLOG_HTTP_REQUEST_MAX_RETRIES={retries!r}: expected a whole number"
            )
        return cls(
            timeout=number("HTTP_REQUEST_TIMEOUT", 120.0, lo=0.001),
            connect_timeout=number("HTTP_CONNECT_TIMEOUT", 10.0, False, lo=0.001),
            max_retries=int(retries),
            backoff_factor=number("HTTP_REQUEST_BACKOFF_FACTOR", 2.0),
            backoff_jitter=number("HTTP_REQUEST_BACKOFF_JITTER", 1.0),
            max_retry_time=number("HTTP_REQUEST_MAX_RETRY_TIME", 60.0, False),
            insecure_tls=insecure,
            ca_bundle=ca_bundle,
            client_cert=get("TRACKING_CLIENT_CERT_PATH") or None,
            client_key=get("TRACKING_CLIENT_KEY_PATH", False) or None,
            authorization=authorization,
        )
