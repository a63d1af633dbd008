"""Round-trip check for model flavors: log in one fresh process, load in another.

For the integration engineers: every flavor proves that a model logged by a
training script loads in a process that never saw that script, and predicts
the same. Use it from any test under ``tests/`` (the ``tracking_uri`` fixture
of ``tests/conftest.py`` sets ``AUTOLOG_TRACKING_URI``; both processes
inherit it)::

    from tests.models_roundtrip import assert_roundtrip_in_fresh_process

    def test_logistic_regression_roundtrip():
        result = assert_roundtrip_in_fresh_process(
            '''
            import numpy as np
            from sklearn.linear_model import LogisticRegression
            X = np.random.RandomState(0).rand(30, 3)
            model = LogisticRegression().fit(X, X[:, 0] > 0.5)
            ''',
            predict="model.predict_proba(X)",
            expected_flavor="sklearn",
        )
        assert result.metadata["framework"]["distribution"] == "scikit-learn"

How it works:

1. ``train_script`` (dedented) runs as ``__main__`` of a fresh interpreter,
   so classes it defines live in ``__main__`` exactly as in a user's script.
   It must bind ``model`` and the names that ``predict`` uses (``inputs``,
   default ``("X",)``). The helper then calls
   ``autolog.log_model(model, "model", <log_args>)`` (``log_args``: source
   text such as ``"input_example=X[:5]"``), evaluates ``predict``,
   pickles ``inputs`` and the predictions, and ends the run.
2. A second fresh interpreter, which neither imports the script nor the
   framework up front, calls ``autolog.load_model(model_uri)``, binds the
   loaded model as ``model`` next to the unpickled ``inputs`` and evaluates
   ``predict`` again.
3. Both predictions are converted to nested lists (torch/TensorFlow tensors
   and pandas objects too) and must be equal (``rtol=0``, the default) or
   close within ``rtol``.

A failing subprocess fails the test with its stderr.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RoundtripResult", "assert_roundtrip_in_fresh_process", "run_python"]

_TO_PLAIN = """
def _to_plain(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "numpy") and not hasattr(value, "tolist"):
        value = value.numpy()
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    return value
"""

_LOG_EPILOGUE = """
import json as _json, pickle as _pickle
import autolog as _autolog
_info = _autolog.log_model(model, "model", {log_args})
_predictions = _to_plain({predict})
with open({inputs_file!r}, "wb") as _f:
    _pickle.dump({{_name: globals()[_name] for _name in {inputs!r}}}, _f)
_autolog.end_run()
with open({result_file!r}, "w") as _f:
    _json.dump({{"model_uri": _info.model_uri, "flavor": _info.flavor,
                "metadata": _info.metadata, "predictions": _predictions}}, _f)
"""

_LOAD_SCRIPT = """
import json, pickle, sys
import autolog
model = autolog.load_model({model_uri!r})  # before the inputs: the flavor imports its framework
with open({inputs_file!r}, "rb") as f:
    namespace = pickle.load(f)
namespace["model"] = model
predictions = _to_plain(eval({predict!r}, namespace))
with open({result_file!r}, "w") as f:
    json.dump({{"predictions": predictions, "type": type(namespace["model"]).__qualname__}}, f)
"""


@dataclass
class RoundtripResult:
    """What the two processes saw: the logged model and both predictions."""

    model_uri: str
    flavor: str
    metadata: dict[str, Any]
    predictions_before: Any
    predictions_after: Any
    loaded_type: str


def run_python(script: str, cwd: Path, timeout: float = 300) -> None:
    """Run ``script`` as ``__main__`` of a fresh interpreter; fail with its stderr."""
    path = Path(cwd) / f"script_{abs(hash(script))}.py"
    path.write_text(script)
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=cwd,
        env={**os.environ, "AUTOLOG_TESTING": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"subprocess failed (exit {proc.returncode}):\n--- script ---\n{script}\n"
            f"--- stderr ---\n{proc.stderr[-6000:]}"
        )


def assert_roundtrip_in_fresh_process(
    train_script: str,
    predict: str,
    *,
    inputs: tuple[str, ...] = ("X",),
    expected_flavor: str | None = None,
    log_args: str = "",
    rtol: float = 0.0,
    timeout: float = 300,
) -> RoundtripResult:
    """Log ``model`` from ``train_script`` in one process, load it in another,
    and assert that ``predict`` gives the same result in both (see module doc)."""
    with tempfile.TemporaryDirectory(prefix="autolog-roundtrip-") as tmp:
        work = Path(tmp)
        files = {name: str(work / name) for name in ("inputs.pkl", "logged.json", "loaded.json")}
        log_script = (
            textwrap.dedent(train_script)
            + _TO_PLAIN
            + _LOG_EPILOGUE.format(
                log_args=log_args,
                predict=predict,
                inputs=tuple(inputs),
                inputs_file=files["inputs.pkl"],
                result_file=files["logged.json"],
            )
        )
        run_python(log_script, work, timeout)
        logged = json.loads(Path(files["logged.json"]).read_text())
        load_script = _TO_PLAIN + _LOAD_SCRIPT.format(
            inputs_file=files["inputs.pkl"],
            model_uri=logged["model_uri"],
            predict=predict,
            result_file=files["loaded.json"],
        )
        run_python(load_script, work, timeout)
        loaded = json.loads(Path(files["loaded.json"]).read_text())

    result = RoundtripResult(
        logged["model_uri"],
        logged["flavor"],
        logged["metadata"],
        logged["predictions"],
        loaded["predictions"],
        loaded["type"],
    )
    if expected_flavor is not None:
        assert result.flavor == expected_flavor, f"logged with flavor {result.flavor!r}"
    _assert_same(result.predictions_before, result.predictions_after, rtol)
    return result


def _assert_same(before: Any, after: Any, rtol: float, where: str = "predictions") -> None:
    if isinstance(before, list) and isinstance(after, list):
        assert len(before) == len(after), f"{where}: length {len(before)} != {len(after)}"
        for i, (b, a) in enumerate(zip(before, after)):
            _assert_same(b, a, rtol, f"{where}[{i}]")
    elif isinstance(before, float) and isinstance(after, float) and rtol:
        assert math.isclose(before, after, rel_tol=rtol) or (
            math.isnan(before) and math.isnan(after)
        ), f"{where}: {before!r} != {after!r} (rtol={rtol})"
    else:
        same = before == after or (
            isinstance(before, float)
            and math.isnan(before)
            and isinstance(after, float)
            and math.isnan(after)
        )
        assert same, f"{where}: before {before!r} != after {after!r}"
