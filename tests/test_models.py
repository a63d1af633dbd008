"""log_model / load_model: the python flavor, flavor choice, metadata, URIs, errors."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import autolog
from autolog import flavors, models
from autolog.errors import (
    IntegrationError,
    InvalidParameterError,
    MissingDependencyError,
    ModelError,
    ResourceNotFoundError,
)
from autolog.models import (
    Flavor,
    ModelSnapshot,
    load_model,
    load_pickle,
    log_model,
    pickle_snapshot,
    register_flavor,
    saved_bytes,
)
from autolog.tracking.artifacts import repository_for
from tests.models_roundtrip import assert_roundtrip_in_fresh_process, run_python


@pytest.fixture(autouse=True)
def _own_flavor_registry():
    """Flavors a test registers are forgotten after it."""
    yield
    flavors._reset_for_tests()


class Thresholder:
    """A custom model: what the python flavor is for."""

    def __init__(self, threshold: float):
        self.threshold = threshold

    def predict(self, X):
        return (np.asarray(X)[:, 0] > self.threshold).astype(int)


class Tagged:
    """A model type that the test flavors below claim."""

    def __init__(self, value: str = "v"):
        self.value = value


def _text_flavor(flavor_name: str, prio: int, module_name: str = "json", dist: str = "numpy"):
    """A flavor that stores Tagged.value as text and says who loaded it."""

    class TextFlavor(Flavor):
        name = flavor_name
        distribution = dist
        module = module_name
        priority = prio

        def handles(self, model):
            return isinstance(model, Tagged)

        def snapshot(self, model, suffix=""):
            return ModelSnapshot({"value.txt": (model.value + suffix).encode()}, {"by": self.name})

        def load(self, path, metadata):
            return (metadata["by"], (Path(path) / "value.txt").read_text())

    TextFlavor.__qualname__ = f"TextFlavor[{flavor_name}]"
    return TextFlavor


def _artifact_folder(run_id: str) -> Path:
    """The local folder of a run's artifacts (the tests use the file store)."""
    return repository_for(autolog.get_run(run_id).info.artifact_uri).root


# -- the python flavor ---------------------------------------------------------


@pytest.mark.slow
def test_class_defined_in_main_loads_in_a_fresh_process():
    result = assert_roundtrip_in_fresh_process(
        """
        import numpy as np

        class MeanModel:
            def fit(self, X):
                self.mean = X.mean(axis=0)
                return self

            def predict(self, X):
                return (X - self.mean).sum(axis=1)

        X = np.random.RandomState(0).rand(8, 3)
        model = MeanModel().fit(X)
        """,
        predict="model.predict(X)",
        expected_flavor="python",
    )
    assert result.loaded_type == "MeanModel"
    assert result.metadata["flavor_metadata"]["class"] == "__main__.MeanModel"
    assert len(result.predictions_after) == 8


@pytest.mark.slow
def test_pickle_by_value_carries_a_module_the_loading_process_lacks(tmp_path):
    # the helper module exists only while the logging process runs
    assert_roundtrip_in_fresh_process(
        f"""
        import shutil, sys
        from pathlib import Path
        code_dir = Path({str(tmp_path / "code")!r})
        code_dir.mkdir()
        (code_dir / "my_scaler.py").write_text(
            "class Scaler:\\n    def predict(self, X):\\n        return [2 * x for x in X]\\n")
        sys.path.insert(0, str(code_dir))
        import my_scaler
        shutil.rmtree(code_dir)
        model = my_scaler.Scaler()
        X = [1, 2, 3]
        """,
        predict="model.predict(X)",
        log_args="pickle_by_value=['my_scaler']",
    )


def test_object_no_flavor_knows_is_saved_with_python_flavor():
    model = {"weights": [1.5, -2.0], "bias": Thresholder(0.3)}
    info = log_model(model, "weird")
    assert info.flavor == "python"
    loaded = load_model(info.model_uri)
    assert loaded["weights"] == [1.5, -2.0]
    assert loaded["bias"].threshold == 0.3
    X = np.array([[0.1], [0.9]])
    assert loaded["bias"].predict(X).tolist() == [0, 1]


def test_snapshot_is_the_model_as_it_was_when_logged():
    model = Thresholder(0.5)
    info = log_model(model)
    model.threshold = 99.0  # changed while the writer may still be writing
    assert load_model(info.model_uri).threshold == 0.5


# -- runs -------------------------------------------------------------------------


def test_log_model_without_active_run_starts_one_and_leaves_it_active():
    assert autolog.active_run() is None
    info = log_model(Thresholder(0.1))
    active = autolog.active_run()
    assert active is not None and active.info.run_id == info.run_id
    assert info.model_uri == f"runs:/{info.run_id}/model"
    autolog.end_run()


def test_log_model_into_active_and_explicit_runs():
    with autolog.start_run() as run:
        info = log_model(Thresholder(0.2), "models/thr")
    assert info.run_id == run.info.run_id
    assert info.artifact_path == "models/thr"
    with autolog.start_run() as finished:
        pass
    info2 = log_model(Thresholder(0.7), run_id=finished.info.run_id)
    assert autolog.active_run() is None  # an explicit run_id starts nothing
    assert load_model(info2.model_uri).threshold == 0.7
    assert load_model(info.model_uri).threshold == 0.2


# -- metadata -------------------------------------------------------------------


def test_metadata_file_describes_the_model():
    before = time.time_ns() // 1_000_000
    X = np.arange(12, dtype="float32").reshape(4, 3)
    info = log_model(Thresholder(1.0), input_example=X[:2])
    meta = models.read_model_metadata(info.model_uri)
    assert meta == info.metadata
    assert meta["flavor"] == "python"
    cloudpickle_version = importlib.metadata.version("cloudpickle")
    assert meta["framework"] == {"distribution": "cloudpickle", "version": cloudpickle_version}
    assert meta["requirements"] == [f"cloudpickle=={cloudpickle_version}"]
    assert meta["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert meta["autolog_version"] == autolog.__version__
    assert meta["run_id"] == info.run_id
    assert before <= meta["created_ms"] <= time.time_ns() // 1_000_000
    assert meta["files"] == ["model.pkl"]
    assert meta["signature"] == {
        "inputs": [{"name": None, "dtype": "float32", "shape": [-1, 3]}],
        "outputs": [],
    }
    assert meta["input_example"] == "input_example.json"
    example = models.load_input_example(info.model_uri)
    assert example.dtype == np.float32 and example.tolist() == X[:2].tolist()
    autolog.end_run()


def test_signature_and_example_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"age": [31, 40], "height": [1.7, 1.8], "city": ["a", "b"]})
    info = log_model(Thresholder(0.0), input_example=frame)
    inputs = info.metadata["signature"]["inputs"]
    assert [(s["name"], s["dtype"]) for s in inputs] == [
        ("age", "int64"),
        ("height", "float64"),
        ("city", str(frame.dtypes["city"])),  # "object", or "str" on pandas 3
    ]
    pd.testing.assert_frame_equal(models.load_input_example(info.model_uri), frame)


def test_explicit_signature_with_outputs():
    X = np.random.RandomState(1).rand(5, 2)
    model = Thresholder(0.5)
    sig = models.infer_signature(X, model.predict(X))
    info = log_model(model, signature=sig)
    assert info.signature == sig
    assert info.metadata["signature"]["outputs"][0]["shape"] == [-1]
    assert info.metadata["input_example"] is None
    assert models.load_input_example(info.model_uri) is None


def test_requirements_are_the_flavor_distributions_with_versions():
    flavor_class = _text_flavor("texty", 0)
    flavor_class.requirements = lambda self, model: ["cloudpickle", "numpy"]
    register_flavor(flavor_class)
    info = log_model(Tagged())
    version = importlib.metadata.version
    assert info.metadata["requirements"] == [
        f"numpy=={version('numpy')}",
        f"cloudpickle=={version('cloudpickle')}",
    ]


def test_python_flavor_requires_the_package_of_the_model_class():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1.0, 2.0]})  # no flavor handles data frames
    info = log_model(frame, "frame")
    version = importlib.metadata.version
    assert info.flavor == "python"
    assert info.metadata["requirements"] == [
        f"cloudpickle=={version('cloudpickle')}",
        f"pandas=={version('pandas')}",
    ]
    pd.testing.assert_frame_equal(load_model(info.model_uri), frame)
    assert log_model(Thresholder(0.1)).metadata["requirements"] == [
        f"cloudpickle=={version('cloudpickle')}"  # a class of the test module: no distribution
    ]


# -- choosing a flavor ---------------------------------------------------------------


def test_highest_priority_flavor_wins_and_options_reach_it():
    register_flavor(_text_flavor("low", 1))
    register_flavor(_text_flavor("high", 5))
    info = log_model(Tagged("x"), suffix="!")
    assert info.flavor == "high"
    assert load_model(info.model_uri) == ("high", "x!")
    assert log_model(Tagged("y"), flavor="low").flavor == "low"


def test_flavor_of_a_module_not_imported_is_never_asked():
    class Unimported(_text_flavor("unimported", 100, module_name="autolog_no_such_module")):
        def handles(self, model):
            raise AssertionError("asked although its module is not imported")

    register_flavor(Unimported)
    assert log_model(Tagged()).flavor == "python"


def test_a_failing_handles_is_a_model_error_naming_the_flavor():
    class Broken(_text_flavor("broken", 50)):
        def handles(self, model):
            raise RuntimeError("boom")

    register_flavor(Broken)
    with pytest.raises(ModelError, match=r"'broken'.*boom"):
        log_model(Tagged())


def test_flavor_helpers_for_path_only_savers_and_pickles():
    class PathSaved(Flavor):
        """A framework that can only save to a path, plus a pickled side-car."""

        name, distribution, module, priority = "path-saved", "numpy", "json", 7

        def handles(self, model):
            return isinstance(model, Tagged)

        def snapshot(self, model):
            native = saved_bytes(lambda path: path.write_text(model.value), "native.txt")
            extra = pickle_snapshot({"value": model.value}, "extra.pkl")
            return ModelSnapshot({"native.txt": native, **extra.files}, extra.metadata)

        def load(self, path, metadata):
            return (path / "native.txt").read_text(), load_pickle(path, metadata)

    register_flavor(PathSaved)
    info = log_model(Tagged("abc"))
    assert info.metadata["files"] == ["extra.pkl", "native.txt"]
    assert load_model(info.model_uri) == ("abc", {"value": "abc"})


def test_flavors_of_registered_integrations_are_found():
    flavor_class = _text_flavor("from-integration", 3)

    class TextIntegration(autolog.Integration):
        name = "text_models"
        modules = ("json",)
        flavors = (flavor_class,)

        def patch(self, patcher, module):
            pass

    autolog.register(TextIntegration)
    assert flavor_class in models.flavor_classes()
    assert log_model(Tagged()).flavor == "from-integration"


def test_bad_flavor_classes_are_rejected_at_registration():
    class NoName(Flavor):
        distribution = module = "json"

    with pytest.raises(IntegrationError, match="name"):
        register_flavor(NoName)
    with pytest.raises(IntegrationError, match="implement"):
        register_flavor(type("Lazy", (Flavor,), {"name": "l", "distribution": "x", "module": "x"}))
    register_flavor(_text_flavor("dup", 0))
    with pytest.raises(IntegrationError, match="already used"):
        register_flavor(_text_flavor("dup", 0))
    with pytest.raises(IntegrationError, match="subclass"):
        register_flavor(object)


# -- load_model URIs ---------------------------------------------------------------------


def test_runs_uri_local_folder_and_file_uri_load_the_same_model():
    info = log_model(Thresholder(0.25), "m")
    autolog.flush()
    run = autolog.get_run(info.run_id)
    folder = _artifact_folder(info.run_id) / "m"
    for uri in (info.model_uri, str(folder), folder.as_uri(), f"{run.info.artifact_uri}/m"):
        assert load_model(uri).threshold == 0.25, uri
    autolog.end_run()


def test_remote_artifact_uri_is_downloaded_then_loaded():
    fsspec = pytest.importorskip("fsspec")
    info = log_model(Thresholder(0.75), "m")
    local = _artifact_folder(info.run_id) / "m"
    memory = fsspec.filesystem("memory")
    for file in local.iterdir():
        memory.pipe_file(f"/bucket/{info.run_id}/m/{file.name}", file.read_bytes())
    assert load_model(f"memory://bucket/{info.run_id}/m").threshold == 0.75
    with pytest.raises(ResourceNotFoundError):
        load_model("memory://bucket/nothing")
    autolog.end_run()


def test_missing_framework_names_the_distribution():
    register_flavor(_text_flavor("ghost", 9, dist="autolog-ghost-framework"))
    info = log_model(Tagged())
    assert info.metadata["requirements"] == ["autolog-ghost-framework"]
    with pytest.raises(MissingDependencyError, match="autolog-ghost-framework"):
        load_model(info.model_uri)


def test_flavor_unknown_at_load_names_the_saved_distribution_and_version():
    info = log_model(Thresholder(0.1))
    autolog.flush()
    meta_file = _artifact_folder(info.run_id) / "model" / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["flavor"] = "prophet"  # a framework no integration provides a flavor for
    meta["framework"] = {"distribution": "prophet", "version": "1.1.5"}
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(MissingDependencyError, match=r"prophet==1\.1\.5") as caught:
        load_model(info.model_uri)
    assert isinstance(caught.value, ImportError)


@pytest.mark.parametrize(
    "uri, error",
    [
        ("nosuchscheme://bucket/model", InvalidParameterError),
        ("models:/my-model/1", InvalidParameterError),
        ("runs:/", InvalidParameterError),
        ("runs:/abc", InvalidParameterError),
        ("runs:/abc/../../etc", InvalidParameterError),
        ("", InvalidParameterError),
        ("no/such/folder", ResourceNotFoundError),
    ],
)
def test_bad_model_uris_raise_typed_errors(uri, error):
    with pytest.raises(error):
        load_model(uri)


def test_missing_model_folder_in_an_existing_run():
    info = log_model(Thresholder(0.1))
    with pytest.raises(ResourceNotFoundError, match="nothing-here"):
        load_model(f"runs:/{info.run_id}/nothing-here")
    with pytest.raises(ResourceNotFoundError):
        load_model("runs:/" + "0" * 32 + "/model")
    autolog.end_run()


def test_folder_without_metadata_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResourceNotFoundError, match=r"model\.json"):
        load_model(str(tmp_path / "empty"))


@pytest.mark.parametrize("name", ["", "/abs/model", "../escape", "a/../../b", "C:\\m", "a\\b"])
def test_model_names_escaping_the_run_are_rejected(name):
    with pytest.raises(InvalidParameterError):
        log_model(Thresholder(0.1), name)


def test_unknown_flavor_and_option_are_rejected():
    with pytest.raises(InvalidParameterError, match="unknown flavor"):
        log_model(Thresholder(0.1), flavor="no-such-flavor")
    with pytest.raises(InvalidParameterError, match="no_such_option"):
        log_model(Thresholder(0.1), no_such_option=1)


def test_import_of_the_models_module_imports_no_framework(tmp_path):
    run_python(
        "import sys, autolog.models, autolog.signature\n"
        "heavy = {'numpy', 'pandas', 'torch', 'sklearn', 'tensorflow', 'cloudpickle'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n",
        tmp_path,
    )
