"""The capture options of :mod:`autolog.provenance`: their defaults, their
environment variables (``AUTOLOG_CAPTURE_*``, ``AUTOLOG_SYSTEM_METRICS*``),
:func:`configure`, and what each costs as measured (``autolog status``).

A leaf: what captures something asks it whether to, and imports nothing else
of provenance for that.
"""

from __future__ import annotations

import os
import threading

from autolog.errors import InvalidParameterError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CAPTURES", "capture_rows", "configure", "options"]

#: option -> (default, environment variable, what it captures, cost per run)
CAPTURES: dict[str, tuple[Any, str, str, str]] = {
    "git": (True, "AUTOLOG_CAPTURE_GIT", "git branch, remote, dirty flag",
            "1st run ~1 ms, then 0"),
    "git_diff": (True, "AUTOLOG_CAPTURE_GIT_DIFF", "provenance/git.diff",
                 "git once per process, background"),
    "max_diff_bytes": (500_000, "AUTOLOG_CAPTURE_MAX_DIFF_BYTES", "cap on the diff", "-"),
    "command": (True, "AUTOLOG_CAPTURE_COMMAND", "sys.argv, masked", "1st run <0.1 ms, then 0"),
    "machine": (True, "AUTOLOG_CAPTURE_MACHINE", "python, OS, CPU, RAM, GPU",
                "1st run ~0.5 ms, then 0"),
    "requirements": (True, "AUTOLOG_CAPTURE_REQUIREMENTS", "provenance/requirements.txt",
                     "once per process, background"),
    "env_vars": (("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "PYTHONHASHSEED"),
                 "AUTOLOG_CAPTURE_ENV_VARS", "allow-listed env variables", "1st run only"),
    "datasets": (True, "AUTOLOG_CAPTURE_DATASETS", "a dataset record per fit's X, y",
                 "per fit 0.1 ms (arrays), 0.3 ms (frame)"),
    "system_metrics": (False, "AUTOLOG_SYSTEM_METRICS", "system/* metrics, sampled",
                       "0.01% of a core at 10 s"),
    "system_metrics_interval": (10.0, "AUTOLOG_SYSTEM_METRICS_INTERVAL",
                                "seconds between samples", "-"),
}  # fmt: skip

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_lock = threading.Lock()
_options: dict[str, Any] | None = None  # read from the environment at first use


def _coerce(name: str, value: Any, source: str) -> Any:
    """``value`` as the type of ``name``'s default, or InvalidParameterError."""
    default = CAPTURES[name][0]
    if isinstance(default, bool):
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, bool):
            return value
    elif isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            number = type(default)(value)
        except ValueError:
            pass
        else:
            if number > 0:
                return number
    raise InvalidParameterError(
        f"capture option {name!r} ({source}) must be {_kind(default)}, got {value!r}"
    )


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, tuple):
        return "a list of environment variable names"
    return f"a positive {type(default).__name__}"


def _from_environment() -> dict[str, Any]:
    values = {}
    for name, (default, variable, _what, _cost) in CAPTURES.items():
        raw = os.environ.get(variable)
        values[name] = default if raw is None else _coerce(name, raw, f"${variable}")
    return values


def options() -> dict[str, Any]:
    """The capture options in force: defaults, then the ``AUTOLOG_CAPTURE_*``
    environment variables (read once), then :func:`configure`."""
    global _options
    if _options is None:
        with _lock:
            if _options is None:
                _options = _from_environment()
    return _options


def configure(**changes: Any) -> dict[str, Any]:
    """Switch captures on or off for the runs started from now on; returns the
    options in force. Names are the keys of :data:`CAPTURES` (``git``,
    ``git_diff``, ``max_diff_bytes``, ``command``, ``machine``, ``requirements``,
    ``env_vars``, ``datasets``, ``system_metrics``, ``system_metrics_interval``).
    An unknown name or a wrong type raises InvalidParameterError and changes
    nothing.

    >>> configure(system_metrics=True, system_metrics_interval=5)["system_metrics"]
    True
    """
    global _options
    unknown = sorted(set(changes) - set(CAPTURES))
    if unknown:
        raise InvalidParameterError(
            f"unknown capture option(s) {unknown}; the options are {sorted(CAPTURES)}"
        )
    clean = {k: _coerce(k, v, "configure()") for k, v in changes.items()}
    with _lock:
        _options = {**(_options or _from_environment()), **clean}  # a new dict: see run_tags
    return dict(_options)


def capture_rows() -> list[tuple[str, str, str, str, str]]:
    """One row per capture option for ``autolog status``: (option, value in
    force, environment variable, what it captures, its measured cost)."""
    current = options()
    rows = []
    for name, (_default, variable, what, cost) in CAPTURES.items():
        value = current[name]
        shown = ",".join(value) if isinstance(value, tuple) else str(value).lower()
        rows.append((name, shown or "-", variable, what, cost))
    return rows


def _reset() -> None:
    """Read the environment again at the next :func:`options` (tests)."""
    global _options
    with _lock:
        _options = None
