"""The search language: parsing, evaluation, ordering, pages, and bad input.

Filters are checked against a handful of hand-built runs, so each table row
says exactly which runs a filter selects.
"""

from __future__ import annotations

import base64
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolog.errors import InvalidFilterError, InvalidParameterError
from autolog.tracking import search as search_module
from autolog.tracking.entities import Experiment, Run, RunData, RunInfo
from autolog.tracking.search import (
    And,
    Comparison,
    Not,
    Or,
    OrderKey,
    decode_page_token,
    matches,
    parse_filter,
    parse_order_by,
    search,
    search_experiments,
)


def make_run(
    run_id, *, status="FINISHED", start=1000, end=-1, name="", metrics=None, params=None, tags=None
) -> Run:
    info = RunInfo(
        run_id=run_id,
        experiment_id="0",
        run_name=name or run_id,
        user_id="ana",
        status=status,
        start_time=start,
        end_time=start + 50 if end == -1 else end,
        artifact_uri=f"file:///tmp/mlruns/0/{run_id}/artifacts",
    )
    return Run(info, RunData(params=params or {}, metrics=metrics or {}, tags=tags or {}))


RUNS = [
    make_run(
        "a",
        name="rf_v1",
        start=100,
        metrics={"acc": 0.9, "loss": 0.3},
        params={"model": "rf", "depth": "10"},
        tags={"team": "Alpha", "mlflow.source.name": "train.py"},
    ),
    make_run(
        "b",
        name="rf_v2",
        start=200,
        metrics={"acc": 0.95, "my key": 2.0},
        params={"model": "rf", "depth": "20"},
        tags={"team": "beta"},
    ),
    make_run(
        "c",
        name="xgb",
        start=300,
        status="FAILED",
        metrics={"acc": 0.5, "loss": -1e-3},
        params={"model": "xgb"},
        tags={"team": "alpha", "note": "it's 50%"},
    ),
    make_run(
        "d",
        name="running",
        start=400,
        status="RUNNING",
        end=None,
        metrics={"acc": math.nan, "train/loss": 1.5},
        params={"lr": "0.1"},
    ),
    make_run("e", name="empty", start=300, end=1000),
]


def selected(filter_string: str) -> list[str]:
    node = parse_filter(filter_string)
    return sorted(run.info.run_id for run in RUNS if matches(node, run))


VALID_FILTERS = [
    ("", "abcde"),
    ("metrics.acc > 0.9", "b"),
    ("metrics.acc >= 0.9", "ab"),
    ("metrics.acc < 0.9", "c"),
    ("metrics.acc <= 0.5", "c"),
    ("metrics.acc = 0.95", "b"),
    ("metrics.acc != 0.95", "ac"),  # NaN (d) and missing (e) are False
    ("metric.loss < 0", "c"),
    ("metrics.loss > -1E-2", "ac"),
    ("metrics.`my key` = 2", "b"),
    ('metrics."my key" = 2.0', "b"),
    ("metrics.train/loss > 1", "d"),
    ("params.model = 'rf'", "ab"),
    ('params.model = "rf"', "ab"),
    ("param.model != 'rf'", "c"),
    ("parameters.depth IN ('10', '30')", "a"),
    ("params.model NOT IN ('rf')", "c"),
    ("params.model LIKE 'r%'", "ab"),
    ("params.model LIKE 'x_b'", "c"),
    ("params.model LIKE 'R%'", ""),
    ("params.model ILIKE 'R%'", "ab"),
    ("tags.team = 'alpha'", "c"),
    ("tags.team ILIKE 'alpha'", "ac"),
    ("tag.team like '%a'", "abc"),
    ("tags.`mlflow.source.name` = 'train.py'", "a"),
    ("tags.note = 'it''s 50%'", "c"),
    ("tags.note = 'it\\'s 50%'", "c"),
    ('tags.note = "it\'s 50%"', "c"),
    ("tags.note LIKE '%50%'", "c"),
    ("tags.team IS NULL", "de"),
    ("tags.team IS NOT NULL", "abc"),
    ("metrics.acc IS NOT NULL", "abcd"),  # NaN is a present value
    ("status = 'FAILED'", "c"),
    ("attributes.status IN ('RUNNING', 'FAILED')", "cd"),
    ("attribute.status != 'FINISHED'", "cd"),
    ("attr.status LIKE 'F%'", "abce"),
    ("run_name = 'xgb'", "c"),
    ("run.run_name ILIKE 'RF%'", "ab"),
    ("run_id IN ('a', 'e')", "ae"),
    ("start_time >= 300", "cde"),
    ("attributes.created < 300", "ab"),
    ("end_time IS NULL", "d"),
    ("end_time > 0", "abce"),
    ("user_id = 'ana'", "abcde"),
    ("artifact_uri LIKE '%/c/artifacts'", "c"),
    ("lifecycle_stage = 'active'", "abcde"),
    # boolean structure and precedence: NOT > AND > OR
    ("params.model = 'xgb' OR metrics.acc > 0.92", "bc"),
    ("params.model = 'rf' AND metrics.acc > 0.92 OR status = 'RUNNING'", "bd"),
    ("params.model = 'rf' AND (metrics.acc > 0.92 OR status = 'RUNNING')", "b"),
    ("status = 'RUNNING' OR params.model = 'rf' AND metrics.acc > 0.92", "bd"),
    ("NOT metrics.acc > 0.9", "acde"),  # two-valued: missing/NaN give True under NOT
    ("NOT NOT metrics.acc > 0.9", "b"),
    ("not (params.model = 'rf' or tags.team is null)", "c"),
    ("NOT params.model = 'rf' AND NOT status = 'RUNNING'", "ce"),
    ("((metrics.acc > 0.9))", "b"),
    ("metrics.acc>0.9 and params.model='rf'", "b"),
    ("  metrics.acc   >   0.9  ", "b"),
    ("METRICS.acc > 0.9 AnD Params.model = 'rf'", "b"),
]


@pytest.mark.parametrize(("filter_string", "expected"), VALID_FILTERS)
def test_valid_filter_selects_the_expected_runs(filter_string, expected):
    assert "".join(selected(filter_string)) == expected


def test_parse_builds_the_documented_tree():
    node = parse_filter("metrics.acc > 0.9 AND (params.m = 'rf' OR NOT tags.t IN ('a', 'b'))")
    assert node == And(
        (
            Comparison("metric", "acc", ">", 0.9),
            Or(
                (
                    Comparison("param", "m", "=", "rf"),
                    Not(Comparison("tag", "t", "IN", ("a", "b"))),
                )
            ),
        )
    )
    # chains flatten whatever the parentheses
    flat = parse_filter("(run_id = 'a' OR run_id = 'b') OR run_id = 'c'")
    assert isinstance(flat, Or) and len(flat.items) == 3


def test_empty_filter_is_none_and_trees_are_cached():
    assert parse_filter(None) is None
    assert parse_filter("   ") is None
    text = "metrics.cached_key > 1"
    assert parse_filter(text) is parse_filter(text)


MALFORMED_FILTERS = [
    # (filter, position, text the message must contain)
    ("params.model = 0.5", 15, "expected a string literal after 'params.model =', got 0.5"),
    ("metrics.acc = 'high'", 14, "expected a number after 'metrics.acc =', got 'high'"),
    ("metrics.acc LIKE 'a%'", 12, "for the metric 'acc'"),
    ("params.depth > '3'", 13, "for the string key 'depth'"),
    ("start_time = 'yesterday'", 13, "expected a number after 'start_time ='"),
    ("run_name > 'a'", 9, "for the string key 'run_name'"),
    ("status = 'finished'", 9, "expected a run status"),
    ("status IN ('FINISHED', 'done')", 23, "got 'done'"),
    ("params.x = '1' OR 1=1 --", 18, "got 1"),
    ("params.x = 'abc", 11, "a closing ' for the string after 'params.x ='"),
    ('params.x = "abc', 11, 'a closing " for the string'),
    ("tags.`abc = 'x'", 5, "a closing ` for the key"),
    ("foo.bar = 1", 0, "got 'foo.bar'"),
    ("metricz.acc > 1", 0, "a key prefix (metrics., params., tags., attributes.)"),
    ("attributes.colour = 'red'", 0, "an attribute (start_time"),
    ("bogus = 1", 0, "got 'bogus'"),
    ("metrics. = 1", 8, "a key name"),
    ("metrics.acc 0.5", 12, "expected a comparison operator after 'metrics.acc'"),
    ("metrics.acc == 0.5", 13, "a number"),
    ("metrics.acc >", 13, "got end of input"),
    ("metrics.acc > 1 metrics.b > 2", 16, "AND, OR or the end of the filter"),
    ("metrics.acc > 1 AND", 19, "got end of input"),
    ("AND metrics.acc > 1", 0, "got 'AND'"),
    ("(metrics.acc > 1", 16, "AND, OR or ')'"),
    ("metrics.acc > 1)", 15, "got ')'"),
    ("params.a IN ()", 13, "a string literal after 'params.a IN'"),
    ("params.a IN ('x',)", 17, "a string literal"),
    ("params.a IN 'x'", 12, "'(' starting a list"),
    ("params.a IN ('x' 'y')", 17, "',' or ')' in the list"),
    ("params.a NOT LIKE 'x'", 13, "IN after NOT"),
    ("params.a IS NOTNULL", 12, "expected NULL after 'params.a IS'"),
    ("metrics.acc > 1abc", 14, "a number"),
    ("metrics.acc > 0x10", 14, "a number"),
    ("1 = 1", 0, "got 1"),
    ("'a' = params.x", 0, "got 'a'"),
    ("params.x = 'a'; DROP TABLE runs", 14, "got ';'"),
    ("params.x = 'a' -- comment", 15, "got '--'"),
]


@pytest.mark.parametrize(("filter_string", "position", "message_part"), MALFORMED_FILTERS)
def test_malformed_filter_raises_typed_error(filter_string, position, message_part):
    with pytest.raises(InvalidFilterError) as info:
        parse_filter(filter_string)
    error = info.value
    assert isinstance(error, ValueError)  # callers that do not know us still catch it
    assert error.position == position, str(error)
    assert error.text == filter_string
    assert error.expected and error.expected in str(error)
    assert f"at position {position}:" in str(error)
    assert message_part in str(error)


def test_limits_raise_typed_errors():
    huge_in = "params.x IN (" + ", ".join(f"'{i}'" for i in range(10_001)) + ")"
    with pytest.raises(InvalidFilterError, match="at most 10000 items"):
        parse_filter(huge_in)
    fits = "params.x IN (" + ", ".join(f"'{i}'" for i in range(10_000)) + ")"
    assert len(parse_filter(fits).value) == 10_000
    with pytest.raises(InvalidFilterError, match="at most 100000 characters") as info:
        parse_filter("params.x = '" + "a" * 100_000 + "'")
    assert info.value.position == 100_000
    with pytest.raises(InvalidFilterError, match="nested parentheses"):
        parse_filter("(" * 1000 + "run_id = 'a'" + ")" * 1000)
    # a long flat chain and a long NOT chain are fine: no recursion per item
    chain = " OR ".join(f"run_id = '{i}'" for i in range(5000))
    assert len(parse_filter(chain).items) == 5000
    odd_negations = parse_filter("NOT " * 5001 + "run_id = 'a'")
    assert odd_negations == Not(Comparison("attribute", "run_id", "=", "a"))
    with pytest.raises(InvalidFilterError, match="expected a string"):
        parse_filter(42)  # type: ignore[arg-type]


def test_order_by_parsing():
    assert parse_order_by(None) == []
    assert parse_order_by(["metrics.acc DESC", "attributes.start_time", "params.x asc"]) == [
        OrderKey("metric", "acc", ascending=False),
        OrderKey("attribute", "start_time"),
        OrderKey("param", "x"),
    ]
    assert parse_order_by(["tags.`a b` desc"]) == [OrderKey("tag", "a b", ascending=False)]
    assert parse_order_by("run_name") == [OrderKey("attribute", "run_name")]
    for junk, part in [
        ("metrics.acc DOWN", "ASC, DESC or the end"),
        ("metrics.acc DESC extra", "the end of the order_by clause"),
        ("", "got end of input"),
        ("colour", "got 'colour'"),
        ("metrics.acc, params.x", "got ','"),
    ]:
        with pytest.raises(InvalidFilterError, match="Invalid order_by clause") as info:
            parse_order_by([junk])
        assert part in str(info.value)


def ids(page) -> str:
    return "".join(run.info.run_id for run in page)


def test_default_order_is_start_time_descending_then_run_id():
    assert ids(search(RUNS)) == "dceba"  # c and e share start_time 300: run_id breaks the tie


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (["metrics.acc DESC"], "bacde"),  # NaN (d) after values, missing (e) last
        (["metrics.acc ASC"], "cabde"),
        (["metrics.loss"], "cadeb"),  # missing ones keep the default order among themselves
        (["params.model DESC"], "cbade"),  # strings: 'xgb' > 'rf'; b before a by start_time
        (["params.model", "metrics.acc DESC"], "bacde"),
        (["tags.team"], "acbde"),  # by code point: 'Alpha' < 'alpha' < 'beta'
        (["attributes.start_time"], "abced"),
        (["end_time DESC"], "ecbad"),  # running d has no end_time: last
        (["run_name"], "eabdc"),
    ],
)
def test_order_by_sorts_missing_last_in_both_directions(order_by, expected):
    assert ids(search(RUNS, order_by=order_by)) == expected


def test_pagination_walks_every_run_once():
    seen, token = [], None
    while True:
        page = search(RUNS, "", order_by=["run_id DESC"], max_results=2, page_token=token)
        seen.append(ids(page))
        token = page.token
        if token is None:
            break
    assert seen == ["ed", "cb", "a"]
    assert search(RUNS, max_results=5).token is None
    assert ids(search(RUNS, "params.model = 'rf'", max_results=1)) == "b"


def _b64(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).decode()


@pytest.mark.parametrize(
    "token", ["garbage", "!!", _b64("{}"), _b64('{"offset": -1}'), _b64('{"offset": "1"}'), 7]
)
def test_bad_page_token_is_a_typed_error(token):
    with pytest.raises(InvalidParameterError, match="page_token"):
        search(RUNS, page_token=token)
    assert decode_page_token(None) == 0


@pytest.mark.parametrize("max_results", [0, -1, 50_001, 1.5, "10", True, None])
def test_bad_max_results_is_a_typed_error(max_results):
    with pytest.raises(InvalidParameterError, match="max_results"):
        search(RUNS, max_results=max_results)


def test_search_experiments_filters_and_orders():
    experiments = [
        Experiment("0", "Default", "file:///m/0", creation_time=10),
        Experiment("2", "churn_rf", "file:///m/2", tags={"team": "a"}, creation_time=30),
        Experiment("10", "churn_xgb", "file:///m/10", tags={"team": "b"}, creation_time=30),
        Experiment("3", "Fraud", "file:///m/3", creation_time=None),
    ]

    def names(*args, **kwargs) -> list[str]:
        return [e.name for e in search_experiments(experiments, *args, **kwargs)]

    # creation_time descending (missing last), then ids numerically: "2" < "10"
    assert names() == ["churn_rf", "churn_xgb", "Default", "Fraud"]
    assert names("name LIKE 'churn%'") == ["churn_rf", "churn_xgb"]
    assert names("attributes.name ILIKE 'FRAUD'") == ["Fraud"]
    assert names("name != 'Default' AND tags.team = 'b'") == ["churn_xgb"]
    assert names(order_by=["name"]) == ["Default", "Fraud", "churn_rf", "churn_xgb"]
    assert names(order_by=["experiment_id DESC"]) == ["churn_xgb", "Fraud", "churn_rf", "Default"]
    assert names(order_by=["creation_time"], max_results=2) == ["Default", "churn_rf"]
    for bad in ["metrics.acc > 1", "name > 'a'", "name IN ('a')", "status = 'RUNNING'"]:
        with pytest.raises(InvalidFilterError):
            search_experiments(experiments, bad)
    with pytest.raises(InvalidFilterError):
        search_experiments(experiments, order_by=["tags.team"])


# -- fuzz: the parser raises nothing but the typed error ------------------------
_FRAGMENTS = st.sampled_from(
    [
        "metrics.acc",
        "params.model",
        "tags.`a.b`",
        'metrics."x y"',
        "attributes.status",
        "run_name",
        "start_time",
        "status",
        "end_time",
        "foo.bar",
        "metrics.",
        "tags.`",
        "=",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "LIKE",
        "ILIKE",
        "IN",
        "NOT IN",
        "IS NULL",
        "IS NOT NULL",
        "AND",
        "OR",
        "NOT",
        "(",
        ")",
        ",",
        "'rf'",
        "'a%'",
        '"x"',
        "'",
        '"',
        "`",
        "0.5",
        "-1e-3",
        "1e999",
        "'FINISHED'",
        "'done'",
        "--",
        ";",
        "\\",
        "''",
    ]
)


def _parses_or_raises_typed_error(text: str) -> None:
    try:
        node = parse_filter(text)
    except InvalidFilterError as error:
        assert 0 <= error.position <= len(text)
        assert error.expected
        return
    if node is not None:  # a tree that parsed also evaluates without error
        for run in RUNS:
            matches(node, run)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_arbitrary_text(text):
    _parses_or_raises_typed_error(text)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_FRAGMENTS, max_size=14).map(" ".join) | st.lists(_FRAGMENTS, max_size=8).map("".join)
)
def test_fuzz_grammar_fragments(text):
    _parses_or_raises_typed_error(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["run_id", "metrics.acc DESC", "x y", "", "params.`"]), max_size=3))
def test_fuzz_order_by(clauses):
    try:
        parse_order_by(clauses)
    except InvalidFilterError:
        pass


def test_module_exports_exist():
    for name in search_module.__all__:
        assert hasattr(search_module, name), name
