"""The objects of a kind that a training loop's stack holds (``plugin.objects_on_stack``).

A plain loop's model lives in the loop's frame (a local, a global, an
attribute of ``self``), so an integration that must find the model a loop
trains looks there first: a few microseconds, where a scan of every object
the garbage collector tracks (``gc.get_objects()``) costs tens of
milliseconds in a process that imported a deep-learning framework.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

# a list, tuple or dict longer than this (a data set, a cache) is not looked into
CONTAINER_LIMIT = 64
_CO_OPTIMIZED = 0x1  # inspect.CO_OPTIMIZED: a function's frame, its f_locals a snapshot
_CACHED_LOCALS = sys.version_info < (3, 13)  # PEP 667: a snapshot kept on the frame


def objects_on_stack(kind: type | tuple[type, ...], frame: FrameType) -> list[Any]:
    """The instances of ``kind`` that the stack from ``frame`` down reaches: each
    frame's locals and globals, the items of the lists, tuples and dicts among
    them (up to ``CONTAINER_LIMIT`` items), and the attributes of the objects
    among them (``self.model``); not deeper. Each object once, in the order met.

    Reading a frame's locals keeps nothing alive: before Python 3.13 the
    snapshot a function frame keeps is emptied again after it is read."""
    found: dict[int, Any] = {}
    seen: set[int] = set()  # the globals already looked at

    def look(namespace: Any) -> None:
        for value in list(namespace.values()):
            cls = type(value)
            if issubclass(cls, kind):
                found[id(value)] = value
                continue
            if cls is list or cls is tuple or cls is dict:
                if len(value) > CONTAINER_LIMIT:
                    continue
                items = value.values() if cls is dict else value
            elif cls.__module__ == "builtins" or not cls.__dictoffset__:
                continue  # no attributes of its own; functions and modules are skipped
            else:
                try:
                    items = object.__getattribute__(value, "__dict__").values()
                except Exception:  # a __dict__ of its own making
                    continue
            for item in list(items):
                if issubclass(type(item), kind):
                    found[id(item)] = item

    while frame is not None:
        namespace = frame.f_globals
        if id(namespace) not in seen:
            seen.add(id(namespace))
            look(namespace)
        namespace = frame.f_locals
        if frame.f_code.co_flags & _CO_OPTIMIZED:
            look(namespace)
            # Before Python 3.13 a function frame's f_locals is a dict kept on
            # the frame, holding every local it was filled with until the
            # function returns: a first batch's logits, say, for the whole
            # training. Emptied, it is as if it had never been filled (every
            # reader of a frame's locals, f_locals, locals() or a trace
            # function's call, fills it from the frame first); unless someone
            # else holds it (a locals() the function kept, a debugger): the
            # references are the frame's, ``namespace`` and getrefcount's argument.
            if _CACHED_LOCALS and type(namespace) is dict and sys.getrefcount(namespace) == 3:
                namespace.clear()
        elif id(namespace) not in seen:  # a module's or class body's own namespace
            seen.add(id(namespace))
            look(namespace)
        namespace = None
        frame = frame.f_back
    return list(found.values())
