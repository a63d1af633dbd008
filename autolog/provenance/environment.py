"""The environment a run ran in: the interpreter, the installed distributions,
the machine, and the GPUs a framework already imported can see.

Everything is read once per process and cached: files under ``/proc`` on
Linux, ``os`` and ``sys`` elsewhere; no subprocess. GPU facts are only asked
of torch or TensorFlow when the user's code imported them already (a
framework is never imported for this), and never in a way that would
initialise CUDA: names and counts come from the NVIDIA driver's files.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from pathlib import Path

from autolog._distributions import metadata_folders, normalized

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["env_var_tags", "gpu_tags", "machine_tags", "requirements_text"]

PREFIX = "autolog.env."


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Hardware", "cpu model"):
            return value.strip()
    return os.uname().machine if hasattr(os, "uname") else ""


def _memory_mb() -> int | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024  # kB
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (AttributeError, ValueError, OSError):
        return None


def _os_name() -> str:
    if not hasattr(os, "uname"):  # Windows
        return f"{sys.platform} {sys.getwindowsversion().major}"  # type: ignore[attr-defined]
    uname = os.uname()
    text = f"{uname.sysname} {uname.release} {uname.machine}"
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            text += f" ({line.partition('=')[2].strip().strip(chr(34))})"
    return text


@functools.cache
def machine_tags() -> dict[str, str]:
    """Interpreter, OS, CPU and memory of this process, as ``autolog.env.*`` tags."""
    impl = sys.implementation.name
    version = ".".join(map(str, sys.version_info[:3]))
    tags = {
        PREFIX + "python": f"{'CPython' if impl == 'cpython' else impl} {version}",
        PREFIX + "os": _os_name(),
        PREFIX + "cpu": _cpu_model(),
        PREFIX + "cpu_count": str(os.cpu_count() or 0),
    }
    memory = _memory_mb()
    if memory is not None:
        tags[PREFIX + "memory_mb"] = str(memory)
    return {k: v for k, v in tags.items() if v}


def _nvidia_gpus() -> list[str]:
    """GPU model names from the NVIDIA driver's files (Linux), without CUDA."""
    root = Path("/proc/driver/nvidia/gpus")
    names = []
    try:
        folders = sorted(root.iterdir())
    except OSError:
        return []
    for folder in folders:
        for line in _read(str(folder / "information")).splitlines():
            if line.startswith("Model:"):
                names.append(line.partition(":")[2].strip())
    return names


def _driver_version() -> str | None:
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar ..."
    text = _read("/proc/driver/nvidia/version")
    for word in text.split():
        if word.count(".") >= 1 and word.replace(".", "").isdigit():
            return word
    return None


def _torch_facts(torch: object) -> dict[str, str]:
    facts: dict[str, str] = {}
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    if cuda:
        facts["cuda"] = str(cuda)
        try:
            cudnn = torch.backends.cudnn.version()  # type: ignore[attr-defined]
        except Exception:
            cudnn = None
        if cudnn:
            facts["cudnn"] = str(cudnn)
        try:  # only when the user's code has initialised CUDA: asking costs nothing then
            if torch.cuda.is_initialized():  # type: ignore[attr-defined]
                count = torch.cuda.device_count()  # type: ignore[attr-defined]
                facts["gpu_count"] = str(count)
                if count:
                    facts["gpu"] = torch.cuda.get_device_name(0)  # type: ignore[attr-defined]
        except Exception:
            pass
    return facts


def _tensorflow_facts(tf: object) -> dict[str, str]:
    facts: dict[str, str] = {}
    try:
        info = tf.sysconfig.get_build_info()  # type: ignore[attr-defined]
    except Exception:
        return facts
    for ours, theirs in (("cuda", "cuda_version"), ("cudnn", "cudnn_version")):
        if info.get(theirs):
            facts[ours] = str(info[theirs])
    return facts


@functools.cache
def _gpu_tags(frameworks: tuple[str, ...]) -> dict[str, str]:
    facts: dict[str, str] = {}
    for name in frameworks:
        module = sys.modules[name]
        found = _torch_facts(module) if name == "torch" else _tensorflow_facts(module)
        for key, value in found.items():
            facts.setdefault(key, value)
    gpus = _nvidia_gpus()
    if gpus:
        facts.setdefault("gpu", gpus[0])
        facts.setdefault("gpu_count", str(len(gpus)))
    if facts.get("gpu") or facts.get("cuda"):
        driver = _driver_version()
        if driver:
            facts.setdefault("gpu_driver", driver)
    return {PREFIX + k: v for k, v in facts.items()}


def gpu_tags() -> dict[str, str]:
    """GPU model and count, CUDA, cuDNN and driver versions, when torch or
    TensorFlow is already imported (empty otherwise); cached per set of
    imported frameworks."""
    frameworks = tuple(n for n in ("torch", "tensorflow") if n in sys.modules)
    return _gpu_tags(frameworks) if frameworks else {}


def env_var_tags(names: tuple[str, ...]) -> dict[str, str]:
    """``autolog.env.var.<NAME>`` for the allow-listed variables that are set;
    a name that looks secret is stored as ``***``."""
    from autolog.tracking.secrets import mask_value

    return {
        f"{PREFIX}var.{name}": mask_value(name, os.environ[name])
        for name in names
        if name in os.environ
    }


def _name_and_version(folder: str) -> tuple[str | None, str | None]:
    """Name and Version from the metadata's header, read as text: parsing the whole
    file as an email (what ``importlib.metadata`` does) costs ten times more.
    Only the file's first lines are read (Name and Version come right after
    Metadata-Version): the whole files of 200 distributions are 2.5 MB (long
    descriptions), which took 17 ms of the 26."""
    for file_name in ("METADATA", "PKG-INFO"):
        path = os.path.join(folder, file_name)
        found = _header_fields(path)
        if found is not None:
            return found
        text = _read(path)  # none, or a header longer than the chunk read
        if text:
            return _fields(text.split("\n\n", 1)[0].splitlines())
    return None, None


def _fields(lines: Any) -> tuple[str | None, str | None]:
    name = version = None
    for line in lines:
        if line.startswith("Name:"):
            name = line[5:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
        if name and version:
            break
    return name, version


_HEAD_BYTES = 2048


def _header_fields(path: str) -> tuple[str | None, str | None] | None:
    """Name and Version from the first complete lines of ``path``, or None (no
    such file, or not both in the lines read before the header ends or the
    chunk does: the caller reads the whole file then, as before)."""
    try:
        with open(path, "rb") as file:
            head = file.read(_HEAD_BYTES)
    except OSError:
        return None
    complete = len(head) < _HEAD_BYTES  # the whole file: its last line counts too
    text = head.decode("utf-8", errors="replace").replace("\r\n", "\n")
    header, blank, _ = text.partition("\n\n")
    if not complete and not blank:
        header = header.rpartition("\n")[0]  # a line cut by the chunk is not read
    name, version = _fields(header.splitlines())
    return (name, version) if name and version else None


_requirements_lock = threading.Lock()


@functools.cache
def _requirements_text() -> str:
    # The folders, not importlib.metadata.distributions(): importing it and
    # walking its objects took 20 to 40 ms of the writer's thread per process,
    # the GIL held through most of it.
    seen: dict[str, str] = {}
    for _name, folder in metadata_folders():
        name, version = _name_and_version(folder)
        if name and version:
            seen.setdefault(normalized(name), f"{name}=={version}")
    return "".join(line + "\n" for _key, line in sorted(seen.items()))


def requirements_text() -> str:
    """The distributions installed for this interpreter as ``requirements.txt``
    (``name==version``, sorted; the first of a name on ``sys.path`` wins, as for
    imports). Read from their metadata folders once per process (thread-safe)."""
    with _requirements_lock:
        return _requirements_text()
