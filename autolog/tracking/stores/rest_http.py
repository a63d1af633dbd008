"""The HTTP transport of the REST store and of the proxied-artifact repository.

One :class:`HttpClient` per server (``http_client_for``), shared by the store
and every artifact repository of that server: one keep-alive connection pool
(urllib3, imported only here, when an ``http(s)`` URI is first used).

What a request does when it fails:

- connection refused / reset / dropped, a timeout, or HTTP 408, 429, 500, 502,
  503, 504: retried with exponential backoff plus jitter (``Retry-After`` is
  honoured), at most ``max_retries`` times and within ``max_retry_time``
  seconds in all; then :class:`~autolog.errors.TransientStoreError`, which
  the background writer retries later. Retrying a write is safe because every
  write the REST store sends is idempotent on the server (see ``rest.py``).
- any other error status: the typed error of its JSON ``error_code``
  (:func:`error_for`), never retried.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

from autolog.errors import (
    InvalidFilterError,
    InvalidParameterError,
    ParamOverwriteError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    RunStateError,
    StoreError,
    TransientStoreError,
)
from autolog.tracking.stores.rest_config import HttpSettings, split_credentials
from autolog.tracking.stores.uris import mask_uri

__all__ = ["RETRY_STATUSES", "HttpClient", "error_for", "http_client_for", "single_attempt"]

#: statuses that may pass: the official client retries exactly these too
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_BACKOFF = 120.0
_USER_AGENT = "autolog-rest-client"
#: the classes an error body's "autolog_error" field may name (autolog server sends it)
_NAMED_ERRORS: dict[Any, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        InvalidFilterError,
        InvalidParameterError,
        ParamOverwriteError,
        ResourceAlreadyExistsError,
        ResourceNotFoundError,
        RunStateError,
    )
}
_attempts = threading.local()  # .single: requests of this thread try once


@contextlib.contextmanager
def single_attempt() -> Iterator[None]:
    """Inside the block, requests made by this thread try once and raise
    TransientStoreError at the first failure that a retry might fix (no
    backoff): for a caller that keeps failed writes itself (the offline spool)."""
    previous = getattr(_attempts, "single", False)
    _attempts.single = True
    try:
        yield
    finally:
        _attempts.single = previous


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("autolog")
    except Exception:
        return "unknown"


def error_for(status: int, body: bytes, what: str) -> Exception:
    """The typed error for an error answer, with its ``http_status``: the class
    that autolog server names (``autolog_error``), else the one of the JSON
    ``error_code``, else the one of the status.

    ``what`` names the request (method and masked URL) for the message."""
    error = _error_for(status, body, what)
    error.http_status = status  # type: ignore[attr-defined]
    return error


def _error_for(status: int, body: bytes, what: str) -> Exception:
    code, message = "", ""
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        code = str(payload.get("error_code") or "INTERNAL_ERROR")
        message = str(payload.get("message") or "")
    text = f"{message or f'HTTP {status}'} ({what}: HTTP {status} {code})".strip()
    named = _NAMED_ERRORS.get(payload.get("autolog_error")) if isinstance(payload, dict) else None
    if named is not None:  # autolog server names the exact class
        return named(text)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return ResourceNotFoundError(text)
    if code == "RESOURCE_ALREADY_EXISTS":
        return ResourceAlreadyExistsError(text)
    if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE"):
        # mlflow server's wording, and ours (validation.check_param_unchanged)
        if "Changing param values is not allowed" in message or (
            "already logged with value" in message and "cannot be changed" in message
        ):
            return ParamOverwriteError(text)
        return InvalidParameterError(text)
    if status in (401, 403):
        return StoreError(f"the server refused the credentials, check AUTOLOG_TRACKING_*: {text}")
    if status == 404 and not code:
        return StoreError(f"the server has no such endpoint (is it a tracking server?): {text}")
    if status in RETRY_STATUSES:
        return TransientStoreError(text)
    return StoreError(text)


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class HttpClient:
    """Requests to one server (``base_url``: scheme, host, optional path prefix).

    Thread-safe; one keep-alive pool. ``display_url`` is the URL with any
    password masked: the only form of it that goes into messages.
    """

    def __init__(self, base_url: str, settings: HttpSettings | None = None):
        try:
            import urllib3
        except ImportError:
            raise StoreError(
                "an http(s) tracking URI needs urllib3: pip install 'autolog[rest]'"
            ) from None

        bare, credentials = split_credentials(base_url.rstrip("/"))
        parts = urlsplit(bare)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidParameterError(
                f"tracking URI {mask_uri(base_url)!r}: expected http(s)://host"
            )
        self.base_url = bare
        self.display_url = mask_uri(base_url)
        self.settings = settings or HttpSettings.from_env(uri_credentials=credentials)
        s = self.settings
        pool_kw: dict[str, Any] = {"maxsize": 16, "block": False}
        if parts.scheme == "https":
            pool_kw["cert_reqs"] = "CERT_NONE" if s.insecure_tls else "CERT_REQUIRED"
            if s.ca_bundle:
                pool_kw["ca_certs"] = s.ca_bundle
            if s.client_cert:
                pool_kw["cert_file"] = s.client_cert
            if s.client_key:
                pool_kw["key_file"] = s.client_key
            if s.insecure_tls:
                pool_kw["assert_hostname"] = False
        self._urllib3 = urllib3
        #: what reading a streamed answer raises when the connection breaks
        self.transport_errors: tuple[type[BaseException], ...] = (
            urllib3.exceptions.HTTPError,
            OSError,
        )
        self._pool = urllib3.PoolManager(num_pools=4, **pool_kw)
        self._timeout = urllib3.Timeout(connect=s.connect_timeout, read=s.timeout)
        # no retries inside urllib3 (ours are below), but redirects are followed;
        # urllib3 drops Authorization when a redirect leaves the host
        self._no_retry = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5)
        self._headers = {"User-Agent": f"{_USER_AGENT}/{_version()}"}
        if s.authorization is not None:
            self._headers["Authorization"] = s.authorization

    def __repr__(self) -> str:
        return f"HttpClient({self.display_url!r}, auth={self.settings.auth_kind})"

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        """The full URL of ``path`` (which starts with ``/``) under the base URL."""
        url = self.base_url + path
        if query:
            items = [(k, v) for k, v in query.items() if v is not None]
            url += "?" + urlencode(items, doseq=True)
        return url

    # -- requests ----------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """One JSON API call: ``body`` (a dict, for POST) goes as JSON; the answer's
        JSON object is returned (``{}`` for an empty body). ``max_retries``
        overrides the setting for this call."""
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        response = self.request(
            method, self.url(path, query), headers, lambda: data, max_retries=max_retries
        )
        try:
            raw = response.data
        finally:
            response.release_conn()
        if not raw.strip():
            return {}
        try:
            answer = json.loads(raw)
        except ValueError:
            if raw.strip() == b"OK":
                return {}
            raise StoreError(
                f"{method} {self._display(path)}: the answer is not JSON ({raw[:80]!r})"
            ) from None
        if not isinstance(answer, dict):
            raise StoreError(f"{method} {self._display(path)}: the answer is not a JSON object")
        return answer

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: Callable[[], bytes | IO[bytes] | None] = lambda: None,
        *,
        stream: bool = False,
        ok: Callable[[int], bool] = lambda status: 200 <= status < 300,
        max_retries: int | None = None,
    ) -> Any:
        """Send ``method url`` with the retries described in the module docstring;
        ``body()`` is called for each attempt (a fresh file object for a
        streamed upload). Returns the urllib3 response of the first answer that
        ``ok`` accepts (``stream``: not yet read; the caller reads it and calls
        ``release_conn()``); any other answer raises its typed error."""
        s = self.settings
        retries = s.max_retries if max_retries is None else max_retries
        if getattr(_attempts, "single", False):
            retries = 0
        all_headers = {**self._headers, **(headers or {})}
        what = f"{method} {self._display_full(url)}"
        deadline = time.monotonic() + s.max_retry_time
        attempt = 0
        while True:
            payload = body()
            try:
                response = self._pool.request(
                    method,
                    url,
                    body=payload,
                    headers=all_headers,
                    retries=self._no_retry,
                    timeout=self._timeout,
                    preload_content=not stream,
                )
            except self._urllib3.exceptions.HTTPError as error:
                reason = getattr(error, "reason", None) or error
                if isinstance(reason, self._urllib3.exceptions.SSLError):
                    raise StoreError(f"{what}: TLS failed ({reason})") from None
                failure: str = f"{type(reason).__name__}: {reason}"
                wait_hint = None
            else:
                if ok(response.status):
                    return response
                raw = response.data if response.status >= 300 else b""
                response.release_conn()
                if response.status not in RETRY_STATUSES:
                    raise error_for(response.status, raw, what)
                failure = f"HTTP {response.status}"
                wait_hint = _retry_after(response.headers.get("Retry-After"))
            finally:
                if hasattr(payload, "close"):
                    payload.close()
            attempt += 1
            delay = self.backoff(attempt, wait_hint)
            remaining = deadline - time.monotonic()
            if attempt > retries or delay > remaining:
                error = TransientStoreError(
                    f"{what}: the server could not be reached or kept failing after "
                    f"{attempt} attempt(s) ({failure}); will be retried later"
                )
                error.retry_after = wait_hint  # type: ignore[attr-defined]
                raise error
            if delay > 0:
                time.sleep(delay)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): none before
        the first, then ``factor * 2**(n-1)`` capped at 120 s, plus jitter;
        at least what ``Retry-After`` asked."""
        s = self.settings
        delay = 0.0 if attempt == 1 else min(_MAX_BACKOFF, s.backoff_factor * 2 ** (attempt - 1))
        if s.backoff_jitter > 0:
            delay += random.uniform(0, s.backoff_jitter)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _display(self, path: str) -> str:
        return self.display_url + path

    def _display_full(self, url: str) -> str:
        if url.startswith(self.base_url):
            return self.display_url + url[len(self.base_url) :]
        return mask_uri(url)

    def close(self) -> None:
        self._pool.clear()


_clients: dict[str, HttpClient] = {}
_clients_lock = threading.Lock()


def http_client_for(base_url: str) -> HttpClient:
    """The process's client of ``base_url`` (created on first use, settings read
    from the environment then): the store and the artifact repositories of one
    server share its connection pool."""
    key = base_url.rstrip("/")
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = HttpClient(key)
    return client


def forget_http_clients() -> None:
    """Close and forget every client (settings are read again on next use)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
