"""Which process this is, as a tag every new run records, and whether one still runs.

``autolog.process`` = ``host:pid:start`` (the start time, in clock ticks since
boot, tells a reused pid apart): :func:`process_tag` for the runs this process
creates (once per pid: a forked child gets its own), :func:`process_alive`
for ``autolog gc``'s question. A leaf of the tracking API (stdlib only, cheap:
every new run asks for the tag; :mod:`autolog.tracking.context` adds it).
"""

from __future__ import annotations

import functools
import os

__all__ = ["PROCESS_TAG", "pid_alive", "process_alive", "process_tag"]

#: the tag naming the process that created a run: ``host:pid:start``
PROCESS_TAG = "autolog.process"


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: split after it
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else ""


def _hostname() -> str:
    # os.uname() is what socket.gethostname() reads on POSIX, without importing
    # socket (every new run asks for this tag)
    return os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")


@functools.cache
def _tag_of(pid: int) -> str:
    return f"{_hostname()}:{pid}:{_start_ticks(pid)}"


def process_tag() -> str:
    """This process, as the ``autolog.process`` tag of the runs it creates
    (computed once per process: a forked child gets its own)."""
    return _tag_of(os.getpid())


def process_alive(tag: str) -> bool | None:
    """Whether the process a tag names still runs: True / False on this host,
    None when it cannot be told (another host, a malformed tag)."""
    parts = tag.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid_text, start = parts
    if host != _hostname():
        return None
    return pid_alive(int(pid_text), start)


def pid_alive(pid: int, start: str = "") -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    if start and _start_ticks(pid) not in ("", start):
        return False  # the pid was reused by a later process
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet is dead too."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] == b"Z"
