"""``autolog doctor``: check that a store is whole, and say what is not.

:func:`examine` reads everything a user could ask for, the way they would ask
for it, and reports what fails:

- every experiment and every run (deleted ones too) is readable;
- every metric history of every run reads back; on the file store every line
  of every ``log.jsonl`` parses (a torn line, the trace of a killed writer, is
  skipped by readers and only noted; the next append ends it);
- every model folder's ``model.json`` parses and names only files that exist;
- notes what ``autolog gc`` would clean: RUNNING runs of dead processes,
  temporary files of interrupted writes.

::

    $ autolog doctor
    checked 3 experiments, 120 runs, 48,210 metric points, 240 log lines, 31 model files
    note: run 3f2a...: RUNNING but its process is gone (autolog gc ends it KILLED)
    no problems found

The exit status is 1 when a problem was found (notes do not count).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DoctorReport", "add_parser", "examine"]

_METADATA_FILE = "model.json"  # autolog.models.METADATA_FILE (models sits above tracking)


@dataclass
class DoctorReport:
    """What :func:`examine` checked (counts), found wrong (``problems``) and
    noticed (``notes``: harmless, or for ``autolog gc``)."""

    experiments: int = 0
    runs: int = 0
    metric_points: int = 0
    log_lines: int = 0
    model_files: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [
            f"checked {self.experiments} experiment(s), {self.runs} run(s), "
            f"{self.metric_points:,} metric point(s), {self.log_lines:,} log line(s), "
            f"{self.model_files} model file(s)"
        ]
        out += [f"note: {n}" for n in self.notes]
        out += [f"problem: {p}" for p in self.problems]
        out.append("no problems found" if self.ok else f"{len(self.problems)} problem(s) found")
        return out


def examine(store: Any) -> DoctorReport:
    """Check every experiment, run, metric history and model folder of ``store``."""
    from autolog.tracking.entities import ViewType
    from autolog.tracking.gc import local_roots, running_runs, temp_files

    report = DoctorReport()
    try:
        experiments = store.search_experiments(view_type=ViewType.ALL, max_results=50_000)
    except Exception as error:
        report.problems.append(f"experiments cannot be listed: {error}")
        return report
    for experiment in experiments:
        try:
            store.get_experiment(experiment.experiment_id)
        except Exception as error:
            report.problems.append(f"experiment {experiment.experiment_id}: unreadable: {error}")
            continue
        report.experiments += 1
        _examine_runs(store, experiment.experiment_id, report)
    try:
        for run, alive in running_runs(store):
            if alive is False:
                report.notes.append(
                    f"run {run.info.run_id}: RUNNING but its process is gone "
                    "(autolog gc ends it KILLED)"
                )
        for path in temp_files(local_roots(store)):
            report.notes.append(f"temporary file of an interrupted write: {path} (autolog gc)")
    except Exception as error:
        report.problems.append(f"running runs cannot be searched: {error}")
    return report


def _examine_runs(store: Any, experiment_id: str, report: DoctorReport) -> None:
    from autolog.tracking.entities import ViewType

    token = None
    while True:
        try:
            page = store.search_runs(
                [experiment_id], "", run_view_type=ViewType.ALL, max_results=1000, page_token=token
            )
        except Exception as error:
            report.problems.append(f"experiment {experiment_id}: runs cannot be listed: {error}")
            _examine_run_folders(store, experiment_id, report)
            return
        for listed in page:
            _examine_run(store, listed.info.run_id, report)
        token = page.token
        if not token:
            return


def _examine_run_folders(store: Any, experiment_id: str, report: DoctorReport) -> None:
    """The file store's runs one by one, when listing them fails: which one is broken."""
    root = getattr(store, "root", None)
    if not isinstance(root, Path):
        return
    try:
        folders = sorted(p.name for p in (root / experiment_id).iterdir() if p.is_dir())
    except OSError:
        return
    for name in folders:
        if len(name) == 32 and all(c in "0123456789abcdef" for c in name):
            _examine_run(store, name, report)


def _examine_run(store: Any, run_id: str, report: DoctorReport) -> None:
    try:
        run = store.get_run(run_id)
    except Exception as error:
        report.problems.append(f"run {run_id}: unreadable: {error}")
        return
    report.runs += 1
    for key in run.data.metrics:
        try:
            report.metric_points += len(store.get_metric_history(run_id, key))
        except Exception as error:
            report.problems.append(f"run {run_id}: metric {key!r} unreadable: {error}")
    root = getattr(store, "root", None)
    if isinstance(root, Path):
        _examine_log(root / run.info.experiment_id / run_id / "log.jsonl", run_id, report)
    _examine_models(run.info.artifact_uri, run_id, report)


def _examine_log(path: Path, run_id: str, report: DoctorReport) -> None:
    """Every line of a file-store run's log parses; a torn one is noted."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return  # a run that logged nothing
    except OSError as error:
        report.problems.append(f"run {run_id}: {path} unreadable: {error}")
        return
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        report.log_lines += 1
        try:
            json.loads(line)
        except ValueError:
            where = "last line" if number == len(lines) else f"line {number}"
            report.notes.append(
                f"run {run_id}: torn {where} of {path.name} (a killed write; readers skip it)"
            )


def _examine_models(artifact_uri: str, run_id: str, report: DoctorReport) -> None:
    """Each local model folder's metadata parses and its files are present."""
    from autolog.tracking.stores.uris import file_uri_to_path

    if not artifact_uri or not (artifact_uri.startswith("file:") or artifact_uri.startswith("/")):
        return  # a remote artifact store: not walked
    root = Path(file_uri_to_path(artifact_uri))
    for folder, _dirs, files in os.walk(root):
        if _METADATA_FILE not in files:
            continue
        path = Path(folder, _METADATA_FILE)
        try:
            metadata = json.loads(path.read_bytes())
            names = list(metadata.get("files", []))
        except (OSError, ValueError, AttributeError, TypeError) as error:
            report.problems.append(f"run {run_id}: {path} is not model metadata: {error}")
            continue
        report.model_files += 1
        for name in names:
            report.model_files += 1
            if not Path(folder, name).is_file():
                where = path.parent.relative_to(root)
                report.problems.append(f"run {run_id}: model {where}: file {name!r} is missing")


def add_parser(commands: Any) -> Any:
    """Add ``doctor`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "doctor",
        help="check that every run, metric and model of a store reads back",
        description="Read every experiment, run, metric history and model folder of "
        "the store and report what fails (exit status 1 when something does).",
    )
    import argparse

    parser.add_argument(
        "--tracking-uri",
        default=argparse.SUPPRESS,
        help="store to check (default: the current one)",
    )
    parser.set_defaults(handler=_command)
    return parser


def _command(args: Any) -> None:
    from autolog.tracking.client import Client

    report = examine(Client(getattr(args, "tracking_uri", None)).store)
    print("\n".join(report.lines()))
    if not report.ok:
        raise SystemExit(1)
