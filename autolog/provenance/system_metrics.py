"""System metrics: a background sampler that logs ``system/*`` while a run runs.

Off by default: ``autolog.autolog(log_system_metrics=True)``,
``AUTOLOG_SYSTEM_METRICS=1`` or ``provenance.configure(system_metrics=True)``.
Every ``system_metrics_interval`` seconds (default 10) a daemon thread logs,
for this process:

- ``system/cpu_percent``: CPU time used per wall time, in % of one core
  (over 100 with several busy threads);
- ``system/memory_rss_mb``: resident memory;
- ``system/disk_io_mb``: MB read and written since the run started;
- per NVIDIA GPU ``i`` (through NVML, when the driver's library is there):
  ``system/gpu_<i>_utilization_percent`` and ``system/gpu_<i>_memory_mb``.

Sources: ``/proc/self`` on Linux, ``os.times`` and the ``resource`` module
elsewhere, psutil when it is installed (never required); NVML is loaded with
ctypes from the driver (or pynvml when installed). One last sample is logged
when the run ends, then the sampler stops: a run's points never outlive it.
"""

from __future__ import annotations

import os
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from autolog.tracking.run_state import RunState

__all__ = ["Sampler", "read_process", "start_sampler"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak: the best there is
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024
    except (ImportError, OSError):
        return None


def _io_bytes() -> int | None:
    try:
        with open("/proc/self/io", "rb") as fh:
            fields = dict(line.split(b":", 1) for line in fh.read().splitlines() if b":" in line)
        return int(fields[b"read_bytes"]) + int(fields[b"write_bytes"])
    except (OSError, KeyError, ValueError):
        return None


def read_process() -> tuple[float, float | None, int | None]:
    """(CPU seconds used so far, RSS in MB, bytes read + written) of this process."""
    try:
        import psutil  # type: ignore[import-not-found]
    except ImportError:
        times = os.times()
        return times.user + times.system, _rss_mb(), _io_bytes()
    process = psutil.Process()
    cpu = process.cpu_times()
    try:
        io = process.io_counters()
        io_bytes: int | None = io.read_bytes + io.write_bytes
    except (AttributeError, psutil.Error):
        io_bytes = None
    return cpu.user + cpu.system, process.memory_info().rss / 2**20, io_bytes


class _Nvml:
    """The few NVML calls the sampler needs, through ctypes (no dependency)."""

    def __init__(self) -> None:
        import ctypes

        self.ctypes = ctypes
        self.lib = ctypes.CDLL("libnvidia-ml.so.1" if sys.platform != "win32" else "nvml.dll")
        if self.lib.nvmlInit_v2() != 0:
            raise OSError("nvmlInit failed")
        count = ctypes.c_uint()
        if self.lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            raise OSError("nvmlDeviceGetCount failed")
        self.handles = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            if self.lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) == 0:
                self.handles.append(handle)

    def sample(self) -> dict[str, float]:
        ctypes = self.ctypes

        class Utilization(ctypes.Structure):
            _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]

        class Memory(ctypes.Structure):
            _fields_ = [
                ("total", ctypes.c_ulonglong),
                ("free", ctypes.c_ulonglong),
                ("used", ctypes.c_ulonglong),
            ]

        out: dict[str, float] = {}
        for index, handle in enumerate(self.handles):
            util, memory = Utilization(), Memory()
            if self.lib.nvmlDeviceGetUtilizationRates(handle, ctypes.byref(util)) == 0:
                out[f"system/gpu_{index}_utilization_percent"] = float(util.gpu)
            if self.lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) == 0:
                out[f"system/gpu_{index}_memory_mb"] = memory.used / 2**20
        return out


_nvml: Any = None  # _Nvml, False when there is none, None before the first try
_nvml_lock = threading.Lock()


def _gpu_sampler() -> Any:
    global _nvml
    with _nvml_lock:
        if _nvml is None:
            if sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia"):
                _nvml = False  # no NVIDIA driver: not even a library load to try
            else:
                try:
                    _nvml = _Nvml()
                except (OSError, AttributeError):
                    _nvml = False
        return _nvml


class Sampler:
    """Samples this process every ``interval`` seconds into ``run_id``'s metrics
    until :meth:`stop`; step = sample number, from 0."""

    def __init__(self, state: RunState, interval: float):
        self.state = state
        self.interval = interval
        self.step = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # a sample in flight finishes before stop returns
        self._stopped = False
        self._last_cpu, _rss, io = read_process()
        self._last_wall = time.monotonic()
        self._first_io = io
        self._thread = threading.Thread(
            target=self._loop, name=f"autolog-system-metrics-{state.run_id[:8]}", daemon=True
        )

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.state.info.status != "RUNNING":  # ended through Client.set_terminated
                break
            self.sample()

    def read(self) -> dict[str, float]:
        """One sample's values (no logging)."""
        cpu, rss, io = read_process()
        wall = time.monotonic()
        values: dict[str, float] = {}
        elapsed = wall - self._last_wall
        if elapsed > 0:
            values["system/cpu_percent"] = 100.0 * (cpu - self._last_cpu) / elapsed
        self._last_cpu, self._last_wall = cpu, wall
        if rss is not None:
            values["system/memory_rss_mb"] = rss
        if io is not None and self._first_io is not None:
            values["system/disk_io_mb"] = (io - self._first_io) / 2**20
        gpu = _gpu_sampler()
        if gpu:
            try:
                values.update(gpu.sample())
            except OSError:
                pass
        return values

    def sample(self) -> None:
        """Take one sample and queue it as the run's ``system/*`` metrics."""
        from autolog._report import guard

        with self._lock:
            if self._stopped:
                return
            with guard("system_metrics"):
                from autolog.tracking.fluent import log_metrics

                log_metrics(self.read(), step=self.step, run_id=self.state.run_id)
            self.step += 1

    def stop(self, final_sample: bool = True) -> None:
        """Log a last sample (if asked), then stop; no point is logged after this."""
        self._stop.set()
        if final_sample and self.state.info.status == "RUNNING":
            self.sample()
        with self._lock:
            self._stopped = True
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


_samplers: dict[str, Sampler] = {}


def start_sampler(state: RunState, interval: float) -> Sampler:
    """Start sampling ``state``'s run; it stops when the run ends."""
    from autolog.tracking.run_state import on_run_end

    sampler = Sampler(state, interval).start()
    _samplers[state.run_id] = sampler
    on_run_end(state.run_id, _stop_hook)
    return sampler


def _stop_hook(run_id: str, status: str) -> None:
    sampler = _samplers.pop(run_id, None)
    if sampler is not None:
        sampler.stop()


def running() -> list[str]:
    """Ids of the runs sampled now (tests, ``autolog status``)."""
    return [run_id for run_id, s in _samplers.items() if s._thread.is_alive()]
