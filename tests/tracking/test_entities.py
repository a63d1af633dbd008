"""The entities compare, hash, print, pickle and copy as the dataclasses they
replaced did: Param, RunTag and ExperimentTag are immutable (key, value) pairs;
RunInfo, RunData, Run and Experiment mutable records; FileInfo a frozen one."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import subprocess
import sys

import pytest

from autolog.tracking.entities import (
    Experiment,
    ExperimentTag,
    FileInfo,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunTag,
)

PAIRS = [Param, RunTag, ExperimentTag]


@pytest.mark.parametrize("cls", PAIRS)
def test_built_by_position_or_keyword_and_read_back(cls):
    pair = cls("lr", "0.1")
    assert (pair.key, pair.value) == ("lr", "0.1")
    assert cls(key="lr", value="0.1") == pair
    assert cls("lr", value="0.1") == pair
    with pytest.raises(TypeError):
        cls("lr")
    with pytest.raises(TypeError):
        cls("lr", "0.1", "extra")


@pytest.mark.parametrize("cls", PAIRS)
def test_equal_and_hashed_by_class_and_fields(cls):
    pair = cls("lr", "0.1")
    assert pair == cls("lr", "0.1")
    assert pair != cls("lr", "0.2")
    assert pair != cls("LR", "0.1")
    assert pair != ("lr", "0.1")
    for other in PAIRS:
        if other is not cls:
            assert pair != other("lr", "0.1")
    assert hash(pair) == hash(cls("lr", "0.1"))
    assert len({pair, cls("lr", "0.1"), cls("lr", "0.2")}) == 2
    assert {pair: 1}[cls("lr", "0.1")] == 1


@pytest.mark.parametrize("cls", PAIRS)
def test_immutable(cls):
    pair = cls("lr", "0.1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.value = "0.2"
    with pytest.raises(AttributeError):
        pair.key = "other"
    with pytest.raises(AttributeError):
        pair.extra = 1
    with pytest.raises(AttributeError):
        del pair.key
    assert (pair.key, pair.value) == ("lr", "0.1")
    assert not hasattr(pair, "__dict__")  # slotted: nothing can be added


@pytest.mark.parametrize("cls", PAIRS)
def test_repr_names_class_and_fields(cls):
    assert repr(cls("lr", "it's")) == f"{cls.__name__}(key='lr', value=\"it's\")"


@pytest.mark.parametrize("cls", PAIRS)
def test_pickled_and_copied(cls):
    pair = cls("lr", "0.1")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(pair, protocol))
        assert type(back) is cls and back == pair
    for copied in (copy.copy(pair), copy.deepcopy(pair)):
        assert type(copied) is cls and copied == pair


def test_matched_by_position_and_keyword():
    match Param("lr", "0.1"):
        case RunTag():
            found = "tag"
        case Param("lr", value):
            found = value
        case _:
            found = None
    assert found == "0.1"
    match RunTag("state", "COMPLETE"):
        case RunTag(key="state", value=state):
            pass
    assert state == "COMPLETE"


# -- RunInfo, RunData, Run, Experiment, FileInfo -------------------------------

INFO_FIELDS = ["run_id", "experiment_id", "run_name", "user_id", "status"]
INFO_FIELDS += ["start_time", "end_time", "artifact_uri", "lifecycle_stage"]


def make_info(**changes):
    values = dict(run_id="a" * 32, experiment_id="0", run_name="r", user_id="u")
    values.update(status="RUNNING", start_time=1, end_time=None, artifact_uri="file:///x")
    return RunInfo(**{**values, **changes})


def make_records():
    info = make_info()
    data = RunData(params={"lr": "0.1"}, metrics={"loss": float("nan")}, tags={"t": "v"})
    experiment = Experiment("1", "exp", "file:///a", tags={"k": "v"}, creation_time=5)
    return [info, data, Run(info, data), experiment, FileInfo("m/model.pkl", False, 10)]


def test_run_info_by_position_or_keyword_with_its_default_stage():
    info = make_info()
    by_position = RunInfo("a" * 32, "0", "r", "u", "RUNNING", 1, None, "file:///x")
    assert by_position == info
    assert [getattr(info, name) for name in INFO_FIELDS] == [
        *("a" * 32, "0", "r", "u", "RUNNING", 1, None, "file:///x", "active")
    ]
    assert RunInfo(*[getattr(info, n) for n in INFO_FIELDS[:-1]], "deleted").lifecycle_stage == (
        "deleted"
    )
    assert info.run_uuid == info.run_id
    with pytest.raises(TypeError):
        RunInfo("a" * 32, "0", "r", "u", "RUNNING", 1, None)  # artifact_uri has no default
    with pytest.raises(TypeError):
        make_info(colour="red")


def test_run_data_run_and_experiment_defaults_are_fresh_per_instance():
    first, second = RunData(), RunData()
    assert (first.params, first.metrics, first.tags) == ({}, {}, {})
    first.params["lr"] = "0.1"
    assert second.params == {}  # not one shared dict
    run = Run(make_info())
    assert run.data == RunData() and run.data is not Run(make_info()).data
    assert Run(info=make_info(), data=first).data is first
    experiment = Experiment("1", "exp", "file:///a")
    assert (experiment.lifecycle_stage, experiment.tags) == ("active", {})
    assert (experiment.creation_time, experiment.last_update_time) == (None, None)
    experiment.tags["k"] = "v"
    assert Experiment("1", "exp", "file:///a").tags == {}
    assert RunData(tags={"t": "v"}).tags == {"t": "v"}


def test_records_equal_by_class_and_every_field():
    info = make_info()
    assert info == make_info()
    for name in INFO_FIELDS:
        assert info != make_info(**{name: "other"}), name
    assert Run(info) == Run(make_info())
    assert Run(info) != Run(make_info(status="FINISHED"))
    assert Run(info, RunData(params={"a": "1"})) != Run(info)
    assert Experiment("1", "e", "l") != Experiment("1", "e", "l", tags={"k": "v"})
    assert FileInfo("a", False, 1) != FileInfo("a", False, 2)
    assert info != tuple(vars(info).values())
    assert RunData() != {"params": {}, "metrics": {}, "tags": {}}


def test_mutable_records_are_unhashable_and_assignable():
    info, data, run, experiment, _ = make_records()
    for record in (info, data, run, experiment):
        with pytest.raises(TypeError):
            hash(record)
    info.status, info.end_time = "FINISHED", 9
    assert (info.status, info.end_time) == ("FINISHED", 9)


def test_file_info_is_frozen_and_hashable():
    info = FileInfo("m/model.pkl", False, 10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.path = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del info.file_size
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.extra = 1
    assert (info.path, info.is_dir, info.file_size) == ("m/model.pkl", False, 10)
    assert hash(info) == hash(FileInfo("m/model.pkl", False, 10))
    assert len({info, FileInfo("m/model.pkl", False, 10), FileInfo("m", True, None)}) == 2
    assert FileInfo(path="m", is_dir=True, file_size=None) == FileInfo("m", True, None)


def test_records_repr_names_class_and_fields():
    assert repr(FileInfo("it's", False, None)) == (
        'FileInfo(path="it\'s", is_dir=False, file_size=None)'
    )
    assert repr(RunData(params={"a": "1"})) == "RunData(params={'a': '1'}, metrics={}, tags={})"
    info = make_info()
    shown = ", ".join(f"{name}={getattr(info, name)!r}" for name in INFO_FIELDS)
    assert repr(info) == f"RunInfo({shown})"
    assert repr(Run(info)) == f"Run(info={info!r}, data={RunData()!r})"
    assert repr(Experiment("1", "e", "l")) == (
        "Experiment(experiment_id='1', name='e', artifact_location='l', "
        "lifecycle_stage='active', tags={}, creation_time=None, last_update_time=None)"
    )


def test_vars_gives_the_fields_in_order_and_builds_the_record_back():
    # the file and SQL stores write vars(info); the file store reads RunInfo(**doc)
    info = make_info()
    assert list(vars(info)) == INFO_FIELDS
    assert RunInfo(**vars(info)) == info
    experiment = make_records()[3]
    assert Experiment(**vars(experiment)) == experiment
    assert json.loads(json.dumps(vars(FileInfo("a", True, None)))) == {
        "path": "a",
        "is_dir": True,
        "file_size": None,
    }


@pytest.mark.parametrize("index", range(5))
def test_records_pickled_and_copied(index):
    record = make_records()[index]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(record, protocol))
        assert type(back) is type(record) and repr(back) == repr(record)
    for copied in (copy.copy(record), copy.deepcopy(record)):
        assert type(copied) is type(record) and repr(copied) == repr(record)
        assert copied is not record


def test_a_copied_run_info_is_independent():
    info = make_info()
    copied = copy.copy(info)
    copied.status = "FINISHED"
    assert info.status == "RUNNING" and copied != info


def test_records_matched_by_position_and_keyword():
    match Run(make_info(status="FAILED")):
        case Run(RunInfo(_, _, name, status=status), RunData(params)):
            found = (name, status, params)
        case _:
            found = None
    assert found == ("r", "FAILED", {})
    match FileInfo("m", True, None):
        case FileInfo(path, True):
            pass
    assert path == "m"


def test_paged_list_is_a_list_with_a_token_and_subscripts():
    page = PagedList([1, 2], token="next")
    assert page == [1, 2] and isinstance(page, list) and page.token == "next"
    assert PagedList().token is None and PagedList() == []
    back = pickle.loads(pickle.dumps(page))
    assert type(back) is PagedList and back == [1, 2] and back.token == "next"
    alias = PagedList[Run]
    assert alias.__origin__ is PagedList and alias.__args__ == (Run,)


def test_importing_the_entities_imports_neither_dataclasses_nor_typing():
    # the first logged run of a process imports this module; building five
    # dataclasses there cost milliseconds of that run
    script = (
        "import sys\nimport autolog.tracking.entities\n"
        "print([m for m in ('dataclasses', 'typing') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
