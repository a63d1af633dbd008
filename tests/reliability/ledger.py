"""What the process accepted, and whether the store has all of it.

:class:`Ledger` wraps ``BatchingWriter.append`` and ``extend``, the doors every
logged value goes through once validated (``log_metric``, ``log_params``,
``set_tag`` and what integrations log through them): an item that got
through is *accepted*, and rule 2 says it must be stored. :meth:`Ledger.missing`
reads each run back and lists what is not there; :func:`points_of` counts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from autolog.tracking.writer import CALL, METRIC, PARAM, TAG, BatchingWriter


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


class Ledger:
    """Items accepted by the writer, per run. ``install(monkeypatch)`` starts the
    recording; ``fail`` (an exception), when set, is raised for every data item
    instead (a bug of ours in the code that logs it)."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[tuple[str, int, int, float]]] = defaultdict(list)
        self.params: dict[str, dict[str, str]] = defaultdict(dict)
        self.tags: dict[str, dict[str, str]] = defaultdict(dict)
        self.runs: list[str] = []  # in order of creation (a CALL of the run's lane)
        self.fail: BaseException | None = None

    def install(self, monkeypatch: Any) -> Ledger:
        append, extend = BatchingWriter.append, getattr(BatchingWriter, "extend", None)
        ledger = self

        def recording_append(writer: BatchingWriter, item: tuple) -> None:
            if item[0] != CALL and ledger.fail is not None:
                raise ledger.fail
            append(writer, item)
            ledger.record(item)

        def recording_extend(writer: BatchingWriter, items: list) -> None:
            if ledger.fail is not None and any(item[0] != CALL for item in items):
                raise ledger.fail
            extend(writer, items)
            for item in items:
                ledger.record(item)

        monkeypatch.setattr(BatchingWriter, "append", recording_append)
        if extend is not None:
            monkeypatch.setattr(BatchingWriter, "extend", recording_extend)
        return self

    def record(self, item: tuple) -> None:
        kind, _store, run_id, payload = item
        if run_id is not None and run_id not in self.tags:
            self.runs.append(run_id)
            self.tags[run_id] = {}
        if kind == METRIC:
            self.metrics[run_id].append(
                (payload.key, payload.step, payload.timestamp, payload.value)
            )
        elif kind == PARAM:
            self.params[run_id][payload.key] = payload.value
        elif kind == TAG:
            self.tags[run_id][payload.key] = payload.value

    @property
    def points(self) -> int:
        """Accepted data points: metric points, params and tags."""
        return (
            sum(len(v) for v in self.metrics.values())
            + sum(len(v) for v in self.params.values())
            + sum(len(v) for v in self.tags.values())
        )

    def missing(self, store: Any, runs: list[str] | None = None) -> tuple[int, list[str]]:
        """(points read back, what is missing) for ``runs`` (default: all accepted)."""
        found = 0
        problems: list[str] = []
        for run_id in self.runs if runs is None else runs:
            try:
                run = store.get_run(run_id)
            except Exception as error:
                problems.append(f"run {run_id} unreadable: {error!r}")
                continue
            for key, value in self.params[run_id].items():
                if run.data.params.get(key) == value:
                    found += 1
                else:
                    problems.append(f"run {run_id}: param {key}={value!r} missing")
            for key, value in self.tags[run_id].items():
                if run.data.tags.get(key) == value:
                    found += 1
                else:
                    problems.append(f"run {run_id}: tag {key}={value!r} missing")
            by_key: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
            for key, step, timestamp, value in self.metrics[run_id]:
                by_key[key].append((step, timestamp, value))
            for key, points in by_key.items():
                stored = [
                    (m.step, m.timestamp, m.value) for m in store.get_metric_history(run_id, key)
                ]
                for step, timestamp, value in points:
                    if any(s == step and t == timestamp and _same(v, value) for s, t, v in stored):
                        found += 1
                    else:
                        problems.append(f"run {run_id}: metric {key} step {step} missing")
        return found, problems


def complete_runs_are_complete(ledger: Ledger, store: Any) -> list[str]:
    """Runs the store shows as ended (FINISHED / FAILED / KILLED) that lack some
    accepted data: a half-written run shown as a complete one. The status is
    read before the data, so a run that ends while we read is judged fairly."""
    problems = []
    for run_id in ledger.runs:
        try:
            status = store.get_run(run_id).info.status
        except Exception:
            continue  # not (yet) visible: not shown as complete either
        if status != "RUNNING":
            _found, missing = ledger.missing(store, [run_id])
            problems += [f"{status} but {m}" for m in missing]
    return problems
