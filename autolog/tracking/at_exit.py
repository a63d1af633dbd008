"""What the tracking API does at interpreter exit, in a fixed order.

One ``atexit`` handler runs two phases: first ``"runs"`` (the run states end
the active runs and drain the writer: :mod:`autolog.tracking.run_state`), then
``"stores"`` (a store finishes what it holds: the offline spool's last replay).
A store registers here instead of with ``atexit`` itself, whose
last-registered-first order would run it before the runs have ended, and
without reaching up to the runs. A leaf: it imports nothing of ours.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Callable

__all__ = ["PHASES", "at_exit", "cancel"]

PHASES = ("runs", "stores")
_hooks: dict[str, list[Callable[[], None]]] = {phase: [] for phase in PHASES}
_registered = False


def at_exit(phase: str, hook: Callable[[], None]) -> None:
    """Call ``hook()`` at interpreter exit, after every hook of an earlier phase."""
    global _registered
    _hooks[phase].append(hook)
    if not _registered:
        atexit.register(_run)
        _registered = True


def cancel(hook: Callable[[], None]) -> None:
    """Forget ``hook`` (a closed store); no error if it was not registered."""
    for hooks in _hooks.values():
        while hook in hooks:
            hooks.remove(hook)


def _run() -> None:
    for phase in PHASES:
        for hook in list(_hooks[phase]):
            try:
                hook()
            except Exception as error:  # at exit nobody can catch it: say it
                print(f"autolog: exit step {hook!r} failed: {error!r}", file=sys.stderr)
