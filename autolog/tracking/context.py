"""System tags every run gets: who ran what, from where, at which commit.

The tag names are the ones ML engineers already search by (``mlflow.user``,
``mlflow.source.name``, ...). Everything here is computed once per process
and cached. What else a run records about its origin (the git commit, branch,
remote, command line, machine, the diff and requirements artifacts, system
metrics) is :mod:`autolog.provenance`'s, which sits above the tracking API and
pushes its part into :mod:`autolog.tracking.run_hooks`; this module is where
a new run asks for it (:func:`system_tags`, :func:`run_started`), without
importing it.
"""

from __future__ import annotations

import functools
import getpass
import os
import random
import sys
from pathlib import Path

from autolog.tracking import run_hooks
from autolog.tracking.processes import PROCESS_TAG, process_tag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from autolog.tracking.run_state import RunState

__all__ = [
    "GIT_COMMIT",
    "PARENT_RUN_ID",
    "RUN_NAME",
    "SOURCE_NAME",
    "SOURCE_TYPE",
    "USER",
    "NOTE",
    "generate_run_name",
    "run_started",
    "system_tags",
    "user",
]

RUN_NAME = "mlflow.runName"
USER = "mlflow.user"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
GIT_COMMIT = "mlflow.source.git.commit"
PARENT_RUN_ID = "mlflow.parentRunId"
NOTE = "mlflow.note.content"

_ADJECTIVES = """
    able amber bold brave bright calm clever cosmic crisp curious daring eager
    fancy fast gentle glad golden grand happy honest jolly keen kind lively lucky
    mellow merry mighty nimble noble polite proud quick quiet rapid shiny silent
    smart snowy sunny swift tidy vivid warm wise witty zesty
""".split()  # noqa: SIM905 - a word list reads best as words
_NOUNS = """
    ant badger bat bear bee bison cat cobra crane crow deer dolphin dove eagle elk
    falcon finch fox frog gecko goat hare hawk heron horse ibis koala lark lemur
    lion lynx mole moth newt otter owl panda puma quail raven robin seal shark
    sloth snail squid stork swan tiger toad trout whale wolf wren yak zebra
""".split()  # noqa: SIM905 - a word list reads best as words
_names = random.Random()


def generate_run_name() -> str:
    """A readable run name such as ``brave-owl-417``."""
    choice = _names.choice
    return f"{choice(_ADJECTIVES)}-{choice(_NOUNS)}-{_names.randrange(1000)}"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers without /etc/passwd entry)
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def _in_notebook() -> bool:
    # ipykernel is only imported inside a Jupyter kernel; importing IPython
    # ourselves to ask would cost far more than this check.
    return "ipykernel" in sys.modules


def _source_script() -> Path | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "")
    if path and os.path.isfile(path):
        return Path(path).resolve()
    return None


def _notebook_path() -> str:
    """The notebook's path where the kernel tells it: Jupyter's server sets
    ``JPY_SESSION_NAME`` for its kernels, VS Code puts ``__vsc_ipynb_file__`` in
    the user's namespace."""
    main = sys.modules.get("__main__")
    return (
        os.environ.get("JPY_SESSION_NAME")
        or getattr(main, "__vsc_ipynb_file__", None)
        or "notebook"
    )


@functools.cache
def _source_tags() -> dict[str, str]:
    script = _source_script()
    notebook = _in_notebook()
    tags = {
        USER: _user(),
        SOURCE_TYPE: "NOTEBOOK" if notebook else "LOCAL",
        SOURCE_NAME: str(script) if script and not notebook else (sys.argv[0] if sys.argv else ""),
    }
    if notebook:
        tags[SOURCE_NAME] = _notebook_path()
    return tags


def user() -> str:
    """The user a new run is recorded as (``mlflow.user``)."""
    return _source_tags()[USER]


def system_tags() -> dict[str, str]:
    """The system tags of a new run: user, source name and type, and the tags of
    every registered source (provenance: git commit, branch, remote, command
    line, machine). Computed at the first run of the process, cached after that."""
    tags: dict[str, str] = {}
    for source in run_hooks.tag_sources:
        tags.update(source())
    tags.update(_source_tags())
    tags[PROCESS_TAG] = process_tag()  # how `autolog gc` tells a dead run's process
    return tags


def run_started(state: RunState, tags: dict[str, str]) -> None:
    """Called by the run's maker right after a new run's creation is queued, with
    the tags it was started with (its parent's id among them; not the system
    tags, which the writer makes): tells every registered hook (provenance
    queues what it writes in the background and starts the system-metrics
    sampler when it is on)."""
    for hook in run_hooks.run_started_hooks:
        hook(state, tags)
