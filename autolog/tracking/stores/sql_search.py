"""The search tree of ``autolog.tracking.search`` compiled to parameterised SQL.

Every value of the user's filter reaches the database as a bound parameter;
only table and column names that we chose appear in the SQL text (keys are
bound too). The compiled predicate is two-valued like the Python evaluator:

- a metric / param / tag comparison is ``run_id IN (runs with a matching row)``
  on its table, so a run without the key gives False (never SQL's NULL: no
  run_id is NULL) and ``NOT`` negates;
- NaN is stored as NULL with ``is_nan`` set, so in that subquery a NaN value
  compares False to everything, ``!=`` included, as in Python;
- a nullable attribute (``end_time``) is guarded by ``IS NOT NULL``.

``LIKE`` patterns are read as the evaluator reads them (``%`` and ``_`` are
wildcards, there is no escape character) and rewritten for the backend: SQLite's ``LIKE`` folds
ASCII case, so there a pattern becomes a case-sensitive ``GLOB``; PostgreSQL
gets ``LIKE ... ESCAPE '\\'``. ``ILIKE`` lower-cases both sides (SQLite: a
registered ``str.lower``, the evaluator's own; PostgreSQL: ``lower()``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from autolog.errors import InvalidFilterError
from autolog.tracking import search as _search
from autolog.tracking.search import And, Comparison, Node, Not, Or, OrderKey
from autolog.tracking.stores.sql_schema import latest_metrics, params, runs, tags

__all__ = ["compile_filter", "order_by_clauses", "search_statement"]

_NUMERIC_OPS = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}
_KEYED_TABLES = {_search.METRIC: latest_metrics, _search.PARAM: params, _search.TAG: tags}
#: SQLite function registered per connection: ``str.lower``, as the Python evaluator folds
SQLITE_LOWER = "autolog_lower"
_ANY, _ONE = object(), object()


def _like_tokens(pattern: str) -> list:
    """A LIKE pattern read as the evaluator reads it: ``%`` is _ANY, ``_`` is
    _ONE, every other character (a backslash too) is itself."""
    return [_ANY if c == "%" else _ONE if c == "_" else c for c in pattern]


def _glob_pattern(tokens: list) -> str:
    """SQLite GLOB (case-sensitive, unlike its LIKE): GLOB's own ``* ? [`` become
    one-character classes."""
    return "".join(
        "*" if t is _ANY else "?" if t is _ONE else f"[{t}]" if t in "*?[" else t for t in tokens
    )


def _like_pattern(tokens: list) -> str:
    """PostgreSQL LIKE with ``ESCAPE '\\'``: a literal backslash is escaped."""
    return "".join(
        "%" if t is _ANY else "_" if t is _ONE else f"\\{t}" if t in "%_\\" else t for t in tokens
    )


def _pattern_predicate(column: sa.ColumnElement, op: str, pattern: str, dialect: str):
    if op == "ILIKE":
        # both sides lower-cased, as the evaluator does (PostgreSQL's lower() folds
        # char by char: it differs from str.lower only on 'İ' and final sigma)
        pattern = pattern.lower()
        column = (
            getattr(sa.func, SQLITE_LOWER)(column) if dialect == "sqlite" else sa.func.lower(column)
        )
    tokens = _like_tokens(pattern)
    if dialect == "sqlite":
        return column.op("GLOB", is_comparison=True)(_glob_pattern(tokens))
    if any(t == "\x00" for t in tokens):
        return sa.false()  # PostgreSQL text cannot hold NUL: nothing can match
    return column.like(_like_pattern(tokens), escape="\\")


def _in_predicate(column: sa.ColumnElement, op: str, items: tuple[str, ...], dialect: str):
    """One bound parameter for the whole list, however long (SQLite caps the
    number of parameters of a statement; PostgreSQL plans ``= ANY`` once)."""
    negate = op == "NOT IN"
    if dialect == "sqlite":
        members = sa.select(sa.column("value")).select_from(
            sa.func.json_each(sa.bindparam(None, json.dumps(list(items)), sa.Text))
        )
        return column.not_in(members) if negate else column.in_(members)
    members = sa.bindparam(None, [v for v in items if "\x00" not in v], pg.ARRAY(sa.Text))
    return column != sa.all_(members) if negate else column == sa.any_(members)


def _string_predicate(column: sa.ColumnElement, op: str, value: object, dialect: str):
    if op in ("IN", "NOT IN"):
        return _in_predicate(column, op, value, dialect)  # type: ignore[arg-type]
    if not isinstance(value, str):
        raise InvalidFilterError(f"Expected a string to compare with, got {value!r}")
    if op in ("LIKE", "ILIKE"):
        return _pattern_predicate(column, op, value, dialect)
    if op == "=":
        return sa.false() if dialect != "sqlite" and "\x00" in value else column == value
    if op == "!=":
        return sa.true() if dialect != "sqlite" and "\x00" in value else column != value
    raise InvalidFilterError(f"Operator {op!r} is not supported on strings")


def _numeric_predicate(column: sa.ColumnElement, op: str, value: object):
    if op not in _NUMERIC_OPS:
        raise InvalidFilterError(f"Operator {op!r} is not supported on numbers")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidFilterError(f"Expected a number to compare with, got {value!r}")
    if math.isnan(value):
        return sa.false()  # NaN compares False with everything
    return _NUMERIC_OPS[op](column, float(value))


def _comparison(node: Comparison, dialect: str) -> sa.ColumnElement[bool]:
    if node.entity == _search.ATTRIBUTE:
        column = runs.c.get(node.key)
        if column is None:
            raise InvalidFilterError(f"Unknown attribute {node.key!r}")
        if node.op == "IS NULL":
            return column.is_(None)
        if node.op == "IS NOT NULL":
            return column.is_not(None)
        if node.key in _search.NUMERIC_ATTRIBUTES:
            predicate = _numeric_predicate(column, node.op, node.value)
        else:
            predicate = _string_predicate(column, node.op, node.value, dialect)
        # AND with FALSE is FALSE even when the comparison is NULL: two-valued.
        return sa.and_(column.is_not(None), predicate) if column.nullable else predicate

    # An uncorrelated IN (not a correlated EXISTS): the database evaluates the
    # subquery once through the (key, value) index. run_id is never NULL, so
    # IN is two-valued here.
    present = runs.c.run_id.in_(_keyed_runs(node, dialect))
    return ~present if node.op == "IS NULL" else present


def _keyed_runs(node: Comparison, dialect: str) -> sa.Select:
    """The ids of the runs with a row of ``node``'s key (a metric, param or tag)
    that matches it (any value for IS NULL / IS NOT NULL)."""
    table = _KEYED_TABLES.get(node.entity)
    if table is None:
        raise InvalidFilterError(f"Unknown entity {node.entity!r}")
    row = table.alias()
    where = [row.c.key == node.key]
    if node.op not in ("IS NULL", "IS NOT NULL"):
        if node.entity == _search.METRIC:
            where.append(_numeric_predicate(row.c.value, node.op, node.value))
        else:
            where.append(_string_predicate(row.c.value, node.op, node.value, dialect))
    return sa.select(row.c.run_id).where(*where)


def _intersectable(node: Node) -> bool:
    """A comparison that holds for the runs of its ``_keyed_runs``."""
    return isinstance(node, Comparison) and node.entity in _KEYED_TABLES and node.op != "IS NULL"


def compile_filter(node: Node, dialect: str) -> sa.ColumnElement[bool]:
    """The WHERE clause (over the ``runs`` table) of a parsed filter tree."""
    if isinstance(node, Comparison):
        return _comparison(node, dialect)
    if isinstance(node, And):
        sets = [item for item in node.items if _intersectable(item)]
        if dialect == "postgresql" and len(sets) > 1:
            # PostgreSQL: one IN over the INTERSECT of the comparisons' run ids:
            # it hashes the sets together from their indexes, where one IN each
            # (semi-joins) probes each candidate run in each table by key (the
            # 3-clause search over 10,000 runs: about half the execution time,
            # a fifth of the planning; benchmarks/README.md)
            together = runs.c.run_id.in_(sa.intersect(*(_keyed_runs(i, dialect) for i in sets)))
            rest = [compile_filter(i, dialect) for i in node.items if not _intersectable(i)]
            return sa.and_(together, *rest)
        return sa.and_(*(compile_filter(item, dialect) for item in node.items))
    if isinstance(node, Or):
        return sa.or_(*(compile_filter(item, dialect) for item in node.items))
    if isinstance(node, Not):
        return sa.not_(compile_filter(node.item, dialect))
    raise InvalidFilterError(f"Not a filter node: {node!r}")


def _text_order(column: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    # Python orders strings by code point; so do SQLite's BINARY collation and
    # PostgreSQL's "C" collation, but not a database's linguistic default.
    return column.collate("C") if dialect == "postgresql" else column


def order_by_clauses(
    query: sa.Select, keys: Sequence[OrderKey], dialect: str
) -> tuple[sa.Select, list[sa.ColumnElement]]:
    """``query`` joined with what the keys sort on, and the ORDER BY list:
    each key with runs that miss it last in both directions, then start_time
    descending, then run_id ascending."""
    clauses: list[sa.ColumnElement] = []
    for i, key in enumerate(keys):
        if key.entity == _search.ATTRIBUTE:
            if key.key not in runs.c:
                raise InvalidFilterError(f"Unknown attribute {key.key!r} in order_by")
            value = runs.c[key.key]
            missing = value.is_(None)
            if key.key not in _search.NUMERIC_ATTRIBUTES:
                value = _text_order(value, dialect)
        else:
            table = _KEYED_TABLES.get(key.entity)
            if table is None:
                raise InvalidFilterError(f"Unknown entity {key.entity!r} in order_by")
            row = table.alias(f"order_{i}")
            query = query.outerjoin(
                row,
                sa.and_(row.c.run_id == runs.c.run_id, row.c.key == key.key),
            )
            missing = row.c.run_id.is_(None)
            value = row.c.value
            if key.entity != _search.METRIC:
                value = _text_order(value, dialect)
        # tiers in both directions: values, then NaN metrics, then runs missing the key
        tiers = [(missing, 2)]
        if key.entity == _search.METRIC:
            tiers.append((row.c.is_nan, 1))
        clauses.append(sa.case(*tiers, else_=0))
        clauses.append(value.asc() if key.ascending else value.desc())
    clauses += [runs.c.start_time.desc(), _text_order(runs.c.run_id, dialect).asc()]
    return query, clauses


_SELECTIVE_OPS = ("=", "IN")


def _selective(node: Node) -> bool:
    """A comparison that keeps few runs and has an index to find them: ``=`` or
    ``IN`` on a metric, param or tag (the (key, value) index gives its runs)."""
    return (
        isinstance(node, Comparison)
        and node.entity in _KEYED_TABLES
        and node.op in _SELECTIVE_OPS
        and (node.entity != _search.METRIC or node.op == "=")
    )


def _driver_first(tree: Node | None) -> tuple[Node | None, bool]:
    """``tree`` with a top-level AND's selective comparisons first (AND is
    two-valued here, so its order changes no answer), and whether it has one."""
    if _selective(tree):  # type: ignore[arg-type]
        return tree, True
    if not isinstance(tree, And):
        return tree, False
    items = sorted(tree.items, key=lambda item: not _selective(item))  # stable
    return And(tuple(items)), _selective(items[0])


def _unindexed(column: sa.ColumnElement) -> sa.ColumnElement:
    """SQLite's unary ``+``: the same value, but the planner may not search an
    index by it."""
    return UnaryExpression(column, operator=_PLUS, type_=column.type)


_PLUS = operators.custom_op("+")

# PostgreSQL: the page (its runs in order, ``ord`` their position) and, in the
# same statement, its params, tags and latest metrics: one round trip, one
# snapshot. Rows: (ord, kind, ...): kind 3 is a run (run_id, experiment_id as
# text, NULL, then run_name .. lifecycle_stage), 0/1/2 a param / tag / metric
# (key, text value, number value; NaN as NaN). LATERAL: each run's rows are
# found by primary key (a join would let the planner, which expects few page
# rows, hash the page against a scan of every row of the table).
_PG_SEARCH = """WITH page AS MATERIALIZED ({page})
SELECT ord, 3, run_id, CAST(experiment_id AS text), CAST(NULL AS float8),
       run_name, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage
  FROM page
UNION ALL
SELECT page.ord, 0, x.key, x.value, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM page CROSS JOIN LATERAL
       (SELECT key, value FROM params WHERE params.run_id = page.run_id OFFSET 0) AS x
UNION ALL
SELECT page.ord, 1, x.key, x.value, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM page CROSS JOIN LATERAL
       (SELECT key, value FROM tags WHERE tags.run_id = page.run_id OFFSET 0) AS x
UNION ALL
SELECT page.ord, 2, x.key, NULL, CASE WHEN x.is_nan THEN CAST('NaN' AS float8) ELSE x.value END,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM page CROSS JOIN LATERAL
       (SELECT key, value, is_nan FROM latest_metrics
         WHERE latest_metrics.run_id = page.run_id OFFSET 0) AS x"""


@functools.lru_cache(maxsize=512)
def search_statement(
    dialect: sa.Dialect,
    experiment_keys: tuple[int, ...],
    stages: tuple[str, ...],
    filter_string: str,
    order_by: tuple[str, ...],
    limit: int,
    offset: int,
) -> tuple[str, Any]:
    """A search as SQL text and its parameters for the driver, compiled once
    per distinct search: building and compiling the SQLAlchemy tree costs more
    than SQLite's run of it over a thousand runs. The answer depends on its
    arguments only (no state).

    SQLite: the page's ``runs`` rows in order (its data is read by
    ``sql_read.SQLITE_RUN_DATA``). PostgreSQL: the page and its data in one
    statement (``_PG_SEARCH``'s rows)."""
    tree, selective = _driver_first(_search.parse_filter(filter_string))
    keys = _search.parse_order_by(list(order_by))
    experiment, stage = runs.c.experiment_id, runs.c.lifecycle_stage
    if dialect.name == "sqlite" and selective:
        # SQLite has no statistics on values: it would walk every run of the
        # experiment and test each against every clause. A selective clause
        # (first, after _driver_first) drives instead: its (key, value) index
        # lists few runs, each found by primary key and tested.
        experiment, stage = _unindexed(experiment), _unindexed(stage)
    query = sa.select(runs).where(experiment.in_(list(experiment_keys)), stage.in_(list(stages)))
    if tree is not None:
        query = query.where(compile_filter(tree, dialect.name))
    query, ordering = order_by_clauses(query, keys, dialect.name)
    postgres = dialect.name == "postgresql"
    if postgres:
        query = query.add_columns(sa.func.row_number().over(order_by=ordering).label("ord"))
    query = query.order_by(*ordering).limit(limit).offset(offset)
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    processors = compiled._bind_processors
    values = {
        name: processors[name](value) if name in processors else value
        for name, value in compiled.params.items()
    }
    if compiled.positiontup is not None:  # SQLite: positional parameters
        return compiled.string, tuple(values[name] for name in compiled.positiontup)
    return (_PG_SEARCH.format(page=compiled.string) if postgres else compiled.string), values
