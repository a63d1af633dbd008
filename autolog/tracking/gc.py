"""``autolog gc``: clean up what killed processes left behind.

A process killed with SIGKILL (or by the OOM killer, or a lost node) cannot end
its runs: they stay RUNNING forever, and an artifact it was writing stays a
hidden temporary file next to where the file would have gone. ``collect``
finds both:

- a RUNNING run whose process is gone is ended ``KILLED``. Every run records
  its process in the ``autolog.process`` tag (``host:pid:start``, the start
  time telling a reused pid apart); a run of this host whose process no longer
  exists is dead for sure. Runs of other hosts, and runs without the tag
  (logged by another tool), are left alone and counted;
- temporary files of interrupted writes (``.<name>.<pid>[.<thread>].tmp``,
  ``.<name>.<pid>.part``) whose process is gone, or older than a day, are
  removed, in the file store's folder and in local artifact roots.

``collect(store, dry_run=True)`` says what it would do and changes nothing::

    $ autolog gc --dry-run
    run 3f2a... (experiment 1, brave-owl-417): RUNNING, process 4711 on this host is gone -> KILLED
    1 run to end KILLED; 1 temporary file to remove (12.0 MiB); 3 running runs left alone

This module imports nothing heavy at module level: the tag helpers are used
by every new run.
"""

from __future__ import annotations

import os
import re
import time

from autolog.tracking.processes import PROCESS_TAG, pid_alive, process_alive, process_tag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = [
    "PROCESS_TAG",
    "GcReport",
    "add_parser",
    "collect",
    "process_alive",
    "process_tag",
]

#: temporary files of interrupted writes: ``.<name>.<pid>[.<thread id>].(tmp|part)``
_TEMP_FILE = re.compile(r"^\..+?\.(\d+)(?:\.\d+)?\.(?:tmp|part)$")
_TEMP_MAX_AGE_S = 24 * 3600


class GcReport:
    """What :func:`collect` found: ``killed``: (run id, experiment id, run name,
    why) of the runs ended KILLED (or that would be, with ``dry_run``);
    ``alive``: RUNNING runs whose process still runs; ``unknown``: RUNNING runs
    it cannot judge (another host, no process tag); ``temp_files``: removed
    temporary files and their total ``temp_bytes``."""

    def __init__(self, dry_run: bool = False):
        self.killed: list[tuple[str, str, str, str]] = []
        self.alive = 0
        self.unknown = 0
        self.temp_files: list[Path] = []
        self.temp_bytes = 0
        self.dry_run = dry_run

    def lines(self) -> list[str]:
        verb = "to end" if self.dry_run else "ended"
        out = [
            f"run {run_id} (experiment {exp}, {name or '-'}): {why} -> KILLED"
            for run_id, exp, name, why in self.killed
        ]
        out += [f"temporary file {p}" for p in self.temp_files]
        removed = "to remove" if self.dry_run else "removed"
        out.append(
            f"{len(self.killed)} run(s) {verb} KILLED; {len(self.temp_files)} temporary "
            f"file(s) {removed} ({self.temp_bytes / 2**20:.1f} MiB); {self.alive} running "
            f"run(s) still alive, {self.unknown} that cannot be judged from this host"
        )
        return out


def _all_runs(store: Any, filter_string: str) -> list[Any]:
    from autolog.tracking.entities import ViewType

    experiments = store.search_experiments(view_type=ViewType.ALL, max_results=50_000)
    ids = [e.experiment_id for e in experiments]
    runs: list[Any] = []
    for start in range(0, len(ids), 100):
        token = None
        while True:
            page = store.search_runs(
                ids[start : start + 100],
                filter_string,
                run_view_type=ViewType.ALL,
                max_results=1000,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                break
    return runs


def running_runs(store: Any) -> list[tuple[Any, bool | None]]:
    """Every RUNNING run of ``store`` (deleted ones too) with whether its process
    is alive (None: cannot be told)."""
    found = []
    for run in _all_runs(store, "attributes.status = 'RUNNING'"):
        tag = run.data.tags.get(PROCESS_TAG)
        found.append((run, None if tag is None else process_alive(tag)))
    return found


def temp_files(roots: list[Path], now: float | None = None) -> list[Path]:
    """Temporary files of interrupted writes under ``roots`` whose process is
    gone (or that are older than a day)."""
    from pathlib import Path

    now = time.time() if now is None else now
    found = []
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                match = _TEMP_FILE.match(name)
                if match is None:
                    continue
                path = Path(folder, name)
                try:
                    old = now - path.stat().st_mtime > _TEMP_MAX_AGE_S
                except OSError:
                    continue
                if old or not pid_alive(int(match.group(1))):
                    found.append(path)
    return found


def local_roots(store: Any) -> list[Path]:
    """The local folders of ``store`` that hold runs' files: the file store's own
    folder, and the experiments' artifact locations that are local paths."""
    from pathlib import Path

    from autolog.tracking.entities import ViewType
    from autolog.tracking.stores.uris import file_uri_to_path

    roots: list[Path] = []
    root = getattr(store, "root", None)
    if isinstance(root, Path):
        roots.append(root)
    for experiment in store.search_experiments(view_type=ViewType.ALL, max_results=50_000):
        location = experiment.artifact_location or ""
        if location.startswith("file:") or location.startswith("/"):
            path = Path(file_uri_to_path(location))
            if path.is_dir() and not any(path.is_relative_to(r) for r in roots):
                roots.append(path)
    return roots


def collect(store: Any, *, dry_run: bool = False) -> GcReport:
    """End the RUNNING runs of dead processes KILLED and remove the temporary
    files of interrupted writes; with ``dry_run`` only report them."""
    from autolog.tracking.entities import RunStatus

    report = GcReport(dry_run=dry_run)
    now_ms = time.time_ns() // 1_000_000
    for run, alive in running_runs(store):
        if alive is None:
            report.unknown += 1
        elif alive:
            report.alive += 1
        else:
            info = run.info
            pid = run.data.tags[PROCESS_TAG].rsplit(":", 2)[1]
            why = f"RUNNING, process {pid} on this host is gone"
            report.killed.append((info.run_id, info.experiment_id, info.run_name, why))
            if not dry_run:
                store.update_run_info(info.run_id, status=RunStatus.KILLED, end_time=now_ms)
    for path in temp_files(local_roots(store)):
        try:
            size = path.stat().st_size
            if not dry_run:
                path.unlink()
        except OSError:
            continue
        report.temp_files.append(path)
        report.temp_bytes += size
    return report


def add_parser(commands: Any) -> Any:
    """Add ``gc`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "gc",
        help="end runs of killed processes KILLED, remove their temporary files",
        description="Runs left RUNNING by a process that no longer exists (on this "
        "host) are ended KILLED; temporary files of interrupted artifact writes are "
        "removed.",
    )
    import argparse

    parser.add_argument(
        "--tracking-uri",
        default=argparse.SUPPRESS,
        help="store to clean (default: the current one)",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be done")
    parser.set_defaults(handler=_command)
    return parser


def _command(args: Any) -> None:
    from autolog.tracking.client import Client

    report = collect(Client(getattr(args, "tracking_uri", None)).store, dry_run=args.dry_run)
    print("\n".join(report.lines()))
