"""The artifact half of the fluent API: ``autolog.log_artifact(...)``, ``log_figure``, ...

Files are copied when the call is made (the user may delete them right after);
text, dicts, figures and images are rendered to bytes on the caller's thread
and written by the background writer, after the run's creation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from autolog.tracking import run_state
from autolog.tracking.run_state import RunState, check_writable, target
from autolog.tracking.validation import validate_artifact_path
from autolog.tracking.writer import get_writer

__all__ = [
    "log_artifact",
    "log_artifacts",
    "log_bytes",
    "log_dict",
    "log_figure",
    "log_image",
    "log_text",
]

# -- artifacts -------------------------------------------------------------------


def _created(state: RunState) -> RunState:
    """Make sure the store holds the run before touching its artifact folder
    (and that it may be written to)."""
    check_writable(state)
    if not state.created:
        get_writer().flush(state.run_id)
        state.created = True
    return state


def log_artifact(
    local_path: str | os.PathLike, artifact_path: str | None = None, *, run_id: str | None = None
) -> None:
    """Copy a local file into the run's artifacts (under folder ``artifact_path``).

    The copy is made now, so the file may be deleted right after the call.
    """
    if artifact_path is not None:
        validate_artifact_path(artifact_path)
    state = _created(target(run_id))
    run_state.artifact_repository(state).log_artifact(os.fspath(local_path), artifact_path)


def log_artifacts(
    local_dir: str | os.PathLike, artifact_path: str | None = None, *, run_id: str | None = None
) -> None:
    """Copy the contents of a local folder into the run's artifacts (under ``artifact_path``)."""
    if artifact_path is not None:
        validate_artifact_path(artifact_path)
    state = _created(target(run_id))
    run_state.artifact_repository(state).log_artifacts(os.fspath(local_dir), artifact_path)


#: log_bytes takes a function for ``data`` (autolog.models checks for this name)
DEFERRED_BYTES = True


def log_bytes(data: Any, artifact_file: str, *, run_id: str | None = None) -> None:
    """Write ``data`` as the artifact file ``artifact_file``, on the writer thread.
    ``data``: bytes, or a function returning them, called on the writer thread
    (a flavor's deferred serialisation; what it raises fails the write)."""
    validate_artifact_path(artifact_file, "artifact file")
    state = target(run_id)
    check_writable(state)

    def write() -> None:
        payload = data() if callable(data) else data
        run_state.artifact_repository(state).log_bytes(payload, artifact_file)

    # its own lane: an artifact that cannot be written never holds the run's metrics back
    what = f"artifact {artifact_file!r}"
    get_writer().submit(state.store, write, state.run_id, what=what, lane="artifacts")


def log_text(text: str, artifact_file: str, *, run_id: str | None = None) -> None:
    """Save ``text`` (UTF-8) as the artifact file ``artifact_file`` (``"notes/a.txt"``)."""
    log_bytes(str(text).encode("utf-8"), artifact_file, run_id=run_id)


def log_dict(dictionary: Any, artifact_file: str, *, run_id: str | None = None) -> None:
    """Save a dict as JSON, or as YAML when ``artifact_file`` ends in ``.yaml`` / ``.yml``."""
    from autolog.tracking.render import dict_bytes

    validate_artifact_path(artifact_file, "artifact file")
    log_bytes(dict_bytes(dictionary, artifact_file), artifact_file, run_id=run_id)


def log_figure(
    figure: Any,
    artifact_file: str,
    *,
    save_kwargs: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> None:
    """Save a matplotlib figure (format from the extension: png, svg, pdf, ...) or
    a plotly figure (``.html``) as an artifact file."""
    from autolog.tracking.render import figure_bytes

    validate_artifact_path(artifact_file, "artifact file")
    data = figure_bytes(figure, artifact_file, **(save_kwargs or {}))
    log_bytes(data, artifact_file, run_id=run_id)


def log_image(image: Any, artifact_file: str, *, run_id: str | None = None) -> None:
    """Save a numpy array (uint8, or float in [0, 1]; HxW, HxWx3 or HxWx4) or a
    PIL image as an image file (PNG unless the extension says otherwise)."""
    from autolog.tracking.render import image_bytes

    validate_artifact_path(artifact_file, "artifact file")
    log_bytes(image_bytes(image, artifact_file), artifact_file, run_id=run_id)
