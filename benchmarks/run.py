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
import re
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
    #: the base arm's median, for rows of h.compare (goals such as "<= +10%")
    base: float | None = None

    def meets_goal(self) -> bool | None:
        """Whether the median meets the goal; None when the goal says no number
        this row can be held to ("off the training thread")."""
        bounds = parse_goal(self.goal)
        if not bounds:
            return None
        verdicts = [bound.holds(self) for bound in bounds]
        if True in verdicts:  # alternatives: "<= +5% or +15 ms"
            return True
        return None if None in verdicts else False


_COMPARE = {"<=": float.__le__, "<": float.__lt__, ">=": float.__ge__, ">": float.__gt__}
_GOAL = re.compile(
    r"^(?P<op><=|<|>=|>)?\s*(?P<plus>\+)?\s*(?P<number>\d[\d,]*(?:\.\d+)?)\s*"
    r"(?P<unit>%|/s|[a-z]+(?:/s)?)?\s*(?P<rest>.*)$"
)


@dataclass(frozen=True)
class Bound:
    """One bound of a goal: ``value`` in ``unit`` ("" when it is the row's own
    unit), of the median itself ("absolute"), of its difference to the base arm
    ("delta", ``+5 us``) or of that difference in percent of the base
    ("percent", ``+10%``, ``5 % above bare``)."""

    op: str
    value: float
    unit: str
    kind: str

    def holds(self, row: Row) -> bool | None:
        if self.kind == "absolute":
            measured = row.median
        elif row.base is None:
            return None  # relative to a base that this row does not have
        elif self.kind == "delta":
            measured = row.median - row.base
        else:
            measured = (row.median - row.base) / row.base * 100 if row.base else float("inf")
        if self.kind == "percent":
            return _COMPARE[self.op](float(measured), self.value)
        limit = _in_unit(self.value, self.unit, row.unit)
        return None if limit is None else _COMPARE[self.op](float(measured), limit)


def _in_unit(value: float, unit: str, row_unit: str) -> float | None:
    """``value`` in ``unit`` expressed in the row's unit; None when they do not compare."""
    if unit in ("", row_unit) or (unit == "/s" and row_unit.endswith("/s")):
        return value
    if unit in UNIT_SECONDS and row_unit in UNIT_SECONDS:
        return value * UNIT_SECONDS[unit] / UNIT_SECONDS[row_unit]
    return None


def parse_goal(text: str) -> list[Bound]:
    """The bounds of a goal such as ``<= 5 us``, ``≤ 1.26 ms (10x mlflow)``,
    ``>= 200,000/s``, ``<= +10%``, ``<= 5 % above bare`` or ``<= +5% or +15 ms``
    (either bound); [] for a goal in words ("paid once per process")."""
    text = text.replace("≤", "<=").replace("≥", ">=").replace("µ", "u").replace("μ", "u")
    text = re.sub(r"\([^)]*\)", "", text).strip().lower()  # "(10x mlflow)": a comment
    bounds: list[Bound] = []
    op = None
    for part in re.split(r"\s+or\s+", text):
        match = _GOAL.match(part.strip())
        if match is None or (match["op"] or op) is None:
            return []
        op = match["op"] or op  # "<= +5% or +15 ms": the second bound shares the first's
        unit, rest = match["unit"] or "", match["rest"].strip()
        if unit == "%" and (match["plus"] or rest.startswith("above")):
            kind = "percent"
        elif rest and not (unit == "%" and rest.startswith("of")):
            return []  # words we do not read: no verdict rather than a wrong one
        else:
            kind = "delta" if match["plus"] else "absolute"
        bounds.append(Bound(op, float(match["number"].replace(",", "")), unit, kind))
    return bounds


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
        if self.rows and self.rows[-1].benchmark == name:
            self.rows[-1].base = b
        return b, o


def discover() -> list[Path]:
    """Every benchmark file, in name order."""
    return sorted(BENCH_DIR.glob("bench_*.py"))


def named_by(paths: list[Path], filters: list[str]) -> list[Path]:
    """The files a filter names (``store`` names ``bench_store.py``), or all of
    them when no filter names a file: a row's name may be in any file, but a
    file that no filter names need not start (and pay its set-up) at all."""
    named = [p for p in paths if any(f in p.stem.removeprefix("bench_") for f in filters)]
    return named or paths


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


MISSED = "**MISSED**"


def table(rows: list[Row]) -> str:
    """The markdown table; a row whose median misses its goal says so in the goal cell."""
    lines = [
        "| benchmark | median | unit | goal | peer/ratio | notes |",
        "|---|---:|---|---|---|---|",
    ]
    for r in rows:
        goal = f"{MISSED} {r.goal}" if r.meets_goal() is False else r.goal
        lines.append(
            f"| {r.benchmark} | {_fmt(r.median)} | {r.unit} | {goal} | {r.peer} | {r.notes} |"
        )
    return "\n".join(lines)


def missed(rows: list[Row]) -> list[Row]:
    """The rows whose median misses their goal."""
    return [r for r in rows if r.meets_goal() is False]


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
        for path in named_by(discover(), args.filters):
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
    misses = missed(rows)
    if misses:
        names = "; ".join(f"{r.benchmark} ({_fmt(r.median)} {r.unit}: {r.goal})" for r in misses)
        print(f"\n{len(misses)} row(s) miss their goal: {names}")
    if args.json:
        found = [{**asdict(r), "meets_goal": r.meets_goal()} for r in rows]
        Path(args.json).write_text(json.dumps(found, indent=1))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
