"""The patch manager: wraps of every kind, identical restore, sessions, runs, safety."""

from __future__ import annotations

import sys
import threading
import traceback
import warnings

import pytest

import autolog
from autolog import patching
from autolog.errors import AutologWarning
from autolog.patching import is_autolog_wrapper
from tests.patch_targets import fake_integration, recorder, wraps


def runs():
    return autolog.Client().search_runs(["0"], order_by=["attributes.start_time"])


def test_function_method_classmethod_staticmethod_property_and_identical_restore(make_module):
    name = make_module()
    fw = __import__(name)
    originals = {attr: fw.Model.__dict__[attr] for attr in ("fit", "create", "helper", "size")}
    original_train = fw.train
    events: list = []

    def patch(self, patcher, module):
        for attr in originals:
            patcher.wrap(module.Model, attr, recorder(events), opens_run=False)
        patcher.wrap(module, "train", recorder(events), opens_run=False)

    autolog.register(fake_integration(name, patch))
    autolog.autolog("fake")
    assert all(is_autolog_wrapper(fw.Model.__dict__[a]) for a in originals)
    model = fw.Model()
    assert model.fit(1, epochs=2) == ("fitted", 1, 2)
    assert fw.Model.create(3) == ("created", "Model", 3)
    assert fw.Child.create(3) == ("created", "Child", 3)  # classmethod binds to the subclass
    assert model.helper(4) == ("helper", 4) and fw.Model.helper(4) == ("helper", 4)
    assert model.size == 42
    assert fw.train(5) == ("trained", 5)
    assert [e[0] for e in events].count("before") == 7  # every call above, once

    autolog.autolog("fake", disable=True)
    for attr, original in originals.items():
        assert fw.Model.__dict__[attr] is original
    assert fw.train is original_train


def test_inherited_attribute_is_removed_again_on_unpatch(make_module):
    fw = __import__(make_module())
    autolog.register(
        fake_integration(fw.__name__, lambda self, p, m: p.wrap(m.Child, "fit", recorder([])))
    )
    autolog.autolog("fake")
    assert "fit" in fw.Child.__dict__
    autolog.autolog("fake", disable=True)
    assert "fit" not in fw.Child.__dict__
    assert fw.Child.fit is fw.Model.fit


def test_patch_before_import_and_after_import(make_module):
    events: list = []

    def patch(self, patcher, module):
        patcher.wrap(module, "Model.fit", recorder(events))

    before = make_module()
    autolog.register(fake_integration(before, patch, name="early"))
    autolog.autolog("early")
    assert before not in sys.modules
    fw = __import__(before)  # the post-import hook patches it now
    assert is_autolog_wrapper(fw.Model.__dict__["fit"])

    after = make_module()
    fw2 = __import__(after)
    autolog.register(fake_integration(after, patch, name="late"))
    autolog.autolog("late")
    assert is_autolog_wrapper(fw2.Model.__dict__["fit"])


def test_autolog_twice_patches_once_and_patch_unpatch_patch(make_module):
    fw = __import__(make_module())
    original = fw.Model.__dict__["fit"]
    autolog.register(fake_integration(fw.__name__, wraps("Model.fit", recorder([]))))
    autolog.autolog("fake")
    first = fw.Model.__dict__["fit"]
    autolog.autolog("fake")
    assert fw.Model.__dict__["fit"] is first
    assert first.__wrapped__ is original  # not double-wrapped
    autolog.autolog("fake", disable=True)
    autolog.autolog("fake", disable=True)  # unpatch without patch: harmless
    assert fw.Model.__dict__["fit"] is original
    autolog.autolog("fake")
    assert fw.Model.__dict__["fit"].__wrapped__ is original


def test_wrap_subclasses_covers_existing_and_later_subclasses(make_module):
    fw = __import__(make_module())
    events: list = []
    autolog.register(
        fake_integration(
            fw.__name__, lambda s, p, m: p.wrap_subclasses(m.Model, "fit", recorder(events))
        )
    )
    autolog.autolog("fake")
    assert is_autolog_wrapper(fw.Override.__dict__["fit"])

    class Late(fw.Model):  # defined after patching, overriding fit
        def fit(self, x, epochs=1, callbacks=None):
            return super().fit(x, epochs, callbacks)

    assert is_autolog_wrapper(Late.__dict__["fit"])
    assert Late().fit(7) == ("fitted", 7, 1)
    assert fw.Override().fit(8) == ("fitted", 8, 1)
    # one logged (outermost) call each: the super().fit inside is nested
    befores = [e for e in events if e[0] == "before"]
    assert [(e[2], e[3]) for e in befores] == [((7,), True), ((8,), True)]
    assert len(runs()) == 2
    autolog.autolog("fake", disable=True)
    assert "__init_subclass__" not in fw.Model.__dict__

    class AfterDisable(fw.Model):
        def fit(self, x, epochs=1, callbacks=None):
            return x

    assert not is_autolog_wrapper(AfterDisable.__dict__["fit"])


def test_one_subclass_hook_per_base_for_all_its_attributes(make_module):
    """Each wrapped attribute used to chain an ``__init_subclass__`` of its own:
    scikit-learn's eleven per root ran on every class it defines. One hook per
    base now wraps them all, and asks ``include`` once per class."""
    fw = __import__(make_module())
    asked: list[str] = []

    def include(cls):
        asked.append(cls.__name__)
        return True

    def patch(self, patcher, module):
        for attribute in ("fit", "size", "helper"):
            patcher.wrap_subclasses(module.Model, attribute, recorder([]), include=include)

    autolog.register(fake_integration(fw.__name__, patch))
    autolog.autolog("fake")
    hook = fw.Model.__dict__["__init_subclass__"].__func__
    cells = dict(zip(hook.__code__.co_freevars, (c.cell_contents for c in hook.__closure__)))
    assert cells["original"] is patching._MISSING  # one hook, not a chain of three
    asked.clear()

    class Late(fw.Model):
        def fit(self, x, epochs=1, callbacks=None):
            return x

        def helper(self):
            return "late"

    assert is_autolog_wrapper(Late.__dict__["fit"])
    assert is_autolog_wrapper(Late.__dict__["helper"])
    assert asked == ["Late"]  # once, for both attributes it defines
    autolog.autolog("fake", disable=True)
    assert "__init_subclass__" not in fw.Model.__dict__
    autolog.autolog("fake")  # patched again: a fresh hook that wraps all three again

    class Again(fw.Model):
        def fit(self, x, epochs=1, callbacks=None):
            return x

    assert is_autolog_wrapper(Again.__dict__["fit"])


def test_one_run_per_outermost_call_with_tags(make_module):
    fw = __import__(make_module())
    events: list = []
    autolog.register(fake_integration(fw.__name__, wraps("Model.fit", recorder(events))))
    autolog.autolog("fake", extra_tags={"team": "a"})
    assert fw.Model().fit_twice(1) == ("fitted", 1, 1)  # fit_twice is not patched: 2 runs
    fw.Model().fit(2)
    found = runs()
    assert len(found) == 3
    for run in found:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.autologging"] == "fake"
        assert run.data.tags["team"] == "a"
    assert autolog.active_run() is None


def test_nested_patched_calls_log_once(make_module):
    fw = __import__(make_module())
    events: list = []

    def patch(self, patcher, module):
        patcher.wrap(module.Model, "fit", recorder(events))
        patcher.wrap(module.Model, "fit_twice", recorder(events))

    autolog.register(fake_integration(fw.__name__, patch))
    autolog.autolog("fake")
    fw.Model().fit_twice(3)
    assert [e[0] for e in events] == ["before", "after"]
    assert len(runs()) == 1


def test_user_run_is_used_and_not_ended_unless_exclusive(make_module):
    fw = __import__(make_module())
    events: list = []
    autolog.register(fake_integration(fw.__name__, wraps("Model.fit", recorder(events))))
    autolog.autolog("fake")
    with autolog.start_run() as run:
        fw.Model().fit(1)
        assert autolog.active_run().info.run_id == run.info.run_id
    assert events[0][1] == run.info.run_id and events[0][3] is False
    assert "mlflow.autologging" not in autolog.get_run(run.info.run_id).data.tags

    events.clear()
    autolog.autolog("fake", exclusive=True)
    with autolog.start_run():
        fw.Model().fit(1)
    assert events == []  # exclusive: nothing logged into the user's run, no run opened
    assert len(runs()) == 2


def test_user_exception_passes_unchanged_and_run_fails(make_module):
    fw = __import__(make_module())
    autolog.register(fake_integration(fw.__name__, wraps("Model.fit", recorder([]))))
    autolog.autolog("fake")
    with pytest.raises(ValueError) as info:
        fw.Model().fit("boom")
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "fit"  # the traceback still ends in the user's frame
    assert str(info.value) == "the user's own error"
    assert autolog.last_active_run().info.status == "FAILED"
    with pytest.raises(KeyboardInterrupt):
        fw.Model().fit("interrupt")
    assert autolog.last_active_run().info.status == "KILLED"
    assert len(runs()) == 2


def test_user_exception_is_the_same_object(make_module):
    fw = __import__(make_module())
    error = RuntimeError("mine")

    def raising_callback(model, x):
        raise error

    autolog.register(fake_integration(fw.__name__, wraps("Model.fit", recorder([]))))
    autolog.autolog("fake")
    with pytest.raises(RuntimeError) as info:
        fw.Model().fit(1, callbacks=[raising_callback])
    assert info.value is error


def test_threads_have_their_own_session_stack(make_module):
    fw = __import__(make_module())
    events: list = []
    barrier = threading.Barrier(2)

    def slow(model, x):
        barrier.wait(timeout=10)  # both fits are inside their outermost call at once

    autolog.register(fake_integration(fw.__name__, wraps("Model.fit", recorder(events))))
    autolog.autolog("fake")
    threads = [
        threading.Thread(target=fw.Model().fit, args=(i,), kwargs={"callbacks": [slow]})
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len([e for e in events if e[0] == "before"]) == 2
    assert len({e[1] for e in events if e[0] == "before"}) == 2  # two runs
    assert patching.active_session() is None


def test_call_arguments_by_name_and_position(make_module):
    fw = __import__(make_module())
    seen = {}

    def handler(call):
        seen["x"] = call.argument("x")
        seen["epochs"] = call.argument("epochs")
        seen["missing"] = call.argument("nope", "dflt")
        seen["all"] = call.arguments()
        call.set_argument("epochs", 5)
        call.set_argument("x", "changed")
        yield

    autolog.register(fake_integration(fw.__name__, wraps("Model.fit", handler)))
    autolog.autolog("fake")
    expected = {
        "x": "orig",
        "epochs": 2,
        "missing": "dflt",
        "all": {"x": "orig", "epochs": 2, "callbacks": None},
    }
    assert fw.Model().fit("orig", 2) == ("fitted", "changed", 5)
    assert seen == expected
    seen.clear()
    assert fw.Model.fit(fw.Model(), "orig", 2) == ("fitted", "changed", 5)  # through the class
    assert seen == expected


def test_guard_reports_once_and_swallows(monkeypatch):
    monkeypatch.delenv("AUTOLOG_TESTING")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            with patching.guard("guarded"):
                raise ZeroDivisionError
    assert len([w for w in caught if issubclass(w.category, AutologWarning)]) == 1
    with pytest.raises(KeyboardInterrupt), patching.guard("guarded"):
        raise KeyboardInterrupt


def test_testing_mode_reraises_our_errors(make_module):
    fw = __import__(make_module())

    def broken(call):
        raise LookupError("ours")
        yield

    autolog.register(fake_integration(fw.__name__, wraps("Model.fit", broken)))
    autolog.autolog("fake")
    with pytest.raises(LookupError, match="ours"):
        fw.Model().fit(1)


def test_an_outermost_call_counts_as_training_in_progress_until_it_ends(make_module):
    """The writer holds its drains back during the call (autolog.tracking.writer)."""
    from autolog.tracking import training_calls

    fw = __import__(make_module())
    seen: list = []

    def handler(call):
        seen.append(training_calls.in_progress)
        yield

    autolog.register(fake_integration(fw.__name__, wraps("Model.fit", handler)))
    autolog.autolog("fake")
    before = training_calls.in_progress
    fw.Model().fit(1)
    assert seen == [before + 1] and training_calls.in_progress == before
    with pytest.raises(TypeError):
        fw.Model().fit()  # the user's call raises: the count is back all the same
    assert seen == [before + 1] * 2 and training_calls.in_progress == before
