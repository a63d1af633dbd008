"""The parser of the search language: filter and ``order_by`` text -> a tree.

A hand-written recursive descent (no dependency, no ``eval``) over one schema
per searchable kind of thing: runs, experiment filters, experiment order keys.
Malformed input raises :class:`~autolog.errors.InvalidFilterError` carrying
``position`` and ``expected``; the limits below bound the work one text can
cause. Parsed trees are cached by text, so repeated searches skip parsing.

The nodes it builds are those of :mod:`autolog.tracking.search_tree`; what they
mean is documented in :mod:`autolog.tracking.search`, which re-exports the
public names here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from autolog.errors import InvalidFilterError
from autolog.tracking.entities import RunStatus
from autolog.tracking.search_tree import (
    ATTRIBUTE,
    METRIC,
    NUMERIC_ATTRIBUTES,
    PARAM,
    STRING_ATTRIBUTES,
    TAG,
    And,
    Comparison,
    Node,
    Not,
    Or,
    OrderKey,
)

__all__ = [
    "MAX_FILTER_LENGTH",
    "MAX_IN_LIST_ITEMS",
    "MAX_NESTING_DEPTH",
    "parse_comparison_at",
    "parse_experiment_filter",
    "parse_experiment_order_by",
    "parse_filter",
    "parse_order_by",
]

MAX_FILTER_LENGTH = 100_000
MAX_IN_LIST_ITEMS = 10_000
#: nesting limit for parentheses: keeps the parser and evaluator off Python's recursion limit
MAX_NESTING_DEPTH = 100


# -- what may be searched: one schema for runs, two for experiments ------------
NUMBER, STRING = "number", "string"
NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
NULL_OPS = ("IS NULL", "IS NOT NULL")
#: how error messages spell the prefix of each entity (``prefixes`` also takes other spellings)
_PLURAL = {METRIC: "metrics", PARAM: "params", TAG: "tags", ATTRIBUTE: "attributes"}


@dataclass(frozen=True, eq=False)  # hashed by identity: a cache key of the parsers
class _Schema:
    """Which keys a filter may name and which operators each kind of key takes."""

    prefixes: dict[str, str]  # lower-case prefix word -> entity
    entity_kinds: dict[str, str]  # METRIC/PARAM/TAG -> NUMBER/STRING
    attributes: dict[str, str]  # attribute name -> NUMBER/STRING (also allowed bare)
    aliases: dict[str, str]
    ops: dict[str, tuple[str, ...]]  # kind -> allowed operators

    def describe_keys(self) -> str:
        keyed = [f"{_PLURAL[e]}.<key>" for e in (METRIC, PARAM, TAG) if e in self.entity_kinds]
        return ", ".join([*keyed, f"an attribute ({', '.join(self.attributes)})"])

    def describe_prefixes(self) -> str:
        return ", ".join(
            f"{_PLURAL[e]}." for e in (METRIC, PARAM, TAG, ATTRIBUTE) if e in self.prefixes.values()
        )


_RUN_SCHEMA = _Schema(
    # the spellings users of the best-known tracker type, singular and plural
    prefixes={
        **dict.fromkeys(("metric", "metrics"), METRIC),
        **dict.fromkeys(("param", "params", "parameter", "parameters"), PARAM),
        **dict.fromkeys(("tag", "tags"), TAG),
        **dict.fromkeys(("attribute", "attributes", "attr", "run"), ATTRIBUTE),
    },
    entity_kinds={METRIC: NUMBER, PARAM: STRING, TAG: STRING},
    attributes={
        **dict.fromkeys(NUMERIC_ATTRIBUTES, NUMBER),
        **dict.fromkeys(STRING_ATTRIBUTES, STRING),
    },
    aliases={"created": "start_time", "run_uuid": "run_id"},
    ops={NUMBER: NUMERIC_OPS + NULL_OPS, STRING: STRING_OPS + NULL_OPS},
)
_EXPERIMENT_OPS = {STRING: ("=", "!=", "LIKE", "ILIKE"), NUMBER: NUMERIC_OPS}
_EXPERIMENT_FILTER_SCHEMA = _Schema(
    prefixes={"tag": TAG, "tags": TAG, "attribute": ATTRIBUTE, "attributes": ATTRIBUTE},
    entity_kinds={TAG: STRING},
    attributes={"name": STRING},
    aliases={},
    ops=_EXPERIMENT_OPS,
)
_EXPERIMENT_ORDER_SCHEMA = _Schema(
    prefixes={"attribute": ATTRIBUTE, "attributes": ATTRIBUTE},
    entity_kinds={},
    attributes={
        "name": STRING,
        "experiment_id": STRING,
        "creation_time": NUMBER,
        "last_update_time": NUMBER,
    },
    aliases={},
    ops=_EXPERIMENT_OPS,
)

# ``datasets.<key>``: rewritten into tag comparisons (autolog.tracking.search_datasets)
_DATASET = "dataset"
_DATASET_KEYS = ("name", "digest", "context")
_DATASET_PREFIXES = ("dataset", "datasets")

# -- the parser -----------------------------------------------------------------
_SPACE = re.compile(r"\s*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[\w.\-/:]+")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
_SYMBOL_OP = re.compile(r"<=|>=|!=|=|<|>")
# only to show the user what was found where something else was expected
_TOKEN = re.compile(r"'[^']*'?|\"[^\"]*\"?|`[^`]*`?|[\w.\-/:+]+|<=|>=|!=|.", re.DOTALL)


class _Parser:
    """Recursive descent over the text; ``pos`` always sits on the next token."""

    def __init__(self, text: str, schema: _Schema, what: str = "filter"):
        self.what = what
        self.text = text
        self.schema = schema
        self.pos = 0
        self.depth = 0

    # helpers
    def fail(self, expected: str, after: str = "", at: int | None = None) -> NoReturn:
        pos = self.pos if at is None else at
        shown_at = _SPACE.match(self.text, pos).end()  # type: ignore[union-attr]
        if shown_at >= len(self.text):
            got = "end of input"
        else:
            token = _TOKEN.match(self.text, shown_at).group()  # type: ignore[union-attr]
            got = token[:40] if token[0] in "'\"" or _NUMBER.fullmatch(token) else repr(token[:40])
        context = f" after {' '.join(after.split())!r}" if after else ""
        raise InvalidFilterError(
            f"Invalid {self.what} at position {pos}: expected {expected}{context}, got {got}",
            text=self.text,
            position=pos,
            expected=expected,
        )

    def skip_space(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def peek_word(self) -> str:
        """The upper-cased keyword at ``pos`` ('' if none); does not consume it."""
        m = _WORD.match(self.text, self.pos)
        return m.group().upper() if m else ""

    def take_word(self, word: str) -> bool:
        if self.peek_word() == word:
            self.pos += len(word)
            self.skip_space()
            return True
        return False

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    # grammar: or := and (OR and)* ; and := not (AND not)* ; not := NOT* primary
    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.take_word("OR"):
            items.append(self.parse_and())
        return _join(Or, items)

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.take_word("AND"):
            items.append(self.parse_not())
        return _join(And, items)

    def parse_not(self) -> Node:
        negations = 0
        while self.take_word("NOT"):  # a loop, not recursion: NOT NOT ... cannot overflow
            negations += 1
        node = self.parse_primary()
        return Not(node) if negations % 2 else node

    def parse_primary(self) -> Node:
        if self.text.startswith("(", self.pos):
            self.depth += 1
            if self.depth > MAX_NESTING_DEPTH:
                self.fail(f"at most {MAX_NESTING_DEPTH} nested parentheses")
            self.pos += 1
            self.skip_space()
            node = self.parse_or()
            if not self.text.startswith(")", self.pos):
                self.fail("AND, OR or ')'")
            self.pos += 1
            self.skip_space()
            self.depth -= 1
            return node
        return self.parse_comparison()

    def parse_key(self) -> tuple[str, str, str]:
        """``prefix.key`` or a bare attribute -> (entity, key, kind)."""
        start = self.pos
        m = _WORD.match(self.text, start)
        if m is None or m.group().upper() in ("AND", "OR", "NOT"):
            self.fail(self.schema.describe_keys())
        word = m.group()
        if self.text.startswith(".", m.end()) and word.lower() in _DATASET_PREFIXES:
            return self.parse_dataset_key(start, m.end() + 1)
        if self.text.startswith(".", m.end()):
            entity = self.schema.prefixes.get(word.lower())
            if entity is None:
                self.fail(f"a key prefix ({self.schema.describe_prefixes()})", at=start)
            self.pos = m.end() + 1
            key = self.parse_key_name(self.text[start : self.pos])
        else:
            entity, key = ATTRIBUTE, word
            self.pos = m.end()
        if entity == ATTRIBUTE:
            key = self.schema.aliases.get(key.lower(), key.lower())
            kind = self.schema.attributes.get(key)
            if kind is None:
                self.fail(self.schema.describe_keys(), at=start)
        else:
            kind = self.schema.entity_kinds[entity]
        self.skip_space()
        return entity, key, kind

    def parse_dataset_key(self, start: int, key_start: int) -> tuple[str, str, str]:
        """``datasets.name`` / ``.digest`` / ``.context`` (runs only): the dataset
        records of :mod:`autolog.provenance.datasets`, searched through their tags
        (:mod:`autolog.tracking.search_datasets`)."""
        if self.schema is not _RUN_SCHEMA:
            self.fail(f"a key prefix ({self.schema.describe_prefixes()})", at=start)
        self.pos = key_start
        key = self.parse_key_name(self.text[start:key_start])
        if key not in _DATASET_KEYS:
            self.fail(f"datasets.{' / '.join(_DATASET_KEYS)}", at=start)
        self.skip_space()
        return _DATASET, key, STRING

    def parse_key_name(self, prefix: str) -> str:
        quote = self.text[self.pos : self.pos + 1]
        if quote in ("`", '"'):
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                self.fail(f"a closing {quote} for the key", after=prefix)
            key = self.text[self.pos + 1 : end]
            if not key:
                self.fail("a non-empty key", after=prefix)
            self.pos = end + 1
            return key
        m = _BARE_KEY.match(self.text, self.pos)
        if m is None:
            self.fail("a key name (quote it with backticks if it has spaces)", after=prefix)
        self.pos = m.end()
        return m.group()

    def parse_operator(self, key_text: str, kind: str) -> str:
        m = _SYMBOL_OP.match(self.text, self.pos)
        if m is not None:
            op, self.pos = m.group(), m.end()
            self.skip_space()
        elif self.take_word("NOT"):
            if not self.take_word("IN"):
                self.fail("IN after NOT", after=key_text)
            op = "NOT IN"
        elif self.take_word("IS"):
            negated = self.take_word("NOT")
            if not self.take_word("NULL"):
                self.fail("NULL", after=f"{key_text} IS")
            op = "IS NOT NULL" if negated else "IS NULL"
        else:
            op = self.peek_word()
            if op in ("LIKE", "ILIKE", "IN"):
                self.take_word(op)
            else:
                self.fail("a comparison operator", after=key_text)
        return op

    def parse_comparison(self) -> Node:
        start = self.pos
        entity, key, kind = self.parse_key()
        key_text = self.text[start : self.pos]
        op_start = self.pos
        op = self.parse_operator(key_text, kind)
        allowed = self.schema.ops[kind]
        if op not in allowed:
            what = "metric" if entity == METRIC else f"{kind} key"
            self.fail(f"one of {' '.join(allowed)} for the {what} {key!r}", at=op_start)
        after = self.text[start : self.pos]
        # a status outside RunStatus can never match: most likely a typo ('finished')
        allowed = (
            RunStatus.ALL if (entity, key) == (ATTRIBUTE, "status") and "LIKE" not in op else ()
        )
        if op in NULL_OPS:
            value: float | str | tuple[str, ...] | None = None
        elif op in ("IN", "NOT IN"):
            value = self.parse_string_list(after, allowed)
        elif kind == NUMBER:
            value = self.parse_number(after)
        else:
            value = self.parse_string(after, allowed)
        if entity == _DATASET:
            from autolog.tracking.search_datasets import dataset_filter

            return dataset_filter(key, op, value)
        return Comparison(entity, key, op, value)

    def parse_number(self, after: str) -> float:
        m = _NUMBER.match(self.text, self.pos)
        if m is None:
            self.fail("a number", after=after)
        self.pos = m.end()
        self.skip_space()
        return float(m.group())

    def parse_string(self, after: str, allowed: tuple[str, ...] = ()) -> str:
        quote = self.text[self.pos : self.pos + 1]
        if quote not in ("'", '"'):
            self.fail("a string literal", after=after)
        start, i, chars = self.pos, self.pos + 1, []
        text = self.text
        while True:
            j = _next_special(text, i, quote)
            if j < 0:
                self.fail(f"a closing {quote} for the string", after=after, at=start)
            chars.append(text[i:j])
            if text[j] == "\\":
                nxt = text[j + 1 : j + 2]
                chars.append(nxt if nxt in (quote, "\\") else "\\" + nxt)
                i = j + 1 + len(nxt)
            elif text.startswith(quote * 2, j):  # SQL style: '' inside '...'
                chars.append(quote)
                i = j + 2
            else:
                value = "".join(chars)
                if allowed and value not in allowed:
                    self.fail(f"a run status ({', '.join(allowed)})", after=after, at=start)
                self.pos = j + 1
                self.skip_space()
                return value

    def parse_string_list(self, after: str, allowed: tuple[str, ...] = ()) -> tuple[str, ...]:
        if not self.text.startswith("(", self.pos):
            self.fail("'(' starting a list of strings", after=after)
        self.pos += 1
        self.skip_space()
        items = [self.parse_string(after, allowed)]
        while self.text.startswith(",", self.pos):
            if len(items) >= MAX_IN_LIST_ITEMS:
                self.fail(f"at most {MAX_IN_LIST_ITEMS} items in the list", after=after)
            self.pos += 1
            self.skip_space()
            items.append(self.parse_string(after, allowed))
        if not self.text.startswith(")", self.pos):
            self.fail("',' or ')' in the list", after=after)
        self.pos += 1
        self.skip_space()
        return tuple(items)

    def parse_filter(self) -> Node:
        self.skip_space()
        node = self.parse_or()
        if not self.at_end():
            self.fail("AND, OR or the end of the filter")
        return node

    def parse_order_key(self) -> OrderKey:
        self.skip_space()
        entity, key, _kind = self.parse_key()
        ascending = True
        if self.take_word("DESC"):
            ascending = False
        elif not self.take_word("ASC") and not self.at_end():
            self.fail("ASC, DESC or the end of the order_by clause")
        if not self.at_end():
            self.fail("the end of the order_by clause")
        return OrderKey(entity, key, ascending)


def _next_special(text: str, start: int, quote: str) -> int:
    """Index of the next quote or backslash at or after ``start``, -1 if none."""
    q, b = text.find(quote, start), text.find("\\", start)
    if b < 0 or 0 <= q < b:
        return q
    return b


def _join(cls: type[And] | type[Or], items: list[Node]) -> Node:
    """One node for a chain; ``(a AND b) AND c`` flattens to And(a, b, c)."""
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(flat))


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidFilterError(
            f"Invalid {what}: expected a string, got {type(text).__name__}", expected="a string"
        )
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilterError(
            f"Invalid {what} at position {MAX_FILTER_LENGTH}: expected at most "
            f"{MAX_FILTER_LENGTH} characters, got {len(text)}",
            text=text[:100],
            position=MAX_FILTER_LENGTH,
            expected=f"at most {MAX_FILTER_LENGTH} characters",
        )
    return text


def parse_filter(text: str | None) -> Node | None:
    """The tree of a ``search_runs`` filter; None for an empty filter (all runs).

    Raises InvalidFilterError (with ``position`` and ``expected``) on malformed
    input. Trees are cached: parsing the same text again is a dict lookup.
    """
    if text is None:
        return None
    return _parse_cached(_check_text(text, "filter"), _RUN_SCHEMA)


def parse_comparison_at(text: str, position: int) -> tuple[Node, int]:
    """The one run-filter comparison that starts at ``position`` of ``text``
    (``datasets.digest = 'a1'``) and the index just past it (spaces after it
    included): for rewriting one comparison and leaving the rest of a filter
    as written (:mod:`autolog.tracking.search_mlflow`)."""
    parser = _Parser(_check_text(text, "filter"), _RUN_SCHEMA)
    parser.pos = position
    return parser.parse_comparison(), parser.pos


def parse_experiment_filter(text: str | None) -> Node | None:
    """The tree of a ``search_experiments`` filter (``name`` and ``tags.<key>``)."""
    if text is None:
        return None
    return _parse_cached(_check_text(text, "filter"), _EXPERIMENT_FILTER_SCHEMA)


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str, schema: _Schema) -> Node | None:
    if not text.strip():
        return None
    return _Parser(text, schema).parse_filter()


def parse_order_by(clauses: Sequence[str] | None) -> list[OrderKey]:
    """``["metrics.acc DESC", "attributes.start_time"]`` -> OrderKeys (ASC by default)."""
    return _parse_order(clauses, _RUN_SCHEMA)


def parse_experiment_order_by(clauses: Sequence[str] | None) -> list[OrderKey]:
    """``search_experiments`` order keys (``name``, ``experiment_id``, ``creation_time``,
    ``last_update_time``) -> OrderKeys (ASC by default)."""
    return _parse_order(clauses, _EXPERIMENT_ORDER_SCHEMA)


def _parse_order(clauses: Sequence[str] | None, schema: _Schema) -> list[OrderKey]:
    if clauses is None:
        return []
    if isinstance(clauses, str):  # a lone string would otherwise be read letter by letter
        clauses = [clauses]
    return [_parse_order_key(_check_text(c, "order_by clause"), schema) for c in clauses]


@functools.lru_cache(maxsize=512)
def _parse_order_key(clause: str, schema: _Schema) -> OrderKey:
    return _Parser(clause, schema, what="order_by clause").parse_order_key()
