"""Rule 3 in practice: what `import autolog` and `autolog.autolog()` load.

Timings live in benchmarks/; this checks the cause of slow imports that a
change most often brings in: a heavy module imported at module level.
"""

from __future__ import annotations

import json
import subprocess
import sys

FRAMEWORKS = ("sklearn", "torch", "tensorflow", "keras", "xgboost", "lightgbm", "lightning")
FRAMEWORKS += ("optuna", "catboost", "statsmodels")
HEAVY = (*FRAMEWORKS, "numpy", "pandas", "sqlalchemy", "matplotlib", "cloudpickle")
# cheap to name, costly to import on a bare interpreter (several ms each)
SLOW_STDLIB = ("typing", "dataclasses", "tempfile", "json", "importlib.metadata", "asyncio")


def loaded_after(code: str) -> set[str]:
    script = (
        f"import sys\n{code}\nloaded = sorted(sys.modules)\nimport json\nprint(json.dumps(loaded))"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_autolog_loads_no_framework_and_no_slow_stdlib():
    loaded = loaded_after("import autolog")
    assert loaded.isdisjoint(HEAVY + SLOW_STDLIB), sorted(loaded & set(HEAVY + SLOW_STDLIB))


def test_autolog_call_with_no_framework_imported_loads_none():
    loaded = loaded_after("import autolog; autolog.autolog()")
    assert loaded.isdisjoint(HEAVY + SLOW_STDLIB), sorted(loaded & set(HEAVY + SLOW_STDLIB))
    # a built-in's module loads when its framework is imported (test_integration_registry)
    integrations = {m for m in loaded if m.startswith("autolog.integrations.")}
    assert not integrations, sorted(integrations)


def test_import_autolog_loads_of_ours_only_the_package_and_the_run_hooks():
    # what else a run needs (the tracking API, provenance) loads on first use;
    # a module of ours added here is cost on every `import autolog`
    loaded = loaded_after("import autolog")
    ours = {m for m in loaded if m.split(".")[0] == "autolog"}
    assert ours == {"autolog", "autolog.tracking", "autolog.tracking.run_hooks"}, sorted(ours)


def test_a_logged_run_loads_no_search_code(tmp_path):
    # the filter parser and evaluator are for reads; a training script that only
    # logs (the common one) would pay their import at its first run
    loaded = loaded_after(
        f"import autolog; autolog.set_tracking_uri({(tmp_path / 'mlruns').as_uri()!r})\n"
        "with autolog.start_run():\n"
        "    autolog.log_param('p', 1); autolog.log_metric('m', 1.0)\n"
        "autolog.flush()"
    )
    assert "autolog.tracking.stores.file" in loaded
    searching = {m for m in loaded if m.startswith("autolog.tracking.search")}
    assert not searching, sorted(searching)
