"""A run filter as a real ``mlflow server`` understands it (the REST store's
search over one): ``datasets.*`` comparisons rewritten into the tag
comparisons they mean here (:mod:`autolog.tracking.search_datasets`), the rest
of the text sent as the user wrote it.
"""

from __future__ import annotations

import re

from autolog.errors import InvalidFilterError
from autolog.tracking.search_parser import parse_comparison_at
from autolog.tracking.search_tree import Comparison

TYPE_CHECKING = False
if TYPE_CHECKING:
    from autolog.tracking.search_tree import Node

__all__ = ["for_mlflow_server"]

# where a datasets.<key> comparison may start: the prefix, not inside another key
_DATASET_KEY = re.compile(r"(?<![\w.`\"])datasets?\.", re.IGNORECASE)


def for_mlflow_server(text: str | None) -> str | None:
    """``text`` with each ``datasets.<key>`` comparison replaced by the tag
    comparison it means, in the syntax of a real ``mlflow server``; the rest of
    the text is kept as it is. A filter without one is returned unchanged.

    >>> for_mlflow_server("metrics.acc > 0.9 AND datasets.digest = 'a1b2'")
    "metrics.acc > 0.9 AND tags.`autolog.datasets.digest` LIKE '%|a1b2|%'"
    """
    if not text or _DATASET_KEY.search(text) is None:
        return text
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
        node, end = parse_comparison_at(text, i)
        comparison = text[i:end].rstrip()
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
