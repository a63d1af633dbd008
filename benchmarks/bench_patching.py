"""Patch manager costs (issue 3): autolog() itself, a call that does not log,
and the whole per-call machinery of an outermost call (session, run open and
close) with no integration work."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import types
from pathlib import Path

AUTOLOG_CALL = (
    "import time; t0 = time.perf_counter(); import autolog; t1 = time.perf_counter(); "
    "autolog.autolog(); t2 = time.perf_counter(); print((t1 - t0) * 1e3, (t2 - t1) * 1e3)"
)


def _autolog_call_ms(repeat: int = 9) -> tuple[float, float]:
    """Medians, in a fresh interpreter each, of `autolog.autolog()` alone and of
    `import autolog` + `autolog.autolog()` together."""
    calls, totals = [], []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", AUTOLOG_CALL], capture_output=True, text=True, check=True
        )
        imported, called = map(float, out.stdout.split())
        calls.append(called)
        totals.append(imported + called)
    return statistics.median(calls), statistics.median(totals)


def _toy_framework() -> types.ModuleType:
    module = types.ModuleType("bench_toy_framework")

    def fit(x):
        return x

    module.fit = fit
    module.inner = fit
    sys.modules[module.__name__] = module
    return module


def run(h) -> None:
    if h.wanted("autolog() with no framework imported"):
        call, total = _autolog_call_ms()
        h.row(
            "autolog() with no framework imported",
            call,
            "ms",
            goal="<= 10 ms",
            notes="fresh interpreter per sample; every built-in registered via entry points; "
            "wrapt is loaded by `import autolog`",
        )
        h.row("import autolog + autolog(), together", total, "ms", goal="<= 40 ms (30 + 10)")

    import autolog
    from autolog import _calls

    autolog.set_tracking_uri(Path(tempfile.mkdtemp(), "mlruns").as_uri())

    toy = _toy_framework()
    bare = toy.fit

    def empty_handler(call):
        yield

    class Toy(autolog.Integration):
        name = "bench_toy"
        modules = (toy.__name__,)

        def patch(self, patcher, module):
            patcher.wrap(module, "fit", empty_handler)

    autolog.register(Toy)
    autolog.autolog("bench_toy")
    patched = toy.fit

    token = _calls._SESSIONS.set((_calls.Session("outer", None),))
    try:
        h.compare(
            "patched call, nested (does not log)",
            lambda: bare(1),
            lambda: patched(1),
            repeat=7,
            number=20_000,
            unit="us",
            base_label="bare",
            goal="<= +5 us",
        )
    finally:
        _calls._SESSIONS.reset(token)

    h.compare(
        "outermost call machinery (run open + close, empty handler)",
        lambda: bare(1),
        lambda: patched(1),
        repeat=5,
        number=300,
        unit="us",
        base_label="bare",
        goal="<= +300 us",
        notes="file store; the run's create/close are written by the background writer",
    )
    autolog.flush()

    autolog.autolog("bench_toy", disable=True)
    restored = toy.fit
    h.compare(
        "patched call after autolog(disable=True)",
        lambda: bare(1),
        lambda: restored(1),
        repeat=5,
        number=20_000,
        unit="us",
        base_label="bare",
        goal="<= +5 us",
        notes="disable restores the original object: no wrapper left",
    )
