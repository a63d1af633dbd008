"""The tree a search filter parses into: its node classes and its vocabulary.

The parser (:mod:`autolog.tracking.search_parser`) builds these nodes; the file
store evaluates them in Python and the SQL store compiles them to SQL, both
under the semantics documented in :mod:`autolog.tracking.search`, which
re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ATTRIBUTE",
    "METRIC",
    "NUMERIC_ATTRIBUTES",
    "PARAM",
    "STRING_ATTRIBUTES",
    "TAG",
    "And",
    "Comparison",
    "Node",
    "Not",
    "Or",
    "OrderKey",
]

METRIC, PARAM, TAG, ATTRIBUTE = "metric", "param", "tag", "attribute"
NUMERIC_ATTRIBUTES = ("start_time", "end_time")
STRING_ATTRIBUTES = ("status", "run_name", "run_id", "artifact_uri", "user_id", "lifecycle_stage")


@dataclass(frozen=True)
class Comparison:
    """``entity`` is one of METRIC, PARAM, TAG, ATTRIBUTE; ``op`` is upper-case
    (``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``LIKE``, ``ILIKE``, ``IN``,
    ``NOT IN``, ``IS NULL``, ``IS NOT NULL``); ``value`` is a float (numeric
    comparisons), a str, a tuple of str (IN lists) or None (IS [NOT] NULL)."""

    entity: str
    key: str
    op: str
    value: float | str | tuple[str, ...] | None


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` clause; runs missing the key sort last in either direction."""

    entity: str
    key: str
    ascending: bool = True
