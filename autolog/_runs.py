"""Which run a training logs to: the one run-opening policy of autolog.

Every place that opens a run for a training (the patch manager around a
patched call, the plain-PyTorch loop tracker, scikit-learn's search
candidates) asks :func:`training_run` or :func:`child_run` here, so that
``exclusive``, ``extra_tags`` and the ``mlflow.autologging`` tag mean the same
everywhere:

- no active run: a new run, tagged ``mlflow.autologging=<integration>`` plus
  the ``extra_tags`` of ``autolog()``; whoever opened it closes it;
- the user's active run and ``exclusive=True``: nothing is logged;
- the user's active run, its first training (or the same model trained
  again, e.g. Keras' ``fit(initial_epoch=...)`` resuming it): that run;
- the user's active run, which already holds another training of ours
  (``Ridge(alpha=1).fit`` then ``Ridge(alpha=50).fit`` in one ``start_run()``):
  a nested child run of it (tag ``mlflow.parentRunId``), with one warning
  per user run, instead of mixing both trainings' params, metrics and models;
- a process of a distributed training that is not its main one (rank 0):
  nothing is logged (:func:`process_rank`), so N processes give one run.
"""

from __future__ import annotations

import os
import sys
import threading
import types
import warnings
import weakref

from autolog.errors import AutologWarning

# typing costs several ms at import; type checkers honour this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from autolog.integration import IntegrationConfig

__all__ = [
    "AUTOLOGGING_TAG",
    "child_run",
    "end_run",
    "fluent",
    "process_rank",
    "run_tags",
    "training_run",
]

AUTOLOGGING_TAG = "mlflow.autologging"

_fluent_module: types.ModuleType | None = None


def fluent() -> types.ModuleType:
    """:mod:`autolog.tracking.fluent`, imported on first use (rule 3) and cached:
    an import statement costs a microsecond on every call of a hot wrap."""
    global _fluent_module
    if _fluent_module is None:
        from autolog.tracking import fluent as module

        _fluent_module = module
    return _fluent_module


def run_tags(integration: str, config: IntegrationConfig) -> dict[str, str]:
    """The tags of a run autolog opens: ``mlflow.autologging`` and ``extra_tags``."""
    return {AUTOLOGGING_TAG: integration, **config.extra_tags}


# user run id -> (integration, weak reference to the model it trained, or None)
_trained: dict[str, tuple[str, Any]] = {}
_warned_runs: set[str] = set()
_lock = threading.Lock()


def training_run(
    integration: str, config: IntegrationConfig, model: Any = None
) -> tuple[str | None, bool]:
    """``(run_id, created)`` for a training of ``integration`` starting now on
    this thread (see the module documentation); ``(None, False)``: log nothing
    (``exclusive`` and the user has a run). ``model`` is what is trained (the
    patched call's instance): the same model trained again in the user's run
    continues there. A created run is this thread's active run: end it with
    :func:`end_run`."""
    if process_rank() != 0:
        return None, False  # another process of this distributed training logs it
    fl = fluent()
    user_run = fl.active_run_id()
    if user_run is None:
        return child_run(integration, config, None), True
    if config.exclusive:
        return None, False
    with _lock:
        first = _trained.get(user_run)
        if first is None:
            _trained[user_run] = (integration, _weak(model))
    if first is None:
        fl.on_run_end(user_run, _forget)
        return user_run, False
    same = first[0] == integration and first[1] is not None and first[1]() is model
    if same and model is not None:
        return user_run, False  # the same model trained again: one training
    run_id = child_run(integration, config, user_run)
    try:
        _warn_mixed(user_run, integration, first[0], run_id, config.silent)
    except BaseException:  # warnings turned into errors: leave no run of ours open
        end_run("FAILED")
        raise
    return run_id, True


def process_rank() -> int:
    """This process's global rank in a distributed training, 0 when it is in none.

    Read without importing a framework: an initialised ``torch.distributed``
    process group; else what the launchers put into the environment before
    any framework starts (``RANK``: torchrun, accelerate, DeepSpeed;
    ``LOCAL_RANK`` with ``NODE_RANK`` / ``GROUP_RANK``: Lightning's own
    launcher; ``TF_CONFIG``: TensorFlow's multi-worker strategies, whose
    ``chief``, or ``worker`` 0 without one, is rank 0; an ``evaluator`` or
    ``ps`` task is never the main process). The environment is read once per
    process; the rest costs a dictionary lookup and two calls.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return int(dist.get_rank())
        except Exception:  # a half-torn-down group: fall back to the launcher's word
            pass
    cached = _launcher_rank
    if cached[0] != os.getpid():  # first call in this process (a fork's too)
        cached = _read_launcher_rank()
    return cached[1]


# (pid, rank) from the launcher's environment: it is set before the process
# starts, and reading os.environ costs about a microsecond a variable.
_launcher_rank: tuple[int, int] = (-1, 0)


def _read_launcher_rank() -> tuple[int, int]:
    global _launcher_rank
    _launcher_rank = (os.getpid(), _environment_rank(os.environ))
    return _launcher_rank


def _environment_rank(env: Any) -> int:
    rank = _int_env(env.get("RANK"))
    if rank is not None:
        return rank
    local = _int_env(env.get("LOCAL_RANK"))
    if local is not None:
        node = _int_env(env.get("NODE_RANK")) or _int_env(env.get("GROUP_RANK")) or 0
        return local if node == 0 else max(local, 1)  # any rank on another node is not 0
    tf_config = env.get("TF_CONFIG")
    if tf_config:
        return _tf_config_rank(tf_config)
    return 0


def _int_env(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _tf_config_rank(text: str) -> int:
    import json  # only under a multi-worker configuration (import cost)

    try:
        config = json.loads(text)
        task = config.get("task") or {}
        kind, index = task.get("type"), int(task.get("index", 0))
        has_chief = bool((config.get("cluster") or {}).get("chief"))
    except (ValueError, TypeError, AttributeError):
        return 0  # not a multi-worker configuration we can read: a single process
    if kind == "chief" or (kind == "worker" and not has_chief):
        return index if kind == "worker" else 0
    if kind == "worker":
        return index + 1  # the chief is rank 0
    return 1 if kind in ("evaluator", "ps") else 0


def child_run(
    integration: str,
    config: IntegrationConfig,
    parent_run_id: str | None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Open a run with autolog's tags (and ``tags``, which win over them),
    nested under ``parent_run_id`` (tag ``mlflow.parentRunId``), else under
    this thread's active run if there is one; it becomes this thread's active
    run: end it with :func:`end_run` (which ends the innermost run). A parent
    active in this process gives it its store and experiment
    (:func:`autolog.tracking.run_state.start_child`: a search opens one per trial)."""
    all_tags = run_tags(integration, config)
    if tags:
        all_tags.update(tags)
    return fluent().run_state.start_child(parent_run_id, run_name, all_tags).run_id


def end_run(
    status: str = "FINISHED", run_id: str | None = None, end_time: int | None = None
) -> None:
    """End ``run_id`` (default: the run autolog opened last on this thread),
    without waiting for the writer (rule 2: the writer reports a failure at
    the next flush or at exit); ``end_time`` in ms, default now."""
    if run_id is None:
        fluent().end_run(status, flush=False, end_time=end_time)
    else:
        fluent().end_run(status, flush=False, run_id=run_id, end_time=end_time)


def _weak(model: Any) -> Any:
    if model is None:
        return None
    try:
        return weakref.ref(model)
    except TypeError:  # no weak reference possible: never taken for the same model
        return None


def _forget(run_id: str, status: str) -> None:
    with _lock:
        _trained.pop(run_id, None)
        _warned_runs.discard(run_id)


def _warn_mixed(user_run: str, integration: str, first: str, child: str, silent: bool) -> None:
    with _lock:
        if user_run in _warned_runs:
            return
        _warned_runs.add(user_run)
    if not silent:
        warnings.warn(
            f"autolog: your run {user_run} already holds a {first} training logged by "
            f"autolog; this {integration} training is logged to its nested child run "
            f"{child} (and so are later ones in this run), so that params, metrics and "
            "models of different trainings are not mixed. Start one run per training "
            "to choose the runs yourself.",
            AutologWarning,
            stacklevel=4,
        )


def _reset_for_tests() -> None:
    global _launcher_rank
    _launcher_rank = (-1, 0)  # tests set launcher variables: read them again
    with _lock:
        _trained.clear()
        _warned_runs.clear()
