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
fill, so :func:`for_mlflow_server` rewrites those comparisons into the tag
comparisons above before the filter is sent, leaving the rest of the text as
the user wrote it. MLflow's filter language has no OR and no NOT, so there
``!=``, ``NOT IN``, ``IN`` with several values and ``IS [NOT] NULL`` on
datasets raise InvalidFilterError saying so.
"""

from __future__ import annotations

import re

from autolog.errors import InvalidFilterError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from autolog.tracking.search_tree import Node

__all__ = [
    "DATASETS_TAG",
    "INDEX_TAGS",
    "dataset_filter",
    "for_mlflow_server",
    "index_value",
]

DATASETS_TAG = "autolog.datasets"
INDEX_TAGS = {k: f"{DATASETS_TAG}.{k}" for k in ("name", "digest", "context")}
# where a datasets.<key> comparison may start: the prefix, not inside another key
_DATASET_KEY = re.compile(r"(?<![\w.`\"])datasets?\.", re.IGNORECASE)


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


def for_mlflow_server(text: str | None) -> str | None:
    """``text`` with each ``datasets.<key>`` comparison replaced by the tag
    comparison it means, in the syntax of a real ``mlflow server``; the rest of
    the text is kept as it is. A filter without one is returned unchanged.

    >>> for_mlflow_server("metrics.acc > 0.9 AND datasets.digest = 'a1b2'")
    "metrics.acc > 0.9 AND tags.`autolog.datasets.digest` LIKE '%|a1b2|%'"
    """
    if not text or _DATASET_KEY.search(text) is None:
        return text
    from autolog.tracking.search_parser import _RUN_SCHEMA, _Parser

    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"`":  # a literal or a quoted key: copied as it is
            end = _end_of_quoted(text, i)
            out.append(text[i:end])
            i = end
            continue
        match = _DATASET_KEY.match(text, i)
        if match is None:
            out.append(char)
            i += 1
            continue
        parser = _Parser(text, _RUN_SCHEMA)
        parser.pos = i
        node = parser.parse_comparison()
        comparison = text[i : parser.pos].rstrip()
        out.append(_mlflow_text(node, comparison))
        i = i + len(comparison)
    return "".join(out)


def _end_of_quoted(text: str, start: int) -> int:
    """Index just past the quoted item starting at ``start`` (a backslash escapes
    a string's next character; a key's backticks escape nothing)."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return len(text)  # unterminated: the server says so


def _mlflow_text(node: Node, comparison: str) -> str:
    from autolog.tracking.search_tree import Comparison

    if isinstance(node, Comparison) and node.op in ("LIKE", "ILIKE"):
        pattern = str(node.value)
        quote = "'" if "'" not in pattern else '"'
        if quote in pattern:
            raise InvalidFilterError(
                f"{comparison!r}: a value holding both quote characters cannot be "
                "sent to an mlflow server",
                text=comparison,
            )
        return f"tags.`{node.key}` {node.op} {quote}{pattern}{quote}"
    raise InvalidFilterError(
        f"{comparison!r} cannot be searched on an mlflow server: dataset records are "
        "tags there, and its filter language has no NOT, OR or IS NULL; use =, LIKE, "
        "ILIKE or IN with one value",
        text=comparison,
        expected="datasets.<key> = / LIKE / ILIKE / IN (one value)",
    )
