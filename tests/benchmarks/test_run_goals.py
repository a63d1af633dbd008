"""The benchmark table marks the rows that miss their own goal (issue 20, item 14):
the harness reads goals such as ``<= 5 us``, ``<= +10%``, ``>= 200,000/s`` and
``≤ 1.26 ms``, and gives no verdict for a goal in words."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def _load_harness():
    spec = importlib.util.spec_from_file_location("_bench_run", BENCH_DIR / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run = _load_harness()


@pytest.mark.parametrize(
    ("goal", "median", "unit", "base", "meets"),
    [
        ("<= 5 us", 4.9, "us", None, True),
        ("<= 5 us", 5.1, "us", None, False),
        ("<= 5 us", 0.004, "ms", None, True),  # 4 us, in the row's unit
        ("< 1000 ms", 1.2, "s", None, False),
        ("<= 1,000 us", 999.0, "us", None, True),
        ("≤ 1.26 ms", 1.3, "ms", None, False),
        ("<= 1.26 ms (10x mlflow)", 1.2, "ms", None, True),
        ("<= 40 ms (30 + 10)", 41.0, "ms", None, False),
        (">= 200,000/s", 150_000.0, "points/s", None, False),
        (">= 200,000/s", 250_000.0, "points/s", None, True),
        ("<= +10%", 10.5, "ms", 10.0, True),
        ("<= +10%", 11.5, "ms", 10.0, False),
        ("<= 5 % above bare", 10.6, "ms", 10.0, False),
        ("<= +5 us", 12.0, "us", 8.0, True),
        ("<= +30 ms", 0.05, "s", 0.01, False),  # 40 ms more than the base
        ("<= +5% or +15 ms", 130.0, "ms", 100.0, False),
        ("<= +5% or +15 ms", 114.0, "ms", 100.0, True),  # the second bound holds
        ("<= +5% or +15 ms", 1030.0, "ms", 1000.0, True),  # the first one does
        ("<= 0.1 % of one core", 0.3, "%", None, False),
    ],
)
def test_goals_are_read_and_held_against_the_median(goal, median, unit, base, meets):
    assert run.Row("row", median, unit, goal, base=base).meets_goal() is meets


@pytest.mark.parametrize(
    ("goal", "unit", "base"),
    [
        ("", "ms", None),
        ("paid once per process", "ms", None),
        ("off the training thread", "us", None),
        ("well under 100 us", "us", None),
        ("<= +10%", "ms", None),  # relative, but the row has no base arm
        ("<= 5 us", "points/s", None),  # units that do not compare
    ],
)
def test_no_verdict_where_the_goal_cannot_be_checked(goal, unit, base):
    assert run.Row("row", 1e9, unit, goal, base=base).meets_goal() is None


def test_the_table_marks_the_rows_that_miss_their_goal():
    h = run.Harness([])
    h.row("fast enough", 4.0, "us", goal="<= 5 us")
    h.row("too slow", 6.0, "us", goal="<= 5 us")
    h.row("in words", 6.0, "us", goal="off the training thread")
    h.compare("overhead", lambda: None, lambda: sum(range(20_000)), repeat=3, goal="<= +1%")
    rows = {r.benchmark: r for r in h.rows}
    assert rows["overhead"].base is not None  # compare() keeps its base arm for the goal
    lines = {line.split("|")[1].strip(): line for line in run.table(h.rows).splitlines()[2:]}
    assert run.MISSED not in lines["fast enough"] and run.MISSED not in lines["in words"]
    assert f"| {run.MISSED} <= 5 us |" in lines["too slow"]
    assert run.MISSED in lines["overhead"]  # doing something costs more than doing nothing
    assert [r.benchmark for r in run.missed(h.rows)] == ["too slow", "overhead"]


def test_main_prints_the_misses_and_saves_the_verdicts(tmp_path, monkeypatch, capsys):
    bench = tmp_path / "bench_demo.py"
    bench.write_text(
        "def run(h):\n"
        "    h.row('demo ok', 1.0, 'ms', goal='<= 2 ms')\n"
        "    h.row('demo slow', 3.0, 'ms', goal='<= 2 ms')\n"
    )
    monkeypatch.setattr(run, "discover", lambda: [bench])
    monkeypatch.setattr(run, "BENCH_DIR", tmp_path)  # nothing to byte-compile there
    monkeypatch.setattr(sys, "argv", [str(BENCH_DIR / "run.py")])
    out_json = tmp_path / "rows.json"
    assert run.main(["--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "1 row(s) miss their goal: demo slow (3 ms: <= 2 ms)" in out
    verdicts = {r["benchmark"]: r["meets_goal"] for r in json.loads(out_json.read_text())}
    assert verdicts == {"demo ok": True, "demo slow": False}


def test_a_filter_naming_a_file_runs_only_that_file():
    paths = [BENCH_DIR / f"bench_{name}.py" for name in ("sql", "store", "ui")]
    assert run.named_by(paths, ["store"]) == [paths[1]]
    assert run.named_by(paths, ["sql", "ui"]) == [paths[0], paths[2]]
    # a filter that names no file may name a row anywhere: every file runs
    assert run.named_by(paths, ["1M points"]) == paths
    assert run.named_by(paths, []) == paths
