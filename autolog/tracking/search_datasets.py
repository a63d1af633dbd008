"""``datasets.name`` / ``datasets.digest`` / ``datasets.context`` in a run filter.

A run's dataset records (:mod:`autolog.provenance.datasets`) are kept in tags,
which every store holds and searches alike: the records themselves in
``autolog.datasets`` (JSON), and one *index tag* per searchable field,
``autolog.datasets.name`` / ``.digest`` / ``.context``, whose value lists the
run's values between bars (``|X_train|y_train|``). A ``datasets.<field>``
comparison, as MLflow's search names it, is therefore a comparison of that
tag (:func:`dataset_filter`, called by the parser):

- ``datasets.digest = 'abc'`` is ``tags.`autolog.datasets.digest` LIKE '%|abc|%'``
  (``LIKE`` / ``ILIKE`` patterns likewise, inside the bars);
- ``!=`` and ``NOT IN`` are the negation (runs without a record match them);
- ``IN`` is an OR of ``=``; ``IS NULL`` / ``IS NOT NULL`` test the tag.

Over REST, ``autolog server`` parses the filter itself. A real ``mlflow server``
would look for ``datasets.*`` in its own dataset tables, which autolog does not
fill, so :func:`autolog.tracking.search_mlflow.for_mlflow_server` rewrites
those comparisons into the tag comparisons above before the filter is sent,
leaving the rest of the text as the user wrote it. MLflow's filter language
has no OR and no NOT, so there ``!=``, ``NOT IN``, ``IN`` with several values
and ``IS [NOT] NULL`` on datasets raise InvalidFilterError saying so.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from autolog.tracking.search_tree import Node

__all__ = [
    "DATASETS_TAG",
    "INDEX_TAGS",
    "dataset_filter",
    "index_value",
]

DATASETS_TAG = "autolog.datasets"
INDEX_TAGS = {k: f"{DATASETS_TAG}.{k}" for k in ("name", "digest", "context")}


def index_value(values: list[str]) -> str:
    """The value of an index tag: ``|a|b|`` (a bar inside a value becomes ``/``)."""
    return "|" + "|".join(v.replace("|", "/") for v in values) + "|"


def dataset_filter(key: str, op: str, value: Any) -> Node:
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
