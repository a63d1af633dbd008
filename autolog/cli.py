"""The ``autolog`` command: look at experiments and runs, copy stores, check integrations.

What the user gets::

    autolog experiments list
    autolog runs list --experiment churn --filter "metrics.acc > 0.9" --order-by "metrics.acc DESC"
    autolog runs show 0123456789abcdef0123456789abcdef
    autolog runs metric 0123456789abcdef0123456789abcdef loss
    autolog migrate --from ./mlruns --to sqlite:///mlflow.db
    autolog status
    autolog gc [--dry-run]
    autolog doctor
    autolog sync --dry-run        # the offline spool: what waits for its server

``--tracking-uri`` (before or after the command) picks the store; the default
is ``AUTOLOG_TRACKING_URI``, else ``./mlruns``. A typed error (a bad filter, an
unknown run) prints one line to stderr and exits with status 2. Each command
imports only what it needs, so ``autolog --help`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from autolog.errors import AutologError, ResourceNotFoundError

__all__ = ["format_status", "main"]

#: experiments read when a command wants all of them
_MAX_EXPERIMENTS = 50_000


# -- output helpers ---------------------------------------------------------------
def _format_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _format_duration(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = max(end - start, 0) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())  # a newline in a tag would break the table
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, a dashed line under the header."""
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _json_safe(value: Any) -> Any:
    """NaN and infinities as strings: standard JSON (jq, JavaScript) has no such numbers."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _print_json(value: Any) -> None:
    import json

    print(json.dumps(_json_safe(value), indent=2, sort_keys=True))


def _run_dict(run: Any) -> dict[str, Any]:
    info = run.info
    return {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "run_name": info.run_name,
        "user_id": info.user_id,
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "artifact_uri": info.artifact_uri,
        "lifecycle_stage": info.lifecycle_stage,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
    }


# -- the client and the things users name -----------------------------------------
def _client(args: argparse.Namespace) -> Any:
    from autolog.tracking.client import Client

    return Client(getattr(args, "tracking_uri", None))


def _experiment_ids(client: Any, names: Sequence[str] | None) -> list[str]:
    """Ids of the named experiments (a name, else an id), or of every active one."""
    if not names:
        return [e.experiment_id for e in client.search_experiments(max_results=_MAX_EXPERIMENTS)]
    ids = []
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment = client.get_experiment(name)
            except ResourceNotFoundError:
                raise ResourceNotFoundError(
                    f"No experiment named {name!r} (see: autolog experiments list)"
                ) from None
        ids.append(experiment.experiment_id)
    return ids


# -- commands ---------------------------------------------------------------------
def _experiments_list(args: argparse.Namespace) -> None:
    from autolog.tracking.entities import ViewType

    view = ViewType.ALL if args.all else ViewType.ACTIVE_ONLY
    experiments = _client(args).search_experiments(view_type=view, max_results=_MAX_EXPERIMENTS)
    if args.json:
        _print_json([vars(e) for e in experiments])
        return
    headers = ["ID", "NAME", "CREATED", "ARTIFACT LOCATION"] + (["STAGE"] if args.all else [])
    rows = [
        [e.experiment_id, e.name, _format_time(e.creation_time), e.artifact_location]
        + ([e.lifecycle_stage] if args.all else [])
        for e in experiments
    ]
    print(_table(headers, rows) if rows else "No experiments.")


def _named_columns(filter_string: str, order_by: Sequence[str] | None) -> list[tuple[str, str]]:
    """The ``(metrics|params|tags, key)`` columns that the filter and the sort name,
    in the order they name them."""
    from autolog.tracking.search_parser import parse_filter, parse_order_by
    from autolog.tracking.search_tree import METRIC, PARAM, TAG, And, Comparison, Not, Or

    kinds = {METRIC: "metrics", PARAM: "params", TAG: "tags"}
    named: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, Comparison):
            if node.entity in kinds:
                named.append((kinds[node.entity], node.key))
        elif isinstance(node, (And, Or)):
            for item in node.items:
                walk(item)
        elif isinstance(node, Not):
            walk(node.item)

    walk(parse_filter(filter_string))
    named += [(kinds[k.entity], k.key) for k in parse_order_by(order_by) if k.entity in kinds]
    return list(dict.fromkeys(named))


def _pick_columns(
    runs: Sequence[Any], budget: int, named: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """The ``(metrics|params|tags, key)`` columns worth showing, in order: first
    those the filter and the sort name (``named``), then the metric and param
    keys most runs have, alternating metric / param, while they fit in
    ``budget`` characters."""
    from collections import Counter

    def by_frequency(attr: str) -> list[tuple[str, str]]:
        counts = Counter(k for run in runs for k in getattr(run.data, attr))
        return [(attr, k) for k in sorted(counts, key=lambda k: (-counts[k], k))]

    metrics, params = by_frequency("metrics"), by_frequency("params")
    order = [*named, *(c for pair in zip(metrics, params) for c in pair)]
    order += metrics[len(params) :] + params[len(metrics) :]
    shown: list[tuple[str, str]] = []
    for kind, key in dict.fromkeys(order):
        values = [_format_value(getattr(run.data, kind).get(key, "")) for run in runs]
        width = min(max(len(f"{kind}.{key}"), *map(len, values)), _VALUE_WIDTH) + 2
        if width > budget:
            break
        budget -= width
        shown.append((kind, key))
    return shown


_VALUE_WIDTH = 24


def _runs_list(args: argparse.Namespace) -> None:
    client = _client(args)
    ids = _experiment_ids(client, args.experiment)
    runs = client.search_runs(
        ids, filter_string=args.filter or "", max_results=args.max, order_by=args.order_by
    )
    if args.json:
        _print_json([_run_dict(run) for run in runs])
        return
    if not runs:
        print("No runs.")
        return
    import shutil

    fixed = ["RUN ID", "NAME", "STATUS", "STARTED", "DURATION"]
    rows = [
        [
            r.info.run_id,
            _clip(r.info.run_name or "", _VALUE_WIDTH),
            r.info.status,
            _format_time(r.info.start_time),
            _format_duration(r.info.start_time, r.info.end_time),
        ]
        for r in runs
    ]
    used = sum(max(len(h), *(len(row[i]) for row in rows)) + 2 for i, h in enumerate(fixed))
    width = shutil.get_terminal_size((160, 24)).columns
    named = _named_columns(args.filter or "", args.order_by)
    columns = _pick_columns(runs, max(width - used, 40), named)
    for row, run in zip(rows, runs):
        row += [
            _clip(_format_value(getattr(run.data, kind).get(key, "")), _VALUE_WIDTH)
            for kind, key in columns
        ]
    headers = fixed + [f"{kind}.{key}" for kind, key in columns]
    print(_table(headers, rows))
    more = " (more with --max)" if runs.token else ""
    print(f"{len(runs)} run{'s' if len(runs) != 1 else ''}{more}")


def _walk_artifacts(repository: Any, path: str | None = None, limit: int = 500) -> list[Any]:
    """Every artifact under ``path``, depth first, at most ``limit`` entries."""
    found: list[Any] = []
    pending = [path]
    while pending and len(found) < limit:
        for info in repository.list_artifacts(pending.pop()):
            found.append(info)
            if info.is_dir:
                pending.append(info.path)
    return sorted(found[:limit], key=lambda info: info.path)


def _runs_show(args: argparse.Namespace) -> None:
    from autolog.provenance.datasets import dataset_records
    from autolog.tracking.artifacts import repository_for
    from autolog.tracking.secrets import mask_mapping

    run = _client(args).get_run(args.run_id)
    artifacts = _walk_artifacts(repository_for(run.info.artifact_uri))
    # a store written by an older version or another client may hold secrets: shown masked
    params, tags = mask_mapping(run.data.params), mask_mapping(run.data.tags)
    if args.json:
        shown = {**_run_dict(run), "params": params, "tags": tags}
        datasets = dataset_records(run.data.tags)
        _print_json({**shown, "datasets": datasets, "artifacts": [vars(a) for a in artifacts]})
        return
    info = run.info
    lines = [
        f"Run {info.run_id} ({info.run_name})",
        _table(
            ["FIELD", "VALUE"],
            [
                ["experiment", info.experiment_id],
                ["status", info.status],
                ["started", _format_time(info.start_time)],
                ["ended", _format_time(info.end_time)],
                ["duration", _format_duration(info.start_time, info.end_time)],
                ["user", info.user_id],
                ["artifact_uri", info.artifact_uri],
                ["lifecycle_stage", info.lifecycle_stage],
            ],
        ),
    ]
    sections = [
        ("Params", params),
        ("Metrics (latest)", {k: _format_value(v) for k, v in run.data.metrics.items()}),
        ("Tags", tags),
    ]
    for title, values in sections:
        lines += ["", f"{title}: {len(values)}"]
        if values:
            rows = [[k, _clip(str(v), 100)] for k, v in sorted(values.items())]
            lines.append(_table(["KEY", "VALUE"], rows))
    from autolog.provenance.datasets import dataset_rows

    datasets = dataset_rows(tags)
    if datasets:
        lines += ["", f"Datasets: {len(datasets)}"]
        lines.append(_table(["NAME", "CONTEXT", "SHAPE", "DTYPES", "DIGEST", "METHOD"], datasets))
    lines += ["", f"Artifacts: {len(artifacts)}"]
    if artifacts:
        rows = [[a.path + ("/" if a.is_dir else ""), _size(a.file_size)] for a in artifacts]
        lines.append(_table(["PATH", "SIZE"], rows))
    print("\n".join(lines))


def _size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""  # pragma: no cover - the loop always returns


def _runs_metric(args: argparse.Namespace) -> None:
    client = _client(args)
    history = client.get_metric_history(args.run_id, args.key)
    if not history:
        run = client.get_run(args.run_id)  # a missing run raises its own error
        known = ", ".join(sorted(run.data.metrics)) or "none"
        raise ResourceNotFoundError(
            f"Run {args.run_id} has no metric {args.key!r} (its metrics: {known})"
        )
    if args.json:
        _print_json([{"step": m.step, "timestamp": m.timestamp, "value": m.value} for m in history])
        return
    rows = [[m.step, _format_time(m.timestamp), _format_value(m.value)] for m in history]
    print(_table(["STEP", "TIME", args.key], rows))


def _status(args: argparse.Namespace) -> None:
    import warnings

    from autolog.integration import status

    with warnings.catch_warnings():  # the table shows each load error once already
        warnings.simplefilter("ignore")
        rows = status()
    print(format_status(rows, verbose=args.verbose))
    from autolog.provenance import capture_rows

    captures = [[name, value, what, cost] for name, value, _env, what, cost in capture_rows()]
    print("\nWhat each run records (autolog.provenance.configure; costs: bench_provenance.py):")
    print(_table(["CAPTURE", "VALUE", "WHAT", "COST PER RUN"], captures))
    from autolog.tracking.stores.spool_sync import status_lines

    print("\n" + "\n".join(status_lines()))  # the offline spool: what waits for a server


def format_status(rows: Sequence[Any], verbose: bool = False) -> str:
    """The table of ``autolog.integration.status()`` rows."""
    if not rows:
        return "No integrations registered."
    headers = ["INTEGRATION", "STATE", "INSTALLED", "SUPPORTED", "PATCHES", "REASON"]
    table = [
        [
            row.name,
            row.state,
            row.installed_version or "-",
            row.supported or "-",
            str(len(row.targets)),
            _clip(row.reason or "", 80),
        ]
        for row in rows
    ]
    text = _table(headers, table)
    if verbose:
        for row in rows:
            if row.targets:
                text += f"\n\n{row.name} patches:\n" + "\n".join(f"  {t}" for t in row.targets)
    return text


def _migrate(args: argparse.Namespace) -> None:
    from autolog.tracking.migrate import migrate
    from autolog.tracking.stores import mask_uri

    counts = migrate(args.from_uri, args.to_uri, echo=None if args.quiet else print)
    print(
        f"Copied {counts.experiments} experiments, {counts.runs} runs "
        f"({counts.skipped} already there), {counts.metric_points} metric points and "
        f"{counts.artifact_files} artifact files from {mask_uri(args.from_uri)} to "
        f"{mask_uri(args.to_uri)}"
    )


# -- the parser ---------------------------------------------------------------------
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    # --tracking-uri is accepted before and after the command: a parent parser
    # with SUPPRESS keeps a later default from overwriting an earlier value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--tracking-uri",
        default=argparse.SUPPRESS,
        help="store to use (default: $AUTOLOG_TRACKING_URI, else ./mlruns)",
    )
    parser = argparse.ArgumentParser(
        prog="autolog",
        description="Experiments, runs and integrations of autolog.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    experiments = commands.add_parser("experiments", help="experiments of the store")
    experiments.set_defaults(usage_of=experiments)
    experiment_commands = experiments.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    listing = experiment_commands.add_parser("list", parents=[common], help="list experiments")
    listing.add_argument("--all", action="store_true", help="include deleted experiments")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_experiments_list)

    runs = commands.add_parser("runs", help="runs, their params, metrics and artifacts")
    runs.set_defaults(usage_of=runs)
    run_commands = runs.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    listing = run_commands.add_parser("list", parents=[common], help="search runs")
    listing.add_argument(
        "--experiment",
        action="append",
        metavar="NAME",
        help="experiment name or id (repeatable; default: all active)",
    )
    listing.add_argument(
        "--filter", metavar="EXPR", help="e.g. \"metrics.acc > 0.9 AND params.model = 'rf'\""
    )
    listing.add_argument(
        "--order-by",
        action="extend",
        nargs="+",
        metavar="KEY",
        help='e.g. "metrics.acc DESC" (default: newest first)',
    )
    listing.add_argument(
        "--max", type=_positive_int, default=100, metavar="N", help="at most N runs (default 100)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_runs_list)
    show = run_commands.add_parser("show", parents=[common], help="one run in full")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_runs_show)
    metric = run_commands.add_parser("metric", parents=[common], help="a metric's history")
    metric.add_argument("run_id")
    metric.add_argument("key")
    metric.add_argument("--json", action="store_true", help="print JSON")
    metric.set_defaults(handler=_runs_metric)

    move = commands.add_parser(
        "migrate", parents=[common], help="copy experiments, runs and artifacts to another store"
    )
    move.add_argument("--from", dest="from_uri", required=True, metavar="URI")
    move.add_argument("--to", dest="to_uri", required=True, metavar="URI")
    move.add_argument("--quiet", action="store_true", help="print only the summary")
    move.set_defaults(handler=_migrate)

    from autolog.server.command import add_parser as add_server_parser

    add_server_parser(commands)

    from autolog.ui.command import add_parser as add_ui_parser

    add_ui_parser(commands)

    from autolog.tracking.stores.spool_sync import add_parser as add_sync_parser

    add_sync_parser(commands)

    from autolog.tracking.doctor import add_parser as add_doctor_parser
    from autolog.tracking.gc import add_parser as add_gc_parser

    add_gc_parser(commands)
    add_doctor_parser(commands)

    status = commands.add_parser("status", help="integrations and whether they are active")
    status.add_argument("-v", "--verbose", action="store_true", help="list patched targets")
    status.set_defaults(handler=_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``autolog`` command; returns the exit status (2 for a typed error)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:  # "autolog" or "autolog runs" alone: show what there is
        getattr(args, "usage_of", parser).print_help(sys.stderr)
        return 2
    try:
        handler(args)
    except AutologError as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"autolog: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `autolog runs list | head`: the reader left, not an error
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
