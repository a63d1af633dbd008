"""How many outermost training calls are in progress in this process (all threads).

The patch manager brackets each outermost training call with :func:`began`
and :func:`ended`; the background writer (:mod:`autolog.tracking.writer`)
drains less often while any is in progress, and at once when the last ends.
A leaf module, so that the patch manager does not import the writer and the
stores before the first logged call needs them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

in_progress = 0
_lock = threading.Lock()
#: set when the writer module loads: called when the last training call ends
on_idle: Callable[[], None] | None = None


def began() -> None:
    global in_progress
    with _lock:
        in_progress += 1


def ended() -> None:
    global in_progress
    with _lock:
        in_progress -= 1
        idle = in_progress <= 0
    callback = on_idle
    if idle and callback is not None:
        callback()


def _after_fork_in_child() -> None:
    # the child runs none of the parent's calls (the forking thread's own call
    # ends in the parent); its lock may have been held by another thread
    global in_progress, _lock
    in_progress, _lock = 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
