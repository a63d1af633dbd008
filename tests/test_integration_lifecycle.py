"""The patch lifecycle, ddtrace's orderings, for every registered integration
and the example plugin, each in a fresh interpreter.

Orderings: import-patch (with unpatch before any patch, patch twice, unpatch
twice, patch-unpatch-patch), patch-import, unpatch-patch-unpatch-import
(nothing may be patched by the import), patch-unpatch-patch-import. After
every step the integration is either *patched exactly once* (each record's
attribute holds our wrapper, wrapping the original, one record per attribute,
the same targets as in the import-patch order) or *restored* (each patched
attribute holds the identical original object again). Plus ``covers``:
scikit-learn steps aside for XGBoost's and LightGBM's own integrations and
covers their estimators again when those are disabled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autolog._registry import ENTRY_POINT_GROUP, _entry_points

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_integration" / "src"
NAMES = [*sorted({name for name, _ in _entry_points(ENTRY_POINT_GROUP)}), "toyml"]
ORDERINGS = [
    "import-patch",
    "patch-import",
    "unpatch-patch-unpatch-import",
    "patch-unpatch-patch-import",
]

COMMON = r"""
import importlib, json, sys
import autolog
from autolog import integration
from autolog.patching import _MISSING, is_autolog_wrapper

registry = integration._registry
registry.discover()


def state_of(name):
    if name == "toyml":
        sys.path.insert(0, sys.argv[3])
        from autolog_toyml import ToyMLIntegration
        autolog.register(ToyMLIntegration)
    assert name not in registry.load_errors, registry.load_errors[name]
    return registry.states[name]


def import_frameworks(cls):
    for module in cls.modules:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # an alternative module name (pytorch_lightning vs lightning.pytorch)


def current(owner, attribute):
    if isinstance(owner, type):
        return owner.__dict__.get(attribute, _MISSING)
    return getattr(owner, attribute, _MISSING)


def check_patched_once(state):
    records = state.patcher.records
    assert records, f"{state.cls.name}: nothing was patched"
    for r in records:
        now = current(r.owner, r.attribute)
        assert now is r.wrapper and is_autolog_wrapper(now), f"{r.target} is not our wrapper"
        inner = now.fget if isinstance(now, property) else now
        assert not is_autolog_wrapper(inner.__wrapped__), f"{r.target} is double-wrapped"
    assert len({(id(r.owner), r.attribute) for r in records}) == len(records), "patched twice"
    return sorted(r.target for r in records)


def snapshot(state):
    return [(r.owner, r.attribute, r.original, r.target) for r in state.patcher.records]


def check_restored(state, before):
    assert not state.patcher.records, "records left after unpatch"
    for owner, attribute, original, target in before:
        assert current(owner, attribute) is original, f"{target}: original not restored"


def unpatch(state):
    before = snapshot(state)
    autolog.autolog(state.cls.name, disable=True)
    check_restored(state, before)
"""

LIFECYCLE = (
    COMMON
    + r"""
name, order = sys.argv[1], sys.argv[2]
state = state_of(name)
cls = state.cls
patch = lambda: autolog.autolog(name)

if order == "import-patch":
    import_frameworks(cls)
    autolog.autolog(name, disable=True)  # unpatch without patch: harmless
    assert not state.patcher.records
    patch()
    targets = check_patched_once(state)
    patch()  # patch twice: patched once
    assert check_patched_once(state) == targets
    unpatch(state)
    autolog.autolog(name, disable=True)  # unpatch twice
    patch()  # patch-unpatch-patch
    assert check_patched_once(state) == targets
elif order == "patch-import":
    patch()
    assert not state.patcher.records, "patched before the framework was imported"
    import_frameworks(cls)
    targets = check_patched_once(state)
    patch()
    assert check_patched_once(state) == targets
elif order == "unpatch-patch-unpatch-import":
    autolog.autolog(name, disable=True)
    patch()
    autolog.autolog(name, disable=True)
    import_frameworks(cls)
    assert not state.patcher.records, "patched on import after unpatch"
    patch()
    targets = check_patched_once(state)
elif order == "patch-unpatch-patch-import":
    patch()
    autolog.autolog(name, disable=True)
    patch()
    import_frameworks(cls)
    targets = check_patched_once(state)
unpatch(state)
print(json.dumps(targets))
"""
)

COVERS = (
    COMMON
    + r"""
import sklearn, xgboost, lightgbm
sk, xgb, lgb = (state_of(n) for n in ("sklearn", "xgboost", "lightgbm"))
fit_owners = {"xgboost": xgboost.XGBClassifier, "lightgbm": lightgbm.LGBMClassifier}


def wrapped_by(owner):
    fit = owner.__dict__.get("fit")
    hits = [s.cls.name for s in (sk, xgb, lgb) for r in s.patcher.records if r.wrapper is fit]
    assert is_autolog_wrapper(fit) and len(hits) == 1, (owner, hits)
    assert not is_autolog_wrapper(fit.__wrapped__), f"{owner} fit is double-wrapped"
    return hits[0]


originals = {name: owner.__dict__["fit"] for name, owner in fit_owners.items()}
autolog.autolog("sklearn")
assert {wrapped_by(o) for o in fit_owners.values()} == {"sklearn"}  # sklearn covers both
check_patched_once(sk)
autolog.autolog("xgboost")  # xgboost's own integration takes over its estimators
assert wrapped_by(fit_owners["xgboost"]) == "xgboost"
assert wrapped_by(fit_owners["lightgbm"]) == "sklearn"
check_patched_once(sk), check_patched_once(xgb)
autolog.autolog()  # everything: each framework's estimators by their own integration
assert wrapped_by(fit_owners["lightgbm"]) == "lightgbm"
autolog.autolog("xgboost", "lightgbm", disable=True)  # sklearn covers them again
assert {wrapped_by(o) for o in fit_owners.values()} == {"sklearn"}
autolog.autolog(disable=True)
for name, owner in fit_owners.items():
    assert owner.__dict__["fit"] is originals[name], f"{name}: original not restored"
print(json.dumps(["ok"]))
"""
)


def run(script: str, *args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={"AUTOLOG_TESTING": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_builtin_integration_is_registered():
    assert {"sklearn", "xgboost", "lightgbm", "keras", "torch", "lightning"} <= set(NAMES)


_targets: dict[str, list[str]] = {}


@pytest.mark.parametrize("order", ORDERINGS)
@pytest.mark.parametrize("name", NAMES)
def test_lifecycle(name, order):
    targets = run(LIFECYCLE, name, order, str(EXAMPLE))
    assert targets
    # patched exactly once: the same targets whatever the order
    assert _targets.setdefault(name, targets) == targets


def test_covers_step_aside_and_cover_again():
    assert run(COVERS, "", "", str(EXAMPLE)) == ["ok"]
