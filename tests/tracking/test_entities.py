"""Param, RunTag and ExperimentTag: immutable (key, value) pairs that compare,
hash, print, pickle and copy as the frozen dataclasses they replaced did."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from autolog.tracking.entities import ExperimentTag, Param, RunTag

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
