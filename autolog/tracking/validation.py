"""Input rules of the tracking API (ARCHITECTURE.md rule 7), checked at the boundary.

Every function here either returns the value in the form a store persists
(``str`` for params and tags, ``float`` for metric values, ``int`` for steps and
timestamps) or raises :class:`~autolog.errors.InvalidParameterError` /
:class:`~autolog.errors.ParamOverwriteError` with the offending key in the
message. Nothing is truncated or dropped silently.

What no store can hold is refused here, not left to fail in the background
writer: steps and timestamps outside the 64-bit integer range, NUL characters
in keys, values and names, numbers too large for a float.

The checks are cheap on purpose: ``log_metric`` calls them on the training
thread. Keys that passed are remembered (:data:`checked_keys`, the validation
cache): the hot path tests ``key in checked_keys`` and skips the rules.
"""

from __future__ import annotations

import math
import operator
from numbers import Real
from typing import Any

from autolog.errors import InvalidParameterError, ParamOverwriteError
from autolog.tracking import secrets as _secrets
from autolog.tracking.secrets import mask_value, plain_keys  # secrets never stored (issue 18)

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "INT64_MAX",
    "INT64_MIN",
    "check_key",
    "check_param_unchanged",
    "checked_keys",
    "validate_artifact_path",
    "validate_experiment_name",
    "validate_key",
    "validate_metric_value",
    "validate_param_value",
    "require_run_id",
    "validate_run_id",
    "validate_step",
    "validate_tag_value",
    "validate_timestamp",
    "validated_tags",
]

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
_RUN_ID_HEX = frozenset("0123456789abcdef")
#: steps and timestamps are 64-bit integers in every store (SQL BIGINT)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def _shorten(value: str, limit: int = 80) -> str:
    """A value short enough to quote in an error message."""
    return value if len(value) <= limit else value[:limit] + f"... ({len(value)} characters)"


def _path_escape_reason(path: str) -> str | None:
    """Why ``path`` (a key or an artifact path) could leave the run folder, or None."""
    if "\x00" in path:
        return "contains a NUL character"
    if "\\" in path:
        return "contains a backslash (use '/' to separate folders)"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":" and path[0].isalpha()):
        return "is an absolute path"
    if ".." in path.split("/"):
        return "contains a '..' path component"
    return None


def validate_key(key: Any, kind: str = "key") -> str:
    """A metric / param / tag key: a non-empty string of at most 250 characters
    that stays inside the run folder (no ``..``, no absolute path)."""
    if not isinstance(key, str):
        raise InvalidParameterError(f"{kind} {key!r} must be a string, not {type(key).__name__}")
    if not key or key.isspace():
        raise InvalidParameterError(f"{kind} {key!r} must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidParameterError(
            f"{kind} {_shorten(key)!r} is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    if any(ord(c) < 32 for c in key):
        raise InvalidParameterError(f"{kind} {key!r} contains a control character")
    reason = _path_escape_reason(key)
    if reason is not None:
        raise InvalidParameterError(f"{kind} {key!r} {reason}")
    return key


#: keys that passed :func:`validate_key` (any kind): the hot path skips the rules for them
checked_keys: set[str] = set()
_MAX_CHECKED_KEYS = 10_000  # a process logging ever new keys stops remembering them


def check_key(key: Any, kind: str) -> str:
    """:func:`validate_key`, remembering the key in :data:`checked_keys`."""
    validate_key(key, kind)
    if len(checked_keys) < _MAX_CHECKED_KEYS:
        checked_keys.add(key)
    return key


def validated_tags(tags: Any) -> dict[str, str]:
    """Tags (a mapping) as stored: keys checked, values :func:`validate_tag_value`'d."""
    clean = {}
    for key, value in tags.items():
        if type(key) is not str or key not in checked_keys:
            check_key(key, "tag key")
        clean[key] = _stored_text(key, value, MAX_TAG_VALUE_LENGTH, "tag")
    return clean


def validate_experiment_name(name: Any) -> str:
    """A non-empty experiment name without NUL characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(f"experiment name {name!r} must be a non-empty string")
    if "\x00" in name:
        raise InvalidParameterError(f"experiment name {name!r} contains a NUL character")
    return name


def _refuse_string_value(key: str, text: str, limit: int, kind: str) -> None:
    """Raise for a param or tag value that holds a NUL character or is longer
    than ``limit`` (the callers test both first: the common value costs no call)."""
    if "\x00" in text:
        raise InvalidParameterError(
            f"{kind} value of {key!r} contains a NUL character (\\x00), which stores "
            f"cannot hold (value starts {_shorten(text, 40)!r})"
        )
    if len(text) > limit:
        raise InvalidParameterError(
            f"{kind} value of {key!r} is {len(text)} characters long; the limit is {limit} "
            f"(value starts {_shorten(text, 40)!r})"
        )


def _stored_text(key: str, value: Any, limit: int, kind: str) -> str:
    """A param or tag value as stored: ``str(value)``, refused with a NUL or over
    ``limit``, secrets masked. The common value (a key found not secret, no
    ``@``, shorter than any secret of the environment: ``secrets.needs_mask``,
    inline) costs no further call."""
    text = value if type(value) is str else str(value)
    if len(text) > limit or "\x00" in text:
        _refuse_string_value(key, text, limit, kind)
    if key in plain_keys and "@" not in text and len(text) < _secrets.shortest_env_secret:
        return text
    return mask_value(key, text)


def validate_param_value(key: str, value: Any) -> str:
    """``str(value)``, at most 6000 characters; secrets masked (``mask_value``)."""
    return _stored_text(key, value, MAX_PARAM_VALUE_LENGTH, "param")


def validate_tag_value(key: str, value: Any) -> str:
    """``str(value)``, at most 8000 characters; secrets masked (``mask_value``)."""
    return _stored_text(key, value, MAX_TAG_VALUE_LENGTH, "tag")


def validate_metric_value(key: str, value: Any) -> float:
    """A real number as float (NaN and ±inf kept). Python and numpy numbers and
    0-d arrays / tensors are accepted; strings, complex numbers, None and
    arrays with more than one element are rejected."""
    if type(value) is float:
        return value
    if isinstance(value, Real):  # int, bool, numpy scalars, Fraction, Decimal-free reals
        return _as_float(key, value)
    # 0-d numpy arrays and torch / tf tensors: take the element, then check it.
    if not isinstance(value, (str, bytes)) and getattr(value, "ndim", None) == 0:
        item = getattr(value, "item", None)
        if item is not None:
            element = item()
            if isinstance(element, Real):
                return _as_float(key, element)
    raise InvalidParameterError(
        f"metric {key!r} must be a real number, got {type(value).__name__} {_shorten(repr(value))}"
    )


def _as_float(key: str, value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int (or Fraction) beyond the largest float
        raise InvalidParameterError(
            f"metric {key!r}: value {_shorten(repr(value))} is too large for a float "
            "(about 1.8e308 at most)"
        ) from None


def _int64(key: str, what: str, value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidParameterError(
            f"{what} of metric {key!r} is {value}, outside the 64-bit integer range "
            f"[{INT64_MIN}, {INT64_MAX}] that stores hold"
        )
    return value


def validate_step(key: str, step: Any) -> int:
    """The step of a metric point: a 64-bit integer (``None`` means 0)."""
    if step is None:
        return 0
    if type(step) is int:
        return _int64(key, "step", step)
    if isinstance(step, (bool, float, str)):
        raise InvalidParameterError(
            f"step of metric {key!r} must be an integer, got {type(step).__name__} {step!r}"
        )
    try:
        index = operator.index(step)  # numpy integers, integer 0-d tensors
    except TypeError:
        raise InvalidParameterError(
            f"step of metric {key!r} must be an integer, got {type(step).__name__} {step!r}"
        ) from None
    return _int64(key, "step", index)


def validate_timestamp(key: str, timestamp: Any) -> int:
    """A metric timestamp in integer milliseconds since the epoch (64-bit)."""
    if type(timestamp) is int and 0 <= timestamp <= INT64_MAX:
        return timestamp
    if isinstance(timestamp, float) and math.isfinite(timestamp) and 0 <= timestamp < 2**63:
        return int(timestamp)
    if not isinstance(timestamp, (bool, str, int)):
        try:
            value = operator.index(timestamp)
        except TypeError:
            pass
        else:
            if 0 <= value <= INT64_MAX:
                return value
    raise InvalidParameterError(
        f"timestamp of metric {key!r} must be non-negative milliseconds since the epoch "
        f"(a 64-bit integer), got {timestamp!r}"
    )


def check_param_unchanged(key: str, old_value: str, new_value: str) -> None:
    """Params are immutable: the same value again is fine, a different one is an error."""
    if old_value != new_value:
        raise ParamOverwriteError(
            f"param {key!r} was already logged with value {_shorten(old_value)!r}; "
            f"it cannot be changed to {_shorten(new_value)!r} (params are immutable: "
            "log a new key, a metric, or start a new run)"
        )


def validate_artifact_path(path: Any, kind: str = "artifact path") -> str:
    """A relative POSIX path inside the run's artifact root (``None`` is not allowed)."""
    if type(path) is str and path in _valid_artifact_paths:  # each fit writes the same names
        return path
    if not isinstance(path, str):
        raise InvalidParameterError(f"{kind} {path!r} must be a string")
    if not path.strip("/"):
        raise InvalidParameterError(f"{kind} {path!r} must name a file or folder")
    reason = _path_escape_reason(path)
    if reason is not None:
        raise InvalidParameterError(f"{kind} {path!r} {reason}; it must stay inside the run")
    if len(_valid_artifact_paths) < 1000:
        _valid_artifact_paths.add(path)
    return path


_valid_artifact_paths: set[str] = set()  # paths found valid (a set: lookups are atomic)


def require_run_id(run_id: Any) -> str:
    """A run id given to a read: a string (whether such a run exists, whatever
    its spelling, is the store's to answer: ResourceNotFoundError)."""
    if not isinstance(run_id, str):
        raise InvalidParameterError(f"run id {run_id!r} must be a string")
    return run_id


def validate_run_id(run_id: Any) -> str:
    """32 lowercase hex characters."""
    if not (isinstance(run_id, str) and len(run_id) == 32 and _RUN_ID_HEX.issuperset(run_id)):
        raise InvalidParameterError(f"run id {run_id!r} is not 32 lowercase hex characters")
    return run_id
