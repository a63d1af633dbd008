"""Rule 1 for plugin bugs: whatever a handler or flavor of ours does wrong, the
user's call returns (or raises) exactly what it would without autolog, one
warning says so, and no run is left open.

The faults: a handler that is a plain function (the issue's ToyIntegration),
one that raises before its ``yield``, one that raises after it, one that
yields twice, and a flavor that raises in ``snapshot``.
"""

from __future__ import annotations

import warnings

import pytest

import autolog
from autolog import plugin
from autolog.errors import AutologWarning, IntegrationError

FAULTS = ["plain_function", "before_yield", "after_yield", "yields_twice", "flavor_snapshot"]


class SnapshotFails(plugin.Flavor):
    name = "broken_snapshot"
    distribution = "broken-snapshot"
    module = "builtins"  # always imported: asked for every model
    priority = 10**6

    def handles(self, model):
        return isinstance(model, tuple)

    def snapshot(self, model, **options):
        raise RuntimeError("bug in the flavor")

    def load(self, path, metadata):
        raise NotImplementedError


def plain_function(self, call):  # the issue's handler: no yield at all
    raise RuntimeError("bug in plugin")


def before_yield(self, call):
    call.set_argument("epochs", 99)  # a change that must not reach the user's call
    raise RuntimeError("bug before the call")
    yield


def after_yield(self, call):
    yield
    raise RuntimeError("bug after the call")


def yields_twice(self, call):
    yield
    yield


def flavor_snapshot(self, call):
    model = yield
    plugin.log_model(model, run_id=call.run_id)


def integration_with(fault: str, module_name: str) -> type:
    body = {
        "name": "toy",
        "modules": (module_name,),
        "patch": lambda self, patcher, module: patcher.wrap(module, "Model.fit", self.train),
        "train": globals()[fault],  # not named on_*: only the wrap-time check sees it
        "flavors": (SnapshotFails,) if fault == "flavor_snapshot" else (),
    }
    return type("ToyIntegration", (plugin.Integration,), body)


@pytest.fixture
def fw(make_module, monkeypatch):
    monkeypatch.delenv("AUTOLOG_TESTING")  # the user's view: our errors become warnings
    # A plain-function handler never passes patcher.wrap; bypass that check to
    # see that the patch manager itself survives one (and any handler object).
    monkeypatch.setattr("autolog.patching._check_handler", lambda *args: None)
    return __import__(make_module())


def call_twice(fw, x, **kwargs):
    """Two calls: (result or exception) of each, and our warnings."""
    outcomes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            try:
                outcomes.append(("returned", fw.Model().fit(x, **kwargs)))
            except BaseException as exc:  # the user's own, compared below
                outcomes.append(("raised", exc))
            assert autolog.active_run() is None  # no run of ours left open
    ours = [str(w.message) for w in caught if issubclass(w.category, AutologWarning)]
    return outcomes, ours


@pytest.mark.parametrize("fault", FAULTS)
def test_the_users_result_is_identical_warned_once_and_no_run_open(fw, fault):
    bare = fw.Model().fit("data")
    autolog.register(integration_with(fault, fw.__name__))
    autolog.autolog("toy")
    outcomes, ours = call_twice(fw, "data")
    assert outcomes == [("returned", bare), ("returned", bare)]
    assert len(ours) == 1, ours
    assert "'toy' integration failed" in ours[0]
    runs = autolog.Client().search_runs(["0"])
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]


@pytest.mark.parametrize("fault", FAULTS)
def test_the_users_exception_is_the_same_object_and_the_run_failed(fw, fault):
    autolog.register(integration_with(fault, fw.__name__))
    autolog.autolog("toy")
    error = KeyError("the user's")

    def users_callback(model, x):
        raise error

    outcomes, ours = call_twice(fw, "data", callbacks=[users_callback])
    assert outcomes == [("raised", error), ("raised", error)]
    assert all(exc is error for _, exc in outcomes)
    if fault in ("plain_function", "before_yield"):
        assert len(ours) == 1, ours  # the handler failed before the call, each time
    else:
        assert ours == []  # after-the-call code never ran: the user's call raised
    runs = autolog.Client().search_runs(["0"])
    assert [r.info.status for r in runs] == ["FAILED", "FAILED"]


def test_the_issues_plain_function_handler_is_refused_at_registration(make_module):
    name = make_module()

    class ToyIntegration(autolog.Integration):
        modules = (name,)

        def patch(self, patcher, module):
            patcher.wrap(module, "Trainer.train", self.on_train)

        def on_train(self, call):
            raise RuntimeError("bug in plugin")

    ToyIntegration.name = "toy"
    with pytest.raises(IntegrationError) as info:
        autolog.register(ToyIntegration)
    message = str(info.value)
    assert "ToyIntegration.on_train is not a generator function" in message
    assert "toy" not in {c.name for c in autolog.integration.integration_classes()}


def test_a_plain_function_handler_is_refused_by_wrap_naming_class_and_handler(make_module):
    fw = __import__(make_module())
    original = fw.Model.__dict__["fit"]
    autolog.register(integration_with("plain_function", fw.__name__))
    with pytest.raises(IntegrationError) as info:  # AUTOLOG_TESTING: patch errors raise
        autolog.autolog("toy")
    message = str(info.value)
    assert "ToyIntegration" in message and "plain_function" in message
    assert "'Model.fit'" in message and "not a generator function" in message
    assert fw.Model.__dict__["fit"] is original  # nothing half-patched


def test_a_guarded_callback_hook_reports_once_and_returns_its_default(monkeypatch):
    monkeypatch.delenv("AUTOLOG_TESTING")

    class Callback:
        calls = 0

        @plugin.guarded("hooks", default=False)
        def after_iteration(self, epoch):
            Callback.calls += 1
            raise ZeroDivisionError("bug in a hook")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [Callback().after_iteration(epoch) for epoch in range(3)]
    assert results == [False, False, False] and Callback.calls == 3
    ours = [str(w.message) for w in caught if issubclass(w.category, AutologWarning)]
    assert len(ours) == 1 and "in after_iteration" in ours[0]
    with pytest.raises(KeyboardInterrupt):
        plugin.guarded("hooks")(lambda: (_ for _ in ()).throw(KeyboardInterrupt))()
