"""Tracking URIs as text: their scheme, their local path, and how to show them.

A leaf of :mod:`autolog.tracking.stores` (it imports no store): the stores
and the package's ``store_for_uri`` use it alike, and every place that shows
a URI masks it with :func:`mask_uri` first.
"""

from __future__ import annotations

from pathlib import Path

from autolog.errors import InvalidParameterError, StoreError

__all__ = ["expand_home", "file_uri_to_path", "mask_uri", "require_uri", "uri_scheme"]


def uri_scheme(uri: str) -> str:
    head, sep, _rest = uri.partition(":")
    # "C:\\runs" is a Windows path, not a URI with scheme "c"
    if not sep or len(head) == 1 or not head.replace("+", "").isalnum():
        return ""
    return head.lower()


_SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "secret", "token", "key")


def mask_uri(uri: str) -> str:
    """``uri`` fit to print: the password of ``user:password@host`` and the values
    of query parameters that hold secrets (``password=``, ``token=``, ...) become
    ``***``. Use it wherever a URI is shown (errors, warnings, summaries)::

        >>> mask_uri("postgresql://me:s3cret@db:5432/runs")
        'postgresql://me:***@db:5432/runs'
    """
    if not isinstance(uri, str) or ("@" not in uri and "=" not in uri):
        return uri  # the common case (paths, file:, sqlite:) costs no parsing
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            name, eq, _value = pair.partition("=")
            secret = eq and any(word in name.lower() for word in _SECRET_QUERY_KEYS)
            pairs.append(f"{name}=***" if secret else pair)
        query = "&".join(pairs)
    if netloc == parts.netloc and query == parts.query:
        return uri
    return parts._replace(netloc=netloc, query=query).geturl()


def require_uri(uri: object) -> str:
    """A tracking URI that names something: blank ones are an error (they would
    silently make the current folder the store)."""
    if not isinstance(uri, str):
        raise InvalidParameterError(
            f"tracking URI {uri!r} must be a string or a path, not {type(uri).__name__}"
        )
    if not uri.strip():
        raise InvalidParameterError(
            f"tracking URI {uri!r} is blank: give a path (./mlruns), sqlite:///mlflow.db, "
            "postgresql://user:password@host:5432/db or http(s)://host:port"
        )
    if "\x00" in uri or "%00" in uri:  # no path or URL can hold a NUL
        raise InvalidParameterError(f"tracking URI {mask_uri(uri)!r} holds a NUL character")
    return uri


def file_uri_to_path(uri: str) -> str:
    """The local path of a ``file:`` URI (percent-decoded) or of a plain path."""
    if uri_scheme(uri) != "file":
        return uri
    from urllib.parse import unquote, urlsplit

    rest = uri[len("file:") :]
    if rest.startswith("//"):
        try:
            parts = urlsplit(uri)
        except ValueError as exc:  # "file://[": an unclosed IPv6 host
            raise InvalidParameterError(f"file URI {mask_uri(uri)!r} is malformed: {exc}") from None
        if parts.netloc not in ("", "localhost"):
            raise StoreError(
                f"file URI {mask_uri(uri)!r} names host {mask_uri(parts.netloc)!r}; "
                "only local paths work"
            )
        return unquote(parts.path)
    return unquote(rest)


def expand_home(path: str) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; a home that cannot be
    found (``~nobody-here``, no ``HOME``) is an InvalidParameterError, not
    pathlib's RuntimeError."""
    try:
        return Path(path).expanduser()
    except RuntimeError as exc:
        raise InvalidParameterError(f"path {path!r}: {exc}") from None
