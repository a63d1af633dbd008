"""Which process of a distributed training logs: ``plugin.process_rank`` read from
what the launchers set, and the run-opening policy giving the others no run."""

from __future__ import annotations

import json

import pytest

import autolog
from autolog import _runs, plugin

LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "TF_CONFIG")


def _tf_config(kind: str, index: int, chief: bool = False) -> str:
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    if chief:
        cluster["chief"] = ["localhost:0"]
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        ({}, 0),
        ({"RANK": "0", "LOCAL_RANK": "0"}, 0),  # torchrun, accelerate launch
        ({"RANK": "3", "LOCAL_RANK": "1"}, 3),
        ({"RANK": "0", "LOCAL_RANK": "1"}, 0),  # the global rank wins
        ({"LOCAL_RANK": "1"}, 1),  # Lightning's own launcher: no RANK
        ({"LOCAL_RANK": "0", "NODE_RANK": "2"}, 1),  # local 0 of another node: not 0
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, 0),
        ({"RANK": ""}, 0),  # set but empty, or garbage: no distributed training
        ({"RANK": "x"}, 0),
        ({"TF_CONFIG": _tf_config("worker", 0)}, 0),  # MultiWorkerMirroredStrategy
        ({"TF_CONFIG": _tf_config("worker", 1)}, 1),
        ({"TF_CONFIG": _tf_config("chief", 0, chief=True)}, 0),
        ({"TF_CONFIG": _tf_config("worker", 0, chief=True)}, 1),  # the chief is rank 0
        ({"TF_CONFIG": _tf_config("evaluator", 0)}, 1),
        ({"TF_CONFIG": "{not json"}, 0),
    ],
)
def test_rank_from_the_launchers_environment(monkeypatch, env, rank):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _runs._reset_for_tests()  # the launcher's variables are read once per process
    assert plugin.process_rank() == rank
    assert plugin.is_main_process() is (rank == 0)


def test_a_process_that_is_not_rank_0_opens_no_run(monkeypatch):
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    autolog.autolog("sklearn")
    X, y = [[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0]
    monkeypatch.setenv("RANK", "1")
    _runs._reset_for_tests()
    model = sklearn_linear.LinearRegression().fit(X, y)  # trains exactly as without autolog
    assert model.coef_[0] == pytest.approx(1.0)
    assert autolog.Client().search_runs(["0"]) == []
    monkeypatch.setenv("RANK", "0")
    _runs._reset_for_tests()
    sklearn_linear.LinearRegression().fit(X, y)
    assert len(autolog.Client().search_runs(["0"])) == 1


def test_the_environment_is_read_once_per_process(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    _runs._reset_for_tests()
    assert plugin.process_rank() == 0
    monkeypatch.setenv("RANK", "1")  # launchers set it before the process starts
    assert plugin.process_rank() == 0


def test_a_plain_loop_run_is_asked_for_only_on_rank_0(monkeypatch):
    integration = type("Probe", (plugin.Integration,), {"name": "probe", "modules": ()})()
    monkeypatch.setenv("RANK", "2")
    _runs._reset_for_tests()
    assert plugin.training_run(integration) == (None, False)
    assert autolog.active_run() is None
