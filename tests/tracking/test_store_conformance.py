"""The store contract (``autolog/tracking/stores/base.py``), checked on every backend.

Every test here uses only the ``store`` fixture, so a new backend joins by
adding a factory to ``STORE_FACTORIES`` in ``conftest.py``.
"""

from __future__ import annotations

import math

import pytest

from autolog.errors import (
    InvalidFilterError,
    ParamOverwriteError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
)
from autolog.tracking.entities import (
    LifecycleStage,
    Metric,
    Param,
    RunStatus,
    RunTag,
    ViewType,
)
from autolog.tracking.stores.base import DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME

T0 = 1_700_000_000_000


def new_run(store, experiment_id=DEFAULT_EXPERIMENT_ID, start_time=T0, **kwargs):
    return store.create_run(experiment_id, "alice", start_time, **kwargs)


# -- experiments ---------------------------------------------------------------
def test_default_experiment_exists(store):
    default = store.get_experiment(DEFAULT_EXPERIMENT_ID)
    assert default.name == DEFAULT_EXPERIMENT_NAME
    assert default.lifecycle_stage == LifecycleStage.ACTIVE
    assert store.get_experiment_by_name(DEFAULT_EXPERIMENT_NAME).experiment_id == "0"


def test_create_and_get_experiment(store):
    experiment_id = store.create_experiment("iris", tags={"team": "a"})
    assert isinstance(experiment_id, str) and experiment_id != DEFAULT_EXPERIMENT_ID
    experiment = store.get_experiment(experiment_id)
    assert experiment.name == "iris"
    assert experiment.tags == {"team": "a"}
    assert experiment.artifact_location
    assert isinstance(experiment.creation_time, int)
    assert store.get_experiment_by_name("iris").experiment_id == experiment_id
    assert store.get_experiment_by_name("absent") is None


def test_experiment_ids_are_distinct(store):
    ids = [store.create_experiment(f"e{i}") for i in range(3)]
    assert len(set(ids)) == 3


def test_experiment_name_is_unique(store):
    store.create_experiment("iris")
    with pytest.raises(ResourceAlreadyExistsError, match="iris"):
        store.create_experiment("iris")
    # a deleted experiment still holds its name
    store.delete_experiment(store.get_experiment_by_name("iris").experiment_id)
    with pytest.raises(ResourceAlreadyExistsError):
        store.create_experiment("iris")


def test_custom_artifact_location(store, tmp_path):
    location = (tmp_path / "elsewhere").as_uri()
    experiment_id = store.create_experiment("custom", artifact_location=location)
    assert store.get_experiment(experiment_id).artifact_location == location
    run = new_run(store, experiment_id)
    assert run.info.artifact_uri == f"{location}/{run.info.run_id}/artifacts"


def test_missing_experiment(store):
    with pytest.raises(ResourceNotFoundError):
        store.get_experiment("424242")
    with pytest.raises(ResourceNotFoundError):
        store.delete_experiment("424242")


def test_delete_and_restore_experiment(store):
    experiment_id = store.create_experiment("gone")
    store.delete_experiment(experiment_id)
    assert store.get_experiment(experiment_id).lifecycle_stage == LifecycleStage.DELETED
    assert store.get_experiment_by_name("gone").experiment_id == experiment_id
    names = lambda view: {e.name for e in store.search_experiments(view_type=view)}  # noqa: E731
    assert "gone" not in names(ViewType.ACTIVE_ONLY)
    assert names(ViewType.DELETED_ONLY) == {"gone"}
    assert names(ViewType.ALL) == {"gone", DEFAULT_EXPERIMENT_NAME}
    store.restore_experiment(experiment_id)
    assert store.get_experiment(experiment_id).lifecycle_stage == LifecycleStage.ACTIVE


def test_rename_experiment(store):
    experiment_id = store.create_experiment("old")
    store.create_experiment("taken")
    store.rename_experiment(experiment_id, "new")
    assert store.get_experiment(experiment_id).name == "new"
    assert store.get_experiment_by_name("old") is None
    with pytest.raises(ResourceAlreadyExistsError):
        store.rename_experiment(experiment_id, "taken")


def test_experiment_tags(store):
    experiment_id = store.create_experiment("tagged", tags={"a": "1"})
    store.set_experiment_tag(experiment_id, "b", "2")
    store.set_experiment_tag(experiment_id, "a", "3")
    assert store.get_experiment(experiment_id).tags == {"a": "3", "b": "2"}


def test_search_experiments(store):
    for name, team in [("alpha", "a"), ("beta", "b"), ("alphabet", "a")]:
        store.create_experiment(name, tags={"team": team})
    found = store.search_experiments(filter_string="name LIKE 'alpha%'", order_by=["name"])
    assert [e.name for e in found] == ["alpha", "alphabet"]
    found = store.search_experiments(filter_string="tags.team = 'b'")
    assert [e.name for e in found] == ["beta"]
    assert len(store.search_experiments(max_results=2)) == 2
    by_name_desc = store.search_experiments(order_by=["name DESC"])
    assert [e.name for e in by_name_desc] == ["beta", "alphabet", "alpha", "Default"]


# -- runs ----------------------------------------------------------------------
def test_create_and_get_run(store):
    run = new_run(store, tags=[RunTag("k", "v")], run_name="first")
    info = run.info
    assert len(info.run_id) == 32 and int(info.run_id, 16) >= 0
    assert info.status == RunStatus.RUNNING
    assert info.experiment_id == DEFAULT_EXPERIMENT_ID
    assert info.end_time is None and info.start_time == T0
    assert info.user_id == "alice"
    assert info.lifecycle_stage == LifecycleStage.ACTIVE
    assert info.artifact_uri.endswith(f"/{info.run_id}/artifacts")
    fetched = store.get_run(info.run_id)
    assert fetched.info == info
    assert fetched.info.run_name == "first"
    assert fetched.data.tags == {"k": "v", "mlflow.runName": "first"}
    assert fetched.data.params == {} and fetched.data.metrics == {}


def test_create_run_with_given_id(store):
    run_id = "0123456789abcdef0123456789abcdef"
    assert new_run(store, run_id=run_id).info.run_id == run_id
    assert store.get_run(run_id).info.run_id == run_id
    with pytest.raises(ResourceAlreadyExistsError):  # another run with that id
        new_run(store, run_id=run_id, start_time=T0 + 1)


def test_create_run_retried_returns_the_run_it_made(store):
    # the writer retries a creation whose answer it did not get: idempotent
    run_id = "0123456789abcdef0123456789abcdef"
    first = new_run(store, run_id=run_id, tags=[RunTag("k", "v")])
    store.log_batch(run_id, params=[Param("lr", "0.1")])
    again = new_run(store, run_id=run_id, tags=[RunTag("k", "v")])
    assert again.info == first.info
    assert again.data.params == {"lr": "0.1"}
    assert len(store.search_runs([DEFAULT_EXPERIMENT_ID])) == 1


def test_run_name_from_tag(store):
    run = new_run(store, tags=[RunTag("mlflow.runName", "tagged-name")])
    assert store.get_run(run.info.run_id).info.run_name == "tagged-name"


def test_missing_run(store):
    missing = "f" * 32
    with pytest.raises(ResourceNotFoundError):
        store.get_run(missing)
    with pytest.raises(ResourceNotFoundError):
        store.log_batch(missing, metrics=[Metric("m", 1.0, T0, 0)])
    with pytest.raises(ResourceNotFoundError):
        store.get_metric_history(missing, "m")
    with pytest.raises(ResourceNotFoundError):
        store.update_run_info(missing, status=RunStatus.FINISHED)
    with pytest.raises(ResourceNotFoundError):
        new_run(store, experiment_id="424242")


def test_update_run_info(store):
    run_id = new_run(store, run_name="a").info.run_id
    info = store.update_run_info(run_id, status=RunStatus.FINISHED, end_time=T0 + 5)
    assert (info.status, info.end_time, info.run_name) == (RunStatus.FINISHED, T0 + 5, "a")
    info = store.update_run_info(run_id, run_name="b")
    assert (info.status, info.run_name) == (RunStatus.FINISHED, "b")
    fetched = store.get_run(run_id)
    assert fetched.info == info
    assert fetched.data.tags["mlflow.runName"] == "b"


def test_delete_and_restore_run(store):
    run_id = new_run(store).info.run_id
    store.delete_run(run_id)
    assert store.get_run(run_id).info.lifecycle_stage == LifecycleStage.DELETED
    store.restore_run(run_id)
    assert store.get_run(run_id).info.lifecycle_stage == LifecycleStage.ACTIVE


# -- logging -------------------------------------------------------------------
def test_log_batch_params_metrics_tags(store):
    run_id = new_run(store).info.run_id
    store.log_batch(
        run_id,
        metrics=[Metric("acc", 0.5, T0, 0), Metric("loss", 2.0, T0, 0)],
        params=[Param("lr", "0.1"), Param("depth", "3")],
        tags=[RunTag("team", "a")],
    )
    store.log_batch(run_id, metrics=[Metric("acc", 0.7, T0 + 1, 1)], tags=[RunTag("team", "b")])
    data = store.get_run(run_id).data
    assert data.params == {"lr": "0.1", "depth": "3"}
    assert data.metrics == {"acc": 0.7, "loss": 2.0}
    assert data.tags["team"] == "b"


def test_param_immutability(store):
    run_id = new_run(store).info.run_id
    store.log_batch(run_id, params=[Param("lr", "0.1")])
    store.log_batch(run_id, params=[Param("lr", "0.1")])  # same value: no-op
    with pytest.raises(ParamOverwriteError) as excinfo:
        store.log_batch(
            run_id, metrics=[Metric("m", 1.0, T0, 0)], params=[Param("x", "1"), Param("lr", "0.2")]
        )
    message = str(excinfo.value)
    assert "lr" in message and "0.1" in message and "0.2" in message
    # the failed batch wrote nothing
    run = store.get_run(run_id)
    assert run.data.params == {"lr": "0.1"}
    assert run.data.metrics == {}


def test_param_conflict_inside_one_batch(store):
    run_id = new_run(store).info.run_id
    with pytest.raises(ParamOverwriteError):
        store.log_batch(run_id, params=[Param("a", "1"), Param("a", "2")])
    assert store.get_run(run_id).data.params == {}


def test_latest_metric_is_highest_step_then_newest(store):
    run_id = new_run(store).info.run_id
    store.log_batch(
        run_id,
        metrics=[
            Metric("m", 1.0, T0 + 10, 5),
            Metric("m", 2.0, T0 + 20, 3),  # newer but a lower step
            Metric("m", 3.0, T0 + 5, 5),  # same step, older
            Metric("n", 1.0, T0, 0),
            Metric("n", 9.0, T0, 0),  # same step and time: the later point
        ],
    )
    assert store.get_run(run_id).data.metrics == {"m": 1.0, "n": 9.0}
    store.log_batch(run_id, metrics=[Metric("m", 4.0, T0 + 11, 5)])
    assert store.get_run(run_id).data.metrics["m"] == 4.0


def test_metric_history_order_and_special_values(store):
    run_id = new_run(store).info.run_id
    logged = [
        Metric("m", math.inf, T0 + 3, 2),
        Metric("m", math.nan, T0 + 1, 0),
        Metric("other", 7.0, T0, 0),
        Metric("m", -math.inf, T0 + 2, 1),
        Metric("m", 0.5, T0 + 1, 1),
    ]
    store.log_batch(run_id, metrics=logged[:3])
    store.log_batch(run_id, metrics=logged[3:])
    history = store.get_metric_history(run_id, "m")
    assert [(p.step, p.timestamp) for p in history] == [
        (0, T0 + 1),
        (1, T0 + 1),
        (1, T0 + 2),
        (2, T0 + 3),
    ]
    assert math.isnan(history[0].value)
    assert [p.value for p in history[1:]] == [0.5, -math.inf, math.inf]
    assert all(p.key == "m" and isinstance(p.value, float) for p in history)
    assert store.get_metric_history(run_id, "absent") == []


def test_metric_history_keeps_logging_order_on_ties(store):
    run_id = new_run(store).info.run_id
    points = [Metric("m", float(v), T0, 0) for v in (3, 1, 2)]
    for point in points:
        store.log_batch(run_id, metrics=[point])
    assert [p.value for p in store.get_metric_history(run_id, "m")] == [3.0, 1.0, 2.0]


def test_metric_history_many_points(store):
    run_id = new_run(store).info.run_id
    for batch in range(5):
        store.log_batch(
            run_id, metrics=[Metric("m", float(i), T0 + i, batch * 100 + i) for i in range(100)]
        )
    history = store.get_metric_history(run_id, "m")
    assert [p.step for p in history] == list(range(500))


def test_delete_tag(store):
    run_id = new_run(store, tags=[RunTag("a", "1"), RunTag("b", "2")]).info.run_id
    store.delete_tag(run_id, "a")
    assert "a" not in store.get_run(run_id).data.tags
    assert store.get_run(run_id).data.tags["b"] == "2"
    with pytest.raises(ResourceNotFoundError):
        store.delete_tag(run_id, "a")
    store.log_batch(run_id, tags=[RunTag("a", "again")])
    assert store.get_run(run_id).data.tags["a"] == "again"


def test_unicode_keys_and_values(store):
    run_id = new_run(store).info.run_id
    store.log_batch(
        run_id,
        metrics=[Metric("précision", 1.0, T0, 0)],
        params=[Param("模型", "森林")],
        tags=[RunTag("note", 'quote " and \\ backslash\nnewline')],
    )
    data = store.get_run(run_id).data
    assert data.params == {"模型": "森林"}
    assert data.tags["note"] == 'quote " and \\ backslash\nnewline'
    assert [p.value for p in store.get_metric_history(run_id, "précision")] == [1.0]


# -- search_runs ---------------------------------------------------------------
@pytest.fixture
def runs_for_search(store):
    """Five runs in one experiment (start times T0..T0+4), one in another."""
    experiment_id = store.create_experiment("search")
    other_id = store.create_experiment("other")
    rows = [
        # name, model, acc, team
        ("r0", "rf", 0.9, "a"),
        ("r1", "rf", 0.4, "b"),
        ("r2", "svm", 0.8, "a"),
        ("r3", "svm", None, "a"),
        ("r4", "rf", 0.7, None),
    ]
    ids = {}
    for offset, (name, model, acc, team) in enumerate(rows):
        run_id = new_run(store, experiment_id, start_time=T0 + offset, run_name=name).info.run_id
        store.log_batch(
            run_id,
            metrics=[] if acc is None else [Metric("acc", acc, T0, 0)],
            params=[Param("model", model)],
            tags=[] if team is None else [RunTag("team", team)],
        )
        ids[name] = run_id
    ids["elsewhere"] = new_run(store, other_id, run_name="elsewhere").info.run_id
    return store, experiment_id, other_id, ids


def names(runs):
    return [run.info.run_name for run in runs]


def test_search_default_order_is_newest_first(runs_for_search):
    store, experiment_id, _, _ = runs_for_search
    runs = store.search_runs([experiment_id])
    assert names(runs) == ["r4", "r3", "r2", "r1", "r0"]
    assert runs.token is None
    assert runs[0].data.params == {"model": "rf"}  # runs come back complete


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("metrics.acc > 0.5", {"r0", "r2", "r4"}),
        ("params.model = 'rf' and metrics.acc > 0.5", {"r0", "r4"}),
        ("metrics.acc > 0.5 and params.model = 'rf' and tags.team = 'a'", {"r0"}),
        ("params.model = 'svm' OR tags.team = 'b'", {"r1", "r2", "r3"}),
        ("NOT params.model = 'rf'", {"r2", "r3"}),
        ("tags.team IS NULL", {"r4"}),
        ("metrics.acc IS NULL", {"r3"}),
        ("params.model IN ('svm')", {"r2", "r3"}),
        ("attributes.run_name LIKE 'r%'", {"r0", "r1", "r2", "r3", "r4"}),
        ("run_name = 'r1'", {"r1"}),
        (f"attributes.start_time >= {T0 + 3}", {"r3", "r4"}),
        ("status = 'RUNNING'", {"r0", "r1", "r2", "r3", "r4"}),
    ],
)
def test_search_filters(runs_for_search, filter_string, expected):
    store, experiment_id, _, _ = runs_for_search
    assert set(names(store.search_runs([experiment_id], filter_string))) == expected


def test_search_order_by_metric_missing_last(runs_for_search):
    store, experiment_id, _, _ = runs_for_search
    ascending = store.search_runs([experiment_id], order_by=["metrics.acc"])
    assert names(ascending) == ["r1", "r4", "r2", "r0", "r3"]
    descending = store.search_runs([experiment_id], order_by=["metrics.acc DESC"])
    assert names(descending) == ["r0", "r2", "r4", "r1", "r3"]
    by_param = store.search_runs([experiment_id], order_by=["params.model", "attributes.run_name"])
    assert names(by_param) == ["r0", "r1", "r4", "r2", "r3"]


def test_search_pagination(runs_for_search):
    store, experiment_id, _, _ = runs_for_search
    seen, token = [], None
    while True:
        page = store.search_runs([experiment_id], max_results=2, page_token=token)
        assert len(page) <= 2
        seen += names(page)
        token = page.token
        if token is None:
            break
    assert seen == ["r4", "r3", "r2", "r1", "r0"]


def test_search_several_experiments_and_view_types(runs_for_search):
    store, experiment_id, other_id, ids = runs_for_search
    assert len(store.search_runs([experiment_id, other_id])) == 6
    store.delete_run(ids["r1"])
    active = names(store.search_runs([experiment_id]))
    assert "r1" not in active and len(active) == 4
    deleted = store.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert names(deleted) == ["r1"]
    assert len(store.search_runs([experiment_id], run_view_type=ViewType.ALL)) == 5


def test_search_sees_later_writes(runs_for_search):
    store, experiment_id, _, ids = runs_for_search
    assert names(store.search_runs([experiment_id], "metrics.acc > 0.95")) == []
    store.log_batch(ids["r1"], metrics=[Metric("acc", 0.99, T0 + 1, 1)])
    store.update_run_info(ids["r1"], status=RunStatus.FINISHED, end_time=T0 + 9)
    assert names(store.search_runs([experiment_id], "metrics.acc > 0.95")) == ["r1"]
    assert names(store.search_runs([experiment_id], "status = 'FINISHED'")) == ["r1"]


def test_malformed_filter_raises_typed_error(runs_for_search):
    store, experiment_id, _, _ = runs_for_search
    with pytest.raises(InvalidFilterError):
        store.search_runs([experiment_id], "metrics.acc >")
    with pytest.raises(InvalidFilterError):
        store.search_runs([experiment_id], "bogus.key = 'x'")
