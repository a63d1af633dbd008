"""Dataset records: what data a fit was trained on, cheaply fingerprinted.

An integration calls :func:`record_dataset` with the fit's ``X`` (the plugin
API's fit path does it when ``log_datasets`` is on); the record is attached to
the run as the tag ``autolog.datasets`` (a JSON list, one entry per dataset)::

    {"name": "X_train", "context": "train", "source": "numpy.ndarray",
     "shape": [150000, 20], "dtypes": "float64", "digest": "3f0c9a1e5b7d2c44",
     "digest_method": "sha256/sample:256 of 150000 rows", "profile": {"num_rows": 150000}}

``autolog runs show`` lists them; ``search_runs("datasets.digest = '3f0c...'")``
(also ``datasets.name``, ``datasets.context``; ``= != LIKE ILIKE IN NOT IN``, as
MLflow names them) finds runs by them, through the index tags
``autolog.datasets.digest`` / ``.name`` / ``.context`` (``|a|b|``).

The digest (16 hex characters of SHA-256) covers shape, dtypes and column
names, and the values of every row when the data is small (64 KiB and less),
else of 256 rows (the first 32, the last 32, 192 evenly between): it costs
about the same for any size, and the method is recorded with it. Two datasets
that differ only in rows outside the sample get the same digest; the record
says so (``digest_method``). Nothing of the data itself is stored.
"""

from __future__ import annotations

import functools
import math
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DATASETS_TAG",
    "dataset_filter",
    "dataset_record",
    "dataset_records",
    "dataset_rows",
    "record_dataset",
]

DATASETS_TAG = "autolog.datasets"
INDEX_TAGS = {k: f"{DATASETS_TAG}.{k}" for k in ("name", "digest", "context")}
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


def _as_numpy(data: Any) -> Any:
    """A numpy view of ``data`` when it is one (or converts cheaply), else None."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if isinstance(data, np.ndarray):
        return data
    if type(data).__module__.startswith("torch"):
        return data.detach()  # indexed first, then copied to the CPU: only the sample moves
    if isinstance(data, (list, tuple)):
        try:
            return np.asarray(data)
        except (ValueError, TypeError):
            return None
    return None


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
    digest = hashlib.sha256()
    columns = getattr(data, "columns", None)
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, (pd.DataFrame, pd.Series)):
        frame = data
        dtypes = [str(d) for d in (frame.dtypes if columns is not None else [frame.dtype])]
        shape = list(frame.shape)
        names = list(map(str, columns)) if columns is not None else []
        digest.update(repr((shape, dtypes, names)).encode())

        def take(rows: Any) -> bytes:
            part = frame.iloc[rows]
            return pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes()

        nbytes = int(frame.memory_usage(deep=False).sum()) if columns is not None else frame.nbytes
        method = _digest_rows(digest, frame, shape[0], nbytes, take)
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
            shape = [len(data)] if hasattr(data, "__len__") else []
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


def _index_value(values: list[str]) -> str:
    return "|" + "|".join(v.replace("|", "/") for v in values) + "|"


def record_dataset(
    data: Any, name: str, run_id: str | None = None, context: str = "train"
) -> dict[str, Any] | None:
    """Record ``data`` as dataset ``name`` (as the user called it) of the run
    ``run_id`` (default: the active run): returns the record, or None when the
    capture is off (``provenance.configure(datasets=False)``). The same
    digest and context twice in one run is recorded once."""
    import json

    from autolog import provenance
    from autolog.tracking import fluent

    if not provenance.options()["datasets"]:
        return None
    record = dataset_record(data, name, context)
    if run_id is None:
        active = fluent.active_run_id()
        run_id = active if active is not None else fluent._target(None).run_id
    with _lock:
        records = _records.setdefault(run_id, [])
        if len(_records) > 1000:
            _records.clear()
            _records[run_id] = records
        if any(r["digest"] == record["digest"] and r["context"] == context for r in records):
            return record
        if len(records) >= MAX_RECORDS:
            return record  # the tag holds no more; the first MAX_RECORDS stay
        records.append(record)
        tags = {DATASETS_TAG: json.dumps(records, separators=(",", ":"))}
        for field, tag in INDEX_TAGS.items():
            tags[tag] = _index_value([r[field] for r in records])
    fluent.set_tags(tags, run_id=run_id)
    return record


def dataset_filter(key: str, op: str, value: Any) -> Any:
    """The tag comparison a ``datasets.<key> <op> <value>`` filter means (for
    :mod:`autolog.tracking.search_parser`): ``=`` is a LIKE on the index tag,
    ``!=`` its negation, ``IN`` an OR of them, ``IS NULL`` on the tag itself."""
    from autolog.tracking.search_tree import TAG, Comparison, Not, Or

    tag = INDEX_TAGS[key]

    def contains(item: str, like: str = "LIKE") -> Comparison:
        return Comparison(TAG, tag, like, f"%|{item.replace('|', '/')}|%")

    if op in ("IS NULL", "IS NOT NULL"):
        return Comparison(TAG, tag, op, None)
    if op in ("=", "LIKE", "ILIKE"):
        return contains(value, "ILIKE" if op == "ILIKE" else "LIKE")
    if op == "!=":
        return Not(contains(value))
    either = Or(tuple(contains(v) for v in value)) if len(value) > 1 else contains(value[0])
    return either if op == "IN" else Not(either)


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
