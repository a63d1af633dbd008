"""The SIGKILL column of the matrix: a process killed mid-fit, once per store.

Run as ``python -m tests.reliability.kill_worker WORKLOAD CELLS.json``. The
worker imports the framework once, then forks one child per store (so a
cell costs a fit, not an interpreter and a framework import). Each child
enables autolog, trains, and mid-fit flushes, writes down what it had
accepted (the ledger, as JSON) and kills itself with SIGKILL. The worker
prints one JSON line per cell: its store and how the child ended.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _child(workload: str, cell: dict) -> None:
    import pytest

    import autolog
    from tests.reliability.ledger import Ledger
    from tests.reliability.workloads import WORKLOADS, Hooks, enable

    os.environ["AUTOLOG_ARTIFACT_ROOT"] = cell["artifact_root"]
    os.environ["AUTOLOG_SPOOL_DIR"] = cell["spool_dir"]
    autolog.set_tracking_uri(cell["uri"])
    autolog.set_experiment(cell["experiment"])
    ledger = Ledger().install(pytest.MonkeyPatch())
    enable(workload)

    def die() -> None:
        autolog.flush()  # everything accepted so far is in the store
        with open(cell["ledger"], "w") as out:
            json.dump(
                {
                    "runs": ledger.runs,
                    "metrics": ledger.metrics,
                    "params": ledger.params,
                    "tags": ledger.tags,
                },
                out,
            )
        os.kill(os.getpid(), signal.SIGKILL)

    WORKLOADS[workload][1](Hooks(die))
    os._exit(3)  # the hook was never called


def main(workload: str, cells_file: str) -> None:
    from tests.reliability.workloads import WORKLOADS

    framework = WORKLOADS[workload][0]
    modules = {
        "sklearn": "sklearn.linear_model",
        "xgboost": "xgboost",
        "lightgbm": "lightgbm",
        "keras": "keras",
        "lightning": "lightning.pytorch",
        "torch": "torch",
        "toyml": "autolog",
    }
    __import__(modules[framework])  # once, before the forks
    import autolog  # noqa: F401

    with open(cells_file) as f:
        cells = json.load(f)
    for cell in cells:
        pid = os.fork()
        if pid == 0:
            try:
                _child(workload, cell)
            except BaseException as error:  # the child must never return into the loop
                print(f"child failed: {error!r}", file=sys.stderr, flush=True)
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        print(json.dumps({"store": cell["store"], "killed": killed, "status": status}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
