"""Turn what ``log_dict`` / ``log_figure`` / ``log_image`` receive into file bytes.

Rendering happens on the caller's thread (a matplotlib figure is not safe to
touch from another thread); the bytes are then written by the background
writer. Each plotting or imaging library is imported only when an object of
that library is passed, so ``import autolog`` stays cheap.
"""

from __future__ import annotations

import io
import json
from typing import Any

from autolog.errors import InvalidParameterError, MissingDependencyError

__all__ = ["dict_bytes", "figure_bytes", "image_bytes"]


def _extension(artifact_file: str) -> str:
    name = artifact_file.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


#: what log_dict can write: JSON, or YAML by extension (a file named without one is JSON)
_DICT_EXTENSIONS = ("json", "yaml", "yml", "")


def dict_bytes(dictionary: Any, artifact_file: str) -> bytes:
    """YAML for ``.yaml`` / ``.yml`` files (needs pyyaml), indented JSON for
    ``.json`` (or no extension); any other extension (``.toml``, ``.ini``, ...)
    is an InvalidParameterError rather than JSON under a name that says otherwise."""
    extension = _extension(artifact_file)
    if extension not in _DICT_EXTENSIONS:
        raise InvalidParameterError(
            f"log_dict({artifact_file!r}): cannot write .{extension} files; it writes JSON "
            "(.json) or YAML (.yaml, .yml). For another format render the text yourself "
            "and use log_text()"
        )
    if extension in ("yaml", "yml"):
        try:
            import yaml
        except ImportError:
            raise MissingDependencyError(
                f"log_dict({artifact_file!r}) writes YAML, which needs pyyaml: pip install pyyaml"
            ) from None
        text = yaml.safe_dump(dictionary, default_flow_style=False, sort_keys=False)
    else:
        try:
            text = json.dumps(dictionary, indent=2)
        except (TypeError, ValueError) as error:
            raise InvalidParameterError(
                f"log_dict({artifact_file!r}): the value is not JSON-serialisable: {error}"
            ) from None
    return text.encode("utf-8")


def figure_bytes(figure: Any, artifact_file: str, **save_options: Any) -> bytes:
    """A matplotlib figure saved in the format of the file extension (png, svg,
    pdf, ...), or a plotly figure as HTML (other extensions need kaleido)."""
    module = type(figure).__module__
    extension = _extension(artifact_file)
    if module.startswith("matplotlib"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=extension or "png", **save_options)
        return buffer.getvalue()
    if module.startswith("plotly"):
        if extension in ("html", "htm"):
            options = {"include_plotlyjs": "cdn", "full_html": True, **save_options}
            return figure.to_html(**options).encode("utf-8")
        return figure.to_image(format=extension or "png", **save_options)
    raise InvalidParameterError(
        f"log_figure({artifact_file!r}): unsupported figure type "
        f"{module}.{type(figure).__qualname__}; pass a matplotlib or plotly figure"
    )


def _array_to_uint8(array: Any, artifact_file: str) -> Any:
    import numpy as np

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InvalidParameterError(
            f"log_image({artifact_file!r}): an image array must be HxW, HxWx1, HxWx3 or "
            f"HxWx4, got shape {array.shape}"
        )
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all() or array.min() < 0 or array.max() > 1:
            raise InvalidParameterError(
                f"log_image({artifact_file!r}): float pixels must lie in [0, 1]"
            )
        return np.round(array * 255).astype(np.uint8)
    if array.dtype.kind in "iu" and array.size and (array.min() < 0 or array.max() > 255):
        raise InvalidParameterError(
            f"log_image({artifact_file!r}): integer pixels must lie in [0, 255]"
        )
    if array.dtype.kind in "iub":
        return array.astype(np.uint8) * (255 if array.dtype.kind == "b" else 1)
    raise InvalidParameterError(
        f"log_image({artifact_file!r}): unsupported pixel type {array.dtype}"
    )


def image_bytes(image: Any, artifact_file: str) -> bytes:
    """A numpy array (uint8, or float in [0, 1]; HxW, HxWx3 or HxWx4) or a PIL
    image, encoded by PIL in the format of the extension (PNG by default)."""
    module = type(image).__module__
    if not (module.startswith("PIL") or module == "numpy"):
        raise InvalidParameterError(
            f"log_image({artifact_file!r}): pass a numpy array or a PIL image, "
            f"not {module}.{type(image).__qualname__}"
        )
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError(
            "log_image needs pillow to encode images: pip install pillow"
        ) from None
    if module == "numpy":
        image = Image.fromarray(_array_to_uint8(image, artifact_file))
    extension = _extension(artifact_file)
    image_format = Image.registered_extensions().get(f".{extension}", "PNG")
    if image_format == "JPEG" and image.mode == "RGBA":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()
