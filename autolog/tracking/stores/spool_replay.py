"""Replaying a spool into its store: in order, exactly once, past rejected records.

Exactly once comes from three things together: records are replayed in the
order they were spooled (per owner, segment by segment, by sequence number);
the cursor of each segment is saved after each replayed record, so a replay
that stops (the server went away again, the process was killed) restarts
at the record it was at; and that one record, which the store may or may not
have committed, is written again harmlessly because every spooled operation
is naturally idempotent (:mod:`autolog.tracking.stores.spool_records`).

Servers that choose their own run ids (a real ``mlflow server``): replaying
``create_run`` gets the server's id, which is written to ``idmap.jsonl``
(fsynced) before anything else of that run is replayed, and every later
record of the run goes to the server's id. The run is created with the tag
``autolog.clientRunId``; a replay that finds no mapping first looks the run up
by that tag, so a crash between the server's answer and the map's write
still creates the run once.

A record the store refuses for good (a param overwrite, a deleted run: an
invalid value, a missing resource) is written to ``rejected.jsonl`` with its
error and skipped; a refused ``log_batch`` is first retried in pieces, so
only the offending rows are set aside.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autolog.errors import (
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    RunStateError,
)
from autolog.tracking.entities import ViewType
from autolog.tracking.stores.base import AbstractStore
from autolog.tracking.stores.spool import Cursor, Segment, Spool
from autolog.tracking.stores.spool_records import apply, record_items, run_of, split_log_batch

__all__ = ["CLIENT_RUN_ID_TAG", "IdMap", "ReplayReport", "Replayer"]

#: the tag a run created by replay on a server that assigns run ids carries
CLIENT_RUN_ID_TAG = "autolog.clientRunId"

#: errors that replaying again cannot fix: the record is set aside
REJECTED_ERRORS = (
    InvalidParameterError,
    ResourceNotFoundError,
    ResourceAlreadyExistsError,
    RunStateError,
)

#: rows per replayed log_batch when consecutive records of one run are merged
MERGE_ITEMS = 5_000


class IdMap:
    """Client run id -> the id the server gave the run, kept in ``idmap.jsonl``."""

    def __init__(self, spool: Spool):
        self._spool = spool
        self._ids = {e["client"]: e["server"] for e in spool.read_lines("idmap.jsonl")}

    def get(self, run_id: str) -> str:
        """The server's id of ``run_id`` (itself when not mapped)."""
        return self._ids.get(run_id, run_id)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._ids

    def add(self, client_id: str, server_id: str) -> None:
        """Record a mapping, durably, before anything relies on it."""
        if self._ids.get(client_id) == server_id:
            return
        self._spool.append_line("idmap.jsonl", {"client": client_id, "server": server_id})
        self._ids[client_id] = server_id

    def items(self) -> list[tuple[str, str]]:
        return list(self._ids.items())


@dataclass
class ReplayReport:
    """What a replay did: records and rows written, records set aside, runs mapped."""

    records: int = 0
    items: int = 0
    rejected: int = 0
    segments: int = 0
    torn_bytes: int = 0
    mapped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


class Replayer:
    """Replays segments of ``spool`` into ``store`` (any AbstractStore).

    ``progress(records, items)`` is called after each store call. A transient
    error (the server went away) propagates with the cursor saved at the record
    that failed: call again later.
    """

    def __init__(
        self,
        spool: Spool,
        store: AbstractStore,
        ids: IdMap | None = None,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.spool = spool
        self.store = store
        self.ids = ids if ids is not None else IdMap(spool)
        self.progress = progress
        self.report = ReplayReport()
        self._saved_at = 0.0
        self._blobs: list[str] = []  # artifact copies uploaded: removed with their segment

    # -- segments -------------------------------------------------------------
    def replay_segment(self, segment: Segment) -> Cursor:
        """Replay what follows the segment's cursor; returns the cursor at its end.
        A segment nobody appends to any more is deleted once fully replayed."""
        started = time.perf_counter()
        cursor = self.spool.cursor(segment)
        merged: list[tuple[Cursor, dict[str, Any]]] = []
        try:
            for after, record in self.spool.read(segment, cursor):
                if merged and not _can_merge(merged, record):
                    cursor = self._write_merged(segment, merged)
                    merged = []
                if record["op"] == "log_batch":
                    merged.append((after, record))
                    continue
                self._write(record)
                cursor = after
                self._save(segment, cursor)
            if merged:
                cursor = self._write_merged(segment, merged)
        finally:
            if cursor.offset:
                self.spool.save_cursor(segment, cursor, durable=True)
            self.report.seconds += time.perf_counter() - started
        if not self.spool.is_open(segment):
            self.report.torn_bytes += self.spool.torn_bytes(segment)
            self.spool.delete(segment)
            self.delete_blobs()
            self.report.segments += 1
        return cursor

    def delete_blobs(self) -> None:
        """Remove the spooled copies of the artifacts replayed so far."""
        for name in self._blobs:
            try:
                (self.spool.path / "blobs" / name).unlink()
            except FileNotFoundError:
                pass
        self._blobs = []

    def _save(self, segment: Segment, cursor: Cursor) -> None:
        now = time.monotonic()
        durable = now - self._saved_at > 1.0
        if durable:
            self._saved_at = now
        self.spool.save_cursor(segment, cursor, durable=durable)

    # -- records ----------------------------------------------------------------
    def _write_merged(
        self, segment: Segment, merged: list[tuple[Cursor, dict[str, Any]]]
    ) -> Cursor:
        """Write consecutive log_batch records of one run as one call (fewer round
        trips on replay); on a refusal, record by record."""
        if len(merged) == 1:
            self._write(merged[0][1])
        else:
            first = merged[0][1]
            combined: dict[str, Any] = {"op": "log_batch", "at": first["at"], "run": first["run"]}
            for name in ("m", "p", "t"):
                rows = [row for _after, record in merged for row in record.get(name, ())]
                if rows:
                    combined[name] = rows
            try:
                self._apply(combined)
                self._count(combined, records=len(merged))
            except REJECTED_ERRORS:
                for _after, record in merged:
                    self._write(record)
        cursor = merged[-1][0]
        self._save(segment, cursor)
        return cursor

    def _write(self, record: dict[str, Any]) -> None:
        """Replay one record; a refusal sets it (or the refused pieces) aside."""
        try:
            self._apply(record)
            self._count(record, records=1)
            return
        except REJECTED_ERRORS as error:
            pieces = split_log_batch(record) if record["op"] == "log_batch" else [record]
            if len(pieces) <= 1:
                self._reject(record, error)
                pieces = []
        for piece in pieces:  # a refused log_batch, piece by piece
            try:
                self._apply(piece)
                self._count(piece, records=0)
            except REJECTED_ERRORS as piece_error:
                self._reject(piece, piece_error)
        self.report.records += 1

    def _count(self, record: dict[str, Any], records: int) -> None:
        self.report.records += records
        self.report.items += record_items(record)
        if self.progress is not None:
            self.progress(self.report.records, self.report.items)

    def _reject(self, record: dict[str, Any], error: BaseException) -> None:
        self.spool.append_line(
            "rejected.jsonl",
            {
                "at": time.time_ns() // 1_000_000,
                "error": f"{type(error).__name__}: {error}",
                "record": record,
            },
        )
        self.report.rejected += 1

    def _apply(self, record: dict[str, Any]) -> None:
        run_id = run_of(record)
        if record["op"] == "artifact":
            from autolog.tracking.stores.spool_artifacts import replay_artifact

            replay_artifact(self.spool, record, self.store.uri, self.ids)
            self._blobs.append(record["blob"])
        elif record["op"] == "create_run":
            self.create_run(record)
        else:
            apply(self.store, record, None if run_id is None else self.ids.get(run_id))

    def create_run(self, record: dict[str, Any]) -> None:
        """Create the run of a ``create_run`` record once, mapping its id where the
        server assigns its own."""
        client_id = record["run"]
        if client_id in self.ids:
            return  # created by an earlier replay; the map says as which run
        if not getattr(self.store, "assigns_run_ids", False):
            run = apply(self.store, record, client_id)
        else:
            existing = self.store.search_runs(
                [record["exp"]],
                f"tags.`{CLIENT_RUN_ID_TAG}` = '{client_id}'",
                run_view_type=ViewType.ALL,
                max_results=1,
            )
            if existing:
                run = existing[0]
            else:
                tagged = {**record, "tags": [*record["tags"], [CLIENT_RUN_ID_TAG, client_id]]}
                run = apply(self.store, tagged, None)
        if run.info.run_id != client_id:
            self.ids.add(client_id, run.info.run_id)
            self.report.mapped.append((client_id, run.info.run_id))


def _can_merge(merged: list[tuple[Cursor, dict[str, Any]]], record: dict[str, Any]) -> bool:
    """True when ``record`` may join the pending log_batch records in one call:
    the same run, no param or tag key twice, and not too many rows."""
    if record["op"] != "log_batch" or record["run"] != merged[0][1]["run"]:
        return False
    if sum(record_items(r) for _a, r in merged) + record_items(record) > MERGE_ITEMS:
        return False
    for name in ("p", "t"):
        new = {row[0] for row in record.get(name, ())}
        if new and any(row[0] in new for _a, r in merged for row in r.get(name, ())):
            return False
    return True
