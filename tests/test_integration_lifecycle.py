"""The patch-lifecycle base, applied to every registered integration (ddtrace-style).

For each integration found through the entry-point group, in a fresh
interpreter per import order: import-then-patch and patch-then-import, patch
twice (patched once), unpatch (identical originals back), unpatch without
patch, patch-unpatch-patch, and never double-wrapped.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from autolog._registry import ENTRY_POINT_GROUP, _entry_points

NAMES = sorted({name for name, _ in _entry_points(ENTRY_POINT_GROUP)})

LIFECYCLE = r"""
import importlib, sys
import autolog
from autolog import integration
from autolog.patching import _MISSING, is_autolog_wrapper

name, order = sys.argv[1], sys.argv[2]
integration._registry.discover()
assert name not in integration._registry.load_errors, integration._registry.load_errors[name]
cls = integration._registry.classes[name]
state = integration._registry.states[name]


def import_frameworks():
    for module in cls.modules:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # an alternative module name (pytorch_lightning vs lightning.pytorch)


def current(owner, attribute):
    if isinstance(owner, type):
        return owner.__dict__.get(attribute, _MISSING)
    return getattr(owner, attribute, _MISSING)


def check_patched():
    records = state.patcher.records
    assert records, f"{name}: nothing was patched"
    for r in records:
        now = current(r.owner, r.attribute)
        assert now is r.wrapper and is_autolog_wrapper(now), f"{r.target} is not our wrapper"
        inner = now.fget if isinstance(now, property) else now
        assert not is_autolog_wrapper(inner.__wrapped__), f"{r.target} is double-wrapped"
    assert len({(id(r.owner), r.attribute) for r in records}) == len(records), "patched twice"
    return len(records)


def unpatch_and_check():
    snapshot = [(r.owner, r.attribute, r.original, r.target) for r in state.patcher.records]
    autolog.autolog(name, disable=True)
    for owner, attribute, original, target in snapshot:
        assert current(owner, attribute) is original, f"{target}: original not restored"
    assert not state.patcher.records


if order == "patch-then-import":
    autolog.autolog(name)
    assert not state.patcher.records, "patched before the framework was imported"
    import_frameworks()
else:
    import_frameworks()
    autolog.autolog(name, disable=True)  # unpatch without patch: harmless
    autolog.autolog(name)

count = check_patched()
autolog.autolog(name)  # patch twice: patched once
assert check_patched() == count
unpatch_and_check()
autolog.autolog(name, disable=True)  # unpatch twice
autolog.autolog(name)  # patch-unpatch-patch
assert check_patched() == count
unpatch_and_check()
print("ok", count)
"""


def test_every_builtin_integration_is_registered():
    assert {"sklearn", "xgboost", "lightgbm", "keras", "torch", "lightning"} <= set(NAMES)


@pytest.mark.parametrize("order", ["patch-then-import", "import-then-patch"])
@pytest.mark.parametrize("name", NAMES)
def test_lifecycle(name, order):
    out = subprocess.run(
        [sys.executable, "-c", LIFECYCLE, name, order],
        capture_output=True,
        text=True,
        timeout=300,
        env={"AUTOLOG_TESTING": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok ")
