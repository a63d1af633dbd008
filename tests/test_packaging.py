"""What `pip install .` (not editable) ships: every package of the source tree
and the UI's static files. An editable install finds a package that
pyproject.toml forgot; a wheel silently leaves it out."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _source_packages() -> set[str]:
    found = set()
    for name, folder in SETUPTOOLS["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join((name, *rel.parts)) if rel.parts else name)
    return {p for p in found if "__pycache__" not in p}


def test_every_source_package_is_listed():
    missing = _source_packages() - set(SETUPTOOLS["packages"])
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_every_ui_asset_is_package_data():
    static = ROOT / "autolog" / "ui" / "static"
    patterns = SETUPTOOLS["package-data"]["autolog.ui"]
    assets = [p.relative_to(static.parent).as_posix() for p in static.rglob("*") if p.is_file()]
    assert assets, "the UI has no static files"
    unshipped = [a for a in assets if not any(fnmatch.fnmatch(a, pat) for pat in patterns)]
    assert not unshipped, f"UI files a wheel would leave out: {unshipped}"
