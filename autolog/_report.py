"""Our own failures, reported (rule 1): once per integration per process, as a
warning, or raised under ``AUTOLOG_TESTING=1``.

A leaf module: the patch manager, the tracking core's helpers (provenance,
system metrics) and every integration report through it.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings

from autolog.errors import AutologWarning

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["guard", "guarded", "report_error"]


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _testing() -> bool:
    return os.environ.get("AUTOLOG_TESTING", "") not in ("", "0", "false")


def report_error(integration: str, exc: BaseException, where: str, *, silent: bool = False) -> None:
    """Report one of *our* failures: raise under AUTOLOG_TESTING, else warn once
    per integration per process (a failing callback must not warn every epoch)."""
    if _testing():
        raise exc
    with _warned_lock:
        if integration in _warned:
            return
        _warned.add(integration)
    if not silent:
        warnings.warn(
            f"autolog: the {integration!r} integration failed {where} "
            f"({type(exc).__name__}: {exc}); your training was not affected. "
            "Further failures of this integration in this process are not reported.",
            AutologWarning,
            stacklevel=3,
        )


class guard:
    """Context manager for code of ours that runs inside the user's training,
    such as the body of an injected callback: our exceptions are reported
    (see :func:`report_error`) and swallowed; KeyboardInterrupt passes.

    ``with guard("keras", "in on_epoch_end"): ...``. A class, not a generator
    context manager, because it runs once per epoch and per batch.
    """

    __slots__ = ("integration", "where")

    def __init__(self, integration: str, where: str = "in a training callback"):
        self.integration = integration
        self.where = where

    def __enter__(self) -> guard:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        report_error(self.integration, exc, self.where)
        return True


def guarded(
    integration: str, where: str | None = None, *, default: Any = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for code of ours that the framework calls during training (the
    hooks of an injected callback): the body runs as under :class:`guard`, and
    a failure returns ``default`` (``False`` for a hook whose return value
    means "stop training")::

        class EpochLogger:
            @guarded("toyml")                 # reported as "in on_epoch_end"
            def on_epoch_end(self, epoch, logs): ...
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        label = where or f"in {fn.__name__}"

        @functools.wraps(fn)
        def guarded_method(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                report_error(integration, exc, label)
                return default

        return guarded_method

    return decorate
