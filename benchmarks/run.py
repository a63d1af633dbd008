"""Run every benchmark and print one markdown table.

Usage::

    .venv/bin/python benchmarks/run.py                  # every benchmarks/bench_*.py
    .venv/bin/python benchmarks/run.py store import     # only files/rows whose name has a substring
    .venv/bin/python benchmarks/run.py --json out.json  # also save the rows

Each ``benchmarks/bench_<area>.py`` defines ``run(h)``; ``h`` is a
:class:`Harness` whose helpers add rows (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import compileall
import gc
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass
class Row:
    benchmark: str
    median: float
    unit: str
    goal: str = ""
    peer: str = ""
    notes: str = ""


def _fmt(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


class Harness:
    """What a benchmark's ``run(h)`` gets: helpers that time things and add rows."""

    def __init__(self, filters: list[str]):
        self.filters = filters
        self.rows: list[Row] = []
        self.module = ""

    def wanted(self, name: str) -> bool:
        """True when the row ``name`` passes the command-line filters."""
        full = f"{self.module} {name}"
        return not self.filters or any(f in full for f in self.filters)

    def _measure(self, fn: Callable[[], object], number: int, unit: str) -> float:
        """Seconds per call of ``fn`` over ``number`` calls, in ``unit``; gc off while timing."""
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(number):
                fn()
            elapsed = time.perf_counter() - start
        finally:
            if gc_was_enabled:
                gc.enable()
        return elapsed / number / UNIT_SECONDS[unit]

    def row(
        self,
        name: str,
        value: float,
        unit: str,
        goal: str | None = None,
        peer: str | None = None,
        notes: str = "",
    ) -> None:
        """Add a row for a value measured by the benchmark itself."""
        if self.wanted(name):
            self.rows.append(Row(name, value, unit, goal or "", peer or "", notes))

    def time(
        self,
        name: str,
        fn: Callable[[], object],
        *,
        repeat: int = 5,
        number: int = 1,
        unit: str = "ms",
        goal: str | None = None,
        peer: str | None = None,
        notes: str = "",
        setup: Callable[[], object] | None = None,
    ) -> float | None:
        """Median over ``repeat`` rounds of the per-call time of ``fn`` (``number`` calls
        per round); ``setup`` runs before each round, untimed. Returns the median."""
        if not self.wanted(name):
            return None
        samples = []
        for _ in range(repeat):
            if setup is not None:
                setup()
            samples.append(self._measure(fn, number, unit))
        median = statistics.median(samples)
        self.row(name, median, unit, goal, peer, notes)
        return median

    def compare(
        self,
        name: str,
        base_fn: Callable[[], object],
        fn: Callable[[], object],
        *,
        repeat: int = 5,
        number: int = 1,
        unit: str = "ms",
        goal: str | None = None,
        base_label: str = "base",
        notes: str = "",
        base_setup: Callable[[], object] | None = None,
        setup: Callable[[], object] | None = None,
    ) -> tuple[float, float] | None:
        """Time ``base_fn`` and ``fn`` interleaved (so machine noise hits both alike);
        the row shows the median of ``fn`` and, as peer, the base and the ratio.

        ``base_setup`` / ``setup`` run untimed before each round of their arm:
        e.g. autolog off, then on, when both arms call the same function."""
        if not self.wanted(name):
            return None
        base, other = [], []
        for _ in range(repeat):
            if base_setup is not None:
                base_setup()
            base.append(self._measure(base_fn, number, unit))
            if setup is not None:
                setup()
            other.append(self._measure(fn, number, unit))
        if base_setup is not None:
            base_setup()
        b, o = statistics.median(base), statistics.median(other)
        ratio = o / b if b else float("inf")
        peer = f"{base_label} {_fmt(b)} {unit}; x{ratio:.2f} (+{_fmt(o - b)} {unit})"
        self.row(name, o, unit, goal, peer, notes)
        return b, o


def discover() -> list[Path]:
    """Every benchmark file, in name order."""
    return sorted(BENCH_DIR.glob("bench_*.py"))


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickle look modules up there
    sys.path.insert(0, str(BENCH_DIR))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH_DIR))
    return module


def table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | median | unit | goal | peer/ratio | notes |",
        "|---|---:|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.benchmark} | {_fmt(r.median)} | {r.unit} | {r.goal} | {r.peer} | {r.notes} |"
        )
    return "\n".join(lines)


def run_one(path: Path, filters: list[str], out: Path) -> None:
    """Run one benchmark file in this interpreter and write its rows to ``out``."""
    harness = Harness(filters)
    # A filter matching the area ("store") selects all its rows, since
    # wanted() matches against "<area> <row name>".
    harness.module = path.stem.removeprefix("bench_")
    load(path).run(harness)
    out.write_text(json.dumps([asdict(r) for r in harness.rows]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("filters", nargs="*", help="substrings of file or row names to run")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--one", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--out", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child: one benchmark file
        run_one(Path(args.one), args.filters, Path(args.out))
        return 0
    # Bytecode first, as `pip install` does: the import-time rows must not time
    # the compiler when PYTHONDONTWRITEBYTECODE is set or a module just changed.
    for package in ("autolog", "integrations"):
        compileall.compile_dir(BENCH_DIR.parent / package, quiet=1)
    rows: list[Row] = []
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in discover():
            # Each file in a fresh interpreter: benchmarks set tracking URIs,
            # patch frameworks and import heavy modules, and must not see
            # each other's state (nor pay for each other's imports).
            out = Path(tmp, f"{path.stem}.json")
            cmd = [sys.executable, __file__, "--one", str(path), "--out", str(out), *args.filters]
            if subprocess.run(cmd, cwd=tmp).returncode != 0 or not out.exists():
                failed.append(path.name)
            else:
                rows.extend(Row(**r) for r in json.loads(out.read_text()))
            print(f"done: {path.name}", file=sys.stderr)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
