"""What the runs table and the experiments page read: small projections of a store.

The browser never receives whole runs. :func:`runs_window` returns one window
of rows (``offset``/``limit``) of the runs matching a filter, in the order
asked, each row holding only the fixed columns and the param / metric / tag
columns chosen; nested runs are folded: the window holds the top-level runs
(and, as context, the parents of matching children) and each row says how
many children match, which :func:`runs_window` returns when asked with
``parent=<run id>``. On the SQL store the database filters, orders and pages
(``projection_sql``: the run table's page, then only the shown columns of
those runs), so a window costs what its rows cost; other stores are read
through ``search_runs`` and arranged here.

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
from autolog.ui.columns import FIXED_COLUMNS, json_number, split_column

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
            split_column(column)
        parse_order_by(self._order_by())

    def _order_by(self) -> list[str]:
        key = FIXED_COLUMNS.get(self.sort, "")
        if key is None:
            return []
        if not key:
            prefix, name = split_column(self.sort)
            key = f"{prefix}.`{name}`"
        return [f"{key} {'DESC' if self.descending else 'ASC'}"]


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


def _duration(run: Run) -> int:
    end = run.info.end_time
    return 0 if end is None else end - run.info.start_time


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
    child runs match); ``total`` the number of rows at this level; ``keys``
    the param, metric and tag keys of the runs in the window (what the column
    chooser offers).

    Folded (``query.nested``), the top level holds the matching runs that are
    not the child of a run in view, and the parents of matching children: a
    parent that does not match itself comes as context (``"context": true``),
    so a matching child is never hidden. ``parent`` asks for the matching
    children of one run.
    """
    query.check()
    if not 0 < limit <= MAX_WINDOW or offset < 0:
        raise InvalidParameterError(
            f"Invalid window offset={offset} limit={limit}: limit must be 1..{MAX_WINDOW}"
        )
    parts = _sql_parts(store)
    if parts is not None:
        from autolog.ui.projection_sql import sql_window

        return sql_window(store, parts, query, offset, limit, parent)
    return _python_window(store, query, offset, limit, parent)


def _python_window(
    store: AbstractStore, query: RunsQuery, offset: int, limit: int, parent: str | None
) -> dict[str, Any]:
    """Any store: every active run of the experiments read once, the tree and
    the order worked out here."""
    from autolog.tracking.search import compile_filter, sort_runs

    every = _all_runs(store, query, "")
    test = compile_filter(query.filter)
    matched = [run for run in every if test is None or test(run)]
    scope = {run.info.run_id for run in every}
    hits = {run.info.run_id for run in matched}
    parent_of = {}  # matching child -> its parent in view
    for run in matched:
        up = run.data.tags.get(PARENT_RUN_ID)
        if up in scope:
            parent_of[run.info.run_id] = up
    if parent is not None:
        level = [run for run in matched if parent_of.get(run.info.run_id) == parent]
    elif query.nested:
        shown = (hits - parent_of.keys()) | set(parent_of.values())
        level = [run for run in every if run.info.run_id in shown]
    else:
        level = matched
    if query.sort == "duration":  # running runs (no duration yet) last either way
        level.sort(key=lambda run: run.info.run_id)
        level.sort(key=lambda run: run.info.start_time, reverse=True)
        level.sort(key=_duration, reverse=query.descending)
        level.sort(key=lambda run: run.info.end_time is None)
    else:
        sort_runs(level, parse_order_by(query._order_by()))
    window = level[offset : offset + limit]
    columns = [split_column(c) for c in query.columns]
    counts: dict[str, int] = {}
    for up in parent_of.values():
        counts[up] = counts.get(up, 0) + 1
    rows = []
    for run in window:
        row = _row(run, columns)
        row["children"] = counts.get(run.info.run_id, 0) if query.nested else 0
        row["context"] = run.info.run_id not in hits
        rows.append(row)
    keys: dict[str, set[str]] = {"params": set(), "metrics": set(), "tags": set()}
    for run in window:
        keys["params"].update(run.data.params)
        keys["metrics"].update(run.data.metrics)
        keys["tags"].update(run.data.tags)
    return {"rows": rows, "total": len(level), "keys": {k: sorted(v) for k, v in keys.items()}}


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
