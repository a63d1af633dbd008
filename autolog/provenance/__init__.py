"""What produced a run: code, environment, machine and data, captured cheaply,
with secrets never stored.

Every run gets, by default (each capture has its own switch, see
:func:`configure`):

- **code**: ``mlflow.source.git.commit`` / ``.branch`` / ``.repoURL`` (credentials
  stripped), ``autolog.source.git.dirty``, the uncommitted diff as the artifact
  ``provenance/git.diff`` (size-capped), the command line
  ``autolog.source.command``; in a notebook, its path where the kernel tells it;
- **environment**: ``provenance/requirements.txt`` (``importlib.metadata``),
  ``autolog.env.python`` / ``os`` / ``cpu`` / ``cpu_count`` / ``memory_mb``, GPU
  model, count, CUDA, cuDNN and driver when torch or TensorFlow is imported,
  allow-listed environment variables as ``autolog.env.var.<NAME>``;
- **data**: a dataset record per autologged fit (:func:`record_dataset`);
- **system metrics**, off by default: ``system/*`` every N seconds while the run
  runs (:mod:`autolog.provenance.system_metrics`).

Cost: what is read is read once per process (git files, ``/proc``, the
installed distributions) and cached; a ``git`` process runs once per process
for the dirty flag and the diff, on the writer thread, which also writes the
artifacts. A run after the first costs the training thread a few
microseconds (``benchmarks/bench_provenance.py``).

Example::

    from autolog import provenance
    provenance.configure(git_diff=False, env_vars=("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID"))
    provenance.configure(system_metrics=True, system_metrics_interval=5)
"""

from __future__ import annotations

import functools
import os
import sys
import threading

from autolog.provenance import captures
from autolog.provenance.captures import CAPTURES, capture_rows, configure, options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from autolog.tracking.run_state import RunState

__all__ = [
    "CAPTURES",
    "capture_rows",
    "commit_tag",
    "configure",
    "options",
    "record_dataset",
    "run_started",
    "run_tags",
    "system_tags",
]

BRANCH = "mlflow.source.git.branch"
REPO_URL = "mlflow.source.git.repoURL"
DIRTY = "autolog.source.git.dirty"
COMMAND = "autolog.source.command"
DIFF_FILE = "provenance/git.diff"
REQUIREMENTS_FILE = "provenance/requirements.txt"

_process_tags: tuple[dict[str, Any], dict[str, str]] | None = None  # (options, their tags)
_tags_by_options: dict[tuple, dict[str, str]] = {}  # so that switching back costs nothing
#: (options, their tags with :func:`commit_tag`, their tags) for :func:`system_tags`
_system_tags: tuple[dict[str, Any], dict[str, str], dict[str, str]] | None = None


def _script_dir() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "")
    return os.path.dirname(os.path.abspath(path)) if path and os.path.isfile(path) else os.getcwd()


def _git_root() -> Any:
    """(work tree root, git directory) of the script's work tree, or None."""
    return _find_repo(_script_dir())


@functools.cache
def _find_repo(folder: str) -> Any:
    from pathlib import Path

    from autolog.provenance import git

    return git.find_git_dir(Path(folder))


def _command_tag() -> str:
    import shlex

    from autolog.tracking.secrets import mask_argv
    from autolog.tracking.validation import MAX_TAG_VALUE_LENGTH

    text = shlex.join(mask_argv(list(sys.argv)))
    if len(text) > MAX_TAG_VALUE_LENGTH:
        note = f" ... (truncated: {len(text)} characters)"
        text = text[: MAX_TAG_VALUE_LENGTH - len(note)] + note
    return text


def _compute_process_tags(opts: dict[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = {}
    if opts["git"]:
        from autolog.provenance import git

        try:
            found = _git_root()
            if found is not None:
                _commit, branch = git.read_head(found[1])
                if branch:
                    tags[BRANCH] = branch
                url = git.remote_url(found[1], branch)
                if url:
                    tags[REPO_URL] = url
        except OSError:
            pass
    if opts["command"] and sys.argv:
        tags[COMMAND] = _command_tag()
    if opts["machine"]:
        from autolog.provenance.environment import machine_tags

        tags.update(machine_tags())
    if opts["env_vars"]:
        from autolog.provenance.environment import env_var_tags

        tags.update(env_var_tags(opts["env_vars"]))
    return tags


def _tags_of(opts: dict[str, Any]) -> dict[str, str]:
    """The process's provenance tags under the options ``opts`` (GPU facts aside):
    computed once per options, then looked up."""
    global _process_tags
    cached = _process_tags
    if cached is not None and cached[0] is opts:  # configure() makes a new dict
        return cached[1]
    key = tuple(opts[k] for k in ("git", "command", "machine", "env_vars"))
    tags = _tags_by_options.get(key)
    if tags is None:
        tags = _tags_by_options[key] = _compute_process_tags(opts)
    _process_tags = (opts, tags)
    return tags


def _with_gpu_facts(opts: dict[str, Any]) -> bool:
    """Whether the machine tags get GPU facts (torch or TensorFlow is imported)."""
    return opts["machine"] and ("torch" in sys.modules or "tensorflow" in sys.modules)


def run_tags() -> dict[str, str]:
    """The provenance tags of a new run: computed at the first run of the
    process, then a dict copy (GPU facts are added once torch or TensorFlow is
    imported)."""
    opts = options()
    tags = _tags_of(opts)
    if _with_gpu_facts(opts):
        from autolog.provenance.environment import gpu_tags

        return {**tags, **gpu_tags()}
    return tags


@functools.cache
def commit_tag() -> dict[str, str]:
    """``mlflow.source.git.commit``: the commit checked out in the work tree of the
    script (else of the working directory), read from ``.git`` without spawning
    git; once per process, whatever the options (it is a system tag)."""
    from pathlib import Path

    from autolog.provenance.git import git_commit

    commit = git_commit(Path(_script_dir()).resolve())
    return {"mlflow.source.git.commit": commit} if commit else {}


def system_tags() -> dict[str, str]:
    """:func:`run_tags` with :func:`commit_tag`: what each new run gets from
    provenance (the tracking API's tag source, :mod:`autolog.tracking.run_hooks`).
    One dict per options in force, made at the first run: a run after it
    costs this call and a few look-ups, the options read without a call (with
    GPU facts, a dict made each run)."""
    global _system_tags
    cached = _system_tags
    if cached is None or cached[0] is not captures._options:
        opts = options()
        tags = _tags_of(opts)
        cached = _system_tags = (opts, {**tags, **commit_tag()}, tags)
    modules = sys.modules
    if cached[0]["machine"] and ("torch" in modules or "tensorflow" in modules):
        from autolog.provenance.environment import gpu_tags

        return {**cached[2], **gpu_tags(), **commit_tag()}
    return cached[1]


def run_started(state: RunState, tags: dict[str, str]) -> None:
    """A run was just created (its creation is queued): queue what is written in
    the background for a top-level run, and start the system-metrics sampler if
    switched on. Costs the training thread two queued calls:

    - the dirty flag, a tag, in the run's own lane (after its creation, with its
      metrics and params: a creation held for retry holds it too);
    - the diff and requirements.txt, files, in the run's ``artifacts`` lane (as
      ``log_bytes`` does): an artifact store that fails never holds back the
      run's data, and what fails transiently is kept and retried.

    A nested run (a trial's, a search candidate's) costs one call: the
    options in force, read without one.
    """
    opts = captures._options or options()
    if "mlflow.parentRunId" not in tags and (opts["git"] or opts["requirements"]):
        from autolog.tracking.writer import get_writer

        if not _warming:
            _start_warming(opts)
        writer = get_writer()
        if opts["git"]:
            writer.submit(
                state.store,
                lambda: _in_background(_write_dirty_flag, state, opts),
                state.run_id,
                what="provenance tag 'autolog.source.git.dirty'",
            )
        if opts["requirements"] or (opts["git"] and opts["git_diff"]):
            writer.submit(
                state.store,
                lambda: _in_background(_write_artifacts, state, opts),
                state.run_id,
                what="provenance artifacts",
                lane="artifacts",
            )
    if opts["system_metrics"]:
        from autolog.provenance.system_metrics import start_sampler

        start_sampler(state, opts["system_metrics_interval"])


_warming: list[threading.Thread] = []


def _start_warming(opts: dict[str, Any]) -> None:
    """At the first run: compute the diff and requirements.txt on a thread of
    their own, so that the writer, which needs them, finds them ready (or waits
    less) and the training thread never waits for them."""
    thread = threading.Thread(target=_warm, args=(opts,), name="autolog-provenance", daemon=True)
    _warming.append(thread)
    thread.start()


def _warm(opts: dict[str, Any]) -> None:
    try:
        found = _git_root() if opts["git"] else None
        if found is not None:
            from autolog.provenance.git import work_tree_state

            work_tree_state(found[0], opts["git_diff"], opts["max_diff_bytes"])
        if opts["requirements"]:
            from autolog.provenance.environment import requirements_text

            requirements_text()
    except Exception:
        pass  # the writer's call computes it again and reports what fails


def _in_background(write: Any, state: RunState, opts: dict[str, Any]) -> None:
    """On the writer thread: ``write(state, opts)``. A failure of ours is reported
    once (rule 1) and fails nothing of the user's; a store's error (and an
    OSError: a full disk, a lost connection) goes back to the writer, which
    keeps and retries a transient one and reports a refusal as for any write."""
    from autolog.errors import AutologError

    try:
        write(state, opts)
    except AutologError:
        raise
    except Exception as exc:
        from autolog.errors import TransientStoreError
        from autolog.tracking.writer import is_transient

        if is_transient(exc):  # a full disk, a lost connection: kept, retried
            raise TransientStoreError(f"provenance of run {state.run_id}: {exc}") from exc
        from autolog._report import report_error

        report_error("provenance", exc, "while writing a run's provenance")


def _work_tree(opts: dict[str, Any]) -> Any:
    found = _git_root()
    if found is None:
        return None
    from autolog.provenance.git import work_tree_state

    return work_tree_state(found[0], opts["git_diff"], opts["max_diff_bytes"])


def _write_dirty_flag(state: RunState, opts: dict[str, Any]) -> None:
    from autolog.tracking.entities import RunTag

    tree = _work_tree(opts)
    if tree is not None and tree.dirty is not None:
        dirty = RunTag(DIRTY, "true" if tree.dirty else "false")
        state.store.log_batch(state.run_id, tags=[dirty])


def _write_artifacts(state: RunState, opts: dict[str, Any]) -> None:
    from autolog.tracking.run_state import artifact_repository

    if opts["git"] and opts["git_diff"]:
        tree = _work_tree(opts)
        if tree is not None and tree.diff:
            artifact_repository(state).log_bytes(tree.diff.encode("utf-8"), DIFF_FILE)
    if opts["requirements"]:
        from autolog.provenance.environment import requirements_text

        artifact_repository(state).log_bytes(requirements_text().encode("utf-8"), REQUIREMENTS_FILE)


def record_dataset(data: Any, name: str, run_id: str | None = None, **kwargs: Any) -> Any:
    """Attach a dataset record of ``data`` to the run; see
    :func:`autolog.provenance.datasets.record_dataset`."""
    from autolog.provenance.datasets import record_dataset as record

    return record(data, name, run_id, **kwargs)


def _reset_for_tests() -> None:
    """Forget options, cached tags and git answers (the environment is read again)."""
    global _process_tags, _system_tags
    from autolog.provenance import environment, git
    from autolog.tracking import secrets

    for thread in _warming:
        thread.join(timeout=30)
    _warming.clear()
    captures._reset()
    _process_tags = None
    _system_tags = None
    _tags_by_options.clear()
    _find_repo.cache_clear()
    git._forget()
    secrets._forget_environment()
    environment.machine_tags.cache_clear()
    environment._gpu_tags.cache_clear()
    commit_tag.cache_clear()
