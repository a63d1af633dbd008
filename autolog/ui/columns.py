"""The runs table's columns by name, and numbers as its JSON carries them.

A leaf shared by both paths of :mod:`autolog.ui.projection` (any store, and
the SQL store's one query: :mod:`autolog.ui.projection_sql`).
"""

from __future__ import annotations

from autolog.errors import InvalidParameterError
from autolog.tracking.context import GIT_COMMIT, SOURCE_NAME

__all__ = ["FIXED_COLUMNS", "json_number", "split_column"]

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


def json_number(value: float) -> float | str:
    """A float as JSON can carry it: NaN and +-inf as the strings MLflow's API uses."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def split_column(column: str) -> tuple[str, str]:
    if column in FIXED_COLUMNS:
        return "", column
    prefix, dot, name = column.partition(".")
    if not dot or prefix not in _PREFIXES or not name:
        raise InvalidParameterError(
            f"Invalid column {column!r}: expected one of {', '.join(FIXED_COLUMNS)} "
            "or params.<key>, metrics.<key>, tags.<key>"
        )
    return prefix, name
