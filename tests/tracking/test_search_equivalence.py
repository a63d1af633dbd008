"""Every store answers every search alike: a property test over generated runs,
filters and orders.

Hypothesis builds a handful of runs (params, metric histories with NaN and
infinities, tags, missing keys, tied start times) and logs them into the file,
SQLite and PostgreSQL stores; then it builds filters and ``order_by`` lists
from the same small vocabulary, so that they do select and tie. Each store's
pages, read to the end, must list the same runs in the same order as the
Python evaluator (``autolog.tracking.search.search``) over the runs themselves.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolog.tracking.entities import Metric, Param, Run, RunTag
from autolog.tracking.search import search
from tests.tracking.conftest import STORE_FACTORIES

KEYS = ["a", "b", "c"]
# ASCII of both cases, LIKE's and GLOB's wildcards, a backslash, and accents whose
# lower case PostgreSQL's lower() and str.lower agree on
ALPHABET = "aAbB%_*?[\\ éÉ'"
NUMBERS = [-math.inf, -1.0, 0.0, 0.5, 1.0, 2.5, math.inf]
STRINGS = st.text(ALPHABET, max_size=4)
STATUSES = ["RUNNING", "FINISHED", "FAILED"]
_run_ids = (f"{i:032x}" for i in itertools.count(1))
_experiment_names = (f"equivalence-{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    made = {name: make(tmp_path_factory.mktemp(name)) for name, make in STORE_FACTORIES.items()}
    yield made
    for store in made.values():
        store.close()


metric_points = st.lists(
    st.tuples(
        st.sampled_from(KEYS),
        st.sampled_from([*NUMBERS, math.nan]),
        st.integers(0, 2),  # step
        st.integers(0, 2),  # timestamp: ties, so the logging order decides
    ),
    max_size=5,
)
run_specs = st.lists(
    st.fixed_dictionaries(
        {
            "start_time": st.integers(0, 3),
            "end_time": st.one_of(st.none(), st.integers(0, 5)),
            "status": st.sampled_from(STATUSES),
            "run_name": STRINGS,
            "params": st.dictionaries(st.sampled_from(KEYS), STRINGS, max_size=3),
            "tags": st.dictionaries(st.sampled_from(KEYS), STRINGS, max_size=3),
            "metrics": metric_points,
        }
    ),
    max_size=7,
)


def _quote(text: str) -> str:
    """A string literal whose value is ``text`` (a LIKE pattern keeps its backslashes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


numeric_comparisons = st.builds(
    lambda key, op, number: f"{key} {op} {number!r}",
    st.one_of(
        st.sampled_from(KEYS).map("metrics.{}".format),
        st.sampled_from(["start_time", "end_time"]),
    ),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.5, 3.0]),
)
string_keys = st.one_of(
    st.sampled_from(KEYS).map("params.{}".format),
    st.sampled_from(KEYS).map("tags.{}".format),
    st.just("run_name"),
)
string_comparisons = st.one_of(
    st.builds(
        lambda k, op, v: f"{k} {op} {_quote(v)}", string_keys, st.sampled_from(["=", "!="]), STRINGS
    ),
    st.builds(
        lambda k, op, v: f"{k} {op} {_quote(v)}",
        string_keys,
        st.sampled_from(["LIKE", "ILIKE"]),
        STRINGS,
    ),
    st.builds(
        lambda k, op, vs: f"{k} {op} ({', '.join(map(_quote, vs))})",
        string_keys,
        st.sampled_from(["IN", "NOT IN"]),
        st.lists(STRINGS, min_size=1, max_size=3),
    ),
    st.builds(lambda s: f"status = '{s}'", st.sampled_from(STATUSES)),
)
presence = st.builds(
    lambda k, op: f"{k} {op}",
    st.one_of(st.sampled_from(KEYS).map("metrics.{}".format), string_keys, st.just("end_time")),
    st.sampled_from(["IS NULL", "IS NOT NULL"]),
)
filters = st.recursive(
    st.one_of(numeric_comparisons, string_comparisons, presence),
    lambda inner: st.one_of(
        st.builds(
            lambda a, op, b: f"({a}) {op} ({b})", inner, st.sampled_from(["AND", "OR"]), inner
        ),
        inner.map("NOT ({})".format),
    ),
    max_leaves=5,
)
order_keys = st.lists(
    st.builds(
        lambda key, direction: f"{key} {direction}".strip(),
        st.one_of(
            st.sampled_from(KEYS).map("metrics.{}".format),
            st.sampled_from(KEYS).map("params.{}".format),
            st.sampled_from(KEYS).map("tags.{}".format),
            st.sampled_from(["start_time", "end_time", "run_name", "status"]),
        ),
        st.sampled_from(["", "ASC", "DESC"]),
    ),
    max_size=3,
)


def _log(store, experiment_id: str, run_id: str, spec: dict) -> None:
    store.create_run(
        experiment_id, "u", spec["start_time"], run_name=spec["run_name"], run_id=run_id
    )
    store.log_batch(
        run_id,
        metrics=[Metric(k, v, timestamp=t, step=s) for k, v, s, t in spec["metrics"]],
        params=[Param(k, v) for k, v in spec["params"].items()],
        tags=[RunTag(k, v) for k, v in spec["tags"].items()],
    )
    store.update_run_info(run_id, status=spec["status"], end_time=spec["end_time"])


def _all_pages(store, experiment_id: str, filter_string: str, order_by: list[str], size: int):
    ids, token = [], None
    while True:
        page = store.search_runs(
            [experiment_id], filter_string, max_results=size, order_by=order_by, page_token=token
        )
        ids += [run.info.run_id for run in page]
        token = page.token
        if token is None:
            return ids


def _comparable(run: Run) -> tuple:
    """A run's data with NaN made equal to itself."""
    metrics = {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items()}
    return run.info, run.data.params, metrics, run.data.tags


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=run_specs,
    filter_parts=st.lists(filters, min_size=1, max_size=4),
    orders=order_keys,
    size=st.integers(1, 4),
)
def test_every_store_returns_the_same_runs_in_the_same_order(
    stores, specs, filter_parts, orders, size
):
    name = next(_experiment_names)
    run_ids = [next(_run_ids) for _ in specs]
    experiment_ids = {}
    for store_name, store in stores.items():
        experiment_ids[store_name] = store.create_experiment(name)
        for run_id, spec in zip(run_ids, specs):
            _log(store, experiment_ids[store_name], run_id, spec)
    # what each store read back is the same run, up to its experiment and artifact folder
    reference = {}
    for store_name, store in stores.items():
        for run_id in run_ids:
            run = store.get_run(run_id)
            run.info.experiment_id = run.info.artifact_uri = ""
            reference.setdefault(run_id, _comparable(run))
            assert _comparable(run) == reference[run_id], store_name
    runs = [stores["file"].get_run(run_id) for run_id in run_ids]
    for filter_string in ["", *filter_parts]:
        expected = [r.info.run_id for r in search(runs, filter_string, orders, max_results=50_000)]
        for store_name, store in stores.items():
            found = _all_pages(store, experiment_ids[store_name], filter_string, orders, size)
            assert found == expected, (store_name, filter_string, orders)
