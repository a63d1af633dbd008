"""Every input rule of the tracking API (issue 2 item 7), one table row each.

Each bad call must raise the typed error, name the offending key in the
message, and leave the store exactly as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

import autolog
from autolog.errors import InvalidParameterError, ParamOverwriteError

LONG_KEY = "k" * 251
ESCAPING_KEYS = ["../escape", "a/../../b", "/etc/passwd", "C:/windows", "a\\b", "nul\x00key"]
BAD_KEYS = ["", "   ", LONG_KEY, "tab\tkey", *ESCAPING_KEYS]


def _snapshot(run_id: str) -> tuple:
    """Everything a user can read back about a run."""
    client = autolog.Client()
    run = client.get_run(run_id)
    histories = {k: client.get_metric_history(run_id, k) for k in run.data.metrics}
    artifacts = [f.path for f in client.list_artifacts(run_id)]
    return run.data.params, run.data.metrics, run.data.tags, histories, artifacts


def _cases() -> list:
    cases = []
    for key in BAD_KEYS:
        expected = repr(key)[:40]
        cases += [
            pytest.param(
                lambda k=key: autolog.log_metric(k, 1.0), expected, id=f"metric-key-{key!r}"
            ),
            pytest.param(lambda k=key: autolog.log_param(k, 1), expected, id=f"param-key-{key!r}"),
            pytest.param(lambda k=key: autolog.set_tag(k, "v"), expected, id=f"tag-key-{key!r}"),
        ]
    cases += [
        pytest.param(lambda: autolog.log_metric(5, 1.0), "5", id="metric-key-not-str"),
        pytest.param(lambda: autolog.log_param("p", "x" * 6001), "'p'", id="param-value-6001"),
        pytest.param(lambda: autolog.set_tag("t", "x" * 8001), "'t'", id="tag-value-8001"),
        pytest.param(lambda: autolog.log_metric("m", "0.5"), "'m'", id="metric-value-str"),
        pytest.param(lambda: autolog.log_metric("m", None), "'m'", id="metric-value-none"),
        pytest.param(lambda: autolog.log_metric("m", 1 + 2j), "'m'", id="metric-value-complex"),
        pytest.param(
            lambda: autolog.log_metric("m", np.array([1.0, 2.0])), "'m'", id="metric-array"
        ),
        pytest.param(lambda: autolog.log_metric("m", 1.0, step=1.5), "'m'", id="step-float"),
        pytest.param(lambda: autolog.log_metric("m", 1.0, step="3"), "'m'", id="step-str"),
        pytest.param(lambda: autolog.log_metric("m", 1.0, timestamp=-1), "'m'", id="timestamp-neg"),
        pytest.param(
            lambda: autolog.log_metrics({"good": 1.0, "bad": "x"}),
            "'bad'",
            id="metrics-dict-one-bad",
        ),
        pytest.param(
            lambda: autolog.log_params({"fine": 1, "": 2}), "''", id="params-dict-one-bad-key"
        ),
        pytest.param(lambda: autolog.set_tags({"ok": 1, "../t": 2}), "../t", id="tags-dict-escape"),
        pytest.param(lambda: autolog.log_text("x", "../up.txt"), "../up.txt", id="log-text-escape"),
        pytest.param(
            lambda: autolog.log_dict({}, "/abs.json"), "/abs.json", id="log-dict-absolute"
        ),
        pytest.param(
            lambda: autolog.log_artifact(__file__, artifact_path="../out"),
            "../out",
            id="artifact-path",
        ),
        # what no store can hold (issue 20): int64 steps and timestamps, NUL, float overflow
        pytest.param(lambda: autolog.log_metric("m", 1.0, step=2**70), "'m'", id="step-2**70"),
        pytest.param(lambda: autolog.log_metric("m", 1.0, step=2**63), "'m'", id="step-2**63"),
        pytest.param(lambda: autolog.log_metric("m", 1.0, step=-(2**63) - 1), "'m'", id="step-low"),
        pytest.param(
            lambda: autolog.log_metric("m", 1.0, step=np.uint64(2**64 - 1)), "'m'", id="step-uint64"
        ),
        pytest.param(
            lambda: autolog.log_metrics({"m": 1.0}, step=2**70), "'m'", id="metrics-step-2**70"
        ),
        pytest.param(lambda: autolog.log_metric("m", 1.0, timestamp=2**63), "'m'", id="ts-2**63"),
        pytest.param(lambda: autolog.log_metric("m", 10**400), "'m'", id="metric-int-overflow"),
        pytest.param(lambda: autolog.log_param("p", "a\x00b"), "'p'", id="param-value-nul"),
        pytest.param(lambda: autolog.set_tag("t", "a\x00b"), "'t'", id="tag-value-nul"),
        pytest.param(lambda: autolog.log_dict({"a": 1}, "x.toml"), "x.toml", id="log-dict-toml"),
        pytest.param(lambda: autolog.log_dict({"a": 1}, "x.ini"), "x.ini", id="log-dict-ini"),
        pytest.param(
            lambda: autolog.Client().log_metric(
                autolog.active_run().info.run_id, "m", 1.0, step=2**70
            ),
            "'m'",
            id="client-step-2**70",
        ),
        pytest.param(
            lambda: autolog.Client().log_param(autolog.active_run().info.run_id, "p", "\x00"),
            "'p'",
            id="client-param-nul",
        ),
    ]
    return cases


@pytest.mark.parametrize(
    "bad_name",
    [
        lambda: autolog.set_experiment("exp\x00x"),
        lambda: autolog.create_experiment("exp\x00x"),
        lambda: autolog.start_run(run_name="run\x00x"),
        lambda: autolog.Client().create_experiment("exp\x00x"),
    ],
)
def test_names_with_a_nul_character_are_refused(bad_name):
    with pytest.raises(InvalidParameterError, match="NUL"):
        bad_name()
    assert [e.name for e in autolog.search_experiments()] == ["Default"]
    assert autolog.active_run() is None


@pytest.mark.parametrize(("bad_call", "named"), _cases())
def test_bad_input_raises_typed_error_and_leaves_store_unchanged(bad_call, named):
    with autolog.start_run() as run:
        autolog.log_param("kept", "1")
        autolog.log_metric("kept_metric", 0.5, step=1)
        before = _snapshot(run.info.run_id)
        with pytest.raises(InvalidParameterError) as raised:
            bad_call()
        assert named in str(raised.value)
        assert _snapshot(run.info.run_id) == before


def test_param_overwrite_names_key_and_both_values_and_keeps_first():
    with autolog.start_run() as run:
        autolog.log_param("learning_rate", 0.01)
        autolog.log_param("learning_rate", 0.01)  # same value again: a no-op
        with pytest.raises(ParamOverwriteError) as raised:
            autolog.log_param("learning_rate", 0.1)
        message = str(raised.value)
        assert "'learning_rate'" in message and "'0.01'" in message and "'0.1'" in message
        with pytest.raises(ParamOverwriteError):  # a dict with one changed value logs nothing
            autolog.log_params({"new_one": 1, "learning_rate": 0.5})
    assert autolog.get_run(run.info.run_id).data.params == {"learning_rate": "0.01"}


def test_param_overwrite_is_caught_for_a_resumed_run():
    with autolog.start_run() as run:
        autolog.log_param("depth", 3)
    with autolog.start_run(run_id=run.info.run_id), pytest.raises(ParamOverwriteError):
        autolog.log_param("depth", 4)


def test_accepted_numbers_are_stored_as_floats():
    import torch

    with autolog.start_run() as run:
        autolog.log_metric("np32", np.float32(0.5))
        autolog.log_metric("np_int", np.int64(3), step=np.int64(2))
        autolog.log_metric("zero_d", np.array(0.25))
        autolog.log_metric("tensor", torch.tensor(1.5))
        autolog.log_metric("nan", float("nan"))
        autolog.log_metric("inf", float("inf"))
        autolog.log_metric("boolean", True)
    metrics = autolog.get_run(run.info.run_id).data.metrics
    assert metrics["np32"] == 0.5 and metrics["np_int"] == 3.0 and metrics["zero_d"] == 0.25
    assert metrics["tensor"] == 1.5 and metrics["inf"] == float("inf") and metrics["boolean"] == 1.0
    assert metrics["nan"] != metrics["nan"]
    assert all(type(v) is float for v in metrics.values())
    history = autolog.Client().get_metric_history(run.info.run_id, "np_int")
    assert [m.step for m in history] == [2]


def test_limits_are_inclusive():
    with autolog.start_run() as run:
        autolog.log_param("p" * 250, "x" * 6000)
        autolog.set_tag("t", "y" * 8000)
        autolog.log_metric("a/b.c-d e:f", 1.0)  # folders, dots, spaces are fine in keys
    data = autolog.get_run(run.info.run_id).data
    assert data.params["p" * 250] == "x" * 6000 and data.tags["t"] == "y" * 8000
    assert "a/b.c-d e:f" in data.metrics


def test_client_log_batch_validates_everything_before_writing():
    client = autolog.Client()
    run = client.create_run("0")
    with pytest.raises(InvalidParameterError, match="'bad'"):
        client.log_batch(
            run.info.run_id,
            metrics=[autolog.Metric("ok", 1.0, 0, 0), autolog.Metric("bad", "x", 0, 0)],
        )
    assert client.get_run(run.info.run_id).data.metrics == {}
