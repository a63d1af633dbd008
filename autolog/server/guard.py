"""The checks in front of every route (the UI's too): the ``Host`` header, then
the credentials. A pure ASGI middleware: streamed bodies pass untouched.

``Host`` is checked against the allowed hosts so that a page on another site
cannot reach a server on 127.0.0.1 through a DNS name it rebinds (403).
Credentials are checked when an auth file is given (401 without or with wrong
ones). ``/health`` (``OK``, nothing else) stays open to any Host and without
credentials: load balancers probe it by IP address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from autolog.server.auth import Authenticator
from autolog.tracking.wire import dumps

__all__ = ["Guard", "HostPolicy"]

_OPEN_PATHS = frozenset({"/health"})


def _split_host(value: str) -> tuple[str, str]:
    """``host[:port]`` (IPv6 in brackets) as (lower-case host, port or '')."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest.lstrip(":")
    host, _, port = value.partition(":") if value.count(":") == 1 else (value, "", "")
    return host.rstrip("."), port


class HostPolicy:
    """Which ``Host`` header values are accepted.

    Patterns: ``*`` (any), ``*.example.com`` (that domain and below), ``name``
    (any port), ``name:port``. Without patterns: loopback names, this machine's
    names, the bind address and any private or loopback IP address."""

    def __init__(self, patterns: Iterable[str] | None, bind_host: str = "127.0.0.1"):
        self.any = False
        self.exact: set[tuple[str, str]] = set()
        self.suffixes: list[str] = []
        self.private_ips = patterns is None
        if patterns is None:
            names = {"localhost", "127.0.0.1", "::1", bind_host.lower()}
            try:
                names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
            except OSError:
                pass
            patterns = sorted(n for n in names if n and n not in ("0.0.0.0", "::"))
        for pattern in patterns:
            pattern = pattern.strip().lower()
            if not pattern:
                continue
            if pattern == "*":
                self.any = True
            elif pattern.startswith("*."):
                self.suffixes.append(pattern[1:])
            else:
                self.exact.add(_split_host(pattern))

    def allows(self, header: str | None) -> bool:
        if self.any:
            return True
        if not header:
            return False
        host, port = _split_host(header)
        if (host, port) in self.exact or (host, "") in self.exact:
            return True
        if any(host.endswith(s) or host == s[1:] for s in self.suffixes):
            return True
        if self.private_ips:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            return address.is_private or address.is_loopback
        return False


class Guard:
    """ASGI middleware: Host policy, then the authenticator (if any)."""

    def __init__(self, app, hosts: HostPolicy, auth: Authenticator | None = None):
        self.app = app
        self.hosts = hosts
        self.auth = auth
        if auth is None:
            self._challenge = b""
        else:
            self._challenge = b'Basic realm="autolog"' if auth.has_users else b"Bearer"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # lifespan; the app has no websocket routes
            return await self.app(scope, receive, send)
        host = authorization = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        if not self.hosts.allows(host) and scope["path"] not in _OPEN_PATHS:
            return await _refuse(send, 403, "PERMISSION_DENIED", f"Host {host!r} is not allowed")
        if (
            self.auth is not None
            and scope.get("method") != "OPTIONS"  # CORS preflights carry no credentials
            and scope["path"] not in _OPEN_PATHS
            and not self.auth.check(authorization)
        ):
            message = "Missing credentials" if not authorization else "Invalid credentials"
            extra = [(b"www-authenticate", self._challenge)]
            return await _refuse(send, 401, "UNAUTHENTICATED", message, extra)
        return await self.app(scope, receive, send)


async def _refuse(send, status: int, code: str, message: str, extra=()) -> None:
    body = dumps({"error_code": code, "message": message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
