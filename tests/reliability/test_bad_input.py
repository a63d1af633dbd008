"""Bad input, all of it (issue 17, item 4): hypothesis over the public API, on
every store.

Keys, values, steps, timestamps (NaN, infinities, huge and unicode strings,
wrong types), artifact paths, filter strings, run ids, experiment names and
URIs are drawn at random, valid and invalid mixed. Each call either works or
raises a subclass of :class:`AutologError` (nothing else: no TypeError,
KeyError, ...), and after a rejected call (flushed) the store is exactly as
before it (ARCHITECTURE.md rule 7: never a silent drop, a corrupted store).
"""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autolog
from autolog.errors import AutologError
from autolog.tracking.entities import ViewType
from tests.reliability.test_concurrency import store as store

EXAMPLES = int(os.environ.get("AUTOLOG_HYPOTHESIS_EXAMPLES", "40"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),
    st.sampled_from(["", " ", "a/b", "../x", "/abs", "a..b", "é€😀", "k\x00", "a b", "x" * 300]),
    st.builds(lambda n: "k" * n, st.integers(240, 6000)),
)
keys = st.one_of(texts, st.integers(), st.none(), st.floats(), st.binary(max_size=4))
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([math.nan, math.inf, -math.inf, True, 1e308, -0.0]),
)
values = st.one_of(
    numbers, texts, st.none(), st.lists(st.integers(), max_size=3), st.builds(object)
)
steps = st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70), numbers, texts)
timestamps = steps
paths = st.one_of(
    texts,
    st.sampled_from(["../escape.txt", "/etc/passwd", "a//b.txt", "dir/", ".", "..", "a\\b.txt"]),
)
filters = st.one_of(
    texts,
    st.lists(
        st.sampled_from(
            [
                "metrics.loss",
                "params.lr",
                "tags.`a b`",
                "attributes.status",
                "run_name",
                "=",
                "!=",
                "<",
                ">=",
                "LIKE",
                "ILIKE",
                "IN",
                "AND",
                "OR",
                "(",
                ")",
                "'x'",
                "'",
                '"',
                "0.5",
                "-1e999",
                "NaN",
                "datasets.name",
                "`",
                ",",
                "%",
                "NULL",
            ]
        ),
        max_size=8,
    ).map(" ".join),
)
uris = st.one_of(
    texts,
    st.tuples(
        st.sampled_from(
            [
                "",
                "file:",
                "file://",
                "sqlite://",
                "sqlite:///",
                "postgresql://",
                "http://",
                "https://",
                "s3://",
                "mlflow-artifacts:",
                "ftp://",
            ]
        ),
        texts,
    ).map("".join),
)

#: (name, strategy of a zero-argument call)
CALLS: dict[str, Any] = {
    "log_metric": st.builds(
        lambda k, v, s, t: lambda: autolog.log_metric(k, v, step=s, timestamp=t),
        keys,
        values,
        steps,
        timestamps,
    ),
    "log_metrics": st.builds(
        lambda d, s: lambda: autolog.log_metrics(d, step=s),
        st.dictionaries(texts, values, max_size=3),
        steps,
    ),
    "log_param": st.builds(lambda k, v: lambda: autolog.log_param(k, v), keys, values),
    "log_params": st.builds(
        lambda d: lambda: autolog.log_params(d), st.dictionaries(texts, values, max_size=3)
    ),
    "set_tag": st.builds(lambda k, v: lambda: autolog.set_tag(k, v), keys, values),
    "delete_tag": st.builds(lambda k: lambda: autolog.delete_tag(k), keys),
    "log_text": st.builds(lambda t, p: lambda: autolog.log_text(t, p), values, paths),
    "log_dict": st.builds(lambda d, p: lambda: autolog.log_dict(d, p), values, paths),
    "search_runs": st.builds(lambda f: lambda: autolog.search_runs(filter_string=f), filters),
    "get_run": st.builds(lambda r: lambda: autolog.get_run(r), st.one_of(texts, keys)),
    "start_run": st.builds(
        lambda r, n: lambda: autolog.start_run(run_id=r, run_name=n, nested=True),
        st.one_of(st.none(), texts),
        st.one_of(st.none(), texts, keys),
    ),
    "set_experiment": st.builds(lambda n: lambda: autolog.set_experiment(n), keys),
    "client_log_batch": st.builds(
        lambda r, k, v, s: lambda: autolog.Client().log_metric(r, k, v, step=s),
        st.one_of(texts, st.just("0" * 32)),
        keys,
        values,
        steps,
    ),
    "set_tracking_uri": st.builds(lambda u: lambda: autolog.set_tracking_uri(u), uris),
}


def snapshot(client: Any, experiment_id: str) -> Any:
    """Everything a user could read of the test's experiment."""
    runs = client.search_runs([experiment_id], run_view_type=ViewType.ALL, max_results=1000)
    state = []
    for run in sorted(runs, key=lambda r: r.info.run_id):
        info, data = run.info, run.data
        histories = {
            key: [
                (m.step, m.timestamp, repr(m.value))
                for m in client.get_metric_history(info.run_id, key)
            ]
            for key in sorted(data.metrics)
        }
        artifacts = sorted(f.path for f in client.list_artifacts(info.run_id))
        state.append(
            (
                info.run_id,
                info.status,
                info.run_name,
                info.end_time,
                info.lifecycle_stage,
                sorted(data.params.items()),
                sorted(data.tags.items()),
                histories,
                artifacts,
            )
        )
    experiments = sorted(
        (e.experiment_id, e.name, e.lifecycle_stage) for e in client.search_experiments()
    )
    return experiments, state


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_input_is_a_typed_error_that_changes_nothing(name, store):
    _kind, uri, experiment = store
    client = autolog.Client(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    outer = autolog.start_run(run_name="the user's run")
    autolog.log_param("fixed", "1")  # a param to overwrite
    autolog.set_tag("present", "yes")
    autolog.flush()
    seen = {"rejected": 0, "accepted": 0}

    @SETTINGS
    @given(call=CALLS[name])
    def check(call):
        before = snapshot(client, experiment_id)
        try:
            call()
            autolog.flush()
        except AutologError:
            seen["rejected"] += 1
            assert snapshot(client, experiment_id) == before
        else:
            seen["accepted"] += 1
        finally:
            # back to the test's store, experiment and run (a call may change them)
            while autolog.active_run() is not None and autolog.active_run().info.run_id != (
                outer.info.run_id
            ):
                autolog.end_run()
            autolog.set_tracking_uri(uri)
            autolog.set_experiment(experiment)

    try:
        check()
    finally:
        autolog.end_run()
    assert seen["rejected"] + seen["accepted"] > 0
