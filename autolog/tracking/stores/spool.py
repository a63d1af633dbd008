"""The offline spool: an append-only log of store writes on local disk.

When the tracking server cannot be reached, the writes meant for it are kept
here until they can be replayed (:mod:`autolog.tracking.stores.spool_store`
decides when, :mod:`autolog.tracking.stores.spool_replay` replays). This
module is the disk format only, and knows nothing of stores or HTTP.

Layout: one folder per tracking URI under ``AUTOLOG_SPOOL_DIR`` (default
``$XDG_CACHE_HOME/autolog/spool``, else ``~/.cache/autolog/spool``), named by a
hash of the URI without its credentials (the ``uri`` file in it says which;
no secret is ever written)::

    <spool dir>/<hash>/uri                       the tracking URI, credentials removed
    <spool dir>/<hash>/<owner>.lock              held (flock) while its process lives
    <spool dir>/<hash>/<owner>.<n>.seg           that process's segments, in order
    <spool dir>/<hash>/<owner>.<n>.seg.cursor    how far replay has got in it
    <spool dir>/<hash>/idmap.jsonl               client run id -> server run id
    <spool dir>/<hash>/rejected.jsonl            records the server refused for good

Each process appends to segments of its own (``owner`` = start time, pid and a
random token), so several processes never interleave in one file; the lock
tells ``autolog sync`` which segments a running process still owns.

A record is ``magic (2) | length (4) | seq (8) | crc32 (4) | payload``; the
crc covers ``seq`` and the payload, ``seq`` counts up per owner from 1, the
payload is compact JSON. Appends are one ``write`` and one ``fsync`` per
call (the writer makes one call per drain and store operation), so whatever
an append returned for survives a crash or SIGKILL. A reader stops at the
first record that is incomplete or fails its checksum: a torn tail (the
process died inside a write) costs only the record being written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autolog.errors import InvalidParameterError, StoreError, TransientStoreError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Cursor",
    "Segment",
    "Spool",
    "SpoolError",
    "SpoolFullError",
    "spool_root",
]

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB per tracking URI
SEGMENT_BYTES = 8 << 20  # a segment is closed past this size (replayed ones are deleted whole)

_HEADER = struct.Struct("<HIQI")  # magic, payload length, seq, crc32
_MAGIC = 0xA15F
_CURSOR = struct.Struct("<QQI")  # offset, last seq, crc32 of the two
_SEGMENT_NAME = re.compile(r"(?P<owner>\d{20}-\d+-[0-9a-f]{8})\.(?P<index>\d{6})\.seg")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)


class SpoolError(StoreError):
    """The spool cannot be written or read (a folder that is not writable, a full disk)."""


class SpoolFullError(SpoolError, TransientStoreError):
    """The spool holds ``AUTOLOG_SPOOL_MAX_BYTES`` already. Nothing is dropped: the
    background writer keeps the data queued and tries again (it is transient: it
    passes as replay makes room), and ``flush()`` raises it as the cause of a
    ``TrackingWriteError``."""


def spool_root(environ: Any = None) -> Path:
    """Where spools live: ``AUTOLOG_SPOOL_DIR``, else the per-user cache folder."""
    env = os.environ if environ is None else environ
    configured = env.get("AUTOLOG_SPOOL_DIR")
    if configured:
        return Path(configured).expanduser()
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "autolog" / "spool"


def max_bytes_setting(environ: Any = None) -> int:
    """``AUTOLOG_SPOOL_MAX_BYTES`` (``500MB``, ``2GiB``, ``1048576``), default 1 GiB."""
    env = os.environ if environ is None else environ
    text = env.get("AUTOLOG_SPOOL_MAX_BYTES")
    if text is None or not text.strip():
        return DEFAULT_MAX_BYTES
    match = _SIZE.fullmatch(text)
    if match is None or float(match.group(1)) <= 0:
        raise InvalidParameterError(
            f"AUTOLOG_SPOOL_MAX_BYTES={text!r}: expected a size such as 500MB, 2GiB or 1048576"
        )
    scale = 1024 ** " kmgt".index((match.group(2) or " ").lower())
    return int(float(match.group(1)) * scale)


def _uri_key(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Segment:
    """One segment file: ``owner`` and ``index`` order it."""

    path: Path
    owner: str
    index: int

    @property
    def cursor_path(self) -> Path:
        return self.path.with_name(self.path.name + ".cursor")


@dataclass(frozen=True)
class Cursor:
    """Replay position in a segment: the byte ``offset`` after record ``seq``."""

    offset: int = 0
    seq: int = 0


class Spool:
    """The spool of one tracking URI (``uri``: credentials already removed).

    Appending is for the process's own segments (:meth:`append`); reading,
    cursors and deletion work on any segment (the replay of another process's
    segments first takes its owner lock: :meth:`try_lock_owner`).
    """

    def __init__(self, uri: str, root: Path | None = None, max_bytes: int | None = None):
        self.uri = uri
        self.root = Path(root) if root is not None else spool_root()
        self.path = self.root / _uri_key(uri)
        self.max_bytes = max_bytes_setting() if max_bytes is None else max_bytes
        self._lock = threading.Lock()
        self._pid = -1  # the process the open segment belongs to (a fork starts over)
        self._owner = ""
        self._owner_fd = -1
        self._fd = -1
        self._segment: Segment | None = None
        self._size = 0  # bytes written to the open segment
        self._seq = 0
        self._index = 0
        self._committed: dict[Path, int] = {}  # own segments: bytes known complete
        self._total_at = 0.0  # when _total was counted from the folder
        self._total = 0

    # -- folder ----------------------------------------------------------------
    def _ensure_folder(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            marker = self.path / "uri"
            if not marker.exists():
                _write_atomically(marker, self.uri.encode("utf-8"))
        except OSError as error:
            raise SpoolError(f"cannot create the spool folder {self.path}: {error}") from error

    def segments(self) -> list[Segment]:
        """Every segment in the folder, in replay order (owner, then index)."""
        found = []
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        for name in names:
            match = _SEGMENT_NAME.fullmatch(name)
            if match:
                found.append(Segment(self.path / name, match["owner"], int(match["index"])))
        return sorted(found, key=lambda s: (s.owner, s.index))

    @property
    def owner(self) -> str:
        """This process's owner name ("" until it has appended)."""
        return self._owner if self._pid == os.getpid() else ""

    @property
    def last_seq(self) -> int:
        """The seq of the last record this process appended (0 if none)."""
        return self._seq if self._pid == os.getpid() else 0

    def total_bytes(self, fresh: bool = False) -> int:
        """Bytes held by every segment of this URI and the artifact files spooled
        with them (``blobs/``), recounted at most once a second."""
        now = time.monotonic()
        if fresh or now - self._total_at > 1.0:
            paths = [s.path for s in self.segments()]
            blobs = self.path / "blobs"
            paths += [blobs / name for name in (os.listdir(blobs) if blobs.is_dir() else ())]
            total = 0
            for path in paths:
                try:
                    total += path.stat().st_size
                except FileNotFoundError:
                    pass
            self._total, self._total_at = total, now
        return self._total

    # -- appending (this process) -------------------------------------------------
    def append(self, payloads: list[dict[str, Any]]) -> int:
        """Append records and fsync them: durable when this returns. Returns the
        last seq. Raises SpoolFullError past ``max_bytes`` (nothing written) and
        SpoolError when the disk refuses."""
        with self._lock:
            if self._pid != os.getpid():
                self._start_owner()
            frames = []
            seq = self._seq
            for payload in payloads:
                seq += 1
                data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
                seq_bytes = seq.to_bytes(8, "little")
                crc = zlib.crc32(data, zlib.crc32(seq_bytes))
                frames.append(_HEADER.pack(_MAGIC, len(data), seq, crc))
                frames.append(data)
            blob = b"".join(frames)
            full = self.total_bytes() + len(blob) > self.max_bytes
            if full and self.total_bytes(fresh=True) + len(blob) > self.max_bytes:
                raise SpoolFullError(
                    f"the spool of {self.uri} at {self.path} is full "
                    f"({self._total:,} of AUTOLOG_SPOOL_MAX_BYTES={self.max_bytes:,} bytes); "
                    "the writes stay queued until replay makes room"
                )
            try:
                if self._fd < 0 or self._size >= SEGMENT_BYTES:
                    self._open_segment()
                os.write(self._fd, blob)
                os.fsync(self._fd)
            except OSError as error:
                self._abandon_segment()
                raise SpoolError(f"cannot write the spool at {self.path}: {error}") from error
            self._size += len(blob)
            self._total += len(blob)
            self._seq = seq
            assert self._segment is not None
            self._committed[self._segment.path] = self._size
            return seq

    def _start_owner(self) -> None:
        """Become a new owner: in a new process (or a forked child) nothing of the
        previous owner's open files is reused."""
        for inherited in (self._fd, self._owner_fd):  # a forked child's copies of them
            if inherited >= 0:
                try:
                    os.close(inherited)  # the parent's lock stays held by the parent's copy
                except OSError:
                    pass
        self._ensure_folder()
        owner = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            fd = os.open(self.path / f"{owner}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            _flock(fd, blocking=True)
        except OSError as error:
            raise SpoolError(f"cannot lock the spool at {self.path}: {error}") from error
        self._pid, self._owner, self._owner_fd = os.getpid(), owner, fd
        self._fd, self._segment, self._size, self._seq, self._index = -1, None, 0, 0, 0
        self._committed = {}

    def _open_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._index += 1
        path = self.path / f"{self._owner}.{self._index:06d}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment = Segment(path, self._owner, self._index)
        self._size = 0
        _fsync_folder(self.path)

    def _abandon_segment(self) -> None:
        # A failed write may have left part of a record: the next append starts a
        # new segment, and readers stop at the torn record of this one.
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = -1

    def close_segment(self) -> None:
        """Close this process's open segment (the next append starts a new one),
        so a fully replayed spool can be deleted whole."""
        with self._lock:
            if self._pid == os.getpid():
                self._abandon_segment()

    def is_open(self, segment: Segment) -> bool:
        """True for the segment this process is appending to."""
        return self._pid == os.getpid() and self._fd >= 0 and self._segment == segment

    def committed(self, segment: Segment) -> int | None:
        """Bytes of ``segment`` known complete, for this process's own segments."""
        if self._pid != os.getpid():
            return None
        return self._committed.get(segment.path)

    def unreplayed(self, owner: str) -> bool:
        """True when a segment of ``owner`` holds records after its cursor."""
        for segment in self.segments():
            if segment.owner != owner:
                continue
            end = self.committed(segment)
            if end is None:
                try:
                    end = segment.path.stat().st_size
                except FileNotFoundError:
                    continue
            if end > self.cursor(segment).offset:
                return True
        return False

    # -- reading -------------------------------------------------------------------
    def read(self, segment: Segment, cursor: Cursor) -> Iterator[tuple[Cursor, dict[str, Any]]]:
        """The records of ``segment`` after ``cursor``, each with the cursor that
        points past it. Stops at the end, or at a torn or corrupt record."""
        limit = self.committed(segment)
        try:
            with open(segment.path, "rb") as file:
                file.seek(cursor.offset)
                data = file.read() if limit is None else file.read(max(0, limit - cursor.offset))
        except FileNotFoundError:
            return
        position, seq = 0, cursor.seq
        while position + _HEADER.size <= len(data):
            magic, length, record_seq, crc = _HEADER.unpack_from(data, position)
            start = position + _HEADER.size
            payload = data[start : start + length]
            if magic != _MAGIC or len(payload) < length:
                return
            if zlib.crc32(payload, zlib.crc32(record_seq.to_bytes(8, "little"))) != crc:
                return
            if seq and record_seq != seq + 1:
                return  # not the record the cursor expects: stop rather than guess
            position, seq = start + length, record_seq
            yield Cursor(cursor.offset + position, seq), json.loads(payload)

    def torn_bytes(self, segment: Segment) -> int:
        """Bytes at the end of ``segment`` that are no complete record."""
        end = Cursor()
        for after, _payload in self.read(segment, Cursor()):
            end = after
        try:
            return segment.path.stat().st_size - end.offset
        except FileNotFoundError:
            return 0

    # -- cursors ---------------------------------------------------------------------
    def cursor(self, segment: Segment) -> Cursor:
        """Where replay stopped in ``segment`` (the start if never, or if the cursor
        file is damaged: replay is idempotent, so starting over is safe)."""
        try:
            raw = segment.cursor_path.read_bytes()
        except FileNotFoundError:
            return Cursor()
        if len(raw) != _CURSOR.size:
            return Cursor()
        offset, seq, crc = _CURSOR.unpack(raw)
        if zlib.crc32(raw[:16]) != crc:
            return Cursor()
        return Cursor(offset, seq)

    def save_cursor(self, segment: Segment, cursor: Cursor, durable: bool = False) -> None:
        """Record the replay position (one small ``pwrite``; ``durable`` also fsyncs)."""
        head = struct.pack("<QQ", cursor.offset, cursor.seq)
        raw = head + struct.pack("<I", zlib.crc32(head))
        fd = os.open(segment.cursor_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, raw, 0)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, segment: Segment) -> None:
        """Remove a replayed segment and its cursor."""
        for path in (segment.path, segment.cursor_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self._committed.pop(segment.path, None)
        self._total_at = 0.0

    # -- owners ------------------------------------------------------------------------
    def try_lock_owner(self, owner: str) -> int | None:
        """Take the lock of ``owner`` if its process is gone: returns the lock's fd
        (release with :meth:`release_owner`), or None while its process runs."""
        if owner == self.owner:
            return None
        try:
            fd = os.open(self.path / f"{owner}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            _flock(fd, blocking=False)
        except OSError:
            os.close(fd)
            return None
        return fd

    def release_owner(self, owner: str, fd: int) -> None:
        """Release an owner lock taken by :meth:`try_lock_owner`; a dead owner with
        no segment left is forgotten."""
        if not any(s.owner == owner for s in self.segments()):
            try:
                (self.path / f"{owner}.lock").unlink()
            except FileNotFoundError:
                pass
        os.close(fd)

    # -- side files ----------------------------------------------------------------------
    def append_line(self, name: str, entry: dict[str, Any]) -> None:
        """Append one JSON line to a side file (``idmap.jsonl``, ``rejected.jsonl``), fsynced."""
        self._ensure_folder()
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_lines(self, name: str) -> list[dict[str, Any]]:
        """The entries of a side file (a torn last line is skipped)."""
        try:
            text = (self.path / name).read_text("utf-8")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries

    @classmethod
    def all_in(cls, root: Path | None = None) -> list[Spool]:
        """A spool object for each tracking URI that has a folder under ``root``."""
        root = Path(root) if root is not None else spool_root()
        spools = []
        try:
            entries = sorted(root.iterdir())
        except FileNotFoundError:
            return []
        for entry in entries:
            try:
                uri = (entry / "uri").read_text("utf-8")
            except OSError:
                continue
            if _uri_key(uri) == entry.name:
                spools.append(cls(uri, root=root))
        return spools


def _flock(fd: int, blocking: bool) -> None:
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))


def _fsync_folder(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
