"""The integration registry: validation, autolog() options, status(), versions, threads."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autolog
from autolog import _registry, integration
from autolog.errors import AutologWarning, IntegrationError
from autolog.models import Flavor
from autolog.patching import is_autolog_wrapper
from tests.patch_targets import fake_integration, recorder, wraps


def _patch(self, patcher, module):
    patcher.wrap(module.Model, "fit", recorder([]))


BAD_CLASSES = [
    (object, "expected a subclass of autolog.Integration"),
    (type("NoName", (autolog.Integration,), {"modules": ("x",), "patch": _patch}), "'name'"),
    (
        type(
            "BadName", (autolog.Integration,), {"name": "a b", "modules": ("x",), "patch": _patch}
        ),
        "'name' must be an identifier-like string, got 'a b'",
    ),
    (
        type("StrModules", (autolog.Integration,), {"name": "s", "modules": "x", "patch": _patch}),
        "got the string 'x'",
    ),
    (
        type("NoModules", (autolog.Integration,), {"name": "n", "modules": (), "patch": _patch}),
        "'modules' must be a non-empty tuple",
    ),
    (
        type("NoPatch", (autolog.Integration,), {"name": "p", "modules": ("x",)}),
        "does not implement patch",
    ),
    (
        type(
            "BadRange",
            (autolog.Integration,),
            {"name": "r", "modules": ("x",), "patch": _patch, "supported_versions": ">=banana"},
        ),
        "not a PEP 440 specifier: '>=banana'",
    ),
    (
        type(
            "Clash",
            (autolog.Integration,),
            {"name": "c", "modules": ("x",), "patch": _patch, "options": {"silent": 1}},
        ),
        "are reserved: they are autolog()'s own keywords",
    ),
    (
        type(
            "BadFlavor",
            (autolog.Integration,),
            {"name": "f", "modules": ("x",), "patch": _patch, "flavors": (int,)},
        ),
        "'flavors': <class 'int'> is not a subclass of autolog.models.Flavor",
    ),
]


@pytest.mark.parametrize(
    ("cls", "message"), BAD_CLASSES, ids=lambda v: getattr(v, "__name__", "msg")
)
def test_registration_names_the_class_and_the_problem(cls, message):
    before = {c.name for c in integration.integration_classes()}
    with pytest.raises(IntegrationError) as info:
        autolog.register(cls)
    assert message in str(info.value)
    assert getattr(cls, "__qualname__", "object") in str(info.value)
    assert {c.name for c in integration.integration_classes()} == before  # nothing registered


def test_duplicate_name_is_refused_same_class_is_a_no_op():
    cls = fake_integration("nowhere_module", _patch, name="dup")
    autolog.register(cls)
    autolog.register(cls)
    other = fake_integration("nowhere_module", _patch, name="dup")
    with pytest.raises(IntegrationError, match="already registered"):
        autolog.register(other)


def test_valid_flavor_is_accepted():
    class ToyFlavor(Flavor):
        name = "toyflavor"
        distribution = "toy"
        module = "toy"

        def handles(self, model):
            return False

        def snapshot(self, model, **options):
            raise NotImplementedError

        def load(self, path, metadata):
            raise NotImplementedError

    cls = fake_integration("nowhere_module", _patch, name="flavored", flavors=(ToyFlavor,))
    assert autolog.register(cls) is cls


def test_unknown_name_lists_the_known_ones():
    autolog.register(fake_integration("nowhere_module", _patch, name="known_one"))
    with pytest.raises(IntegrationError) as info:
        autolog.autolog("nope")
    assert "nope" in str(info.value) and "known_one" in str(info.value)


def test_options_go_to_integrations_that_declare_them(make_module):
    fw = __import__(make_module())
    seen = []

    def handler(call):
        seen.append((call.config.depth, call.config.log_models))
        yield

    cls = fake_integration(
        fw.__name__,
        wraps("Model.fit", handler),
        name="opt",
        options={"depth": 1},
    )
    autolog.register(cls)
    autolog.register(fake_integration("nowhere_module", _patch, name="other"))
    with pytest.raises(TypeError, match=r"\['colour'\]"):
        autolog.autolog("opt", colour="red")
    with pytest.raises(TypeError, match="depth"):
        autolog.autolog("other", depth=3)  # declared by "opt", not by "other"
    autolog.autolog("opt")
    fw.Model().fit(1)
    autolog.autolog("opt", depth=3, log_models=False)  # reconfigure
    fw.Model().fit(1)
    assert seen == [(1, True), (3, False)]


def _row(name):
    return next(r for r in autolog.status() if r.name == name)


def test_status_states_and_targets(make_module):
    name = make_module()
    autolog.register(fake_integration(name, _patch, name="tracked"))
    assert _row("tracked").state == "disabled"
    autolog.autolog("tracked")
    assert _row("tracked").state == "waiting for import"
    __import__(name)
    row = _row("tracked")
    assert row.state == "active"
    assert row.targets == (f"{name}.Model.fit",)
    autolog.autolog("tracked", disable=True)
    assert _row("tracked").state == "disabled" and _row("tracked").targets == ()

    autolog.register(fake_integration("surely_not_installed_fw", _patch, name="absent"))
    autolog.autolog("absent")
    assert _row("absent").state == "not installed"


def test_builtin_integrations_are_registered_through_entry_points():
    names = {c.name for c in integration.integration_classes()}
    assert {"sklearn", "xgboost", "lightgbm", "keras", "torch", "lightning"} <= names
    assert integration._registry.from_entry_points >= {"sklearn", "xgboost", "lightgbm"}


def test_entry_point_parser_reads_only_its_group():
    text = (
        "[console_scripts]\nx = a:b\n\n[autolog.integrations]\ntoy = pkg.mod:Toy\n"
        "# c\n[other]\ny = c:d\n"
    )
    assert _registry._parse_section(text, "[autolog.integrations]") == [("toy", "pkg.mod:Toy")]


def test_unsupported_version_warns_once_and_skips(make_module, monkeypatch):
    name = make_module()
    fw = __import__(name)
    cls = fake_integration(
        name, _patch, name="old", distribution="pytest", supported_versions="<1"
    )  # pytest is installed, and >= 8
    autolog.register(cls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        autolog.autolog("old")
    assert [str(w.message) for w in caught if w.category is AutologWarning] == [
        f"autolog: old not enabled: pytest {_row('old').installed_version} is outside the "
        "supported range '<1'; pass allow_unsupported_versions=True to try anyway"
    ]
    assert _row("old").state == "unsupported version"
    assert not is_autolog_wrapper(fw.Model.__dict__["fit"])
    autolog.autolog("old", allow_unsupported_versions=True)
    assert is_autolog_wrapper(fw.Model.__dict__["fit"])
    assert _row("old").state == "active"


def test_a_failing_patch_is_undone_and_reported(make_module, monkeypatch):
    monkeypatch.delenv("AUTOLOG_TESTING")
    fw = __import__(make_module())

    def half_patch(self, patcher, module):
        patcher.wrap(module.Model, "fit", recorder([]))
        raise RuntimeError("cannot find Model.predict")

    autolog.register(fake_integration(fw.__name__, half_patch, name="half"))
    with pytest.warns(AutologWarning, match="cannot find Model.predict"):
        autolog.autolog("half")
    assert not is_autolog_wrapper(fw.Model.__dict__["fit"])
    row = _row("half")
    assert row.state == "failed" and "cannot find Model.predict" in row.reason


def test_enable_and_disable_from_many_threads(make_module):
    fw = __import__(make_module())
    original = fw.Model.__dict__["fit"]
    autolog.register(fake_integration(fw.__name__, _patch, name="racy"))
    errors = []

    def flip(i):
        try:
            for _ in range(50):
                autolog.autolog("racy", disable=bool(i % 2))
        except Exception as exc:  # pragma: no cover - the assertion shows it
            errors.append(exc)

    threads = [threading.Thread(target=flip, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    autolog.autolog("racy")
    current = fw.Model.__dict__["fit"]
    assert is_autolog_wrapper(current) and current.__wrapped__ is original
    autolog.autolog("racy", disable=True)
    assert fw.Model.__dict__["fit"] is original


def test_importing_autolog_imports_no_framework():
    import subprocess

    code = (
        "import sys, autolog; autolog.autolog();"
        "heavy = [m for m in ('sklearn','torch','tensorflow','keras','xgboost','lightgbm',"
        "'lightning','numpy','pandas','sqlalchemy') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


_releases = st.lists(st.integers(0, 12), min_size=1, max_size=4).map(
    lambda parts: ".".join(map(str, parts))
)
_locals = st.sampled_from(["", "+cpu", "+cu121", "+local.7"])
_suffixes = st.sampled_from(["", "rc1", ".post1", ".dev3", "a2"])  # packaging's answer then
_clauses = st.tuples(st.sampled_from([">=", "<=", "<", ">", "==", "!="]), _releases).map("".join)


@settings(max_examples=600, deadline=None)
@given(
    installed=st.tuples(_releases, _suffixes, _locals).map("".join),
    clauses=st.lists(_clauses, min_size=1, max_size=3).map(",".join),
)
def test_version_ranges_are_answered_as_packaging_answers(installed, clauses):
    from packaging.specifiers import SpecifierSet

    expected = installed in SpecifierSet(clauses, prereleases=True)
    assert _registry.version_in_range(installed, clauses) is expected


def test_a_final_release_in_a_plain_range_needs_no_packaging():
    code = (
        "import sys; from autolog._registry import version_in_range as v; "
        "assert v('2.13.0+cpu', '>=2.1,<2.14') and not v('2.14', '>=2.1,<2.14'); "
        "assert v('1.5', '>=1.3,<1.11') and not v('1.2.9', '>=1.3'); "
        "assert 'packaging.specifiers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- built-ins loaded when their framework is imported -----------------------------


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )


def test_the_manifest_is_each_builtin_class_modules_and_covers():
    from autolog.integrations import FRAMEWORK_MODULES

    builtins = {
        name: value
        for name, value in _registry._entry_points(_registry.ENTRY_POINT_GROUP)
        if value.startswith("autolog.integrations.")
    }
    assert set(FRAMEWORK_MODULES) == set(builtins)
    for name, value in builtins.items():
        cls = _registry._load_entry_point(name, value)
        assert FRAMEWORK_MODULES[name] == (cls.modules, cls.covers), name


def test_a_builtin_loads_when_its_framework_is_imported_with_the_options_in_force():
    code = (
        "import json, sys, autolog\n"
        "autolog.autolog(log_models=False, extra_tags={'team': 'a'})\n"
        "ours = lambda: sorted(m for m in sys.modules if m.startswith('autolog.integrations.'))\n"
        "before = ours()\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "state = autolog.integration._registry.states['sklearn']\n"
        "config = state.integration.config\n"
        "print(json.dumps([before, ours(), sorted(state.patched),\n"
        "    config.log_models, config.extra_tags, config.options['max_tuning_runs'],\n"
        "    autolog.integration._registry.states['xgboost'].loaded]))\n"
    )
    before, after, patched, log_models, tags, tuning, xgboost_loaded = json.loads(
        _run(code).stdout.splitlines()[-1]
    )
    assert before == []
    assert "autolog.integrations.sklearn" in after
    assert not {"autolog.integrations.xgboost", "autolog.integrations.torch"} & set(after)
    assert patched == ["sklearn", "sklearn.metrics", "sklearn.model_selection"]
    assert (log_models, tags, tuning) == (False, {"team": "a"}, 5)
    assert xgboost_loaded is False


def test_a_builtin_that_fails_to_load_is_reported_when_its_framework_is_imported():
    # the statsmodels row made to disagree with its class: loading it refuses
    code = (
        "import json, warnings, autolog\n"
        "from autolog.integrations import FRAMEWORK_MODULES\n"
        "FRAMEWORK_MODULES['statsmodels'] = (('colorsys',), ())\n"
        "autolog.autolog()\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import colorsys\n"
        "row = next(r for r in autolog.status() if r.name == 'statsmodels')\n"
        "print(json.dumps([[str(w.message) for w in caught], row.state, row.reason,\n"
        "    autolog.integration.is_enabled('sklearn')]))\n"
    )
    messages, state, reason, others = json.loads(_run(code).stdout.splitlines()[-1])
    assert len(messages) == 1 and "cannot load integration 'statsmodels'" in messages[0]
    assert state == "failed"
    assert "FRAMEWORK_MODULES says ('colorsys',)" in reason
    assert others is True


def test_log_model_finds_the_flavor_of_an_imported_framework_without_autolog(tmp_path):
    code = (
        "import json, sys, autolog\n"
        "from sklearn.linear_model import LogisticRegression\n"
        f"autolog.set_tracking_uri({(tmp_path / 'mlruns').as_uri()!r})\n"
        "with autolog.start_run():\n"
        "    info = autolog.log_model(LogisticRegression().fit([[0], [1]], [0, 1]), 'model')\n"
        "print(json.dumps([info.flavor, 'autolog.integrations.torch' in sys.modules]))\n"
    )
    flavor, torch_loaded = json.loads(_run(code).stdout.splitlines()[-1])
    assert flavor == "sklearn"
    assert torch_loaded is False
