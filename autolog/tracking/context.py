"""System tags every run gets: who ran what, from where, at which commit.

The tag names are the ones ML engineers already search by (``mlflow.user``,
``mlflow.source.name``, ...). Everything here is computed once per process
(:func:`system_tags` is cached): the git commit is read by parsing
``.git/HEAD`` and the refs, never by spawning ``git``.
"""

from __future__ import annotations

import functools
import getpass
import os
import random
import sys
from pathlib import Path

__all__ = [
    "GIT_COMMIT",
    "PARENT_RUN_ID",
    "RUN_NAME",
    "SOURCE_NAME",
    "SOURCE_TYPE",
    "USER",
    "NOTE",
    "generate_run_name",
    "git_commit",
    "system_tags",
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


def _find_git_dir(start: Path) -> Path | None:
    """The git directory of the work tree containing ``start`` (``.git`` may be a
    file pointing elsewhere: worktrees and submodules)."""
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                target = Path(text[len("gitdir:") :].strip())
                return target if target.is_absolute() else (folder / target).resolve()
            return None
    return None


def _read_ref(git_dir: Path, ref: str) -> str | None:
    common = git_dir
    common_file = git_dir / "commondir"  # linked worktrees keep refs in the main repo
    if common_file.is_file():
        common = (git_dir / common_file.read_text(encoding="utf-8").strip()).resolve()
    for base in (git_dir, common):
        ref_file = base / ref
        if ref_file.is_file():
            value = ref_file.read_text(encoding="utf-8").strip()
            return value or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            if line and line[0] not in "#^":
                sha, _, name = line.partition(" ")
                if name.strip() == ref:
                    return sha
    return None


def git_commit(start: Path) -> str | None:
    """The commit checked out in the work tree containing ``start``, or None
    (not a work tree, or a branch without commits)."""
    try:
        git_dir = _find_git_dir(start)
        if git_dir is None:
            return None
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        sha = _read_ref(git_dir, head[4:].strip()) if head.startswith("ref:") else head
    except OSError:
        return None
    if sha and len(sha) in (40, 64) and all(c in "0123456789abcdef" for c in sha):
        return sha
    return None


@functools.cache
def system_tags() -> dict[str, str]:
    """User, source name and type, and git commit of this process (cached)."""
    script = _source_script()
    notebook = _in_notebook()
    tags = {
        USER: _user(),
        SOURCE_TYPE: "NOTEBOOK" if notebook else "LOCAL",
        SOURCE_NAME: str(script) if script and not notebook else (sys.argv[0] if sys.argv else ""),
    }
    if notebook:
        tags[SOURCE_NAME] = os.environ.get("JPY_SESSION_NAME", "notebook")
    commit = git_commit(script.parent if script else Path.cwd())
    if commit:
        tags[GIT_COMMIT] = commit
    return tags
