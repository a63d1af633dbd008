"""One cell of the fault matrix: a training under a fault, against a store.

:func:`run_cell` sets the store up (a fresh experiment of it), starts the
fault, trains, checks what a user would see, heals the fault and checks what
the store kept. The checks (issue 17, "Each cell asserts"):

1. the user's result is identical to the training without autolog (same
   predictions, same type of returned object); with an integration bug, the
   user's own exception, raised mid-fit, comes out as the same object;
2. at most one warning per fault kind and integration;
3. what was flushed before the fault reads back after it; while the fault
   lasts, no run the store shows as ended lacks accepted data (no
   half-written run visible as a complete one);
4. once healed, everything accepted is read back (points written == read);
   every run ended;
5. the store takes a new run afterwards.

Cells report what they counted into :data:`RESULTS` (the summary the matrix
prints at the end, ``benchmarks/run.py reliability``).
"""

from __future__ import annotations

import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import autolog
from autolog.errors import AutologWarning
from autolog.tracking import stores as store_registry
from tests.reliability.faults import FaultyStore, Forwarder, InjectedBug, SmallDisk
from tests.reliability.ledger import Ledger, complete_runs_are_complete
from tests.reliability.workloads import WORKLOADS, Hooks, enable

STORES = ("file", "sqlite", "postgresql", "rest")

#: fault -> the stores it applies to, and why not the others (the report says so)
FAULTS: dict[str, tuple[tuple[str, ...], str]] = {
    "store-raises-always": (STORES, ""),
    "store-raises-1-in-10": (STORES, ""),
    "unwritable-path": (
        ("file", "sqlite"),
        "a tracking *path* exists only for the file and SQLite stores",
    ),
    "disk-full": (("file", "sqlite"), "the client writes no local disk for PostgreSQL or REST"),
    "server-down": (("rest",), "only the REST store has a server"),
    "server-slow": (("rest",), "only the REST store has a server"),
    "integration-bug": (STORES, ""),
}


@dataclass
class CellResult:
    workload: str
    store: str
    fault: str
    passed: bool = False
    written: int = 0
    read_back: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


RESULTS: list[CellResult] = []
_baselines: dict[str, Any] = {}


def baseline(workload: str) -> Any:
    """What the training returns without autolog (computed once per process)."""
    if workload not in _baselines:
        _baselines[workload] = WORKLOADS[workload][1](Hooks())
    return _baselines[workload]


def ours(caught: list[warnings.WarningMessage]) -> list[str]:
    """The warnings autolog issued (not the frameworks')."""
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, AutologWarning) or str(w.message).startswith("autolog")
    ]


def warning_kind(message: str) -> str:
    """What a warning is about, without its run ids and counts."""
    if "integration failed" in message:
        return "integration failed"
    if "could not write tracking data" in message:
        return "writes held for retry"
    if "rejected a tracking write" in message:
        return "write rejected"
    if "spool" in message:
        return "spool"
    return message[:60]


class Setup:
    """The store of one cell: its URI (on ``disk`` when the fault needs one) and a
    reader that sees what is stored whatever the fault does."""

    def __init__(self, kind: str, tmp: Path, monkeypatch: Any, env: dict):
        self.kind, self.tmp = kind, tmp
        self.disk: SmallDisk | None = None
        self.forwarder: Forwarder | None = None
        self.faulty: FaultyStore | None = None
        self.env = env
        monkeypatch.setenv("AUTOLOG_SPOOL_DIR", str(tmp / "spool"))

    def uri(self, where: Path) -> str:
        if self.kind == "file":
            return (where / "mlruns").as_uri()
        if self.kind == "sqlite":
            return f"sqlite:///{where / 'runs.db'}"
        if self.kind == "postgresql":
            return self.env["postgresql"]
        server = self.env["rest"]
        if self.forwarder is not None:
            return self.forwarder.url
        return server.url

    def reader(self) -> Any:
        """A store object that reads what is stored, past any client-side fault."""
        if self.faulty is not None:
            return self.faulty.inner
        if self.kind == "rest":
            from autolog.tracking.stores.rest import RestStore

            return RestStore(self.env["rest"].url)
        return store_registry.store_for_uri(autolog.get_tracking_uri())


def run_cell(
    workload: str, kind: str, fault: str, tmp: Path, monkeypatch: Any, env: dict
) -> CellResult:
    result = CellResult(workload, kind, fault)
    RESULTS.append(result)
    started = time.perf_counter()
    expected = baseline(workload)
    setup = Setup(kind, tmp, monkeypatch, env)
    where = tmp
    if fault in ("unwritable-path", "disk-full"):
        setup.disk = SmallDisk(tmp / "disk")
        where = setup.disk.path
        monkeypatch.setenv("AUTOLOG_ARTIFACT_ROOT", str(where / "artifacts"))
    else:
        monkeypatch.setenv("AUTOLOG_ARTIFACT_ROOT", str(tmp / "artifacts"))
    if fault in ("server-down", "server-slow"):
        from tests.rest.servers import free_port

        setup.forwarder = Forwarder(env["rest"].port, free_port()).up()
    try:
        _run(result, setup, where, workload, fault, expected)
    finally:
        import sys

        fluent = sys.modules["autolog.tracking.fluent"]
        if setup.disk is not None:
            setup.disk.heal()
        fluent._reset_for_tests()  # closes the stores that hold files open on the disk
        if setup.disk is not None:
            setup.disk.unmount()
        if setup.forwarder is not None:
            setup.forwarder.down()
        result.seconds = time.perf_counter() - started
    return result


def _run(result: CellResult, setup: Setup, where: Path, workload: str, fault: str, expected):
    autolog.set_tracking_uri(setup.uri(where))
    experiment = f"cell-{workload}-{fault}-{uuid.uuid4().hex[:8]}"
    autolog.set_experiment(experiment)
    autolog.search_runs()  # the store (SQLite's schema, the file store's folder) exists
    if fault.startswith("store-raises"):
        uri = autolog.get_tracking_uri()
        setup.faulty = FaultyStore(
            store_registry.store_for_uri(uri), every=1 if fault.endswith("always") else 10
        )
        store_registry._stores[uri] = setup.faulty
        _forget_current_store()
    import pytest

    with autolog.start_run(run_name="before-the-fault") as before:
        autolog.log_metric("before", 1.0)
    autolog.flush()  # flushed before the fault: must read back after it
    monkeypatch = pytest.MonkeyPatch()  # undone below
    ledger = Ledger().install(monkeypatch)
    enable(workload)
    reader = setup.reader()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _start(setup, fault, ledger)
            got = WORKLOADS[workload][1](Hooks())
            if fault == "integration-bug":
                _users_exception_passes(workload, result)
            felt = _flush_during_fault()
            half = complete_runs_are_complete(ledger, reader)
            _heal(setup, fault, ledger)
            if autolog.active_run() is not None:  # a plain torch loop's: the script's end
                autolog.end_run()
            _drain(setup)
        if got != expected:
            result.problems.append(f"result differs: {got!r:.200} != {expected!r:.200}")
        kinds: dict[str, int] = {}
        for message in ours(caught):
            kinds[warning_kind(message)] = kinds.get(warning_kind(message), 0) + 1
        result.problems += [
            f"{n} warnings of kind {k!r}: {[m for m in ours(caught) if warning_kind(m) == k]}"
            for k, n in kinds.items()
            if n > 1
        ]
        result.problems += [f"while the fault lasted: {p}" for p in half]
        result.written = ledger.points
        result.read_back, missing = ledger.missing(reader)
        result.problems += missing
        for run_id in ledger.runs:
            status = reader.get_run(run_id).info.status
            if status != "FINISHED" and not (fault == "integration-bug" and status == "FAILED"):
                result.problems.append(f"run {run_id} is {status} after healing")
        if fault in FELT and ledger.points and not felt:
            result.problems.append("flush() during the fault did not say it kept data")
        if fault != "integration-bug" and not ledger.points:
            result.problems.append(f"nothing was accepted: the cell tests nothing ({ours(caught)})")
        earlier = reader.get_run(before.info.run_id)
        if earlier.data.metrics != {"before": 1.0} or earlier.info.status != "FINISHED":
            result.problems.append(f"what was flushed before the fault changed: {earlier}")
        _usable(result, reader)
    finally:
        monkeypatch.undo()
        autolog.autolog(WORKLOADS[workload][0], disable=True)
    result.passed = not result.problems


def _forget_current_store() -> None:
    """Make the tracking API look the current store up again (it caches it)."""
    from autolog.tracking import tracking_uri

    tracking_uri._store_cache = None


#: faults that hold every write while they last: flush() during them must say so
FELT = ("store-raises-always", "unwritable-path", "disk-full")


def _flush_during_fault() -> bool:
    """Flush while the fault lasts (the writer tries every queued write, however
    short the training was); True when flush said it kept data for retry."""
    from autolog.errors import TrackingWriteError

    try:
        autolog.flush()
    except TrackingWriteError as error:
        return "kept for retry" in str(error)
    return False


def _start(setup: Setup, fault: str, ledger: Ledger) -> None:
    if setup.faulty is not None:
        setup.faulty.active = True
    elif fault == "unwritable-path":
        # SQLite keeps its file open for writing, which a remount refuses: the
        # store lets its connections go first (it reconnects when next used, as a
        # long-running process does whose disk turned read-only meanwhile)
        store_registry.store_for_uri(autolog.get_tracking_uri()).close()
        setup.disk.read_only()
    elif fault == "disk-full":
        setup.disk.fill()
    elif fault == "server-down":
        setup.forwarder.down()
    elif fault == "server-slow":
        setup.forwarder.delay = 2.0  # over the client's 0.5 s timeout (see env in conftest)
    elif fault == "integration-bug":
        ledger.fail = InjectedBug("a bug in our handler or callback")


def _heal(setup: Setup, fault: str, ledger: Ledger) -> None:
    if setup.faulty is not None:
        setup.faulty.active = False
    elif setup.disk is not None:
        setup.disk.heal()
    elif fault == "server-down":
        setup.forwarder.up()
    elif fault == "server-slow":
        setup.forwarder.delay = 0.0
    ledger.fail = None


def _drain(setup: Setup) -> None:
    """Write what waits: flush (retries held writes), then the spool's replay."""
    autolog.flush()
    store = store_registry.store_for_uri(autolog.get_tracking_uri())
    store = getattr(store, "inner", store) if isinstance(store, FaultyStore) else store
    deadline = time.monotonic() + 60
    while getattr(store, "spooling", False):
        if time.monotonic() > deadline:
            raise AssertionError("the spool did not drain within 60 s")
        time.sleep(0.05)


def _users_exception_passes(workload: str, result: CellResult) -> None:
    """The user's exception raised mid-fit comes out as the same object."""
    error = KeyError("the user's own error")

    def raise_it() -> None:
        raise error

    try:
        WORKLOADS[workload][1](Hooks(raise_it))
    except KeyError as raised:
        if raised is not error:
            result.problems.append(f"the user's exception was replaced by {raised!r}")
    else:
        result.problems.append("the user's exception did not come out")
    if autolog.active_run() is not None:  # a plain torch loop's run: the script ends it
        autolog.end_run("FAILED")


def _usable(result: CellResult, reader: Any) -> None:
    """The store takes a new run afterwards, and it reads back."""
    with autolog.start_run(run_name="after-the-fault") as run:
        autolog.log_metric("after", 1.0)
    autolog.flush()
    stored = reader.get_run(run.info.run_id)
    if stored.info.status != "FINISHED" or stored.data.metrics.get("after") != 1.0:
        result.problems.append(f"the store is not usable afterwards: {stored.info}")


def summary(results: list[CellResult]) -> dict:
    """Totals of the cells run: per fault and overall, with printable lines."""
    by_fault: dict[str, dict[str, int]] = {}
    for r in results:
        row = by_fault.setdefault(r.fault, {"run": 0, "passed": 0, "written": 0, "read_back": 0})
        row["run"] += 1
        row["passed"] += r.passed
        row["written"] += r.written
        row["read_back"] += r.read_back
    total = {
        key: sum(row[key] for row in by_fault.values())
        for key in ("run", "passed", "written", "read_back")
    }
    lines = [
        f"{fault:<22} cells {row['passed']:>3}/{row['run']:<3} passed   points written "
        f"{row['written']:>6}, read back {row['read_back']:>6}"
        for fault, row in by_fault.items()
    ]
    lines.append(
        f"{'all':<22} cells {total['passed']:>3}/{total['run']:<3} passed   points written "
        f"{total['written']:>6}, read back {total['read_back']:>6}, lost "
        f"{total['written'] - total['read_back']}"
    )
    failed = [f"{r.fault}/{r.store}/{r.workload}" for r in results if not r.passed]
    return {"faults": by_fault, "total": total, "failed": failed, "lines": lines}
