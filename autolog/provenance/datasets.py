"""Dataset records: what data a fit was trained on, cheaply fingerprinted.

Every autologged fit records its training data: an integration's handler
declares which of its call's arguments hold it (``@plugin.datasets_from("X",
"y")``) and the patch manager records each, named as the user's variable
(``X_train``), when ``log_datasets`` (an integration option) and the
``datasets`` capture are on; :func:`record_dataset` records any data by hand.
The records are attached to the run as the tag ``autolog.datasets`` (a JSON
list, one entry per dataset)::

    {"name": "X_train", "context": "train", "source": "numpy.ndarray",
     "shape": [150000, 20], "dtypes": "float64", "digest": "3f0c9a1e5b7d2c44",
     "digest_method": "sha256/sample:256 of 150000 rows", "profile": {"num_rows": 150000}}

``autolog runs show`` lists them; ``search_runs("datasets.digest = '3f0c...'")``
(also ``datasets.name``, ``datasets.context``; ``= != LIKE ILIKE IN NOT IN``, as
MLflow names them) finds runs by them on every store, through the index tags
``autolog.datasets.digest`` / ``.name`` / ``.context`` (``|a|b|``; see
:mod:`autolog.tracking.search_datasets`, also for a real ``mlflow server``).

The digest (16 hex characters of SHA-256) covers shape, dtypes and column
names, and the values of every row when the data is small (64 KiB and less),
else of 256 rows (the first 32, the last 32, 192 evenly between): it costs
about the same for any size, and the method is recorded with it. Two datasets
that differ only in rows outside the sample get the same digest; the record
says so (``digest_method``). Nothing of the data itself is stored. A
LightGBM ``Dataset`` is digested on the raw data it holds, a PyTorch
``DataLoader`` on its dataset (a ``TensorDataset``'s first tensor); an XGBoost
``DMatrix`` and what holds no array in memory get ``sha256/shape-only``.
"""

from __future__ import annotations

import functools
import math
import sys
import threading

from autolog.tracking.search_datasets import DATASETS_TAG, INDEX_TAGS, dataset_filter, index_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DATASETS_TAG",
    "caller_variable_name",
    "dataset_filter",
    "dataset_record",
    "dataset_records",
    "dataset_rows",
    "datasets_from",
    "record_call_datasets",
    "record_dataset",
    "record_datasets",
]

FULL_BYTES = 64 * 1024
EDGE_ROWS, MIDDLE_ROWS = 32, 192
MAX_RECORDS = 20  # per run: the tag's 8000 characters hold about that many

_lock = threading.Lock()
_records: dict[str, list[dict[str, Any]]] = {}  # run id -> its records (bounded)


def _source(data: Any) -> str:
    cls = type(data)
    module = cls.__module__.split(".")[0]
    return f"{module}.{cls.__qualname__}" if module != "builtins" else cls.__qualname__


@functools.lru_cache(maxsize=64)
def _row_indices(n: int) -> Any:
    """The sampled rows of ``n`` (as a numpy array when numpy is loaded: indexing
    with it skips a conversion per fit); cached, since a process refits one size."""
    if n <= 2 * EDGE_ROWS + MIDDLE_ROWS:
        rows: list[int] = list(range(n))
    else:
        step = (n - 2 * EDGE_ROWS) / MIDDLE_ROWS
        middle = [EDGE_ROWS + int(i * step) for i in range(MIDDLE_ROWS)]
        rows = [*range(EDGE_ROWS), *middle, *range(n - EDGE_ROWS, n)]
    np = sys.modules.get("numpy")
    return np.array(rows, dtype=np.intp) if np is not None else rows


def _array_bytes(array: Any) -> bytes:
    np = sys.modules["numpy"]
    array = np.ascontiguousarray(array)
    if array.dtype.kind in "biufcmM":
        return array.tobytes()
    return repr(array.tolist()).encode()  # object / string values: their text, not pointers


@functools.lru_cache(maxsize=256)
def _dtype_name(dtype: Any) -> str:
    """``str(dtype)``, cached: numpy computes a dtype's name in Python each time."""
    return str(dtype)


def _column_arrays(frame: Any) -> list[Any]:
    """The columns of a data frame as arrays (numpy or pandas' extension arrays),
    without building a Series per column where pandas offers it (a Series costs
    ~10 us; ``iloc`` on the whole frame and ``hash_pandas_object`` cost more)."""
    get = getattr(frame, "_get_column_array", None)
    if get is not None:
        try:
            return [get(i) for i in range(frame.shape[1])]
        except Exception:
            pass
    return [frame.iloc[:, i].array for i in range(frame.shape[1])]


def _column_bytes(array: Any, rows: Any) -> bytes:
    """The bytes of the rows ``rows`` of one column: its values (numbers), the
    codes and categories of a categorical, else the text of the values."""
    np = sys.modules["numpy"]
    part = array[rows]
    if isinstance(part, np.ndarray):
        return _array_bytes(part)
    codes = getattr(part, "codes", None)
    if codes is not None:  # pandas.Categorical
        return _array_bytes(np.asarray(codes)) + repr(list(part.categories)).encode()
    return repr(part.tolist()).encode()  # other extension arrays: nullable, string, arrow


def _as_numpy(data: Any) -> Any:
    """A numpy view of ``data`` when it is one (or converts cheaply), else None."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if isinstance(data, np.ndarray):
        return data
    if type(data).__module__.startswith("torch") and hasattr(data, "detach"):  # a tensor
        return data.detach()  # indexed first, then copied to the CPU: only the sample moves
    if isinstance(data, (list, tuple)):
        try:
            return np.asarray(data)
        except (ValueError, TypeError):
            return None
    return None


def _contents(data: Any) -> Any:
    """The data a framework's container holds, when it holds it in memory: a
    LightGBM ``Dataset``'s raw data, a PyTorch ``DataLoader``'s dataset (a
    ``TensorDataset``'s first tensor); else ``data`` itself."""
    module = type(data).__module__.split(".")[0]
    if module == "lightgbm" and hasattr(data, "construct"):
        raw = getattr(data, "data", None)
        return raw if raw is not None and not isinstance(raw, (str, bytes)) else data
    if module == "torch" and hasattr(data, "dataset") and hasattr(data, "batch_size"):
        data = data.dataset
        tensors = getattr(data, "tensors", None)
        return tensors[0] if isinstance(tensors, tuple) and tensors else data
    return data


def _opaque_shape(data: Any) -> list[int]:
    """The shape of data whose values are not read: (rows, columns) of an
    XGBoost ``DMatrix``, the length of a sized dataset, else []."""
    if hasattr(data, "num_row") and hasattr(data, "num_col"):
        try:
            return [int(data.num_row()), int(data.num_col())]
        except Exception:
            return []
    try:
        return [len(data)]
    except Exception:
        return []


def _digest_rows(digest: Any, data: Any, n: int, nbytes: int, take: Any) -> str:
    """Feed the rows to ``digest``; returns the method used."""
    if nbytes <= FULL_BYTES:
        digest.update(take(slice(None)))
        return "sha256/full"
    rows = _row_indices(n)
    digest.update(take(rows))
    return f"sha256/sample:{len(rows)} of {n} rows"


def dataset_record(data: Any, name: str, context: str = "train") -> dict[str, Any]:
    """The record of ``data`` (numpy, pandas, scipy sparse, torch, lists): name,
    context, source type, shape, dtypes, digest and how it was computed."""
    import hashlib

    record: dict[str, Any] = {"name": str(name), "context": str(context), "source": _source(data)}
    data = _contents(data)
    digest = hashlib.sha256()
    columns = getattr(data, "columns", None)
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, (pd.DataFrame, pd.Series)):
        kinds = list(data.dtypes) if columns is not None else [data.dtype]
        dtypes = [_dtype_name(d) for d in kinds]
        shape = list(data.shape)
        names = list(map(str, columns)) if columns is not None else []
        digest.update(repr((shape, dtypes, names)).encode())
        arrays = _column_arrays(data) if columns is not None else [data.array]

        def take(rows: Any) -> bytes:
            return b"".join(_column_bytes(array, rows) for array in arrays)

        nbytes = shape[0] * sum(getattr(d, "itemsize", 8) or 8 for d in kinds)
        method = _digest_rows(digest, data, shape[0], nbytes, take)
    elif hasattr(data, "tocsr") and hasattr(data, "shape"):  # scipy sparse
        matrix = data.tocsr()
        shape = list(matrix.shape)
        dtypes = [str(matrix.dtype)]
        digest.update(repr((shape, dtypes, int(matrix.nnz))).encode())
        nbytes = matrix.data.nbytes + matrix.indices.nbytes

        def take(rows: Any) -> bytes:
            part = matrix[rows]
            return _array_bytes(part.data) + _array_bytes(part.indices)

        method = _digest_rows(digest, matrix, shape[0], nbytes, take)
    else:
        array = _as_numpy(data)
        if array is None or getattr(array, "ndim", 0) == 0:
            shape = _opaque_shape(data)
            dtypes = [type(data).__name__]
            digest.update(repr((shape, dtypes)).encode())
            method = "sha256/shape-only"
        else:
            shape = [int(d) for d in array.shape]
            dtypes = [str(array.dtype).replace("torch.", "")]
            digest.update(repr((shape, dtypes)).encode())

            def take(rows: Any) -> bytes:
                part = array[rows]
                if hasattr(part, "cpu"):  # torch
                    part = part.cpu().numpy()
                return _array_bytes(part)

            nbytes = getattr(array, "nbytes", None) or array.element_size() * math.prod(shape)
            method = _digest_rows(digest, array, shape[0], nbytes, take)
    distinct = sorted(set(dtypes))
    record.update(
        shape=shape,
        dtypes=",".join(distinct) if len(distinct) < 8 else f"{len(distinct)} dtypes",
        digest=digest.hexdigest()[:16],
        digest_method=method,
        profile={"num_rows": shape[0] if shape else None},
    )
    return record


def record_dataset(
    data: Any, name: str, run_id: str | None = None, context: str = "train"
) -> dict[str, Any] | None:
    """Record ``data`` as dataset ``name`` (as the user called it) of the run
    ``run_id`` (default: the active run): returns the record, or None when the
    capture is off (``provenance.configure(datasets=False)``). The same
    digest and context twice in one run is recorded once."""
    records = record_datasets([(data, name)], run_id, context)
    return records[0] if records else None


def record_datasets(
    named: list[tuple[Any, str]], run_id: str | None = None, context: str = "train"
) -> list[dict[str, Any]]:
    """Record each ``(data, name)`` of ``named``, as :func:`record_dataset` does,
    with one update of the run's tags for all; returns the records ([] when
    the capture is off)."""
    import json

    from autolog.provenance.captures import options
    from autolog.tracking import fluent, run_state
    from autolog.tracking.validation import MAX_TAG_VALUE_LENGTH

    if not named or not options()["datasets"]:
        return []
    made = [dataset_record(data, name, context) for data, name in named]
    if run_id is None:
        active = fluent.active_run_id()
        run_id = active if active is not None else run_state.target(None).run_id
    with _lock:
        records = _records.setdefault(run_id, [])
        if len(_records) > 1000:
            _records.clear()
            _records[run_id] = records
        before = len(records)
        for record in made:
            if len(records) >= MAX_RECORDS:
                break  # the tag holds no more; the first MAX_RECORDS stay
            if not any(
                r["digest"] == record["digest"] and r["context"] == context for r in records
            ):
                records.append(record)
        while True:
            if len(records) == before:
                return made
            tags = {DATASETS_TAG: json.dumps(records, separators=(",", ":"))}
            for field, tag in INDEX_TAGS.items():
                tags[tag] = index_value([r[field] for r in records])
            if max(map(len, tags.values())) <= MAX_TAG_VALUE_LENGTH:
                break
            records.pop()  # a tag holds no more (long names): the first records stay
    fluent.set_tags(tags, run_id=run_id)
    return made


def caller_variable_name(value: Any, default: str = "") -> str:
    """The name bound to ``value`` in the first frame outside autolog and wrapt
    (the user's code that called the patched function): a local of that frame,
    else one of its module's globals; ``default`` when none is (an expression
    such as ``X[:100]``). Names starting with ``_`` are skipped."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        ("autolog.", "wrapt")
    ):
        frame = frame.f_back
    if frame is None or value is None:
        return default
    for namespace in (frame.f_locals, frame.f_globals):
        for name, bound in namespace.items():
            if bound is value and not name.startswith("_"):
                return name
    return default


def datasets_from(*arguments: str, context: str = "train") -> Any:
    """Declare which arguments of a handler's call hold its training data: the
    patch manager then records each one given (not None) as a dataset of the
    call's run, named as the user's variable (else as the argument), when the
    integration's ``log_datasets`` and the ``datasets`` capture are on::

        @plugin.datasets_from("X", "y")
        def on_fit(call): ...

    An argument the wrapped function does not have is ignored, so one handler
    may serve functions that name their data differently (``dtrain`` /
    ``train_set``)."""

    def mark(handler: Any) -> Any:
        handler.autolog_datasets = (tuple(arguments), context)
        return handler

    return mark


def record_call_datasets(call: Any, declared: tuple[tuple[str, ...], str]) -> None:
    """Record the data arguments ``declared`` (by :func:`datasets_from`) of a
    patched call in its run. Called by the patch manager on the training thread,
    before the user's call runs: a digest of a sample, a few tens of
    microseconds (``benchmarks/bench_provenance.py``)."""
    from autolog.provenance.captures import options

    if call.run_id is None or not options()["datasets"]:
        return
    names, context = declared
    named = []
    for argument in names:
        value = call.argument(argument)
        if value is not None:
            named.append((value, caller_variable_name(value, argument)))
    record_datasets(named, call.run_id, context)


def dataset_records(tags: dict[str, str]) -> list[dict[str, Any]]:
    """The records held by a run's ``autolog.datasets`` tag (``[]`` without one)."""
    import json

    try:
        records = json.loads(tags.get(DATASETS_TAG, "[]"))
    except ValueError:
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def dataset_rows(tags: dict[str, str]) -> list[list[str]]:
    """A run's dataset records as table rows (name, context, shape, dtypes,
    digest, digest method), for ``autolog runs show``."""
    return [
        [
            str(r.get("name", "")),
            str(r.get("context", "")),
            "x".join(map(str, r.get("shape") or [])) or "-",
            str(r.get("dtypes", "")),
            str(r.get("digest", "")),
            str(r.get("digest_method", "")),
        ]
        for r in dataset_records(tags)
    ]


def _reset_for_tests() -> None:
    with _lock:
        _records.clear()
