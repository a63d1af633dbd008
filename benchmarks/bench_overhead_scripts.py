"""Issue 16 item 4: what autolog costs a whole short script, as a process.

Each script below is an ordinary training script of the kind people run (a few
seconds on a quiet machine): load or make data, train, evaluate. It runs as a
fresh process under ``python _runner.py <script> off`` (nothing added) and
``python _runner.py <script> on`` (``import autolog; autolog.autolog()`` first),
the two arms alternating, in a fresh working directory each time (so each
process writes its own ``./mlruns``). The autolog arm therefore pays for
everything a user pays: ``import autolog``, ``autolog()``, the first logged
fit's lazy imports (the tracking machinery, cloudpickle, the signature code),
per-fit logging, and the drain of the writer at interpreter exit. Our modules
are compiled to bytecode first, as an installed package is: the compiler is
not what a user pays.

Rows: each script, bare vs autolog (median wall time of the process); and the
median of the scripts' added percentages (goal <= 2 %), with the startup cost
alone (``python -c "import autolog; autolog.autolog()"`` vs ``python -c pass``).

``AUTOLOG_BENCH_SCRIPT_INSTRUCTIONS=1`` adds, per script, the instructions the
autolog process executes beyond the bare one, and their median over the
scripts: a count that the machine's load does not move, where the wall-time
rows swing by a couple of points between runs. Both arms run under
valgrind's cachegrind (every thread) with ``PYTHONHASHSEED=0`` and one
OpenMP/BLAS thread, whose spin-waits valgrind would otherwise count. A script
runs some 30 times slower there, so the writer's drains during a training
call (one per second of wall time) are spaced ``VALGRIND_SLOWDOWN`` times
further apart, as many as a real run makes. Slow: 4 to 15 minutes a script.

``--quick`` / ``AUTOLOG_BENCH_QUICK=1``: one round, three scripts. Run alone:
``.venv/bin/python benchmarks/bench_overhead_scripts.py [--quick] [filter ...]``.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _callgrind import SLOWDOWN as VALGRIND_SLOWDOWN
from _callgrind import VALGRIND_ENV

QUICK = os.environ.get("AUTOLOG_BENCH_QUICK", "") not in ("", "0") or "--quick" in sys.argv
ROUNDS = int(os.environ.get("AUTOLOG_BENCH_SCRIPT_ROUNDS", "1" if QUICK else "3"))
INSTRUCTIONS = os.environ.get("AUTOLOG_BENCH_SCRIPT_INSTRUCTIONS", "") not in ("", "0")

RUNNER = """
import os, runpy, sys
script, arm = sys.argv[1], sys.argv[2]
if arm == "on":
    import autolog
    autolog.autolog()
    if os.environ.get("BENCH_UNDER_VALGRIND"):
        from autolog.tracking import writer
        writer.TRAINING_INTERVAL *= float(os.environ["BENCH_UNDER_VALGRIND"])
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""

SCRIPTS = {
    "sklearn random forest (digits)": """
        from sklearn.datasets import load_digits
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.metrics import accuracy_score
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
        model = RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1)
        model.fit(X_train, y_train)
        print("accuracy", accuracy_score(y_test, model.predict(X_test)))
    """,
    "sklearn pipeline + grid search": """
        from sklearn.datasets import make_classification
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = make_classification(n_samples=20000, n_features=40, random_state=0)
        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        search = GridSearchCV(pipe, {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}, cv=3)
        search.fit(X, y)
        print("best", search.best_params_, search.best_score_)
    """,
    "xgboost train 300 rounds + eval": """
        import xgboost as xgb
        from sklearn.datasets import make_classification
        from sklearn.model_selection import train_test_split

        X, y = make_classification(n_samples=20000, n_features=30, random_state=0)
        X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
        dtrain, dtest = xgb.DMatrix(X_train, y_train), xgb.DMatrix(X_test, y_test)
        params = {"objective": "binary:logistic", "max_depth": 6, "nthread": 1}
        booster = xgb.train(params, dtrain, 300, evals=[(dtest, "test")], verbose_eval=False)
        print("done", booster.num_boosted_rounds())
    """,
    "lightgbm LGBMClassifier 300 rounds + eval": """
        import lightgbm as lgb
        from sklearn.datasets import make_classification
        from sklearn.model_selection import train_test_split

        X, y = make_classification(n_samples=20000, n_features=30, random_state=0)
        X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
        model = lgb.LGBMClassifier(n_estimators=300, n_jobs=1, verbose=-1)
        model.fit(X_train, y_train, eval_set=[(X_test, y_test)])
        print("score", model.score(X_test, y_test))
    """,
    "keras MLP 5 epochs + validation": """
        import os
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import numpy as np

        rng = np.random.default_rng(0)
        X = rng.normal(size=(20000, 32)).astype("float32")
        y = (X[:, :4].sum(axis=1) > 0).astype("float32")
        model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        model.fit(X, y, epochs=5, batch_size=64, validation_split=0.2, verbose=0)
        print("done")
    """,
    "lightning 4 epochs + validation": """
        import warnings
        warnings.filterwarnings("ignore")
        import lightning.pytorch as pl
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        class Net(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(),
                                               torch.nn.Linear(64, 1))
            def training_step(self, batch, i):
                x, y = batch
                loss = torch.nn.functional.mse_loss(self.net(x), y)
                self.log("train_loss", loss)
                return loss
            def validation_step(self, batch, i):
                x, y = batch
                self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))
            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=1e-3)

        torch.manual_seed(0)
        X = torch.randn(20000, 32)
        data = TensorDataset(X, X[:, :4].sum(dim=1, keepdim=True))
        train, val = torch.utils.data.random_split(data, [16000, 4000])
        trainer = pl.Trainer(max_epochs=4, logger=False, enable_progress_bar=False,
                             enable_checkpointing=False, enable_model_summary=False)
        trainer.fit(Net(), DataLoader(train, batch_size=64), DataLoader(val, batch_size=256))
        print("done")
    """,
    "torch loop 5 epochs": """
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        torch.manual_seed(0)
        X = torch.randn(20000, 32)
        loader = DataLoader(TensorDataset(X, X[:, :4].sum(dim=1, keepdim=True)), batch_size=64,
                            shuffle=True)
        model = torch.nn.Sequential(
            torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(5):
            for x, y in loader:
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
        print("done", float(loss))
    """,
}
QUICK_SCRIPTS = (
    "sklearn random forest (digits)",
    "xgboost train 300 rounds + eval",
    "torch loop 5 epochs",
)


def _process_seconds(args: list[str], cwd: str) -> float:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("AUTOLOG_TRACKING_URI", None)  # each process writes its own ./mlruns
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{done.stderr[-2000:]}")
    return elapsed


def _process_instructions(args: list[str], cwd: str) -> int:
    """Instructions the process executes, every thread (cachegrind's ``I refs``)."""
    env = {**os.environ, **VALGRIND_ENV, "BENCH_UNDER_VALGRIND": str(VALGRIND_SLOWDOWN)}
    env.pop("AUTOLOG_TRACKING_URI", None)
    valgrind = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
    ]
    done = subprocess.run(valgrind + args, cwd=cwd, env=env, capture_output=True, text=True)
    match = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"{args} under valgrind failed:\n{done.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def _compile_autolog() -> None:
    """Bytecode for the autolog that the scripts import, as ``pip install`` leaves
    it. Without it (``PYTHONDONTWRITEBYTECODE`` set, or a module edited since
    it was last compiled) every autolog process compiled our modules again:
    45-100 ms per script that no installed user pays. ``run.py`` compiles too,
    but not for ``--one``."""
    import compileall
    import importlib.util

    for name in ("autolog", "autolog.integrations"):
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(folder, quiet=1)


def run(h) -> None:
    python = sys.executable
    _compile_autolog()
    root = Path(tempfile.mkdtemp(prefix="bench-scripts-"))
    runner = root / "_runner.py"
    runner.write_text(RUNNER)
    names = QUICK_SCRIPTS if QUICK else tuple(SCRIPTS)
    added: list[float] = []
    added_instructions: list[float] = []
    load_before = os.getloadavg()[0]
    for name in names:
        row = f"whole process: {name}"
        if not h.wanted(row):
            continue
        script = root / f"script_{len(added)}_{abs(hash(name)) % 10**6}.py"
        script.write_text(textwrap.dedent(SCRIPTS[name]))
        bare, logged = [], []
        for number in range(ROUNDS):
            for arm, out in (("off", bare), ("on", logged)):
                cwd = root / f"{script.stem}-{arm}-{number}"
                cwd.mkdir()
                out.append(_process_seconds([python, str(runner), str(script), arm], str(cwd)))
        b, o = statistics.median(bare), statistics.median(logged)
        added.append((o - b) / b * 100)
        h.row(
            row,
            o,
            "s",
            goal="<= +2%",
            peer=f"bare {b:.2f} s; x{o / b:.3f} ({(o - b) / b * 100:+.1f} %)",
            notes=f"median of {ROUNDS} process runs per arm, alternating",
        )
        h.rows[-1].base = b
        if INSTRUCTIONS:
            counts = {}
            for arm in ("off", "on"):
                cwd = root / f"{script.stem}-{arm}-valgrind"
                cwd.mkdir()
                args = [python, str(runner), str(script), arm]
                counts[arm] = _process_instructions(args, str(cwd))
            extra = counts["on"] - counts["off"]
            share = extra / counts["off"] * 100
            print(f"{name}: {counts} ({share:+.2f} %)", file=sys.stderr, flush=True)  # slow rows
            added_instructions.append(share)
            h.row(
                f"whole process instructions: {name}",
                share,
                "%",
                peer=f"bare {counts['off'] / 1e9:.2f} G, autolog {extra / 1e6:+,.0f} M",
                notes="cachegrind, every thread, one run per arm",
            )
    if added_instructions:
        h.row(
            "whole process instructions: median added over the scripts",
            statistics.median(added_instructions),
            "%",
            goal="<= 2 %",
            peer="each: " + ", ".join(f"{a:+.2f} %" for a in added_instructions),
            notes="the same scripts' instruction counts; the load does not move them",
        )
    if added:
        h.row(
            "whole process: median added over the scripts",
            statistics.median(added),
            "%",
            goal="<= 2 %",
            peer=f"{len(added)} scripts; each: " + ", ".join(f"{a:+.1f} %" for a in added),
            notes=f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        )
    if h.wanted("whole process: startup (import autolog + autolog())"):
        cwd = str(root)
        bare = [_process_seconds([python, "-c", "pass"], cwd) for _ in range(5)]
        logged = [
            _process_seconds([python, "-c", "import autolog; autolog.autolog()"], cwd)
            for _ in range(5)
        ]
        b, o = statistics.median(bare) * 1e3, statistics.median(logged) * 1e3
        h.row(
            "whole process: startup (import autolog + autolog())",
            o - b,
            "ms",
            peer=f"python -c pass {b:.0f} ms",
            notes="no framework imported: the cost every script pays first",
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from run import Harness, table

    harness = Harness([a for a in sys.argv[1:] if not a.startswith("--")])
    harness.module = "overhead_scripts"
    try:
        run(harness)
    finally:
        print(table(harness.rows))
