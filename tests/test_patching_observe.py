"""Patcher.observe: the per-step wrap (torch's backward) without a run, a Call or a generator."""

from __future__ import annotations

import warnings

import pytest

import autolog
from autolog.errors import AutologWarning, IntegrationError
from autolog.patching import is_autolog_wrapper
from tests.patch_targets import fake_integration, recorder


def test_after_sees_each_returned_call_and_unpatch_restores_the_original(make_module):
    fw = __import__(make_module())
    original_fit, original_train = fw.Model.__dict__["fit"], fw.train
    seen: list = []

    def patch(self, patcher, module):
        patcher.observe(module.Model, "fit", lambda *event: seen.append(event))
        patcher.observe(module, "train", lambda *event: seen.append(event))

    autolog.register(fake_integration(fw.__name__, patch))
    autolog.autolog("fake")
    assert is_autolog_wrapper(fw.Model.__dict__["fit"]) and is_autolog_wrapper(fw.train)
    model = fw.Model()
    assert model.fit(1, epochs=3) == ("fitted", 1, 3)
    assert fw.train(5) == ("trained", 5)
    assert seen == [
        (model, (1,), {"epochs": 3}, ("fitted", 1, 3)),
        (None, (5,), {}, ("trained", 5)),
    ]
    assert autolog.active_run() is None  # observing opens no run

    autolog.autolog("fake", disable=True)
    assert fw.Model.__dict__["fit"] is original_fit and fw.train is original_train


def test_the_users_exception_passes_unchanged_and_after_does_not_run(make_module):
    fw = __import__(make_module())
    seen: list = []
    autolog.register(
        fake_integration(
            fw.__name__, lambda self, p, m: p.observe(m.Model, "fit", lambda *e: seen.append(e))
        )
    )
    autolog.autolog("fake")
    with pytest.raises(ValueError, match="the user's own error"):
        fw.Model().fit("boom")
    assert seen == []


def test_a_failing_after_warns_once_and_the_call_returns_its_result(make_module, monkeypatch):
    monkeypatch.delenv("AUTOLOG_TESTING", raising=False)
    fw = __import__(make_module())

    def after(*event):
        raise RuntimeError("our bug")

    autolog.register(fake_integration(fw.__name__, lambda self, p, m: p.observe(m, "train", after)))
    autolog.autolog("fake")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [fw.train(i) for i in range(3)] == [("trained", i) for i in range(3)]
    ours = [w for w in caught if issubclass(w.category, AutologWarning)]
    assert len(ours) == 1 and "our bug" in str(ours[0].message)


def test_after_does_not_run_inside_a_patched_call_of_any_integration(make_module):
    fw = __import__(make_module())
    seen: list = []
    events: list = []

    def patch(self, patcher, module):
        patcher.wrap(module.Model, "fit", recorder(events))
        patcher.observe(module, "train", lambda *event: seen.append(event))

    autolog.register(fake_integration(fw.__name__, patch))
    autolog.autolog("fake")
    fw.Model().fit(1, callbacks=[lambda model, x: fw.train(x)])  # train() inside fit()
    assert seen == [] and [e[0] for e in events] == ["before", "after"]
    fw.train(2)
    assert len(seen) == 1


def test_observe_twice_wraps_once_and_a_non_callable_is_refused(make_module):
    fw = __import__(make_module())
    results: list = []

    def patch(self, patcher, module):
        results.append(patcher.observe(module, "train", lambda *e: None))
        results.append(patcher.observe(module, "train", lambda *e: None))
        try:
            patcher.observe(module, "train", "not a function")
        except IntegrationError as exc:
            results.append(str(exc))

    autolog.register(fake_integration(fw.__name__, patch))
    autolog.autolog("fake")
    assert results[:2] == [True, False]
    assert len(results) == 3 and "needs a callable" in results[2]
    assert not is_autolog_wrapper(fw.train.__wrapped__)  # not double-wrapped
