"""What integrations share: params from framework objects, epoch metrics, summaries.

Every built-in integration turns framework settings into params, framework
metric dicts into metric points and early-stopping state into a summary; the
rules for that live here once, so that the same thing is named and cut the
same way whatever the framework (STYLE.md: no copy-paste across integrations).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter_ns

# integrations import this module at autolog(): keep typing out; type
# checkers honour this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_PARAM_LENGTH",
    "OVERHEAD_METRIC",
    "OVERHEAD_PCT_METRIC",
    "SUMMARY_FILE",
    "TRAINING_MS_METRIC",
    "add_overhead",
    "counted_overhead",
    "TRUNCATED_PARAMS_TAG",
    "class_path",
    "copy_callbacks",
    "flatten",
    "log_early_stopping",
    "log_epoch_metrics",
    "log_later",
    "log_metrics_later",
    "log_training_params",
    "learning_rate_metrics",
    "log_model_summary",
    "log_overhead",
    "numeric",
    "optimizer_params",
    "optimizer_prefix",
    "param_value",
    "settings_params",
]

MAX_PARAM_LENGTH = 6000
_MARKER = "...[truncated]"
TRUNCATED_PARAMS_TAG = "autolog.truncated_params"
#: the artifact that holds a model's printed summary, for every framework
SUMMARY_FILE = "model_summary.txt"
SKIPPED_PARAMS_TAG = "autolog.skipped_params"


def param_value(value: Any) -> tuple[str, bool]:
    """``str(value)``, cut to the param limit with a marker; and whether it was cut."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= MAX_PARAM_LENGTH:
        return text, False
    return text[: MAX_PARAM_LENGTH - len(_MARKER)] + _MARKER, True


def param_values(params: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Each of ``params`` as :func:`param_value` makes it, and the keys it cut."""
    values: dict[str, str] = {}
    cut: list[str] = []
    for key, value in params.items():
        values[key], was_cut = param_value(value)
        if was_cut:
            cut.append(key)
    return values, cut


def flatten(params: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested mappings to one level: ``{"opt": {"lr": 0.1}}`` -> ``{"opt.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def log_training_params(params: Mapping[str, Any], run_id: str | None) -> list[str]:
    """Log framework params: stringified, long values cut with a marker (autologging
    must not fail on a huge value), the cut keys listed in the tag
    ``autolog.truncated_params``.

    The run may hold some of these params already with other values: a user's
    run that an earlier training call logged to (fine-tuning with fewer
    epochs). Params are immutable, so such a param keeps its first value
    instead of failing the user's training; the skipped keys are returned and
    listed in the tag ``autolog.skipped_params``."""
    from autolog.errors import ParamOverwriteError
    from autolog.tracking import fluent

    values, cut = param_values(params)
    if cut:
        fluent.set_tag(TRUNCATED_PARAMS_TAG, ",".join(sorted(cut)), run_id=run_id)
    if not values:
        return []
    try:
        fluent.log_params(values, run_id=run_id)  # the usual case: one call, nothing changed
        return []
    except ParamOverwriteError:
        pass  # log_params logs none of a batch with a change: redo it key by key
    skipped = []
    for key, value in values.items():
        try:
            fluent.log_param(key, value, run_id=run_id)
        except ParamOverwriteError:
            skipped.append(key)
    fluent.set_tag(SKIPPED_PARAMS_TAG, ",".join(sorted(skipped)), run_id=run_id)
    return skipped


def numeric(value: Any) -> float | None:
    """A framework value as a float (numpy scalars, 0-d tensors), or None if it is not one."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def log_epoch_metrics(
    metrics: Mapping[str, Any], step: int, run_id: str | None, prefix: str = ""
) -> None:
    """One enqueue for all of an epoch's numeric values; non-numeric ones are skipped.

    A key the tracking API refuses (a user callback put a 300-character name
    in the logs) is left out with one warning, instead of costing the epoch's
    other metrics. Its time counts to the run's self-overhead (:func:`add_overhead`).

    The per-epoch path of every integration: keys are checked once per
    process, floats pass as they are, and the whole epoch is one
    ``log_metrics`` call (a few microseconds for a handful of keys)."""
    start = perf_counter_ns()
    values = {}
    valid = _valid_keys
    for key, value in metrics.items():
        if type(value) is not float:
            value = numeric(value)
            if value is None:
                continue
        name = f"{prefix}{key}" if prefix or type(key) is not str else key
        if name not in valid and not _valid_key(name):
            continue
        values[name] = value
    if values:
        _fluent().log_metrics(values, step=step, run_id=run_id)
    if run_id is not None:
        _overhead_ns[run_id] = _overhead_ns.get(run_id, 0) + perf_counter_ns() - start


def log_metrics_later(
    compute: Callable[[], Mapping[str, Any]],
    step: int,
    run_id: str,
    integration: str,
) -> None:
    """Log the metrics that ``compute()`` returns, calling it on the writer thread:
    :func:`log_later` for metrics alone."""
    log_later(lambda: {"metrics": compute()}, run_id, integration, step)


def log_later(
    compute: Callable[[], Mapping[str, Mapping[str, Any]]],
    run_id: str,
    integration: str,
    step: int = 0,
) -> None:
    """Log what ``compute()`` returns, calling it on the writer thread (or in a
    ``flush()`` that drains the queue, after this call returned): a mapping
    with any of ``"params"``, ``"metrics"`` (at ``step``) and ``"tags"``, each
    a mapping. For what costs more to compute than the training thread should
    pay (a pass over the training data, a walk over a fitted model's
    settings), from a copy taken now: all of it one write, so a short fit
    hands its whole record to the writer in one piece.

    The points are timestamped now and go to ``run_id`` in order with what was
    logged to it before (so before its end, if it ends after this call).
    Params are made as :func:`log_training_params` makes them (stringified,
    long values cut, a param the run holds with another value skipped, both
    listed in their tags), checked against the run's params when written;
    metrics are numeric values only; a key the tracking API refuses is left
    out (with one warning). ``compute`` must use only what it was given,
    never an object that training goes on changing. What it raises is
    reported as a failure of ``integration`` (once per process, as in a
    callback) and logs nothing: it never fails a ``flush()`` (outside the
    test mode, ``AUTOLOG_TESTING``, which raises it there). It is called
    once, even if the writer writes the batch again."""
    run_state = _fluent().run_state
    state = run_state.target(run_id)
    run_state.check_writable(state)
    if type(step) is not int:
        raise TypeError(f"step must be an int, not {type(step).__name__}")
    when = run_state.now_ms()
    store, target_run = state.store, state.run_id
    computed: list[Any] = []  # the batch, once: a rolled-back batch runs this again

    def log_computed() -> None:
        if not computed:
            computed.append(_computed_batch(compute, integration, state, when, step))
        metrics, params, tags = computed[0]
        if metrics or params or tags:
            store.log_batch(target_run, metrics=metrics, params=params, tags=tags)

    run_state.get_writer().submit(store, log_computed, target_run, what="computed values")


def _computed_batch(
    compute: Callable[[], Mapping[str, Mapping[str, Any]]],
    integration: str,
    state: Any,
    when: int,
    step: int,
) -> tuple[list[Any], list[Any], list[Any]]:
    """``(metrics, params, tags)`` entities of what ``compute()`` returned."""
    from autolog._report import report_error
    from autolog.tracking.entities import Metric, Param, RunTag

    try:
        values = compute()
        metrics = []
        for key, value in (values.get("metrics") or {}).items():
            number = value if type(value) is float else numeric(value)
            if number is None or type(key) is not str:
                continue
            if key in _valid_keys or _valid_key(key):
                metrics.append(Metric(key, number, when, step))
        tags = _checked_tags(values.get("tags") or {})
        params = _new_params(state, values.get("params") or {}, tags)
    except Exception as exc:
        report_error(integration, exc, "while computing what it logs on the writer thread")
        return [], [], []
    return (
        metrics,
        [Param(k, v) for k, v in params.items()],
        [RunTag(k, v) for k, v in tags.items()],
    )


def _checked_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """The tags the tracking API takes (one it refuses left out, with a warning)."""
    from autolog.errors import InvalidParameterError
    from autolog.tracking.validation import validated_tags

    try:
        return validated_tags(tags)
    except InvalidParameterError:
        checked = {}
        for key, value in tags.items():
            try:
                checked.update(validated_tags({key: value}))
            except InvalidParameterError as exc:
                _warn_once(str(key), exc, "tag")
        return checked


def _new_params(state: Any, params: Mapping[str, Any], tags: dict[str, str]) -> dict[str, str]:
    """:func:`log_training_params` on the writer thread: the params of ``params``
    that the run does not hold yet, recorded in its state (``tags`` gets the
    truncated and skipped keys)."""
    from autolog.errors import InvalidParameterError, ParamOverwriteError
    from autolog.tracking.run_state import new_params

    values, cut = param_values(params)
    try:
        new = new_params(state, values.items())  # the usual case: all new, all valid
    except (InvalidParameterError, ParamOverwriteError):
        new, skipped = {}, []
        for key, value in values.items():
            try:
                new.update(new_params(state, [(key, value)]))
            except ParamOverwriteError:
                skipped.append(key)
            except InvalidParameterError as exc:
                _warn_once(str(key), exc, "param")
        if skipped:
            tags[SKIPPED_PARAMS_TAG] = ",".join(sorted(skipped))
    if cut:
        tags[TRUNCATED_PARAMS_TAG] = ",".join(sorted(cut))
    state.params.update(new)
    return new


def _valid_key(name: str) -> bool:
    from autolog.errors import InvalidParameterError
    from autolog.tracking.validation import validate_key

    try:
        validate_key(name, "metric key")
    except InvalidParameterError as exc:
        _warn_once(name, exc)
        return False
    _valid_keys.add(name)
    return True


_fluent_module: Any = None


def _fluent() -> Any:
    """:mod:`autolog.tracking.fluent`, imported on first use and kept: an import
    statement costs about a microsecond on the per-epoch path."""
    global _fluent_module
    if _fluent_module is None:
        from autolog.tracking import fluent

        _fluent_module = fluent
    return _fluent_module


_valid_keys: set[str] = set()
_refused_keys: set[tuple[str, str]] = set()


def _warn_once(key: str, exc: Exception, kind: str = "metric") -> None:
    if (kind, key) not in _refused_keys:
        import warnings

        from autolog.errors import AutologWarning

        _refused_keys.add((kind, key))
        warnings.warn(f"autolog: {kind} {key!r} not logged: {exc}", AutologWarning, stacklevel=3)


def log_early_stopping(
    run_id: str | None,
    *,
    stopped_epoch: int | None = None,
    restored_epoch: int | None = None,
    stopped_iteration: int | None = None,
    best_iteration: int | None = None,
    best_score: Any = None,
    monitor: str | None = None,
    patience: int | None = None,
) -> None:
    """The early-stopping summary, named alike for every framework:
    metrics ``stopped_epoch``, ``restored_epoch``, ``stopped_iteration`` (boosting
    libraries count iterations, not epochs), ``best_iteration``,
    ``best_score`` and params ``early_stopping_monitor`` / ``..._patience``."""
    from autolog.tracking import fluent

    metrics = {
        "stopped_epoch": stopped_epoch,
        "restored_epoch": restored_epoch,
        "stopped_iteration": stopped_iteration,
        "best_iteration": best_iteration,
        "best_score": numeric(best_score) if best_score is not None else None,
    }
    values = {k: float(v) for k, v in metrics.items() if v is not None and not _nan(v)}
    if values:
        fluent.log_metrics(values, run_id=run_id)
    params = {"early_stopping_monitor": monitor, "early_stopping_patience": patience}
    params = {k: v for k, v in params.items() if v is not None}
    if params:
        log_training_params(params, run_id)


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def class_path(obj: Any) -> str:
    """``module.QualName`` of an object's class (what ``estimator_class`` tags hold)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def copy_callbacks(callbacks: Iterable[Any] | None, *ours: Any) -> list[Any]:
    """A new list: the user's callbacks followed by ours (the user's list is never changed)."""
    return [*(callbacks or ()), *ours]


def settings_params(
    obj: Any, keys: Iterable[str], prefix: str, *, skip_none: bool = True
) -> dict[str, Any]:
    """``{prefix + key: obj.key}``: the settings of a framework object (an
    early-stopping callback, an LR scheduler) as params, named alike everywhere
    (``early_stopping_patience``, ``reduce_lr_on_plateau_factor``)."""
    out = {}
    for key in keys:
        value = getattr(obj, key, None)
        if value is not None or not skip_none:
            out[f"{prefix}{key}"] = value
    return out


def log_model_summary(text: str, run_id: str | None) -> None:
    """The model's printed summary as the artifact :data:`SUMMARY_FILE`."""
    from autolog.tracking import fluent

    fluent.log_text(text, SUMMARY_FILE, run_id=run_id)


# -- optimizers (torch's param groups: the plain-loop and Lightning integrations) --------

# param-group keys that are no hyperparameter: the tensors, and what LR
# schedulers add (the rate at their start)
_NOT_HYPERPARAMETERS = frozenset({"params", "initial_lr"})


def optimizer_prefix(index: int) -> str:
    """``optimizer`` for a training's first optimizer, ``optimizer<index>`` after."""
    return "optimizer" if index == 0 else f"optimizer{index}"


def optimizer_params(optimizer: Any, index: int = 0) -> dict[str, Any]:
    """``optimizer`` (class name) and ``optimizer.<key>`` per hyperparameter of each
    param group (``optimizer.group<i>.<key>`` for several groups); ``optimizer<index>``
    for the ``index``-th optimizer of a training."""
    prefix = optimizer_prefix(index)
    params: dict[str, Any] = {prefix: type(optimizer).__name__}
    groups = optimizer.param_groups
    for number, group in enumerate(groups):
        where = prefix if len(groups) == 1 else f"{prefix}.group{number}"
        for key, value in group.items():
            if key not in _NOT_HYPERPARAMETERS:
                params[f"{where}.{key}"] = _plain(value)
    return params


def learning_rate_metrics(rates: Iterable[Any], index: int = 0) -> dict[str, Any]:
    """``learning_rate`` (``learning_rate_group_<i>`` for several param groups) of
    the ``index``-th optimizer (suffix ``_optimizer<index>`` from the second one)."""
    rates = list(rates)
    suffix = "" if index == 0 else f"_optimizer{index}"
    if len(rates) == 1:
        return {f"learning_rate{suffix}": rates[0]}
    return {f"learning_rate_group_{i}{suffix}": rate for i, rate in enumerate(rates)}


class PerThread:
    """One object per thread, made by ``make()`` on the thread's first call
    (a plain loop's tracker: each training thread has its own); ``clear()``
    forgets them all (an integration's ``unpatch``)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._local = threading.local()

    def __call__(self) -> Any:
        local = self._local
        try:
            return local.value
        except AttributeError:
            local.value = self._make()
            return local.value

    def clear(self) -> None:
        self._local = threading.local()


def float32_text(value: Any) -> Any:
    """Optimizer settings held in float32 variables come back as 0.0010000000474974513;
    show them as the float32 the user meant (0.001) when that is exact."""
    if type(value) is not float:
        return value
    import numpy as np

    single = np.float32(value)
    return str(single) if float(single) == value else value


def _plain(value: Any) -> Any:
    """A hyperparameter as the user wrote it: a 0-d tensor (a tensor ``lr``) as its number."""
    if hasattr(value, "numel") and value.numel() == 1:
        return value.item()
    return value


# -- self-overhead: what autolog cost a run on the training thread ------------------------

#: milliseconds autolog's own code ran on the training thread for this training
OVERHEAD_METRIC = "autolog.overhead_ms"
#: that, in percent of the training's wall time (``autolog.training_ms``)
OVERHEAD_PCT_METRIC = "autolog.overhead_pct"
#: the wall time of the training call (or loop), autolog's share included
TRAINING_MS_METRIC = "autolog.training_ms"

# run id -> nanoseconds counted by add_overhead (callbacks during a fit) so far
_overhead_ns: dict[str, int] = {}


def add_overhead(run_id: str | None, nanoseconds: int) -> None:
    """Count ``nanoseconds`` of autolog's own work on the training thread to
    ``run_id``: for code that the framework calls during its fit (a callback).
    :func:`log_epoch_metrics` counts itself; the patch manager counts the
    handlers and the run's opening, and adds what was counted during the call."""
    if run_id is not None:
        _overhead_ns[run_id] = _overhead_ns.get(run_id, 0) + nanoseconds


def counted_overhead(run_id: str | None) -> int:
    """Nanoseconds :func:`add_overhead` counted to ``run_id`` so far."""
    return _overhead_ns.get(run_id, 0) if run_id is not None else 0


def log_overhead(run_id: str, spent_ns: int, wall_ns: int) -> None:
    """Log a training's self-overhead to ``run_id``: ``autolog.overhead_ms``
    (``spent_ns``: autolog's time on the training thread), ``autolog.training_ms``
    (``wall_ns``: the training's wall time, autolog's share included) and
    ``autolog.overhead_pct`` (their ratio, in percent). Logging these three
    points is not counted (a few microseconds)."""
    from autolog.tracking import fluent

    _overhead_ns.pop(run_id, None)
    fluent.log_metrics(
        {
            OVERHEAD_METRIC: spent_ns / 1e6,
            TRAINING_MS_METRIC: wall_ns / 1e6,
            OVERHEAD_PCT_METRIC: 100.0 * spent_ns / max(wall_ns, 1),
        },
        run_id=run_id,
    )
