"""Instructions per phase and per thread, counted by valgrind's callgrind.

A wall-time or CPU-time row on this shared 2-CPU machine swings by a few
percent between runs, more than the +3 % some goals allow. Instruction counts
do not move with the load. A child process runs under callgrind with
``--dump-before=getppid --separate-threads=yes``: each ``phase(label)`` calls
``os.getppid()``, so callgrind writes what the calling thread executed since
the previous phase began (the other threads' counts are written at exit), and
the child prints the phases' labels in order on its last stdout line. ``run``
gives the main thread's counts per phase; ``count_arms`` (in the child) and
``rows`` (in the benchmark) make of them a bare-vs-autolog comparison of the
training thread.

With the cache simulated, a count also has callgrind's cycle estimate
(``Ir + 10 L1 misses + 100 last-level misses``, KCachegrind's "CEst"): code
that runs between a framework's and evicts it, or is evicted by it, costs more
than its instructions say, and the estimate sees that where ``Ir`` cannot.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# valgrind runs one thread at a time: the spin-waits of OpenMP and OpenBLAS
# workers would be counted as work, and hash randomisation moves counts
VALGRIND_ENV = {
    "PYTHONHASHSEED": "0",
    "PYTHONWARNINGS": "ignore",
    **dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"),
}
# AUTOLOG_BENCH_INSTRUCTIONS=1: the benchmarks that can add these rows do
ASKED = os.environ.get("AUTOLOG_BENCH_INSTRUCTIONS", "") not in ("", "0")
# how much slower a process runs under valgrind, for timers that should fire
# as often per unit of work as they do outside it
SLOWDOWN = 30

_labels: list[str] = ["startup"]


def phase(label: str) -> None:
    """In the child: what runs from here on is counted as ``label``."""
    os.getppid()
    _labels.append(label)


def print_labels() -> None:
    """In the child, last: the phases' labels, for ``run``."""
    print(json.dumps(_labels), flush=True)


def _estimate(events: dict[str, int]) -> int:
    l1 = sum(events.get(e, 0) for e in ("I1mr", "D1mr", "D1mw"))
    ll = sum(events.get(e, 0) for e in ("ILmr", "DLmr", "DLmw"))
    return events["Ir"] + 10 * l1 + 100 * ll


def _counts(path: Path) -> dict[str, int]:
    names: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("totals:"):
            events = dict(zip(names, map(int, line.split()[1:])))
            return {"Ir": events["Ir"], "CEst": _estimate(events)}
    raise RuntimeError(f"no totals in {path}")


def run(args: list[str], cache_sim: bool = False) -> list[tuple[str, dict[str, int]]]:
    """Run ``args`` (a Python child whose main thread calls ``phase`` and
    ``print_labels``) under callgrind; per phase in order, ``(label, {"Ir": ...,
    "CEst": ...})`` of the main thread."""
    with tempfile.TemporaryDirectory(prefix="autolog-callgrind-") as tmp:
        out = Path(tmp, "cg.out")
        valgrind = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            "--dump-before=getppid",
            f"--cache-sim={'yes' if cache_sim else 'no'}",
            f"--callgrind-out-file={out}",
        ]
        env = {**os.environ, **VALGRIND_ENV, "BENCH_UNDER_VALGRIND": str(SLOWDOWN)}
        done = subprocess.run(valgrind + args, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"{args} under callgrind failed:\n{done.stderr[-3000:]}")
        labels = json.loads(done.stdout.strip().splitlines()[-1])
        # part k (file cg.out.<k>-01, thread 1) is what ran up to the k-th
        # phase() call, under the label given at the (k-1)-th; the last phase
        # runs to exit and is not dumped
        return [(labels[k - 1], _counts(Path(f"{out}.{k}-01"))) for k in range(1, len(labels))]


ROUNDS = 3


def count_arms(
    bare: Callable[[], object], logged: Callable[[], object], drain: Callable[[], object]
) -> None:
    """In the child: both arms once (the first logged call's imports), then
    ``ROUNDS`` rounds of each, alternating which runs first, each a phase;
    ``drain()`` (``autolog.flush``, which does the writer's work on the thread
    that calls it) after each arm, outside its phase; then the labels."""
    import gc

    from autolog.tracking import writer

    writer.TRAINING_INTERVAL *= SLOWDOWN  # as many drains during a fit as outside valgrind
    arms = (("bare", bare), ("autolog", logged))
    for _, fn in arms:
        fn()
        drain()
    for i in range(ROUNDS):
        for label, fn in arms if i % 2 == 0 else arms[::-1]:
            gc.collect()
            phase(label)
            fn()
            phase("drain")
            drain()
    print_labels()


def rows(h, workload: str, args: list[str], goal: str = "<= 3 %") -> None:
    """In the benchmark: run ``args`` (a child that calls ``count_arms``) and add
    what autolog adds to the training thread's instructions and to its cycle
    estimate. Only the thread that marks a phase is counted per phase, so the
    writer thread's share (its drains during the fit) is not in these rows."""
    name = f"{workload}: training thread instructions"
    if not h.wanted(name):
        return
    arms: dict[str, list[dict[str, int]]] = {"bare": [], "autolog": []}
    for label, counts in run(args, cache_sim=True):
        if label in arms:
            arms[label].append(counts)
    notes = (
        f"callgrind, {ROUNDS} rounds per arm: the median of the rounds' differences "
        "over the median bare"
    )
    for event, what, detail in (
        ("Ir", "", ""),
        ("CEst", ", cycle estimate", "; the estimate: Ir + 10 L1 misses + 100 last-level misses"),
    ):
        bare = statistics.median(b[event] for b in arms["bare"])
        extra = statistics.median(
            o[event] - b[event] for b, o in zip(arms["bare"], arms["autolog"])
        )
        h.row(
            f"{name}{what}",
            extra / bare * 100,
            "%",
            goal=goal,
            peer=f"bare {bare / 1e6:,.0f} M",
            notes=notes + detail,
        )


if __name__ == "__main__":  # a self-check: python benchmarks/_callgrind.py
    if sys.argv[1:] == ["child"]:
        phase("small")
        sum(range(10_000))
        phase("large")
        sum(range(100_000))
        phase("end")
        print_labels()
    else:
        for label, counts in run([sys.executable, __file__, "child"], cache_sim=True):
            print(label, counts)
