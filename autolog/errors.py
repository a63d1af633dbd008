"""The typed errors of autolog: every error we raise is an :class:`AutologError`.

Each subclass also derives from the builtin that a caller would naturally
catch (``ValueError`` for bad input, ``KeyError``-like lookups stay
``AutologError`` only), so ``except ValueError`` keeps working for code that
does not know us.
"""

from __future__ import annotations

__all__ = [
    "AutologError",
    "InvalidParameterError",
    "InvalidFilterError",
    "ParamOverwriteError",
    "ResourceNotFoundError",
    "ResourceAlreadyExistsError",
    "RunStateError",
    "TrackingWriteError",
    "StoreError",
    "TransientStoreError",
    "IntegrationError",
    "ModelError",
    "MissingDependencyError",
    "AutologWarning",
]


class AutologError(Exception):
    """Base class of every error autolog raises on purpose."""


class InvalidParameterError(AutologError, ValueError):
    """A value passed to the API breaks a rule (key, length, type, path)."""


class InvalidFilterError(InvalidParameterError):
    """A search filter or ``order_by`` clause cannot be parsed.

    ``position`` is the 0-based character offset where parsing failed and
    ``expected`` says what the parser wanted there.
    """

    def __init__(self, message: str, *, text: str = "", position: int = -1, expected: str = ""):
        super().__init__(message)
        self.text = text
        self.position = position
        self.expected = expected


class ParamOverwriteError(InvalidParameterError):
    """A param was logged again with a different value (params are immutable)."""


class ResourceNotFoundError(AutologError, LookupError):
    """An experiment, run, artifact or metric does not exist."""


class ResourceAlreadyExistsError(AutologError):
    """An experiment with that name already exists."""


class RunStateError(AutologError):
    """The operation does not fit the run's state (e.g. a second top-level run)."""


class StoreError(AutologError):
    """A backend store could not do what was asked (I/O, database, server)."""


class TransientStoreError(StoreError):
    """The store could not be reached or answered a failure that may pass
    (connection refused or reset, timeout, HTTP 408/429/5xx, a database
    restarting). The background writer retries it, keeping order; any other
    ``AutologError`` from a store is permanent for the item that caused it.
    """


class TrackingWriteError(StoreError):
    """The background writer could not write queued data; it is kept for retry.

    Raised by ``flush()`` / ``end_run()``; ``__cause__`` is the store's error.
    """


class IntegrationError(AutologError):
    """An integration class is invalid, unknown, or failed to patch."""


class ModelError(AutologError):
    """A model cannot be saved or loaded."""


class MissingDependencyError(ModelError, ImportError):
    """A model's framework is not installed; the message names the distribution."""


class AutologWarning(UserWarning):
    """A problem of autolog's own that it recovered from (your training went on)."""
