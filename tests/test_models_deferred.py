"""ModelSnapshot.deferred: a flavor's serialisation runs after log_model returns, from its copy
(on the writer thread, or on a thread that drains it with flush())."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import autolog
from autolog.errors import TrackingWriteError
from autolog.models import Flavor, ModelSnapshot, register_flavor


class Box:
    """A model whose state training changes: ``value``."""

    def __init__(self, value: int):
        self.value = value


made_on: list[bool] = []  # per serialisation: whether log_model had returned by then
returned = threading.Event()


class BoxFlavor(Flavor):
    name = "box"
    distribution = "pytest"
    module = "builtins"
    priority = 5

    def handles(self, model):
        return isinstance(model, Box)

    def snapshot(self, model, fail: bool = False):
        copied = model.value  # the safe copy, taken on the caller's thread

        def encode() -> bytes:
            # run inside log_model, this would wait in vain for it to return
            made_on.append(returned.wait(timeout=5))
            if fail:
                raise ValueError("cannot encode")
            return json.dumps({"value": copied}).encode()

        return ModelSnapshot(
            {"kind.txt": b"box"}, {"file": "box.json"}, deferred={"box.json": encode}
        )

    def load(self, path, metadata):
        return Box(json.loads((Path(path) / metadata["file"]).read_text())["value"])


@pytest.fixture(autouse=True)
def _flavor():
    register_flavor(BoxFlavor)
    made_on.clear()
    returned.clear()
    yield
    from autolog import flavors

    flavors._reset_for_tests()


def test_the_deferred_file_is_made_on_the_writer_thread_from_the_snapshot():
    box = Box(1)
    with autolog.start_run():
        info = autolog.log_model(box, "model")
        returned.set()
        box.value = 2  # training goes on after the snapshot
    assert made_on == [True]  # made after log_model returned (by the writer, or the flush)
    assert info.metadata["files"] == ["box.json", "kind.txt"]
    assert autolog.load_model(info.model_uri).value == 1
    assert autolog.models.read_model_metadata(info.model_uri)["flavor"] == "box"


@pytest.mark.filterwarnings("ignore:autolog. the store rejected:RuntimeWarning")
def test_a_failing_deferred_file_is_a_write_error_and_leaves_no_model_json():
    with autolog.start_run() as run:
        info = autolog.log_model(Box(1), "model", fail=True)
        returned.set()
        with pytest.raises(TrackingWriteError, match="cannot encode"):
            autolog.flush()
    names = {f.path for f in autolog.Client().list_artifacts(run.info.run_id, "model")}
    assert "model/model.json" not in names and "model/box.json" not in names
    with pytest.raises(autolog.errors.ResourceNotFoundError):
        autolog.load_model(info.model_uri)


def test_model_json_is_made_by_whoever_reads_it_first_once():
    """log_model builds no metadata on the caller's thread: the writer makes
    model.json from it, and ModelInfo.metadata is the same dict."""
    from autolog import models
    from autolog.tracking.writer import get_writer

    built = []
    real = models._pinned

    def counted(*args):
        built.append(threading.current_thread().name)
        return real(*args)

    with autolog.start_run():
        models._pinned = counted
        try:
            info = autolog.log_model(Box(1), "model")
            returned.set()
            assert built == []  # nothing made yet
            get_writer().flush()
        finally:
            models._pinned = real
    assert len(built) == 1  # once, for model.json
    assert autolog.models.read_model_metadata(info.model_uri) == info.metadata
    assert len(built) == 1  # the ModelInfo holds the dict the writer made


def test_flavor_metadata_that_is_not_json_is_refused_by_log_model():
    from autolog.errors import ModelError

    class Odd(BoxFlavor):
        name = "odd"

        def snapshot(self, model):
            return ModelSnapshot({"kind.txt": b"box"}, {"made": object()})

    with autolog.start_run() as run:
        with pytest.raises(ModelError, match="not JSON"):
            autolog.log_model(Box(1), "model", flavor=Odd)
        autolog.flush()
    assert autolog.Client().list_artifacts(run.info.run_id, "model") == []


@pytest.mark.parametrize(
    "metadata",
    [
        {"a": 1, "b": [1, 2.0, None, "x", {"c": True}], "t": (1, "a")},
        {1: "x", None: 2.5, False: "k", 0.5: "float key"},
        {"numpy float": __import__("numpy").float64(1.5)},  # a float subclass
        {"numpy int": __import__("numpy").int64(1)},
        {"object": object()},
        {(1, 2): "tuple key"},
        {"set": {1, 2}},
        {"bytes": b"b"},
    ],
)
def test_the_metadata_check_agrees_with_json(metadata):
    from autolog.models import _is_json

    try:
        json.dumps(metadata)
        encodes = True
    except (TypeError, ValueError):
        encodes = False
    assert _is_json(metadata) is encodes
