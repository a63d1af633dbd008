"""What a part above the tracking API adds to every new run, pushed here by it.

:mod:`autolog.provenance` registers itself at its import (``autolog``'s
``__init__`` imports it): its tags join the system tags of each new run
(:func:`add_tag_source`), and it is told of each run created
(:func:`add_run_started`) to queue what it writes in the background. What
``autolog`` registers are :func:`lazy` stand-ins, which import provenance at
the first run and put its functions in their place (:func:`replace`): every
later run calls them directly. The tracking API calls what is registered
(:mod:`autolog.tracking.context`) and imports none of it. A leaf: it
imports nothing of ours.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "add_run_started",
    "add_tag_source",
    "lazy",
    "replace",
    "run_started_hooks",
    "tag_sources",
]

#: callables returning tags for a new run, called when its creation is written
#: (on the writer thread; later ones win; the run's own tags win over all)
tag_sources: list[Callable[[], dict[str, str]]] = []
#: callables ``hook(state, tags)`` told of each run just created (its creation
#: queued), with the tags it was started with
run_started_hooks: list[Callable[[Any, dict[str, str]], None]] = []


def add_tag_source(source: Callable[[], dict[str, str]]) -> None:
    """Add ``source()``'s tags to the system tags of every new run (once)."""
    if source not in tag_sources:
        tag_sources.append(source)


def add_run_started(hook: Callable[[Any, dict[str, str]], None]) -> None:
    """Call ``hook(state, tags)`` right after each new run's creation is queued (once)."""
    if hook not in run_started_hooks:
        run_started_hooks.append(hook)


def replace(old: Any, new: Callable[..., Any]) -> None:
    """Put ``new`` where ``old`` is registered (as a tag source or a run-started
    hook), in the same place; nothing if ``old`` is not. For a stand-in that
    imports the part it stands for at the first run: the part, once
    imported, is called directly. A list's item assignment is atomic: a run
    starting on another thread calls one or the other."""
    for hooks in (tag_sources, run_started_hooks):
        for i, hook in enumerate(hooks):
            if hook is old:
                hooks[i] = new


def lazy(reference: str) -> Callable[..., Any]:
    """A stand-in for the function ``"module:name"``: its first call imports
    it, puts it where the stand-in is registered, and calls it."""

    def stand_in(*args: Any) -> Any:
        import importlib

        module, _, name = reference.partition(":")
        target = getattr(importlib.import_module(module), name)
        replace(stand_in, target)
        return target(*args)

    stand_in.__qualname__ = f"lazy({reference!r})"
    return stand_in
