"""The fault matrix (issue 17): every fault x every integration x every store it
applies to, one generated test per cell (the checks: tests/reliability/cells.py).

The SIGKILL column needs a process to kill: tests/reliability/test_kill_matrix.py.
"""

from __future__ import annotations

import pytest

from tests.reliability.cells import FAULTS, STORES, run_cell
from tests.reliability.workloads import WORKLOADS

CELLS = [
    pytest.param(workload, store, fault, id=f"{fault}-{store}-{workload}")
    for fault, (applies, _why) in FAULTS.items()
    for store in STORES
    if store in applies
    for workload in WORKLOADS
]


@pytest.mark.parametrize(("workload", "store", "fault"), CELLS)
def test_cell(workload, store, fault, tmp_path, monkeypatch, cell_env):
    result = run_cell(workload, store, fault, tmp_path, monkeypatch, cell_env)
    assert not result.problems, "\n".join(result.problems[:20])
    assert result.read_back == result.written
