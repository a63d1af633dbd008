"""Signatures and input examples, inferred from what the user passes, cheaply."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autolog.errors import InvalidParameterError
from autolog.signature import (
    Signature,
    TensorSpec,
    coerce_signature,
    infer_schema,
    infer_signature,
    input_example_json,
    parse_input_example,
)
from tests.models_roundtrip import run_python


def _roundtrip_example(value):
    return parse_input_example(json.loads(input_example_json(value)))


def test_numpy_array_batch_dimension_is_variable():
    (spec,) = infer_schema(np.zeros((10, 4, 2), dtype="float32"))
    assert spec == TensorSpec(None, "float32", (-1, 4, 2))


def test_dataframe_gives_one_spec_per_column():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "flag": [True, False]})
    assert [s.to_dict() for s in infer_schema(frame)] == [
        {"name": "a", "dtype": "int64", "shape": [-1]},
        {"name": "b", "dtype": "float64", "shape": [-1]},
        {"name": "flag", "dtype": "bool", "shape": [-1]},
    ]
    (series,) = infer_schema(frame["b"])
    assert series == TensorSpec("b", "float64", (-1,))


def test_dict_of_arrays_names_each_input():
    specs = infer_schema({"ids": np.arange(3), "img": np.zeros((3, 8, 8), dtype="uint8")})
    assert specs == (
        TensorSpec("ids", "int64", (-1,)),
        TensorSpec("img", "uint8", (-1, 8, 8)),
    )


def test_torch_tensor_dtype_has_no_prefix():
    torch = pytest.importorskip("torch")
    (spec,) = infer_schema(torch.zeros(2, 5, dtype=torch.float16))
    assert spec == TensorSpec(None, "float16", (-1, 5))
    example = _roundtrip_example(torch.arange(4.0, requires_grad=True))
    assert example.dtype == np.float32 and example.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_lists_and_scalars():
    assert infer_schema([1.0, 2.0]) == (TensorSpec(None, "float64", (-1,)),)
    assert infer_schema([[1, 2, 3], [4, 5, 6]]) == (TensorSpec(None, "int64", (-1, 3)),)
    assert infer_schema("hello") == (TensorSpec(None, "string", ()),)
    with pytest.raises(InvalidParameterError, match="mixed"):
        infer_schema([1, "a"])
    with pytest.raises(InvalidParameterError, match="object"):
        infer_schema(object())


def test_signature_with_outputs_survives_json():
    sig = infer_signature(np.zeros((3, 2)), np.zeros(3, dtype="int64"))
    assert sig.outputs == (TensorSpec(None, "int64", (-1,)),)
    assert Signature.from_dict(json.loads(json.dumps(sig.to_dict()))) == sig
    assert coerce_signature(sig.to_dict()) == sig
    assert coerce_signature({"inputs": np.zeros((3, 2)), "outputs": np.zeros(3, "int64")}) == sig
    with pytest.raises(InvalidParameterError, match="signature"):
        coerce_signature("float")


def test_input_examples_come_back_as_their_type():
    pd = pytest.importorskip("pandas")
    array = np.array([[1.5, np.nan], [3.0, 4.0]])
    back = _roundtrip_example(array)
    assert back.dtype == array.dtype and np.array_equal(back, array, equal_nan=True)
    frame = pd.DataFrame({"x": [1, 2], "when": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    assert _roundtrip_example(frame)["x"].tolist() == [1, 2]
    nested = _roundtrip_example({"a": np.arange(2), "b": [1, "z"]})
    assert nested["a"].tolist() == [0, 1] and nested["b"] == [1, "z"]
    with pytest.raises(InvalidParameterError, match="JSON"):
        input_example_json({"bad": object()})


def test_inferring_from_numpy_imports_no_other_library(tmp_path):
    run_python(
        "import sys, numpy as np\n"
        "from autolog.signature import infer_signature, input_example_json\n"
        "infer_signature({'a': np.zeros((2, 3))}, np.zeros(2))\n"
        "input_example_json(np.zeros((2, 3)))\n"
        "other = {'pandas', 'torch', 'tensorflow', 'polars'} & set(sys.modules)\n"
        "assert not other, other\n",
        tmp_path,
    )
