"""Rule 1 under fault injection: our failures never change the user's result.

An integration that raises at each point of a call (before it, inside the
callback it injected, after it, while saving the model) must leave the user's
return value identical to a run without autolog, with one warning per
integration per process; the user's own exception keeps its identity.
"""

from __future__ import annotations

import traceback
import warnings

import pytest

import autolog
from autolog import training
from autolog.errors import AutologWarning
from autolog.patching import guard
from tests.patch_targets import fake_integration, wraps

POINTS = ["before", "callback", "after", "model"]


class Unpicklable:
    def __reduce__(self):
        raise TypeError("this model cannot be pickled")


def faulty(point: str):
    def fail_in_callback(model, x):
        with guard("faulty", "in a callback"):
            raise RuntimeError("ours: callback")

    def handler(call):
        if point == "before":
            raise RuntimeError("ours: before")
        callbacks = training.copy_callbacks(call.argument("callbacks"), fail_in_callback)
        call.set_argument("callbacks", callbacks)
        call.set_argument("epochs", 99)  # changes that must be undone if we fail before
        yield
        if point == "after":
            raise RuntimeError("ours: after")
        if point == "model":
            autolog.log_model(Unpicklable(), run_id=call.run_id)

    return handler


@pytest.fixture
def fw(make_module, monkeypatch):
    monkeypatch.delenv("AUTOLOG_TESTING")  # the user's view: our errors become warnings
    return __import__(make_module())


@pytest.mark.parametrize("point", POINTS)
def test_our_failure_leaves_the_result_identical_and_warns_once(fw, point):
    bare = fw.Model().fit("data")
    autolog.register(
        fake_integration(fw.__name__, wraps("Model.fit", faulty(point)), name="faulty")
    )
    autolog.autolog("faulty")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = fw.Model().fit("data")
        second = fw.Model().fit("data")
    expected = bare if point == "before" else ("fitted", "data", 99)
    assert first == second == expected
    ours = [w for w in caught if issubclass(w.category, AutologWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert "'faulty' integration failed" in str(ours[0].message)
    statuses = [r.info.status for r in autolog.Client().search_runs(["0"])]
    assert statuses == ["FINISHED", "FINISHED"]


@pytest.mark.parametrize("point", POINTS)
def test_user_exception_keeps_identity_and_traceback_despite_our_failure(fw, point):
    autolog.register(
        fake_integration(fw.__name__, wraps("Model.fit", faulty(point)), name="faulty")
    )
    autolog.autolog("faulty")
    error = KeyError("the user's")

    def users_callback(model, x):
        raise error

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutologWarning)
        with pytest.raises(KeyError) as info:
            fw.Model().fit("data", callbacks=[users_callback])
    assert info.value is error
    assert traceback.extract_tb(info.value.__traceback__)[-1].name == "users_callback"
    [run] = autolog.Client().search_runs(["0"])
    assert run.info.status == "FAILED"
