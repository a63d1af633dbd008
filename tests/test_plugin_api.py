"""The plugin API: validation at registration (quoting class and member),
option types checked at autolog(), and one public module for integrations."""

from __future__ import annotations

import ast
import sys
import weakref
from pathlib import Path

import pytest

import autolog
from autolog import _stack as plugin_stack
from autolog import plugin
from autolog.errors import IntegrationError, InvalidParameterError

ROOT = Path(__file__).resolve().parents[1]


def _patch(self, patcher, module):
    patcher.wrap(module, "Model.fit", self.on_fit)


def _on_fit(self, call):
    yield


class NoHandles(plugin.Flavor):
    name = "nohandles"
    distribution = "x"
    module = "x"

    def snapshot(self, model, **options):
        return plugin.ModelSnapshot({})

    def load(self, path, metadata):
        return None


def define(class_name: str, **body) -> type:
    attrs = {"name": "bad", "modules": ("x",), "patch": _patch, "on_fit": _on_fit, **body}
    return type(class_name, (plugin.Integration,), attrs)


def plain_on_fit(self, call):
    return None


INVALID = [
    (define("PlainHandler", on_fit=plain_on_fit), "PlainHandler.on_fit is not a generator"),
    (define("ReservedOption", options={"silent": True}), "options ['silent'] are reserved"),
    (define("ReservedDisable", options={"disable": 1}), "options ['disable'] are reserved"),
    (
        define("BadDefault", options={"n": plugin.Option("ten", int)}),
        "the default of option 'n': must be int",
    ),
    (define("NoHandlesFlavor", flavors=(NoHandles,)), "NoHandles must implement handles()"),
    (define("CoversItself", covers=("x",)), "'covers' ['x'] are in 'modules' too"),
    (define("CoversString", covers="xgboost"), "'covers' must be a tuple"),
]


@pytest.mark.parametrize(("cls", "message"), INVALID, ids=[c.__name__ for c, _ in INVALID])
def test_each_invalid_definition_is_refused_naming_class_and_member(cls, message):
    with pytest.raises(IntegrationError) as info:
        autolog.register(cls)
    text = str(info.value)
    assert message in text
    assert f"test_plugin_api.{cls.__name__}" in text  # the class, by its qualified name
    assert "bad" not in {c.name for c in autolog.integration.integration_classes()}


def test_a_patch_that_wraps_nothing_is_an_error_naming_the_class(make_module, monkeypatch):
    fw = __import__(make_module())
    cls = define("WrapsNothing", modules=(fw.__name__,), patch=lambda self, patcher, module: None)
    autolog.register(cls)
    with pytest.raises(IntegrationError, match=r"WrapsNothing\.patch\(\) wrapped nothing in"):
        autolog.autolog("bad")  # AUTOLOG_TESTING: the patch error raises
    monkeypatch.delenv("AUTOLOG_TESTING")
    autolog.autolog("bad", disable=True)
    with pytest.warns(autolog.AutologWarning, match="wrapped nothing"):
        autolog.autolog("bad")
    [row] = [r for r in autolog.status() if r.name == "bad"]
    assert row.state == "failed" and "WrapsNothing.patch() wrapped nothing" in row.reason


# -- option values (issue 20, item 11) ----------------------------------------------


def test_a_wrong_option_type_names_option_integration_and_type():
    with pytest.raises(InvalidParameterError) as info:
        autolog.autolog("sklearn", max_tuning_runs="ten")
    text = str(info.value)
    assert "'max_tuning_runs'" in text and "'sklearn'" in text and "must be int or None" in text
    assert "'ten'" in text
    [row] = [r for r in autolog.status() if r.name == "sklearn"]
    assert row.state != "active"  # refused before anything changed


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_tuning_runs": True}, "'max_tuning_runs' of the 'sklearn' integration must be int"),
        ({"serialization_format": "json"}, "must be one of ['pickle', 'skops']"),
        ({"log_post_training_metrics": "yes"}, "must be bool"),
        ({"exclusive": "yes"}, "option 'exclusive' of the 'autolog' integration must be bool"),
        ({"extra_tags": ["a"]}, "option 'extra_tags'"),
        ({"extra_tags": {1: "a"}}, "extra_tags keys must be strings"),
    ],
)
def test_option_values_are_checked_before_anything_changes(options, fragment):
    autolog.autolog("sklearn", max_tuning_runs=3)
    before = autolog.integration._registry.states["sklearn"].integration.config
    with pytest.raises(InvalidParameterError) as info:
        autolog.autolog("sklearn", **options)
    assert fragment in str(info.value)
    assert autolog.integration._registry.states["sklearn"].integration.config is before


def test_valid_option_values_are_taken():
    autolog.autolog("sklearn", max_tuning_runs=None, pos_label=1, serialization_format="skops")
    config = autolog.integration._registry.states["sklearn"].integration.config
    assert (config.max_tuning_runs, config.pos_label, config.serialization_format) == (
        None,
        1,
        "skops",
    )


def test_a_plain_default_gives_the_option_its_type(make_module):
    fw = __import__(make_module())
    autolog.register(define("Typed", modules=(fw.__name__,), options={"every": 2, "rate": 0.5}))
    autolog.autolog("bad", every=3, rate=1)  # an int is a fine float
    with pytest.raises(InvalidParameterError, match="'every' of the 'bad' integration must be int"):
        autolog.autolog("bad", every=2.5)


# -- one public module -----------------------------------------------------------------

ALLOWED = {"autolog", "autolog.plugin"}


def _autolog_imports(path: Path) -> list[str]:
    """Every autolog module a file imports (module level or inside functions)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "autolog"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "autolog":
                found += [f"autolog.{a.name}" for a in node.names if a.name != "plugin"]
                found += ["autolog.plugin" for a in node.names if a.name == "plugin"]
            elif node.module.split(".")[0] == "autolog":
                found.append(node.module)
    return found


def _not_public(name: str) -> bool:
    if name in ALLOWED or name.split(".")[:2] == ["autolog", "integrations"]:
        return False
    # `from autolog import log_metric` style: a name of the user API is fine
    head, _, attr = name.partition(".")
    return not (head == "autolog" and attr in autolog.__all__)


EXAMPLE_PLUGIN = ROOT / "examples" / "custom_integration" / "src" / "autolog_toyml.py"
PLUGIN_FILES = [*sorted((ROOT / "integrations").glob("*.py")), EXAMPLE_PLUGIN]


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.name)
def test_integrations_import_only_the_plugin_module_and_the_user_api(path):
    private = [name for name in _autolog_imports(path) if _not_public(name)]
    assert private == [], f"{path.name} imports {private}: use autolog.plugin"


# Written as a third party would: not even the built-ins' shared helpers.
THIRD_PARTY_STYLE = [
    *("optuna.py", "catboost.py", "statsmodels.py"),
    *("transformers.py", "tensorflow.py"),
]


@pytest.mark.parametrize("name", THIRD_PARTY_STYLE)
def test_third_party_style_integrations_import_only_the_plugin_module_and_the_user_api(name):
    imports = _autolog_imports(ROOT / "integrations" / name)
    assert "autolog.plugin" in imports
    others = [n for n in imports if n not in ALLOWED and n.partition(".")[2] not in autolog.__all__]
    assert others == [], f"{name} imports {others}: only autolog.plugin and autolog"


def test_third_party_style_integrations_are_registered_by_entry_point_and_listed():
    rows = {row.name: row for row in autolog.status()}  # what `autolog status` prints
    for name in ("optuna", "catboost", "statsmodels"):
        assert rows[name].installed_version is not None, name
        assert rows[name].state == "disabled", (name, rows[name].reason)  # loaded, not failed
    autolog.autolog("statsmodels")
    import statsmodels.api  # noqa: F401  (patched on import)

    row = next(r for r in autolog.status() if r.name == "statsmodels")
    assert row.state == "active" and any(t.endswith(".fit") for t in row.targets)


def test_the_plugin_module_exports_what_it_documents():
    for name in plugin.__all__:
        assert getattr(plugin, name) is not None, name
    assert plugin.infer_signature is autolog.signature.infer_signature


def _class_lines(path: Path) -> dict[str, int]:
    tree = ast.parse(path.read_text())
    return {n.name: n.end_lineno - n.lineno + 1 for n in tree.body if isinstance(n, ast.ClassDef)}


# XGBoostIntegration 90 lines + LightGBMIntegration 88 before the boosting
# template (git show 812f898^:integrations/{xgboost,lightgbm}.py)
BOOSTING_CLASSES_BEFORE = 90 + 88


def test_the_boosting_integration_classes_are_at_most_half_their_length_before_the_template():
    xgb = _class_lines(ROOT / "integrations" / "xgboost.py")["XGBoostIntegration"]
    lgb = _class_lines(ROOT / "integrations" / "lightgbm.py")["LightGBMIntegration"]
    assert xgb + lgb <= BOOSTING_CLASSES_BEFORE // 2, (xgb, lgb)


class _Model:
    """What objects_on_stack looks for."""


class _Holder:
    """A plain object holding things as attributes."""


MODULE_MODEL = _Model()  # a global of the module whose frame is on the stack


def _frames_down(depth: int, found: list) -> None:
    """A stack ``depth`` frames deeper than the test's; searched from the deepest."""
    if depth:
        _frames_down(depth - 1, found)
    else:
        found.extend(plugin.objects_on_stack(_Model, sys._getframe()))


def test_objects_on_stack_finds_locals_globals_items_and_attributes_one_level_deep():
    local, in_list, in_dict, attribute = _Model(), _Model(), _Model(), _Model()
    listed, named = [in_list], {"m": in_dict}
    holder = _Holder()
    holder.model = attribute
    holder.inner = _Holder()
    holder.inner.model = _Model()  # two attributes deep: not looked at
    del in_list, in_dict, attribute
    long_list = [_Model() for _ in range(plugin_stack.CONTAINER_LIMIT + 1)]  # not looked into
    found: list = []
    _frames_down(3, found)
    ids = {id(o) for o in found}
    assert {id(local), id(listed[0]), id(named["m"]), id(holder.model), id(MODULE_MODEL)} <= ids
    assert id(holder.inner.model) not in ids and not ids & {id(m) for m in long_list}
    assert len(found) == len(ids)  # each once


def test_objects_on_stack_keeps_no_local_of_a_searched_frame_alive():
    def searched() -> weakref.ref:
        local = _Holder()
        gone = weakref.ref(local)
        plugin.objects_on_stack(_Model, sys._getframe())
        del local  # the function goes on; its snapshot of locals must not hold it
        assert gone() is None
        return gone

    assert searched()() is None
