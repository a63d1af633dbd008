"""The installed distributions' metadata folders, read without importlib.metadata.

Importing ``importlib.metadata`` costs 10 to 30 ms and it parses each
distribution's whole ``METADATA`` file; the registry (entry points) and
provenance (``requirements.txt``) need much less: the folders themselves,
whose names installers write as ``<name>-<version>.dist-info``.
"""

from __future__ import annotations

import os
import sys


def normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares it."""
    return name.lower().replace("_", "-").replace(".", "-")


def metadata_folders() -> list[tuple[str, str]]:
    """(folder name, path) of every ``.dist-info`` / ``.egg-info`` folder on
    ``sys.path``; of a distribution found twice, the first on ``sys.path``, as
    for imports."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for entry in sys.path:
        try:
            listing = os.scandir(entry or ".")
        except OSError:
            continue
        with listing:
            for item in listing:
                if not item.name.endswith((".dist-info", ".egg-info")):
                    continue
                key = normalized(item.name.rsplit(".", 1)[0].split("-", 1)[0])
                if key not in seen:
                    seen.add(key)
                    found.append((item.name, item.path))
    return found
