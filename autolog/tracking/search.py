"""The search language of ``search_runs``: parsed once into a tree.

The file store evaluates the tree in Python (:func:`matches`); the SQL store
compiles the same tree to parameterised SQL. Both must give identical results,
so the semantics are fixed here, two-valued:

- a comparison on a metric / param / tag the run does not have is False;
  ``NOT`` simply negates (so ``NOT metrics.x > 1`` is True for a run without x);
- metrics compare as floats: ``= != < <= > >=`` with a number; NaN compares
  False with everything (``!=`` included);
- params and tags compare as strings: ``= != LIKE ILIKE IN NOT IN``;
- attributes: ``start_time``, ``end_time`` numeric (``end_time`` of a running
  run is missing); ``status``, ``run_name``, ``run_id``, ``artifact_uri``,
  ``user_id``, ``lifecycle_stage`` strings;
- ``IS NULL`` / ``IS NOT NULL`` test presence of the key (a NaN metric is present);
- ``LIKE`` is case-sensitive, ``ILIKE`` not; ``%`` any run, ``_`` one char.

Details both stores follow:

- string literals: ``'...'`` or ``"..."``; inside, ``''`` / ``\\'`` is a quote
  and ``\\\\`` a backslash; any other backslash stays in the value;
- ``LIKE`` / ``ILIKE`` patterns have no escape character (``%`` and ``_`` are
  always wildcards, as in the best-known tracker) and match newlines too;
  ``ILIKE`` lower-cases both sides with ``str.lower``;
- ``status`` values must be one of :attr:`RunStatus.ALL` (``LIKE`` patterns excepted);
- order of ``search`` results: each ``order_by`` key (in both directions: values
  first, then NaN metrics, then runs missing the key; strings by code point), then
  ``start_time`` descending, then ``run_id`` ascending;
- order of ``search_experiments`` results: each ``order_by`` key, then
  ``creation_time`` descending, then ``experiment_id`` ascending, where ids
  compare by length first (so numeric ids sort numerically: "2" < "10");
- a page token is opaque (:func:`encode_page_token` of the offset).

Example::

    node = parse_filter("metrics.acc > 0.9 AND (params.model = 'rf' OR tags.team ILIKE 'a%')")
    page = search(runs, "metrics.acc > 0.9", order_by=["metrics.acc DESC"], max_results=10)
Layout: the node classes live in :mod:`autolog.tracking.search_tree`, the parser
in :mod:`autolog.tracking.search_parser`; this module holds evaluation, order and
pages, and re-exports the public names of both, so ``autolog.tracking.search`` is
the one import path of the search language.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from autolog.errors import InvalidParameterError
from autolog.tracking.entities import Experiment, PagedList, Run
from autolog.tracking.search_parser import (
    MAX_FILTER_LENGTH,
    MAX_IN_LIST_ITEMS,
    MAX_NESTING_DEPTH,
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_filter,
    parse_order_by,
)
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
    "ATTRIBUTE",
    "MAX_FILTER_LENGTH",
    "MAX_IN_LIST_ITEMS",
    "MAX_NESTING_DEPTH",
    "MAX_RESULTS_LIMIT",
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
    "check_max_results",
    "compile_filter",
    "decode_page_token",
    "encode_page_token",
    "matches",
    "parse_experiment_filter",
    "parse_experiment_order_by",
    "parse_filter",
    "parse_order_by",
    "search",
    "search_experiments",
    "sort_runs",
]

#: the largest page ``search`` / ``search_experiments`` return
MAX_RESULTS_LIMIT = 50_000

# -- evaluation: the tree compiled once into closures ---------------------------
Getter = Callable[[Any], Any]


def _run_getter(entity: str, key: str) -> Getter:
    if entity == METRIC:
        return lambda run: run.data.metrics.get(key)
    if entity == PARAM:
        return lambda run: run.data.params.get(key)
    if entity == TAG:
        return lambda run: run.data.tags.get(key)
    return lambda run: getattr(run.info, key)


def _experiment_getter(entity: str, key: str) -> Getter:
    if entity == TAG:
        return lambda experiment: experiment.tags.get(key)
    return lambda experiment: getattr(experiment, key)


def like_to_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """The regex equivalent of a LIKE pattern: ``%`` any run, ``_`` one character."""
    if ignore_case:
        pattern = pattern.lower()
    parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def _value_test(op: str, value: Any) -> Callable[[Any], bool]:
    """A test of a present value; NaN fails every numeric test (``v == v`` is False)."""
    if op == "=":
        return lambda v: v == value
    if op == "!=":
        if isinstance(value, (int, float)):
            return lambda v: v == v and v != value
        return lambda v: v != value
    if op == "<":
        return lambda v: v < value
    if op == "<=":
        return lambda v: v <= value
    if op == ">":
        return lambda v: v > value
    if op == ">=":
        return lambda v: v >= value
    if op in ("IN", "NOT IN"):
        members = frozenset(value)
        return (lambda v: v in members) if op == "IN" else (lambda v: v not in members)
    regex = like_to_regex(value, ignore_case=op == "ILIKE")
    if op == "ILIKE":
        return lambda v: regex.fullmatch(v.lower()) is not None
    return lambda v: regex.fullmatch(v) is not None


def _compile(node: Node, getter_for: Callable[[str, str], Getter]) -> Callable[[Any], bool]:
    if isinstance(node, Comparison):
        get = getter_for(node.entity, node.key)
        if node.op == "IS NULL":
            return lambda obj: get(obj) is None
        if node.op == "IS NOT NULL":
            return lambda obj: get(obj) is not None
        test = _value_test(node.op, node.value)

        def compare(obj: Any) -> bool:
            v = get(obj)
            return v is not None and test(v)

        return compare
    if isinstance(node, Not):
        inner = _compile(node.item, getter_for)
        return lambda obj: not inner(obj)
    parts = [_compile(item, getter_for) for item in node.items]
    if isinstance(node, And):
        return lambda obj: all(part(obj) for part in parts)
    return lambda obj: any(part(obj) for part in parts)


@functools.lru_cache(maxsize=512)
def _compile_run_node(node: Node) -> Callable[[Run], bool]:
    return _compile(node, _run_getter)


def compile_filter(filter_string: str | None) -> Callable[[Run], bool] | None:
    """A fast predicate ``run -> bool`` for a filter (None when it selects everything)."""
    node = parse_filter(filter_string)
    return None if node is None else _compile_run_node(node)


def matches(node: Node | None, run: Run) -> bool:
    """Whether ``run`` satisfies the parsed filter ``node`` (None matches every run).

    To test many runs, take the predicate of :func:`compile_filter` once instead."""
    return node is None or _compile_run_node(node)(run)


# -- ordering and pages ---------------------------------------------------------
def _sort(items: list[Any], keys: Sequence[OrderKey], getter_for: Callable[[str, str], Getter]):
    """Stable sorts from the least to the most significant key, missing values last."""
    for order_key in reversed(keys):
        get = getter_for(order_key.entity, order_key.key)

        def sort_value(obj: Any, get: Getter = get, asc: bool = order_key.ascending) -> tuple:
            # tiers: values, then NaN, then missing, in both directions
            # (reverse=True below flips the tiers, so descending counts down)
            v = get(obj)
            if v is None:
                return (2, 0) if asc else (0, 0)
            if isinstance(v, float) and math.isnan(v):
                return (1, 0)
            return (0, v) if asc else (2, v)

        items.sort(key=sort_value, reverse=not order_key.ascending)


def sort_runs(runs: list[Run], order_by: Sequence[OrderKey]) -> None:
    """Sort in place: ``order_by`` keys, then start_time descending, then run_id."""
    runs.sort(key=lambda run: run.info.run_id)
    runs.sort(key=lambda run: run.info.start_time, reverse=True)
    _sort(runs, order_by, _run_getter)


def encode_page_token(offset: int) -> str:
    """The opaque token of the page starting at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    """The offset a token stands for (0 for None); a bad token raises InvalidParameterError."""
    if token is None or token == "":
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (AttributeError, ValueError, TypeError, KeyError, binascii.Error):
        offset = None
    if type(offset) is not int or offset < 0:
        raise InvalidParameterError(
            f"Invalid page_token {str(token)[:60]!r}: not a token we issued"
        )
    return offset


def check_max_results(max_results: object) -> int:
    """``max_results`` as an int in 1..MAX_RESULTS_LIMIT, or InvalidParameterError."""
    if type(max_results) is not int or not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidParameterError(
            f"Invalid max_results {max_results!r}: "
            f"expected an integer from 1 to {MAX_RESULTS_LIMIT}"
        )
    return max_results


def search(
    runs: Iterable[Run],
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 1000,
    page_token: str | None = None,
) -> PagedList[Run]:
    """The page of ``runs`` that match ``filter_string``, in the documented order.

    ``page.token`` fetches the next page (None on the last one).
    """
    check_max_results(max_results)
    predicate = compile_filter(filter_string)
    keys = parse_order_by(order_by)
    offset = decode_page_token(page_token)
    selected = list(runs) if predicate is None else [run for run in runs if predicate(run)]
    sort_runs(selected, keys)
    end = offset + max_results
    token = encode_page_token(end) if end < len(selected) else None
    return PagedList(selected[offset:end], token=token)


def search_experiments(
    experiments: Iterable[Experiment],
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 1000,
) -> list[Experiment]:
    """Experiments matching a ``name`` / ``tags.<key>`` filter, ordered by ``order_by``
    (``name``, ``creation_time``, ``experiment_id``, ``last_update_time``), then
    creation_time descending, then experiment_id; at most ``max_results``."""
    check_max_results(max_results)
    node = parse_experiment_filter(filter_string)
    keys = parse_experiment_order_by(order_by)
    selected = list(experiments)
    if node is not None:
        predicate = _compile(node, _experiment_getter)
        selected = [e for e in selected if predicate(e)]
    selected.sort(key=_experiment_id_key)
    _sort(selected, [OrderKey(ATTRIBUTE, "creation_time", ascending=False)], _experiment_getter)
    _sort(selected, keys, _experiment_order_getter)
    return selected[:max_results]


def _experiment_id_key(experiment: Experiment) -> tuple[int, str]:
    return (len(experiment.experiment_id), experiment.experiment_id)


def _experiment_order_getter(entity: str, key: str) -> Getter:
    return _experiment_id_key if key == "experiment_id" else _experiment_getter(entity, key)
