"""Where a model URI points: a local folder to read the model from.

Accepted forms (``autolog.load_model`` documents them to users):

- ``runs:/<run_id>/<path>``: the folder ``<path>`` of that run's artifacts,
  found through the tracking store of the current tracking URI;
- ``file:///abs/folder`` or a plain local path;
- any other artifact URL the artifact store understands (``s3://...``),
  downloaded to a temporary folder that is removed after loading.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from autolog.errors import InvalidParameterError, ResourceNotFoundError, StoreError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["checked_artifact_path", "local_model_dir", "parse_runs_uri"]


def parse_runs_uri(uri: str) -> tuple[str, str]:
    """``runs:/<run_id>/<path>`` -> (run_id, path); InvalidParameterError if malformed."""
    rest = uri[len("runs:") :].lstrip("/")
    run_id, _, path = rest.partition("/")
    if not run_id or not path.strip("/"):
        raise InvalidParameterError(
            f"model URI {uri!r} must look like runs:/<run_id>/<path inside the run>"
        )
    return run_id, checked_artifact_path(path.rstrip("/"))


@contextmanager
def local_model_dir(uri: str) -> Iterator[Path]:
    """A local folder holding the model at ``uri`` for the duration of the ``with``."""
    if not isinstance(uri, (str, Path)) or not str(uri):
        raise InvalidParameterError(f"model URI must be a non-empty string, got {uri!r}")
    uri = str(uri)
    if uri.startswith("runs:"):
        uri = _run_artifact_uri(*parse_runs_uri(uri))
    scheme = urlsplit(uri).scheme
    # one letter is a Windows drive ("C:\\models"), not a scheme
    if len(scheme) <= 1:
        yield _existing_dir(Path(uri), uri)
    elif scheme == "file":
        from urllib.request import url2pathname  # ~40 ms: only to read a file: URI

        parts = urlsplit(uri)
        yield _existing_dir(Path(url2pathname(unquote(parts.path))), uri)
    elif scheme == "models":
        raise InvalidParameterError(
            f"model URI {uri!r}: there is no model registry; use runs:/<run_id>/<name>"
        )
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="autolog-model-") as tmp:
            yield _download(uri, Path(tmp))


def _existing_dir(path: Path, uri: str) -> Path:
    if not path.is_dir():
        raise ResourceNotFoundError(f"no model at {uri}: {path} is not a folder")
    return path


def _run_artifact_uri(run_id: str, path: str) -> str:
    from autolog.tracking import fluent

    # get_run flushes first: a model logged in this process may still sit in
    # the writer's queue
    artifact_uri = fluent.get_run(run_id).info.artifact_uri.rstrip("/")
    return f"{artifact_uri}/{path}"


def _download(uri: str, dst: Path) -> Path:
    from autolog.tracking.artifacts import repository_for

    try:
        repository = repository_for(uri)
    except (InvalidParameterError, StoreError):
        raise
    except Exception as exc:
        raise InvalidParameterError(f"model URI {uri!r}: unsupported scheme ({exc})") from exc
    local = Path(repository.download_artifacts("", str(dst)))
    return _existing_dir(local, uri)


def checked_artifact_path(name: Any) -> str:
    """``name`` as a clean relative POSIX path inside the run, or InvalidParameterError."""
    checked = _checked_paths.get(name) if type(name) is str else None
    if checked is not None:  # every fit logs "model" and the same file names
        return checked
    if not isinstance(name, str) or not name.strip("/ "):
        raise InvalidParameterError(f"model name must be a non-empty path, got {name!r}")
    path = PurePosixPath(name)
    if "\\" in name or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise InvalidParameterError(
            f"model name {name!r} must be a relative path inside the run "
            "(no leading '/', no '..', no drive, no backslash)"
        )
    checked = path.as_posix()
    if len(_checked_paths) < 1000:
        _checked_paths[name] = checked
    return checked


_checked_paths: dict[str, str] = {}  # name -> its clean path (only valid names are kept)
