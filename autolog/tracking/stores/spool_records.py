"""Spool records: the store writes that can wait, as JSON, and how to replay one.

A record is a small dict with ``op`` (the store method), ``at`` (when it was
spooled, ms) and the method's arguments under short names. Run ids are the
ids the process used; replay translates them through the id map
(:mod:`autolog.tracking.stores.spool_replay`).

Every operation here is naturally idempotent on every store (the store
contract): the same metric point, a param with the same value, a tag set
again, a status update again, a run created again with the same id and start
time all change nothing. That is what makes a replay that was interrupted
and restarted, or run twice, store each row once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from autolog.tracking.entities import Metric, Param, RunTag
from autolog.tracking.stores.base import AbstractStore

__all__ = [
    "RUN_OPS",
    "apply",
    "create_run_record",
    "delete_tag_record",
    "log_batch_record",
    "record_items",
    "run_of",
    "set_experiment_tag_record",
    "split_log_batch",
    "update_run_record",
]

#: the ops that belong to one run (``"run"`` holds its id)
RUN_OPS = ("create_run", "log_batch", "update_run", "delete_tag", "delete_run", "restore_run")


def _now() -> int:
    return time.time_ns() // 1_000_000


def create_run_record(
    experiment_id: str,
    user_id: str,
    start_time: int,
    tags: Sequence[RunTag],
    run_name: str,
    run_id: str,
) -> dict[str, Any]:
    return {
        "op": "create_run",
        "at": _now(),
        "run": run_id,
        "exp": experiment_id,
        "user": user_id,
        "start": start_time,
        "name": run_name,
        "tags": [[t.key, t.value] for t in tags],
    }


def log_batch_record(
    run_id: str,
    metrics: Sequence[Metric] = (),
    params: Sequence[Param] = (),
    tags: Sequence[RunTag] = (),
) -> dict[str, Any]:
    record: dict[str, Any] = {"op": "log_batch", "at": _now(), "run": run_id}
    if metrics:
        record["m"] = [[m.key, m.value, m.timestamp, m.step] for m in metrics]
    if params:
        record["p"] = [[p.key, p.value] for p in params]
    if tags:
        record["t"] = [[t.key, t.value] for t in tags]
    return record


def update_run_record(
    run_id: str, status: str | None, end_time: int | None, run_name: str | None
) -> dict[str, Any]:
    record: dict[str, Any] = {"op": "update_run", "at": _now(), "run": run_id}
    for name, value in (("status", status), ("end", end_time), ("name", run_name)):
        if value is not None:
            record[name] = value
    return record


def delete_tag_record(run_id: str, key: str) -> dict[str, Any]:
    return {"op": "delete_tag", "at": _now(), "run": run_id, "key": key}


def run_record(op: str, run_id: str) -> dict[str, Any]:
    """``delete_run`` / ``restore_run``."""
    return {"op": op, "at": _now(), "run": run_id}


def set_experiment_tag_record(experiment_id: str, key: str, value: str) -> dict[str, Any]:
    return {
        "op": "set_experiment_tag",
        "at": _now(),
        "exp": experiment_id,
        "key": key,
        "value": value,
    }


def run_of(record: dict[str, Any]) -> str | None:
    """The (process-side) run id a record writes to, None for experiment records."""
    return record.get("run") if record["op"] in RUN_OPS else None


def record_items(record: dict[str, Any]) -> int:
    """How many rows a record writes (metric points, params, tags; 1 for the rest)."""
    if record["op"] != "log_batch":
        return 1
    return len(record.get("m", ())) + len(record.get("p", ())) + len(record.get("t", ()))


def split_log_batch(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A rejected ``log_batch`` in pieces that fail alone: its metrics, its tags,
    each param (a param overwrite then costs only that param)."""
    head = {"op": "log_batch", "at": record["at"], "run": record["run"]}
    pieces = []
    if record.get("m"):
        pieces.append({**head, "m": record["m"]})
    if record.get("t"):
        pieces.append({**head, "t": record["t"]})
    pieces.extend({**head, "p": [param]} for param in record.get("p", ()))
    return pieces


def apply(store: AbstractStore, record: dict[str, Any], run_id: str | None) -> Any:
    """Replay ``record`` into ``store``; ``run_id`` is the store-side id of its run.
    ``create_run`` returns the Run the store made; the rest return nothing."""
    op = record["op"]
    if op == "log_batch":
        store.log_batch(
            run_id,  # type: ignore[arg-type]
            metrics=[Metric(k, v, ts, step) for k, v, ts, step in record.get("m", ())],
            params=[Param(k, v) for k, v in record.get("p", ())],
            tags=[RunTag(k, v) for k, v in record.get("t", ())],
        )
    elif op == "create_run":
        return store.create_run(
            record["exp"],
            record["user"],
            record["start"],
            tags=[RunTag(k, v) for k, v in record["tags"]],
            run_name=record["name"],
            run_id=run_id,
        )
    elif op == "update_run":
        store.update_run_info(
            run_id,  # type: ignore[arg-type]
            status=record.get("status"),
            end_time=record.get("end"),
            run_name=record.get("name"),
        )
    elif op == "delete_tag":
        from autolog.errors import ResourceNotFoundError

        try:
            store.delete_tag(run_id, record["key"])  # type: ignore[arg-type]
        except ResourceNotFoundError:
            # Already deleted: an interrupted replay is replaying it again. A run
            # that does not exist fails the records before this one too.
            pass
    elif op == "delete_run":
        store.delete_run(run_id)  # type: ignore[arg-type]
    elif op == "restore_run":
        store.restore_run(run_id)  # type: ignore[arg-type]
    elif op == "set_experiment_tag":
        store.set_experiment_tag(record["exp"], record["key"], record["value"])
    else:
        from autolog.errors import StoreError

        raise StoreError(f"unknown spool record op {op!r}")
    return None
