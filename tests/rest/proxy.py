"""A small HTTP-aware TCP proxy for fault injection between client and server.

It forwards each request to the upstream server and, by the rules it is
given, either relays the answer, or **drops the connection after the server
answered** (the server committed; only the answer is lost), or answers itself
with a given status (503 with ``Retry-After``, ...) without forwarding.
``seen`` counts the requests that reached the upstream, per path.

Only what the REST client sends is understood: ``Content-Length`` bodies and
``Content-Length`` or chunked answers on keep-alive connections.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


def pipe(
    source: socket.socket, target: socket.socket, delay: Callable[[], float] | None = None
) -> None:
    """Copy ``source`` to ``target`` until either closes, then shut both down so
    the other direction ends too. ``delay()`` (read before each chunk, so it can
    change while connections are open) is how many seconds to wait first."""
    try:
        while data := source.recv(65536):
            if delay is not None and (seconds := delay()):
                time.sleep(seconds)
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class Rule:
    """For requests whose path contains ``path``: the next ``times`` of them are
    ``"drop"``-ped after upstream answered, or answered ``"status"`` locally."""

    path: str
    action: str  # "drop" | "status"
    times: int = 1
    status: int = 503
    headers: str = ""


def _read_head(conn: socket.socket, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer.extend(chunk)
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    del buffer[:end]
    return head


def _read_exact(conn: socket.socket, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buffer.extend(chunk)
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _read_body(conn: socket.socket, buffer: bytearray, head: bytes) -> bytes:
    if (_header(head, b"transfer-encoding") or b"").lower() == b"chunked":
        body = bytearray()
        while True:
            while b"\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError("closed mid-chunk")
                buffer.extend(chunk)
            line_end = buffer.index(b"\r\n")
            size = int(bytes(buffer[:line_end]).split(b";")[0], 16)
            raw = bytes(buffer[: line_end + 2])
            del buffer[: line_end + 2]
            data = _read_exact(conn, buffer, size + 2)
            body.extend(raw + data)
            if size == 0:
                return bytes(body)
    length = int(_header(head, b"content-length") or 0)
    return _read_exact(conn, buffer, length)


class FaultProxy:
    """``with FaultProxy(upstream_port) as proxy:`` then point the client at ``proxy.url``."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.rules: list[Rule] = []
        self.seen: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.connections = 0  # accepted from the client
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()

    def add(self, rule: Rule) -> None:
        with self._lock:
            self.rules.append(rule)

    def _rule_for(self, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.path in path:
                    rule.times -= 1
                    return rule
        return None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        inbound, outbound = bytearray(), bytearray()
        try:
            while True:
                head = _read_head(client, inbound)
                if head is None:
                    return
                body = _read_body(client, inbound, head)
                path = head.split(b" ", 2)[1].decode()
                rule = self._rule_for(path)
                if rule is not None and rule.action == "status":
                    extra = rule.headers.encode()
                    client.sendall(
                        b"HTTP/1.1 %d Injected\r\nContent-Length: 0\r\n%s\r\n"
                        % (rule.status, extra)
                    )
                    continue
                upstream.sendall(head + body)
                answer_head = _read_head(upstream, outbound)
                if answer_head is None:
                    return
                answer = _read_body(upstream, outbound, answer_head)
                with self._lock:
                    self.seen[path.split("?")[0]] += 1
                if rule is not None and rule.action == "drop":
                    with self._lock:
                        self.dropped[path.split("?")[0]] += 1
                    return  # the server committed and answered; the client hears nothing
                client.sendall(answer_head + answer)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()
