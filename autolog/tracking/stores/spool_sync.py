"""``autolog sync``: deliver what finished or killed processes left in the spool.

What the user gets::

    autolog sync --dry-run      # what waits, per tracking server, and for how long
    autolog sync                # replay it (a progress bar on a terminal)
    autolog sync --tracking-uri http://host:5000

Each spool folder names its server; credentials come from the environment
as for any run (``AUTOLOG_TRACKING_TOKEN``, ...). Segments of a process that
still runs are left to it (it replays them itself). Replay is exactly once
(:mod:`autolog.tracking.stores.spool_replay`): running ``autolog sync`` again,
or after it was interrupted, adds nothing twice. ``autolog status`` shows the
spool's size and its oldest waiting record (:func:`status_lines`).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections import Counter
from typing import Any, TextIO

from autolog.tracking.stores.spool import Spool, SpoolError, spool_root
from autolog.tracking.stores.spool_records import record_items, run_of
from autolog.tracking.stores.spool_replay import IdMap, Replayer

__all__ = ["add_parser", "status_lines", "sync"]


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sync`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "sync",
        help="replay the offline spool to its tracking server(s)",
        description="Deliver the writes that processes left in the offline spool "
        "(AUTOLOG_SPOOL_DIR) while their tracking server could not be reached.",
    )
    parser.add_argument(
        "--tracking-uri", default=None, help="only the spool of this server (default: all)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what waits, replay nothing")
    parser.set_defaults(handler=lambda args: sync(args.tracking_uri, dry_run=args.dry_run))
    return parser


def _spools(tracking_uri: str | None) -> list[Spool]:
    if tracking_uri is None:
        return Spool.all_in()
    from autolog.tracking.stores.rest_config import split_credentials

    return [Spool(split_credentials(tracking_uri.rstrip("/"))[0])]


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000)
    age = max(0.0, time.time() - ms / 1000)
    if age < 120:
        ago = f"{age:.0f} s"
    else:
        ago = f"{age / 60:.0f} min" if age < 7200 else f"{age / 3600:.1f} h"
    return f"{moment:%Y-%m-%d %H:%M:%S} ({ago} ago)"


def _pid(owner: str) -> str:
    return owner.split("-")[1]


def survey(spool: Spool) -> dict[str, Any]:
    """What waits in ``spool``: per owner its records, rows, runs and ops, whether
    its process still runs; and the oldest waiting record's time."""
    owners: dict[str, dict[str, Any]] = {}
    for segment in spool.segments():
        blank = {"records": 0, "items": 0, "runs": set(), "ops": Counter(), "oldest": None}
        entry = owners.setdefault(segment.owner, blank)
        for _after, record in spool.read(segment, spool.cursor(segment)):
            entry["records"] += 1
            entry["items"] += record_items(record)
            entry["ops"][record["op"]] += 1
            if run_of(record):
                entry["runs"].add(run_of(record))
            if entry["oldest"] is None:
                entry["oldest"] = record.get("at")
    for owner, entry in owners.items():
        fd = spool.try_lock_owner(owner)
        entry["running"] = fd is None and owner != spool.owner
        if fd is not None:
            spool.release_owner(owner, fd)
    oldest = [e["oldest"] for e in owners.values() if e["oldest"] is not None]
    return {
        "owners": owners,
        "bytes": spool.total_bytes(fresh=True),
        "oldest": min(oldest) if oldest else None,
        "rejected": len(spool.read_lines("rejected.jsonl")),
        "mapped": IdMap(spool).items(),
    }


def _oldest_waiting(spool: Spool) -> int | None:
    """When the oldest record not yet replayed was spooled (one record read per owner)."""
    oldest = None
    seen: set[str] = set()
    for segment in spool.segments():
        if segment.owner in seen:
            continue
        for _after, record in spool.read(segment, spool.cursor(segment)):
            seen.add(segment.owner)
            at = record.get("at")
            if at is not None and (oldest is None or at < oldest):
                oldest = at
            break
    return oldest


def status_lines() -> list[str]:
    """One line per spool for ``autolog status``: its size and its oldest waiting
    record (cheap: sizes from the folder, one record read per process)."""
    lines = []
    for spool in Spool.all_in():
        segments = spool.segments()
        rejected = len(spool.read_lines("rejected.jsonl"))
        oldest = _oldest_waiting(spool) if segments else None
        if oldest is None and not rejected:
            continue
        aside = f", {rejected} record(s) set aside (rejected.jsonl)" if rejected else ""
        lines.append(
            f"spool for {spool.uri}: {spool.total_bytes(fresh=True):,} bytes in "
            f"{len(segments)} segment(s), oldest waiting since {_when(oldest)}{aside}: "
            "`autolog sync` delivers it"
        )
    return lines or [f"spool: empty ({spool_root()})"]


def _dry_run(spool: Spool, out: TextIO) -> None:
    info = survey(spool)
    out.write(f"{spool.uri} (spool {spool.path}, {info['bytes']:,} bytes)\n")
    if not info["owners"]:
        out.write("  nothing waits\n")
    for owner, entry in info["owners"].items():
        state = "running: replays itself" if entry["running"] else "ended"
        ops = ", ".join(f"{n} {op}" for op, n in sorted(entry["ops"].items()))
        out.write(
            f"  process {_pid(owner)} ({state}): {entry['records']:,} record(s), "
            f"{entry['items']:,} row(s), {len(entry['runs'])} run(s), oldest "
            f"{_when(entry['oldest'])}{': ' + ops if ops else ''}\n"
        )
        for run_id in sorted(entry["runs"]):
            out.write(f"    run {run_id}\n")
    for client_id, server_id in info["mapped"]:
        out.write(f"  run id {client_id} -> {server_id} on the server\n")
    if info["rejected"]:
        out.write(f"  {info['rejected']} record(s) set aside in {spool.path / 'rejected.jsonl'}\n")


class _Progress:
    """A one-line progress bar on stderr, only when it is a terminal."""

    def __init__(self, total: int, stream: TextIO):
        self.total, self.stream, self.done = max(total, 1), stream, 0
        self.shown = 0.0

    def __call__(self, _records: int, items: int) -> None:
        self.done = items
        now = time.monotonic()
        if now - self.shown < 0.1:
            return
        self.shown = now
        share = min(1.0, self.done / self.total)
        bar = "#" * int(share * 30)
        self.stream.write(f"\r  [{bar:<30}] {share:4.0%} {self.done:,}/{self.total:,} rows")
        self.stream.flush()

    def end(self) -> None:
        self.stream.write("\r" + " " * 70 + "\r")
        self.stream.flush()


def _open_store(uri: str) -> Any:
    """The server's store itself (not behind a spool: a failure must stop sync)."""
    from autolog.tracking.stores.rest import RestStore

    return RestStore(uri)


def _replay(spool: Spool, out: TextIO) -> tuple[int, int]:
    """Replay the ended processes' segments; returns (records replayed, records left)."""
    from autolog.tracking.stores.rest_http import single_attempt

    info = survey(spool)
    ended = [o for o, e in info["owners"].items() if not e["running"] and e["records"]]
    running = sum(e["records"] for e in info["owners"].values() if e["running"])
    if running:
        out.write(f"  {running:,} record(s) belong to a running process, which replays them\n")
    for owner, entry in info["owners"].items():  # segments replayed before: their files
        if not entry["records"] and not entry["running"]:
            fd = spool.try_lock_owner(owner)
            if fd is not None:
                for segment in [s for s in spool.segments() if s.owner == owner]:
                    spool.delete(segment)
                spool.release_owner(owner, fd)
    if not ended:
        if not running:
            out.write("  nothing waits\n")
        return 0, running
    total = sum(info["owners"][o]["items"] for o in ended)
    stream = sys.stderr
    progress = _Progress(total, stream) if stream.isatty() else None
    replayer = Replayer(spool, _open_store(spool.uri), progress=progress)
    left = 0
    try:
        for owner in ended:
            fd = spool.try_lock_owner(owner)
            if fd is None:
                continue  # another `autolog sync` has it now
            try:
                with single_attempt():
                    for segment in [s for s in spool.segments() if s.owner == owner]:
                        replayer.replay_segment(segment)
            finally:
                spool.release_owner(owner, fd)
    finally:
        if progress is not None:
            progress.end()
        report = replayer.report
        left = sum(
            1
            for s in spool.segments()
            if s.owner in ended
            for _record in spool.read(s, spool.cursor(s))
        )
        notes = [f"{report.records:,} record(s), {report.items:,} row(s) replayed"]
        if report.rejected:
            notes.append(f"{report.rejected} set aside in {spool.path / 'rejected.jsonl'}")
        if report.torn_bytes:
            notes.append(f"{report.torn_bytes} bytes of a torn last write ignored")
        if left:
            notes.append(f"{left:,} record(s) still waiting")
        out.write(f"  {'; '.join(notes)} ({report.seconds:.1f} s)\n")
        for client_id, server_id in report.mapped:
            out.write(f"  run id {client_id} -> {server_id} on the server\n")
    return report.records, left + running


def sync(tracking_uri: str | None = None, dry_run: bool = False, out: TextIO | None = None) -> int:
    """Replay (or with ``dry_run`` list) the spools; returns records replayed.
    Raises SpoolError naming what is left when a server cannot be reached."""
    out = out or sys.stdout
    spools = _spools(tracking_uri)
    if not spools:
        out.write(f"autolog sync: the spool is empty ({spool_root()})\n")
        return 0
    replayed = 0
    failures = []
    for spool in spools:
        if dry_run:
            _dry_run(spool, out)
            continue
        out.write(f"{spool.uri}:\n")
        try:
            done, _left = _replay(spool, out)
            replayed += done
        except SpoolError:
            raise
        except Exception as error:
            from autolog.errors import TransientStoreError

            if not isinstance(error, TransientStoreError):
                raise
            failures.append(f"{spool.uri}: {error}")
    if failures:
        raise SpoolError(
            "could not deliver everything, run `autolog sync` again when the server answers "
            "(what was delivered stays delivered): " + "; ".join(failures)
        )
    return replayed
