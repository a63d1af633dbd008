"""A run's artifacts as the UI lists and serves them, through its artifact repository.

Every path goes through ``clean_artifact_path`` (no ``..``, no absolute path);
a local repository's file is also resolved (symlinks included) and must lie
inside the run's artifact root. What is served is sent with headers that keep
it inert: ``nosniff``, a ``sandbox`` CSP, ``attachment`` unless the UI asks for
an inline preview.
"""

from __future__ import annotations

import mimetypes
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from autolog.errors import InvalidParameterError, ResourceNotFoundError
from autolog.tracking.artifacts import (
    ArtifactRepository,
    LocalArtifactRepository,
    clean_artifact_path,
    repository_for,
)
from autolog.tracking.stores.base import AbstractStore

__all__ = ["artifact_headers", "list_files", "local_file"]

#: the CSP of an artifact shown inline: an HTML artifact (a plotly chart) may run
#: its own inline scripts, in a sandbox without our origin, and reach nothing
_INLINE_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; frame-ancestors 'self'"
)
_DOWNLOAD_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


Resolve = Callable[[str], ArtifactRepository]


def list_files(
    store: AbstractStore, run_id: str, path: str = "", resolve: Resolve = repository_for
) -> list[dict[str, Any]]:
    """The direct children of ``path`` in the run's artifacts: ``[{"path", "dir", "size"}]``.
    ``resolve`` gives the repository of a run's ``artifact_uri``."""
    relative = clean_artifact_path(path)
    repo = resolve(store.get_run(run_id).info.artifact_uri)
    return [
        {"path": f.path, "dir": f.is_dir, "size": f.file_size}
        for f in repo.list_artifacts(relative or None)
    ]


def local_file(
    store: AbstractStore, run_id: str, path: str, resolve: Resolve = repository_for
) -> tuple[Path, Path | None]:
    """A local file holding the artifact ``path`` and a temporary folder to
    remove after sending it (None when the file is the repository's own)."""
    relative = clean_artifact_path(path)
    if not relative:
        raise InvalidParameterError("Invalid artifact path '': name a file")
    repo = resolve(store.get_run(run_id).info.artifact_uri)
    if isinstance(repo, LocalArtifactRepository):
        root = repo.root.resolve()
        target = (root / relative).resolve()
        if not target.is_relative_to(root):
            raise InvalidParameterError(
                f"Invalid artifact path {path!r}: escapes the artifact root"
            )
        if not target.is_file():
            raise ResourceNotFoundError(f"No artifact file {path!r} in run {run_id}")
        return target, None
    tmp = Path(tempfile.mkdtemp(prefix="autolog-ui-"))
    try:
        copy = Path(repo.download_artifacts(relative, tmp))
        if not copy.is_file():
            raise ResourceNotFoundError(f"No artifact file {path!r} in run {run_id}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return copy, tmp


def artifact_headers(path: str, inline: bool) -> tuple[str, dict[str, str]]:
    """The media type and headers to send the artifact ``path`` with."""
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if media.startswith("text/") or media in ("application/json", "image/svg+xml"):
        media += "; charset=utf-8"
    name = quote(path.rsplit("/", 1)[-1], safe="")
    disposition = "inline" if inline else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{name}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": _INLINE_CSP if inline else _DOWNLOAD_CSP,
        "Cache-Control": "no-store",
    }
    return media, headers
