"""The faults of the matrix, each real where it can be (ARCHITECTURE.md rules 1, 2).

- :class:`FaultyStore`: any store, raising :class:`TransientStoreError` (what a
  lost connection or a locked database raises) on every call, or on one call
  in ten, while ``active``;
- :class:`SmallDisk`: a tmpfs mounted for the test (we run as root, here and in
  CI): filled for ENOSPC, remounted read-only for an unwritable tracking path;
- :class:`Forwarder`: a TCP forwarder in front of the tracking server, closed
  (the server is down) or delaying every byte (the server is slow: the
  client's timeouts fire);
- :func:`buggy_logging`: every data write an integration makes raises, as a
  bug in one of our handlers or callbacks would.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from autolog.errors import TransientStoreError
from autolog.tracking.stores.base import AbstractStore
from tests.rest.proxy import pipe

# -- a store that fails ---------------------------------------------------------------


class FaultyStore(AbstractStore):
    """``inner`` with a fault switch: while ``active``, calls raise
    TransientStoreError, all of them (``every=1``) or one in ``every``.

    ``batch()`` is the inner store's, so the writer's transactions are real: a
    call failing inside one rolls the whole batch back.
    """

    def __init__(self, inner: AbstractStore, every: int = 1):
        self.inner = inner
        self.every = every
        self.active = False
        self.calls = 0
        self.raised = 0

    def _check(self, name: str) -> None:
        if not self.active:
            return
        self.calls += 1
        if self.calls % self.every == 0:
            self.raised += 1
            raise TransientStoreError(f"injected fault in {name} (call {self.calls})")

    def __getattr__(self, name: str) -> Any:  # attributes a store adds (uri, spooling, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def batch(self):
        return self.inner.batch()

    def close(self) -> None:
        self.inner.close()


def _forwarding(name: str):
    def call(self: FaultyStore, *args: Any, **kwargs: Any) -> Any:
        self._check(name)
        return getattr(self.inner, name)(*args, **kwargs)

    call.__name__ = name
    return call


for _name in (
    "create_experiment",
    "get_experiment",
    "get_experiment_by_name",
    "search_experiments",
    "delete_experiment",
    "restore_experiment",
    "rename_experiment",
    "set_experiment_tag",
    "create_run",
    "get_run",
    "update_run_info",
    "delete_run",
    "restore_run",
    "log_batch",
    "delete_tag",
    "get_metric_history",
    "search_runs",
):
    setattr(FaultyStore, _name, _forwarding(_name))
FaultyStore.__abstractmethods__ = frozenset()


# -- a small real disk ---------------------------------------------------------------


class SmallDisk:
    """A tmpfs of ``size`` at ``path``: ``fill()`` makes it full (ENOSPC),
    ``read_only()`` makes it unwritable (EROFS); ``heal()`` undoes either."""

    def __init__(self, path: Path, size: str = "4m"):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        _sh("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        self._filler: Path | None = None
        self._read_only = False

    def fill(self) -> None:
        self._filler = self.path / "filler"
        chunk = b"\0" * 65536
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                    if len(chunk) == 1:
                        break
                    chunk = chunk[: len(chunk) // 2]
        finally:
            os.close(fd)

    def read_only(self) -> None:
        _sh("mount", "-o", "remount,ro", str(self.path))
        self._read_only = True

    def heal(self) -> None:
        if self._read_only:
            _sh("mount", "-o", "remount,rw", str(self.path))
            self._read_only = False
        if self._filler is not None:
            self._filler.unlink()
            self._filler = None

    def unmount(self) -> None:
        _sh("umount", "-l", str(self.path))


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


# -- a server that is down or slow ---------------------------------------------------


class Forwarder:
    """TCP forwarding from ``port`` (127.0.0.1) to ``upstream_port``.

    ``up()`` listens, ``down()`` closes the listener and every open connection
    (the client then gets "connection refused"); ``delay`` seconds are waited
    before each chunk goes either way (a slow server: timeouts fire)."""

    def __init__(self, upstream_port: int, port: int):
        self.upstream_port = upstream_port
        self.port = port
        self.delay = 0.0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> Forwarder:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:  # wakes the thread blocked in accept(): only then is the port free
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        pipe(source, target, lambda: self.delay)


# -- a bug of ours -------------------------------------------------------------------


class InjectedBug(RuntimeError):
    """What a bug in one of our handlers or callbacks raises (the matrix's fault)."""
