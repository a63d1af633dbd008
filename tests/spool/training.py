"""A training loop that logs 10,000 metric points per second, and row checks.

:func:`train` runs steps of ``STEP_SECONDS`` (busy-waiting the rest of the
step, as a GPU-bound loop would), each logging ``KEYS`` metrics with the
timestamp taken at the step, and returns the time each step took: the
median per phase is what the outage tests report (timings are asserted only
in benchmarks/bench_spool.py). :func:`rows` reads a server's SQLite database
directly, so the checks are on the store itself, row by row.
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import autolog

KEYS = [f"m{k}" for k in range(10)]
STEP_SECONDS = 0.001  # 1,000 steps/s x 10 keys = 10,000 points/s


class Trainer:
    """Logs to the active run; ``logged[step] = timestamp`` of every step.

    Steps are scheduled at ``STEP_SECONDS`` intervals of the wall clock: a step
    that starts late (the machine is busy) does not wait, so the loop keeps
    logging 10,000 points per second on average. A step's time is its logging
    call plus the wait for its slot; ``log_costs`` holds the logging calls alone
    (what the training thread pays for tracking).
    """

    def __init__(self) -> None:
        self.logged: dict[int, int] = {}
        self.step = 0
        self.log_costs: list[float] = []
        self.rates: list[float] = []  # points/s logged by each train() call

    def train(self, seconds: float, until: Callable[[], bool] | None = None) -> list[float]:
        """Steps for ``seconds`` (or until ``until()``); returns each step's time:
        the logging call plus ``STEP_SECONDS`` of compute."""
        durations = []
        origin = time.perf_counter()
        end = origin + seconds
        first = self.step
        log_metrics = autolog.log_metrics
        while time.perf_counter() < end and not (until is not None and until()):
            started = time.perf_counter()
            timestamp = time.time_ns() // 1_000_000
            log_metrics(dict.fromkeys(KEYS, self.step * 0.25), step=self.step, timestamp=timestamp)
            cost = time.perf_counter() - started
            self.log_costs.append(cost)
            self.logged[self.step] = timestamp
            self.step += 1
            slot = origin + (self.step - first) * STEP_SECONDS
            while time.perf_counter() < slot:  # the compute, or catching up when late
                pass
            durations.append(STEP_SECONDS + cost)
        elapsed = time.perf_counter() - origin
        self.rates.append(len(durations) * len(KEYS) / elapsed if elapsed else 0.0)
        return durations

    def expected(self, key: str) -> list[tuple[str, int, int, float]]:
        return [(key, s, t, s * 0.25) for s, t in sorted(self.logged.items())]


def median_ms(durations: list[float]) -> float:
    return statistics.median(durations) * 1000 if durations else float("nan")


def summary(durations: list[float]) -> str:
    """Steps, median, p99 and max step time of a phase (for the test's report)."""
    if not durations:
        return "no steps"
    ordered = sorted(durations)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(durations)} steps, "
        f"median {median_ms(durations):.3f} ms, "
        f"p99 {p99 * 1000:.2f} ms, max {ordered[-1] * 1000:.1f} ms"
    )


def in_background(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def rows(db: Path, run_id: str, key: str, mlflow: bool = False) -> list[tuple]:
    """Every stored point of ``key``: (key, step, timestamp, value), in the order
    the store wrote them (our server: its insertion order; mlflow: by step)."""
    sql = (
        "SELECT key, step, timestamp, value FROM metrics WHERE run_uuid = ? AND key = ? "
        "ORDER BY step, timestamp"
    )
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        if not mlflow:  # our SQLite store: blocks of points (schema v5)
            from autolog.tracking.stores.sql_blocks import logged

            return logged(connection, run_id, key)
        return [tuple(row) for row in connection.execute(sql, (run_id, key))]
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)
