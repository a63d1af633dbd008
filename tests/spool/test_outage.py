"""Done when: the server is stopped during a run that logs 10,000 points/s;
training goes on, the server comes back, every point is stored exactly once,
in order, with its original timestamp. Against ``autolog server`` and against
a real ``mlflow server`` (which assigns its own run ids: the run started
during the outage is mapped).

Median step times per phase are printed (``pytest -s``) and kept in the test
report (``record_property``); benchmarks/bench_spool.py holds the timed rows.
"""

from __future__ import annotations

import threading
import warnings

import autolog
from autolog.errors import AutologWarning
from autolog.tracking.stores import store_for_uri
from autolog.tracking.stores.spool_store import SpooledStore
from tests.rest.servers import autolog_server, mlflow_server
from tests.spool.training import (
    KEYS,
    Trainer,
    in_background,
    median_ms,
    rows,
    summary,
    wait_until,
)


def _stack_of(thread) -> str:
    import sys
    import traceback

    frame = sys._current_frames().get(getattr(thread, "ident", None))
    return "".join(traceback.format_stack(frame)[-8:]) if frame is not None else "-"


def _outage(
    server, db, record_property, capfd, mlflow: bool, online=1.5, offline=2.0, drain=120.0
) -> None:
    """``mlflow``: the real server ingests a few hundred points/s under this
    machine's load and boots in up to a minute and a half: the run ends while
    it is down (no training while it boots, which would spool more than it can
    take back in a test's time)."""
    server.start()
    finished = None
    try:
        autolog.set_tracking_uri(server.url)
        store = store_for_uri(server.url)
        assert isinstance(store, SpooledStore)
        trainer = Trainer()
        offline_trainer = Trainer()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with autolog.start_run(run_name="through-the-outage") as run:
                before = trainer.train(online)
                server.stop()  # the server goes away mid-run
                during = trainer.train(offline / 2)
                # a run started while the server is down: id and start time made here
                with autolog.start_run(run_name="born-offline", nested=True) as child:
                    autolog.log_param("born", "offline")
                    offline_trainer.train(0.2)
                during += trainer.train(offline / 2)
                assert store.spooling
                autolog.flush()  # durable in the spool: returns although the server is down
                while_back: list[float] = []
                after: list[float] = []
                if not mlflow:
                    # training goes on while it boots; the thread that started it lives
                    # on (a child told to die with its parent gets its signal when the
                    # parent *thread* ends: Linux PR_SET_PDEATHSIG)
                    started, finished = threading.Event(), threading.Event()
                    in_background(lambda: (server.start(), started.set(), finished.wait(600)))
                    # (at most 10 s of it: a loaded machine boots slowly, and every
                    # second trained here is 10,000 more points to replay)
                    while_back = trainer.train(10, until=started.is_set)
                    assert started.wait(240), "the server did not come back"
                    after = trainer.train(online)
            if mlflow:
                server.start()
            try:
                wait_until(lambda: not store.spooling, timeout=drain, what="the spool to drain")
            except AssertionError:
                thread = store._thread
                raise AssertionError(
                    f"not drained: replay thread alive={thread is not None and thread.is_alive()}, "
                    f"segments={store.spool.segments()}, "
                    f"waiting={store.spool.unreplayed(store.spool.owner)}, "
                    f"last error={store.last_replay_error!r}, "
                    f"stack={_stack_of(thread)}, "
                    f"server exit status={server.process and server.process.poll()}, "
                    f"warnings={[str(w.message)[:300] for w in caught]}"
                ) from None
        spool_warnings = [w for w in caught if issubclass(w.category, AutologWarning)]
        assert len(spool_warnings) == 1, [str(w.message) for w in spool_warnings]
        assert "the spool has drained" in capfd.readouterr().err
        medians = {
            "online": median_ms(before),
            "server down": median_ms(during),
            "restarting": median_ms(while_back),
            "after": median_ms(after),
        }
        record_property("median_step_ms", medians)
        print(f"\nmedian step time (ms), {'mlflow' if mlflow else 'autolog'} server: {medians}")
        print(f"  logging call: {summary(trainer.log_costs)}")
        print(f"  points/s logged per phase: {[round(r) for r in trainer.rates]}")
        for phase, durations in (
            ("online", before),
            ("server down", during),
            ("restarting", while_back),
            ("after", after),
        ):
            print(f"  {phase}: {summary(durations)}")

        run_id = store.ids.get(run.info.run_id)
        child_id = store.ids.get(child.info.run_id)
        if mlflow:
            assert child_id != child.info.run_id  # the server chose its id: mapped
        for key in KEYS:  # row by row on the server's database
            assert rows(db, run_id, key, mlflow) == trainer.expected(key)
            assert rows(db, child_id, key, mlflow) == offline_trainer.expected(key)
        server_side = store.inner.get_run(child_id)
        assert server_side.data.params == {"born": "offline"}
        assert server_side.info.start_time == child.info.start_time
        assert store.inner.get_run(run_id).info.status == "FINISHED"
        points = len(trainer.logged) * len(KEYS)
        print(f"{points:,} points of the outage run stored once each")
    finally:
        server.stop()
        if finished is not None:
            finished.set()


def test_an_outage_of_our_server_loses_and_duplicates_nothing(tmp_path, record_property, capfd):
    server = autolog_server(tmp_path)
    _outage(server, tmp_path / "server.db", record_property, capfd, mlflow=False)


def test_an_outage_of_a_real_mlflow_server_maps_the_run_ids(tmp_path, record_property, capfd):
    server = mlflow_server(tmp_path)
    db = tmp_path / "mlflow.db"
    _outage(server, db, record_property, capfd, mlflow=True, online=0.3, offline=0.6, drain=400)
