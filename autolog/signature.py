"""Model signatures and input examples, inferred without importing a framework.

A signature says what a model takes and returns: for each input (and
output) a name, a dtype and a shape. It is stored in the model's metadata
file (``model.json``) as plain JSON::

    {"inputs": [{"name": "sepal_length", "dtype": "float64", "shape": [-1]}, ...],
     "outputs": [{"name": null, "dtype": "int64", "shape": [-1]}]}

The first dimension of an array is the batch and is recorded as ``-1``.

Inference is duck-typed so that it never imports a library the value is not
from: anything with ``dtype`` and ``shape`` is an array (numpy, torch,
TensorFlow, JAX), anything with ``columns`` and ``dtypes`` is a data frame
(pandas, polars), a ``dict`` is one named input per key.

Example::

    sig = autolog.infer_signature(X_train, model.predict(X_train))
    autolog.log_model(model, "model", signature=sig, input_example=X_train[:5])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from autolog.errors import InvalidParameterError

__all__ = [
    "Signature",
    "coerce_signature",
    "TensorSpec",
    "infer_schema",
    "infer_signature",
    "input_example_json",
    "parse_input_example",
]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output column: ``name`` (None for an unnamed array), ``dtype``, ``shape``."""

    name: str | None
    dtype: str
    shape: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(data.get("name"), str(data["dtype"]), tuple(data.get("shape", ())))


@dataclass(frozen=True)
class Signature:
    """What a model takes (``inputs``) and returns (``outputs``, may be empty)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls(
            tuple(TensorSpec.from_dict(d) for d in data.get("inputs", ())),
            tuple(TensorSpec.from_dict(d) for d in data.get("outputs", ())),
        )


def _dtype_name(dtype: Any) -> str:
    # numpy prints "float64", torch "torch.float32", TensorFlow "<dtype: 'float32'>"
    name = getattr(dtype, "name", None)
    text = name if isinstance(name, str) else str(dtype)
    return text.removeprefix("torch.")


def _is_array(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "shape")


def _is_frame(value: Any) -> bool:
    return hasattr(value, "columns") and hasattr(value, "dtypes")


def _batch_shape(shape: Any) -> tuple[int, ...]:
    dims = tuple(int(d) if d is not None else -1 for d in tuple(shape))
    return (-1, *dims[1:]) if dims else ()


def _scalar_dtype(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "binary"
    return None


def infer_schema(value: Any) -> tuple[TensorSpec, ...]:
    """The specs of one model input or output: array, data frame, series, dict, list, scalar.

    Raises :class:`InvalidParameterError` for a value whose structure cannot
    be described (pass a :class:`Signature` yourself then).
    """
    if _is_frame(value):
        dtypes = value.dtypes
        # pandas: a Series indexed by column; polars: a list in column order
        pairs = dtypes.items() if hasattr(dtypes, "items") else zip(value.columns, dtypes)
        return tuple(TensorSpec(str(col), _dtype_name(dt), (-1,)) for col, dt in pairs)
    if _is_array(value):
        name = getattr(value, "name", None)  # a pandas Series keeps its name
        return (
            TensorSpec(
                name if isinstance(name, str) else None,
                _dtype_name(value.dtype),
                _batch_shape(value.shape),
            ),
        )
    if isinstance(value, dict):
        specs = []
        for key, item in value.items():
            inner = infer_schema(item)
            if len(inner) != 1:
                raise InvalidParameterError(
                    f"cannot infer a signature of dict entry {key!r}: it holds {len(inner)} columns"
                )
            specs.append(TensorSpec(str(key), inner[0].dtype, inner[0].shape))
        return tuple(specs)
    if isinstance(value, (list, tuple)):
        dtypes = {_scalar_dtype(item) for item in value}
        if len(dtypes) == 1 and None not in dtypes:
            return (TensorSpec(None, dtypes.pop(), (-1,)),)
        if value and all(isinstance(item, (list, tuple)) for item in value):
            inner = {_scalar_dtype(x) for row in value for x in row}
            if len(inner) == 1 and None not in inner:
                return (TensorSpec(None, inner.pop(), (-1, len(value[0]))),)
        raise InvalidParameterError(
            f"cannot infer a signature of a {type(value).__name__} of mixed or nested items"
        )
    dtype = _scalar_dtype(value)
    if dtype is not None:
        return (TensorSpec(None, dtype, ()),)
    raise InvalidParameterError(
        f"cannot infer a signature of {type(value).__module__}.{type(value).__qualname__}; "
        "pass signature=Signature(...) yourself"
    )


def infer_signature(model_input: Any, model_output: Any = None) -> Signature:
    """The signature of a model that maps ``model_input`` to ``model_output``.

    >>> infer_signature({"x": [1.0, 2.0]}).to_dict()["inputs"]
    [{'name': 'x', 'dtype': 'float64', 'shape': [-1]}]
    """
    outputs = infer_schema(model_output) if model_output is not None else ()
    return Signature(infer_schema(model_input), outputs)


def coerce_signature(signature: Any) -> Signature:
    """Accept a :class:`Signature`, its ``to_dict()`` form, or ``{"inputs": x, "outputs": y}``
    with raw values to infer from."""
    if isinstance(signature, Signature):
        return signature
    if isinstance(signature, dict) and "inputs" in signature:
        inputs, outputs = signature["inputs"], signature.get("outputs")
        if isinstance(inputs, list) and all(isinstance(d, dict) and "dtype" in d for d in inputs):
            return Signature.from_dict(signature)
        return infer_signature(inputs, outputs)
    raise InvalidParameterError(
        f"signature must be an autolog Signature or a dict with 'inputs', got {type(signature)!r}"
    )


# -- input examples ---------------------------------------------------------


def _example_part(value: Any) -> dict[str, Any]:
    """A JSON-ready description of one value, with the type needed to rebuild it."""
    if _is_frame(value) and hasattr(value, "to_dict"):
        split = value.to_dict(orient="split") if hasattr(value, "index") else None
        if split is not None:  # pandas
            return {
                "type": "dataframe",
                "columns": [str(c) for c in split["columns"]],
                "data": _jsonable(split["data"]),
            }
    if _is_array(value) and hasattr(value, "tolist"):
        if hasattr(value, "detach"):  # torch: leave the autograd graph, go to host memory
            value = value.detach().cpu()
        return {"type": "ndarray", "dtype": _dtype_name(value.dtype), "data": value.tolist()}
    if _is_array(value) and hasattr(value, "numpy"):  # TensorFlow tensors
        return _example_part(value.numpy())
    if isinstance(value, dict):
        return {"type": "dict", "data": {str(k): _example_part(v) for k, v in value.items()}}
    return {"type": "json", "data": _jsonable(value)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()  # numpy scalars inside a data frame's rows
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def input_example_json(example: Any) -> bytes:
    """The bytes of ``input_example.json`` for ``example`` (see :func:`parse_input_example`)."""
    try:
        return json.dumps(_example_part(example), allow_nan=True).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"input_example of type {type(example).__qualname__} cannot be stored as JSON: {exc}"
        ) from exc


def parse_input_example(data: dict[str, Any]) -> Any:
    """Rebuild an input example: numpy arrays and pandas frames come back as such
    (numpy / pandas are imported only for examples that were saved as them)."""
    kind = data.get("type")
    if kind == "ndarray":
        import numpy as np

        return np.asarray(data["data"], dtype=data["dtype"])
    if kind == "dataframe":
        import pandas as pd

        return pd.DataFrame(data["data"], columns=data["columns"])
    if kind == "dict":
        return {k: parse_input_example(v) for k, v in data["data"].items()}
    return data.get("data")
