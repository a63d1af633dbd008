"""What the runs table and the experiments page read: small projections of a store.

The browser never receives whole runs. :func:`runs_window` returns one window
of rows (``offset``/``limit``) of the runs matching a filter, in the order
asked, each row holding only the fixed columns and the param / metric / tag
columns chosen; nested runs are folded: the window holds the top-level runs
and each row says how many children match, which :func:`runs_window` returns
when asked with ``parent=<run id>``. Filtering and ordering go through the
store's ``search_runs`` (the one search language), a page at a time, so the
cost of a window is the cost of the rows shown, not of the experiment.

Counts (the table's total, an experiment's run count and last activity) are
one aggregate query on the SQL store; other stores count a page at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autolog.errors import InvalidParameterError
from autolog.tracking.context import GIT_COMMIT, PARENT_RUN_ID, SOURCE_NAME
from autolog.tracking.entities import Experiment, Run, ViewType
from autolog.tracking.search import parse_filter, parse_order_by
from autolog.tracking.stores.base import AbstractStore

__all__ = [
    "FIXED_COLUMNS",
    "MAX_WINDOW",
    "RunsQuery",
    "count_runs",
    "experiment_rows",
    "runs_window",
]

#: the most rows one window may hold (a screen is a few dozen)
MAX_WINDOW = 500
_PAGE = 1000  # search_runs page size when a store has to be read through
#: the columns every row has, and the order_by key each sorts by (None: sorted here)
FIXED_COLUMNS: dict[str, str | None] = {
    "name": "attributes.run_name",
    "status": "attributes.status",
    "start": "attributes.start_time",
    "duration": None,
    "user": "attributes.user_id",
    "source": f"tags.`{SOURCE_NAME}`",
    "commit": f"tags.`{GIT_COMMIT}`",
}
_PREFIXES = {"params": "params", "metrics": "metrics", "tags": "tags"}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class RunsQuery:
    """One view of the runs table, as the URL states it."""

    experiment_ids: tuple[str, ...]
    filter: str = ""
    sort: str = "start"  # a FIXED_COLUMNS name or "params.<k>" / "metrics.<k>" / "tags.<k>"
    descending: bool = True
    columns: tuple[str, ...] = ()  # "params.<k>", "metrics.<k>", "tags.<k>"
    nested: bool = True

    def check(self) -> None:
        """InvalidFilterError for a bad filter, InvalidParameterError for a bad column."""
        parse_filter(self.filter)
        for column in (self.sort, *self.columns):
            _split_column(column)
        parse_order_by(self._order_by())

    def _order_by(self) -> list[str]:
        key = FIXED_COLUMNS.get(self.sort, "")
        if key is None:
            return []
        if not key:
            prefix, name = _split_column(self.sort)
            key = f"{prefix}.`{name}`"
        return [f"{key} {'DESC' if self.descending else 'ASC'}"]

    def store_filter(self, parent: str | None = None) -> str:
        """The filter search_runs gets: the user's, restricted to top-level runs
        (folded) or to the children of ``parent``."""
        parts = [f"({self.filter})"] if self.filter.strip() else []
        if parent is not None:
            parts.append(f"tags.`{PARENT_RUN_ID}` = {_quote(parent)}")
        elif self.nested:
            parts.append(f"tags.`{PARENT_RUN_ID}` IS NULL")
        return " AND ".join(parts)


def json_number(value: float) -> float | str:
    """A float as JSON can carry it: NaN and +-inf as the strings MLflow's API uses."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _split_column(column: str) -> tuple[str, str]:
    if column in FIXED_COLUMNS:
        return "", column
    prefix, dot, name = column.partition(".")
    if not dot or prefix not in _PREFIXES or not name:
        raise InvalidParameterError(
            f"Invalid column {column!r}: expected one of {', '.join(FIXED_COLUMNS)} "
            "or params.<key>, metrics.<key>, tags.<key>"
        )
    return prefix, name


def _row(run: Run, columns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    info, data = run.info, run.data
    values: list[Any] = []
    for prefix, name in columns:
        source = {"params": data.params, "metrics": data.metrics, "tags": data.tags}[prefix]
        value = source.get(name)
        values.append(json_number(value) if isinstance(value, float) else value)
    return {
        "id": info.run_id,
        "exp": info.experiment_id,
        "name": info.run_name,
        "status": info.status,
        "start": info.start_time,
        "end": info.end_time,
        "user": info.user_id,
        "source": data.tags.get(SOURCE_NAME),
        "commit": data.tags.get(GIT_COMMIT),
        "parent": data.tags.get(PARENT_RUN_ID),
        "values": values,
    }


def _all_runs(store: AbstractStore, query: RunsQuery, filter_string: str) -> list[Run]:
    found: list[Run] = []
    token = None
    while True:
        page = store.search_runs(
            list(query.experiment_ids), filter_string, ViewType.ACTIVE_ONLY, _PAGE, None, token
        )
        found.extend(page)
        token = page.token
        if not token:
            return found


def _duration(run: Run) -> float:
    end = run.info.end_time
    return float("-inf") if end is None else float(end - run.info.start_time)


def runs_window(
    store: AbstractStore,
    query: RunsQuery,
    offset: int = 0,
    limit: int = 100,
    parent: str | None = None,
) -> dict[str, Any]:
    """One window of the runs table: ``{"rows", "total", "keys"}``.

    ``rows`` are at most ``limit`` rows from ``offset`` (``values`` in the
    order of ``query.columns``, each row with ``children``: how many of its
    child runs match); ``total`` the number of matching rows at this level;
    ``keys`` the param, metric and tag keys seen in the window (what the
    column chooser offers).
    """
    query.check()
    if not 0 < limit <= MAX_WINDOW or offset < 0:
        raise InvalidParameterError(
            f"Invalid window offset={offset} limit={limit}: limit must be 1..{MAX_WINDOW}"
        )
    filter_string = query.store_filter(parent)
    order_by = query._order_by()
    if order_by or query.sort != "duration":
        from autolog.tracking.search import encode_page_token

        token = encode_page_token(offset) if offset else None
        runs = list(
            store.search_runs(
                list(query.experiment_ids),
                filter_string,
                ViewType.ACTIVE_ONLY,
                limit,
                order_by,
                token,
            )
        )
    else:  # duration: not an order key of the search language, sorted here
        every = _all_runs(store, query, filter_string)
        every.sort(key=_duration, reverse=query.descending)
        runs = every[offset : offset + limit]
    columns = [_split_column(c) for c in query.columns]
    rows = [_row(run, columns) for run in runs]
    children = _child_counts(store, query, [r["id"] for r in rows]) if query.nested else {}
    for row in rows:
        row["children"] = children.get(row["id"], 0)
    keys: dict[str, set[str]] = {"params": set(), "metrics": set(), "tags": set()}
    for run in runs:
        keys["params"].update(run.data.params)
        keys["metrics"].update(run.data.metrics)
        keys["tags"].update(run.data.tags)
    return {
        "rows": rows,
        "total": count_runs(store, query.experiment_ids, filter_string),
        "keys": {k: sorted(v) for k, v in keys.items()},
    }


def _child_counts(store: AbstractStore, query: RunsQuery, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    inner = f"({query.filter}) AND " if query.filter.strip() else ""
    wanted = ", ".join(_quote(i) for i in ids)
    counts: dict[str, int] = {}
    sql = _sql_parts(store)
    if sql is not None:
        return _sql_child_counts(store, sql, query, f"{inner}tags.`{PARENT_RUN_ID}` IN ({wanted})")
    children = _all_runs(store, query, f"{inner}tags.`{PARENT_RUN_ID}` IN ({wanted})")
    for child in children:
        parent = child.data.tags.get(PARENT_RUN_ID, "")
        counts[parent] = counts.get(parent, 0) + 1
    return counts


# -- counts: one aggregate query on the SQL store, a page at a time elsewhere ------


def _sql_parts(store: AbstractStore) -> Any:
    """The SQL store's modules when ``store`` is one, else None (no import otherwise)."""
    if type(store).__name__ != "SqlStore":
        return None
    import sqlalchemy as sa

    from autolog.tracking.stores import sql_schema, sql_search

    return sa, sql_schema, sql_search


def _sql_matching(store: AbstractStore, parts: Any, exp_ids: Sequence[str], filter_string: str):
    sa, schema, search_sql = parts
    runs = schema.runs
    keys = [int(e) for e in exp_ids if str(e).isdigit()]
    where = [runs.c.experiment_id.in_(keys), runs.c.lifecycle_stage == "active"]
    tree = parse_filter(filter_string)
    if tree is not None:
        where.append(search_sql.compile_filter(tree, store.dialect))  # type: ignore[attr-defined]
    return sa, schema, where


def _sql_child_counts(store: AbstractStore, parts: Any, query: RunsQuery, filter_string: str):
    sa, schema, where = _sql_matching(store, parts, query.experiment_ids, filter_string)
    tags = schema.tags
    stmt = (
        sa.select(tags.c.value, sa.func.count())
        .where(
            tags.c.key == PARENT_RUN_ID,
            tags.c.run_id.in_(sa.select(schema.runs.c.run_id).where(*where)),
        )
        .group_by(tags.c.value)
    )
    return store._read(lambda conn: dict(conn.execute(stmt).all()))  # type: ignore[attr-defined]


def count_runs(store: AbstractStore, experiment_ids: Sequence[str], filter_string: str) -> int:
    """How many active runs of the experiments match ``filter_string``."""
    parts = _sql_parts(store)
    if parts is not None:
        sa, schema, where = _sql_matching(store, parts, experiment_ids, filter_string)
        stmt = sa.select(sa.func.count()).select_from(schema.runs).where(*where)
        return int(store._read(lambda conn: conn.execute(stmt).scalar()))  # type: ignore[attr-defined]
    query = RunsQuery(tuple(experiment_ids))
    return len(_all_runs(store, query, filter_string))


def _stats(
    store: AbstractStore, experiments: list[Experiment]
) -> dict[str, tuple[int, int | None]]:
    """experiment id -> (active run count, last activity in ms: latest start or end)."""
    parts = _sql_parts(store)
    ids = [e.experiment_id for e in experiments]
    if parts is not None:
        sa, schema, _ = parts
        runs = schema.runs
        latest = sa.func.max(sa.func.coalesce(runs.c.end_time, runs.c.start_time))
        stmt = (
            sa.select(runs.c.experiment_id, sa.func.count(), latest, sa.func.max(runs.c.start_time))
            .where(
                runs.c.experiment_id.in_([int(i) for i in ids if i.isdigit()]),
                runs.c.lifecycle_stage == "active",
            )
            .group_by(runs.c.experiment_id)
        )
        rows = store._read(lambda conn: conn.execute(stmt).all())  # type: ignore[attr-defined]
        return {str(e): (n, max(a or 0, b or 0) or None) for e, n, a, b in rows}
    stats: dict[str, tuple[int, int | None]] = {}
    for experiment_id in ids:
        found = _all_runs(store, RunsQuery((experiment_id,)), "")
        times = [max(r.info.start_time, r.info.end_time or 0) for r in found]
        stats[experiment_id] = (len(found), max(times) if times else None)
    return stats


def experiment_rows(store: AbstractStore, name_contains: str = "") -> list[dict[str, Any]]:
    """The experiments page: ``[{"id", "name", "runs", "last"}]``, those whose
    name contains ``name_contains`` (any case), most recent activity first."""
    filter_string = f"name ILIKE {_quote('%' + name_contains + '%')}" if name_contains else None
    experiments = store.search_experiments(ViewType.ACTIVE_ONLY, 1000, filter_string)
    stats = _stats(store, experiments)
    rows = []
    for e in experiments:
        count, last = stats.get(e.experiment_id, (0, None))
        last = last or e.last_update_time or e.creation_time
        rows.append({"id": e.experiment_id, "name": e.name, "runs": count, "last": last})
    rows.sort(key=lambda r: (-(r["last"] or 0), r["name"]))
    return rows
