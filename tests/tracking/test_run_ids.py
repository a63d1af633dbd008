"""Run ids: random version-4 UUIDs from autolog's own generator (no syscall per
run), unaffected by the user seeding ``random``, different in a forked child."""

from __future__ import annotations

import os
import random
import uuid

import pytest

from autolog.tracking import run_state
from autolog.tracking.validation import validate_run_id


def test_run_ids_are_valid_version_4_uuids_and_do_not_repeat():
    ids = [run_state.new_run_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for run_id in ids[:100]:
        assert validate_run_id(run_id) == run_id
        assert uuid.UUID(run_id).version == 4


def test_seeding_the_random_module_does_not_repeat_run_ids():
    random.seed(42)
    first = run_state.new_run_id()
    random.seed(42)
    assert run_state.new_run_id() != first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_draws_other_ids_than_its_parent():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, to the parent
        os.write(write, run_state.new_run_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_first = os.read(read, 64).decode()
    os.close(read), os.close(write)
    # without a reseed at fork the child's first id is the parent's next one
    assert len(child_first) == 32 and child_first != run_state.new_run_id()
