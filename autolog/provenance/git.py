"""The code a run came from: git commit, branch, remote, dirty flag and diff.

Commit, branch and remote are read from the files of the ``.git`` directory
(``HEAD``, the refs, ``config``): no ``git`` process. Whether the work tree is
dirty, and its diff against ``HEAD``, need git's own comparison of the index
with the files: ``git`` runs for that once per process (:func:`work_tree_state`,
cached), on the background writer thread, never on the training thread. No
``git`` executable, or a slow one (5 s), means no dirty flag and no diff.
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
from pathlib import Path

from autolog.tracking.secrets import mask_text, strip_userinfo

__all__ = ["WorkTree", "find_git_dir", "git_commit", "read_head", "remote_url", "work_tree_state"]

_GIT_TIMEOUT_S = 5.0


def find_git_dir(start: Path) -> tuple[Path, Path] | None:
    """(work tree root, git directory) of the work tree containing ``start``
    (``.git`` may be a file pointing elsewhere: worktrees and submodules)."""
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return folder, dot_git
        if dot_git.is_file():
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                target = Path(text[len("gitdir:") :].strip())
                return folder, target if target.is_absolute() else (folder / target).resolve()
            return None
    return None


def _common_dir(git_dir: Path) -> Path:
    common_file = git_dir / "commondir"  # linked worktrees keep refs and config in the main repo
    if common_file.is_file():
        return (git_dir / common_file.read_text(encoding="utf-8").strip()).resolve()
    return git_dir


def _read_ref(git_dir: Path, ref: str) -> str | None:
    common = _common_dir(git_dir)
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


def read_head(git_dir: Path) -> tuple[str | None, str | None]:
    """(commit, branch) checked out in ``git_dir``; branch None when detached,
    commit None on a branch without commits."""
    head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    branch = None
    if head.startswith("ref:"):
        ref = head[4:].strip()
        branch = ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else ref
        sha = _read_ref(git_dir, ref)
    else:
        sha = head
    if sha and len(sha) in (40, 64) and all(c in "0123456789abcdef" for c in sha):
        return sha, branch
    return None, branch


def git_commit(start: Path) -> str | None:
    """The commit checked out in the work tree containing ``start``, or None."""
    try:
        found = find_git_dir(start)
        return read_head(found[1])[0] if found else None
    except OSError:
        return None


def _config_sections(text: str) -> dict[str, dict[str, str]]:
    """``[remote "origin"]`` -> {"remote.origin": {"url": ...}} (the subset of git's
    config syntax that remotes and branches use)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and "]" in line:
            head = line[1 : line.index("]")].strip()
            kind, _, sub = head.partition(" ")
            sub = sub.strip().strip('"')
            name = f"{kind.lower()}.{sub}" if sub else kind.lower()
            current = sections.setdefault(name, {})
        elif "=" in line:
            key, _, value = line.partition("=")
            current.setdefault(key.strip().lower(), value.strip().strip('"'))
    return sections


def remote_url(git_dir: Path, branch: str | None) -> str | None:
    """The URL of the branch's remote (else ``origin``, else the first), with
    credentials stripped."""
    config = _common_dir(git_dir) / "config"
    try:
        sections = _config_sections(config.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    remotes = [k[len("remote.") :] for k in sections if k.startswith("remote.")]
    if not remotes:
        return None
    chosen = sections.get(f"branch.{branch}", {}).get("remote") if branch else None
    if chosen not in remotes:
        chosen = "origin" if "origin" in remotes else remotes[0]
    url = sections[f"remote.{chosen}"].get("url")
    return strip_userinfo(url) if url else None


class WorkTree:
    """What ``git`` said about the work tree: ``dirty`` (None: unknown) and the
    masked diff against HEAD (``""`` when clean), capped at ``max_bytes``."""

    __slots__ = ("diff", "diff_bytes", "dirty")

    def __init__(self, dirty: bool | None, diff: str = "", diff_bytes: int = 0):
        self.dirty, self.diff, self.diff_bytes = dirty, diff, diff_bytes


_lock = threading.Lock()


def _git(root: Path, *args: str) -> bytes:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # status writes no index
    return subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        check=True,
        timeout=_GIT_TIMEOUT_S,
        env=env,
        stdin=subprocess.DEVNULL,
    ).stdout


@functools.cache
def _work_tree_state(root: Path, with_diff: bool, max_bytes: int) -> WorkTree:
    try:
        status = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return WorkTree(None)
    if not status.strip():
        return WorkTree(False)
    if not with_diff:
        return WorkTree(True)
    try:
        raw = _git(root, "diff", "HEAD", "--no-color", "--no-ext-diff", "--binary")
    except (OSError, subprocess.SubprocessError):
        return WorkTree(True)
    text = mask_text(raw.decode("utf-8", errors="replace"))
    data = text.encode("utf-8")
    if len(data) > max_bytes:
        cut = data[:max_bytes].decode("utf-8", errors="ignore")
        text = f"{cut}\n# autolog: diff truncated to {max_bytes} of {len(data)} bytes\n"
    return WorkTree(True, text, len(data))


def work_tree_state(root: Path, with_diff: bool, max_bytes: int) -> WorkTree:
    """Dirty flag and diff of the work tree at ``root``: ``git`` runs once per
    process (and per argument set); later calls return the cached answer."""
    with _lock:
        return _work_tree_state(root, with_diff, max_bytes)


def _forget() -> None:
    """Ask git again next time (tests)."""
    _work_tree_state.cache_clear()
