"""The runs table's window on the SQL store: a few statements in one read.

The view is built over ``runs`` and one common table expression, so the
filter (compiled by the store's own ``compile_filter``) is evaluated by the
database once per statement and never in Python:

- ``pm``: (child, parent) for each matching run whose parent is an active
  run of the experiments (read from the parent tags, so the filter is
  evaluated for child runs only).

The rows of one level are then the matching runs minus the children in
``pm``, plus ``pm``'s parents (top level, folded), ``pm``'s children of one
parent, or the matching runs (flat). One statement reads the window's runs (sorted and
paged by the database), one counts the level, one counts the window's
matching children and says which rows match, and one reads only the columns
shown (and the keys the column chooser offers) of the window's runs.
"""

from __future__ import annotations

from typing import Any

from autolog.tracking.context import GIT_COMMIT, PARENT_RUN_ID, SOURCE_NAME
from autolog.tracking.search import parse_filter, parse_order_by

__all__ = ["sql_window"]

_KINDS = ("params", "metrics", "tags")


def sql_window(
    store: Any, parts: Any, query: Any, offset: int, limit: int, parent: str | None
) -> dict[str, Any]:
    """:func:`autolog.ui.projection.runs_window` on the SQL store."""
    from autolog.tracking.stores.sql_read import run_info
    from autolog.ui.columns import json_number, split_column

    sa, schema, search_sql = parts
    runs, tags = schema.runs, schema.tags
    exp_keys = [int(e) for e in query.experiment_ids if str(e).isdigit()]

    def scope(table: Any) -> list[Any]:
        return [table.c.experiment_id.in_(exp_keys), table.c.lifecycle_stage == "active"]

    tree = parse_filter(query.filter)
    match = sa.true() if tree is None else search_sql.compile_filter(tree, store.dialect)
    # driven by the few parent tags: the filter is evaluated for those children only
    up = runs.alias("up")
    pm = (
        sa.select(tags.c.run_id.label("child"), tags.c.value.label("parent"))
        .where(
            tags.c.key == PARENT_RUN_ID,
            sa.exists().where(runs.c.run_id == tags.c.run_id, *scope(runs), match),
            sa.exists().where(up.c.run_id == tags.c.value, *scope(up)),
        )
        .cte("pm")
    )
    if parent is not None:
        level = runs.c.run_id.in_(sa.select(pm.c.child).where(pm.c.parent == parent))
    elif query.nested:
        level = sa.or_(
            sa.and_(match, runs.c.run_id.not_in(sa.select(pm.c.child))),
            runs.c.run_id.in_(sa.select(pm.c.parent)),
        )
    else:
        level = match
    page = sa.select(runs).where(*scope(runs), level)
    if query.sort == "duration":  # running runs (no duration yet) last either way
        length = runs.c.end_time - runs.c.start_time
        ordering = [
            sa.case((runs.c.end_time.is_(None), 1), else_=0),
            length.desc() if query.descending else length.asc(),
            runs.c.start_time.desc(),
            runs.c.run_id.asc(),
        ]
    elif query.sort == "start":  # the order of the (experiment, start) index: a page reads a page
        run_id = runs.c.run_id.collate("C") if store.dialect == "postgresql" else runs.c.run_id
        start = runs.c.start_time
        ordering = [start.desc() if query.descending else start.asc(), run_id.asc()]
    else:
        keys = parse_order_by(query._order_by())
        page, ordering = search_sql.order_by_clauses(page, keys, store.dialect)
    page = page.order_by(*ordering).limit(limit).offset(offset)
    total = sa.select(sa.func.count()).select_from(runs).where(*scope(runs), level)
    columns = [split_column(c) for c in query.columns]

    def work(conn: Any) -> dict[str, Any]:
        found = conn.execute(page).all()
        ids = [row.run_id for row in found]
        counted = int(conn.execute(total).scalar())
        children: dict[str, int] = {}
        hits: set[str] = set()
        if ids:
            if query.nested:
                stmt = sa.select(pm.c.parent, sa.func.count()).where(pm.c.parent.in_(ids))
                children = dict(conn.execute(stmt.group_by(pm.c.parent)).all())
            hits = set(
                conn.execute(
                    sa.select(runs.c.run_id).where(runs.c.run_id.in_(ids), match)
                ).scalars()
            )
        data, keys = _columns(conn, schema, sa, ids, columns)
        return {
            "found": found,
            "total": counted,
            "children": children,
            "hits": hits,
            "data": data,
            "keys": keys,
        }

    got = store._read(work)
    rows = []
    for row in got["found"]:
        info = run_info(row)
        params, metrics, shown_tags = got["data"].get(info.run_id, ({}, {}, {}))
        source = {"params": params, "metrics": metrics, "tags": shown_tags}
        values = []
        for prefix, name in columns:
            value = source[prefix].get(name)
            values.append(json_number(value) if isinstance(value, float) else value)
        rows.append(
            {
                "id": info.run_id,
                "exp": info.experiment_id,
                "name": info.run_name,
                "status": info.status,
                "start": info.start_time,
                "end": info.end_time,
                "user": info.user_id,
                "source": shown_tags.get(SOURCE_NAME),
                "commit": shown_tags.get(GIT_COMMIT),
                "parent": shown_tags.get(PARENT_RUN_ID),
                "values": values,
                "children": got["children"].get(info.run_id, 0),
                "context": info.run_id not in got["hits"],
            }
        )
    return {"rows": rows, "total": got["total"], "keys": got["keys"]}


def _columns(conn: Any, schema: Any, sa: Any, ids: list[str], columns: list[tuple[str, str]]):
    """run id -> (params, metrics, tags) of the shown columns only (and the
    system tags every row shows), and the keys of the window's runs: one
    statement each."""
    import math

    if not ids:
        return {}, {kind: [] for kind in _KINDS}
    tables = {"params": schema.params, "metrics": schema.latest_metrics, "tags": schema.tags}
    wanted: dict[str, set[str]] = {kind: set() for kind in _KINDS}
    wanted["tags"].update((SOURCE_NAME, GIT_COMMIT, PARENT_RUN_ID))
    for prefix, name in columns:
        wanted[prefix].add(name)
    parts = []
    for kind, table in tables.items():
        if not wanted[kind]:
            continue
        number = kind == "metrics"
        parts.append(
            sa.select(
                table.c.run_id,
                sa.literal(_KINDS.index(kind)),
                table.c.key,
                sa.null() if number else table.c.value,
                table.c.value if number else sa.null(),
                table.c.is_nan if number else sa.false(),
                # key || '': the (run_id, key) key serves, not an index over every run's key
            ).where(table.c.run_id.in_(ids), (table.c.key + "").in_(sorted(wanted[kind])))
        )
    data: dict[str, tuple[dict, dict, dict]] = {}
    for run_id, kind, key, text, number, is_nan in conn.execute(sa.union_all(*parts)):
        fields = data.setdefault(run_id, ({}, {}, {}))
        fields[kind][key] = text if kind != 1 else (math.nan if is_nan else number)
    keys = sa.union_all(
        *(
            sa.select(sa.literal(i), table.c.key).where(table.c.run_id.in_(ids)).distinct()
            for i, table in enumerate(tables.values())
        )
    )
    seen: dict[str, list[str]] = {kind: [] for kind in _KINDS}
    for i, key in conn.execute(keys):
        seen[_KINDS[i]].append(key)
    return data, {kind: sorted(set(found)) for kind, found in seen.items()}
