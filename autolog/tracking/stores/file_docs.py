"""The ``meta.json`` documents of a file store and the lock on its root folder.

A document is replaced atomically (temporary file in the same folder, then
``os.replace``), so a reader sees the old or the new one, never half; each
version is parsed once. The lock (``fcntl.flock`` on ``<root>/.lock``) is what
makes two processes creating one new experiment name end with one experiment.
See ``file.py`` for the whole layout.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autolog.tracking.artifact_repository import temporary_name

__all__ = ["DocumentCache", "RootLock"]

_Version = tuple[int, int, int]  # (inode, mtime_ns, size): changes whenever the file does

# One field a line, as readable as indent=1 for these flat documents, through
# the C encoder (json's indent makes it fall back to the Python one: 2x slower)
_ENCODE = json.JSONEncoder(separators=(",\n ", ": ")).encode
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC  # os.open adds O_CLOEXEC


class DocumentCache:
    """Reads and atomic writes of JSON documents, each version parsed once.

    The cache is per store object: another process's write shows as a new
    version (a new inode, from its ``os.replace``) and is read again.
    """

    def __init__(self, *, fsync: bool = False):
        self.fsync = fsync
        self._parsed: dict[str, tuple[_Version, dict]] = {}

    def write(self, path: str | Path, doc: dict) -> None:
        """Replace ``path`` atomically (temp file in the same folder + rename).

        The document is encoded before the temporary file exists (an encoding
        error leaves nothing behind) and written in one ``write()``; its version
        is the temporary file's ``fstat`` (a rename changes neither the inode,
        the mtime nor the size), so nothing is read back after the rename."""
        path = os.fspath(path)
        data = _ENCODE(doc).encode()
        folder, name = os.path.split(path)
        tmp = temporary_name(folder, name)
        try:
            fd = os.open(tmp, _CREATE_FLAGS, 0o666)
            try:
                view = memoryview(data)
                while view:  # after a short write the rest, or the disk's error
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fsync(fd)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        self._parsed[path] = ((st.st_ino, st.st_mtime_ns, st.st_size), doc)

    def read(self, path: str | Path) -> dict | None:
        """A JSON document, parsed once per version (inode, mtime, size); None if absent.

        Hot paths pass ``str`` paths: pathlib costs a third of a cold search."""
        path = os.fspath(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        with open(path, "rb") as f:
            doc = json.loads(f.read())
        self._parsed[path] = (version, doc)
        return doc

    def clear(self) -> None:
        self._parsed.clear()


class RootLock:
    """Exclusive across processes (``flock`` on ``<root>/.lock``) and across the
    threads that share ``thread_lock``; re-entrant within this process."""

    def __init__(self, root: Path, thread_lock: threading.RLock):
        self.root = root
        self._thread_lock = thread_lock
        self._depth = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth:  # a second flock from this process would deadlock
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / ".lock", "a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
