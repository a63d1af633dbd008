"""System metrics: present only when switched on, sampled in the background,
stopped with the run (no point after it ends, no thread left)."""

from __future__ import annotations

import os
import threading
import time

import autolog
from autolog import provenance
from autolog.provenance import system_metrics

FAST = 0.05  # seconds between samples in these tests


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("autolog-system-metrics")]


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


def _system_keys(run_id: str) -> set[str]:
    return {k for k in autolog.get_run(run_id).data.metrics if k.startswith("system/")}


def test_off_by_default_no_system_metric_and_no_thread():
    with autolog.start_run() as run:
        _busy(0.2)
        assert _sampler_threads() == []
    assert _system_keys(run.info.run_id) == set()


def test_switched_on_samples_in_the_background_and_stops_with_the_run():
    provenance.configure(system_metrics=True, system_metrics_interval=FAST)
    with autolog.start_run() as run:
        assert len(_sampler_threads()) == 1
        _busy(0.5)
    assert _sampler_threads() == []
    assert system_metrics.running() == []
    run_id = run.info.run_id
    assert {"system/cpu_percent", "system/memory_rss_mb", "system/disk_io_mb"} <= _system_keys(
        run_id
    )
    client = autolog.Client()
    cpu = client.get_metric_history(run_id, "system/cpu_percent")
    assert len(cpu) >= 3
    assert [p.step for p in cpu] == list(range(len(cpu)))
    assert max(p.value for p in cpu) > 10  # the busy loop shows
    rss = client.get_metric_history(run_id, "system/memory_rss_mb")[-1].value
    with open("/proc/self/statm") as fh:
        now_mb = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    assert 0.5 * now_mb < rss < 2 * now_mb
    time.sleep(5 * FAST)
    autolog.flush()
    assert len(client.get_metric_history(run_id, "system/cpu_percent")) == len(cpu)


def test_environment_variable_switches_it_on(monkeypatch):
    monkeypatch.setenv("AUTOLOG_SYSTEM_METRICS", "1")
    monkeypatch.setenv("AUTOLOG_SYSTEM_METRICS_INTERVAL", str(FAST))
    with autolog.start_run() as run:
        time.sleep(4 * FAST)
    assert "system/memory_rss_mb" in _system_keys(run.info.run_id)
    assert _sampler_threads() == []


def test_autolog_keyword_switches_it_on():
    autolog.autolog(log_system_metrics=True)
    provenance.configure(system_metrics_interval=FAST)
    assert provenance.options()["system_metrics"] is True
    with autolog.start_run() as run:
        time.sleep(4 * FAST)
    assert "system/cpu_percent" in _system_keys(run.info.run_id)
    autolog.autolog(log_system_metrics=False)
    assert provenance.options()["system_metrics"] is False


def test_a_run_ended_through_the_client_stops_its_sampler():
    provenance.configure(system_metrics=True, system_metrics_interval=FAST)
    client = autolog.Client()
    experiment = autolog.get_experiment_by_name("Default") or autolog.get_experiment("0")
    run = client.create_run(experiment.experiment_id)
    time.sleep(3 * FAST)
    client.set_terminated(run.info.run_id)
    deadline = time.monotonic() + 2
    while _sampler_threads() and time.monotonic() < deadline:
        time.sleep(FAST)
    assert _sampler_threads() == []
    assert "system/cpu_percent" in _system_keys(run.info.run_id)
