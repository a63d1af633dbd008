"""The segment log: ordered, checksummed, durable records; torn tails; cursors; size bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from autolog.errors import InvalidParameterError, TransientStoreError
from autolog.tracking.stores import spool as spool_module
from autolog.tracking.stores.spool import (
    Cursor,
    Spool,
    SpoolFullError,
    max_bytes_setting,
    spool_root,
)

URI = "http://127.0.0.1:5000"


def records(spool: Spool, segment, cursor=None):
    return [payload for _after, payload in spool.read(segment, cursor or Cursor())]


def test_records_come_back_in_order_with_sequence_numbers(spool_dir):
    spool = Spool(URI)
    for i in range(5):
        spool.append([{"op": "log_batch", "i": i}])
    spool.append([{"i": 5}, {"i": 6}])
    (segment,) = spool.segments()
    read = list(spool.read(segment, Cursor()))
    assert [p["i"] for _c, p in read] == list(range(7))
    assert [c.seq for c, _p in read] == list(range(1, 8))
    assert spool.last_seq == 7
    assert segment.path.parent == spool_dir / spool.path.name
    assert (spool.path / "uri").read_text() == URI


def test_the_folder_is_keyed_by_the_uri_without_credentials(spool_dir):
    from autolog.tracking.stores.rest_config import split_credentials

    bare = split_credentials("http://alice:s3cret@127.0.0.1:5000")[0]
    spool = Spool(bare)
    spool.append([{"x": 1}])
    stored = b"".join(p.read_bytes() for p in spool.path.iterdir() if p.is_file())
    assert b"s3cret" not in stored
    assert Spool(URI).path == spool.path  # same server, same spool
    assert Spool("http://127.0.0.1:5001").path != spool.path


def test_default_root_is_the_per_user_cache():
    assert spool_root({"XDG_CACHE_HOME": "/c"}) == spool_module.Path("/c/autolog/spool")
    assert spool_root({"AUTOLOG_SPOOL_DIR": "/s", "XDG_CACHE_HOME": "/c"}) == spool_module.Path(
        "/s"
    )


def test_reading_resumes_after_a_cursor(spool_dir):
    spool = Spool(URI)
    spool.append([{"i": i} for i in range(10)])
    (segment,) = spool.segments()
    cursor = list(spool.read(segment, Cursor()))[3][0]
    spool.save_cursor(segment, cursor)
    assert spool.cursor(segment) == cursor
    assert [p["i"] for p in records(spool, segment, spool.cursor(segment))] == list(range(4, 10))


def test_a_damaged_cursor_starts_over(spool_dir):
    spool = Spool(URI)
    spool.append([{"i": 1}])
    (segment,) = spool.segments()
    spool.save_cursor(segment, Cursor(40, 1))
    raw = bytearray(segment.cursor_path.read_bytes())
    raw[0] ^= 0xFF
    segment.cursor_path.write_bytes(bytes(raw))
    assert spool.cursor(segment) == Cursor()


def test_a_torn_tail_costs_only_the_record_being_written(spool_dir):
    spool = Spool(URI)
    spool.append([{"i": i, "pad": "x" * 50} for i in range(3)])
    (segment,) = spool.segments()
    size = segment.path.stat().st_size
    with open(segment.path, "r+b") as file:
        file.truncate(size - 10)  # the process died inside the third write
    reader = Spool(URI)
    assert [p["i"] for p in records(reader, segment)] == [0, 1]
    assert reader.torn_bytes(segment) > 0


def test_a_corrupt_record_stops_reading_there(spool_dir):
    spool = Spool(URI)
    spool.append([{"i": i, "pad": "y" * 20} for i in range(4)])
    (segment,) = spool.segments()
    data = bytearray(segment.path.read_bytes())
    second = next(c.offset for c, _p in spool.read(segment, Cursor()))
    data[second + 25] ^= 0x01  # a flipped bit in record 2's payload
    segment.path.write_bytes(bytes(data))
    assert [p["i"] for p in records(Spool(URI), segment)] == [0]


def test_a_full_spool_raises_a_typed_error_and_writes_nothing(spool_dir):
    spool = Spool(URI, max_bytes=2_000)
    spool.append([{"i": 1, "pad": "z" * 500}])
    spool.append([{"i": 2, "pad": "z" * 500}])
    before = spool.total_bytes(fresh=True)
    with pytest.raises(SpoolFullError) as caught:
        spool.append([{"i": 3, "pad": "z" * 1500}])
    assert isinstance(caught.value, TransientStoreError)  # the writer keeps the data queued
    assert "AUTOLOG_SPOOL_MAX_BYTES=2,000" in str(caught.value)
    assert spool.total_bytes(fresh=True) == before
    assert [p["i"] for s in spool.segments() for p in records(spool, s)] == [1, 2]
    spool.delete(spool.segments()[0])  # replay made room
    spool.close_segment()
    spool.append([{"i": 3, "pad": "z" * 1500}])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1 << 20),
        ("500MB", 500 << 20),
        ("2GiB", 2 << 30),
        ("64k", 64 << 10),
        (" ", 1 << 30),
    ],
)
def test_max_bytes_setting(text, expected):
    assert max_bytes_setting({"AUTOLOG_SPOOL_MAX_BYTES": text}) == expected


@pytest.mark.parametrize("text", ["lots", "-5", "0", "5 parsecs"])
def test_a_bad_max_bytes_setting_is_a_typed_error_naming_it(text):
    with pytest.raises(InvalidParameterError, match="AUTOLOG_SPOOL_MAX_BYTES"):
        max_bytes_setting({"AUTOLOG_SPOOL_MAX_BYTES": text})


def test_an_unwritable_folder_is_a_spool_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(spool_module.SpoolError, match="spool"):
        Spool(URI, root=blocker).append([{"i": 1}])


def test_segments_roll_over_and_keep_their_order(spool_dir, monkeypatch):
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 300)
    spool = Spool(URI)
    for i in range(20):
        spool.append([{"i": i, "pad": "p" * 40}])
    segments = spool.segments()
    assert len(segments) > 3
    assert [p["i"] for s in segments for p in records(spool, s)] == list(range(20))


_CHILD = textwrap.dedent(
    """
    import os, sys
    from autolog.tracking.stores.spool import Spool
    spool = Spool(sys.argv[1])
    for i in range(int(sys.argv[2])):
        spool.append([{"pid": os.getpid(), "i": i}])
    print("appended", flush=True)
    if sys.argv[3] == "wait":
        sys.stdin.read()
    """
)


def _child(*args: str, stdin=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, URI, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def test_processes_append_to_segments_of_their_own(spool_dir):
    children = [_child("300", "exit") for _ in range(3)]
    for child in children:
        assert child.wait(timeout=60) == 0
    spool = Spool(URI)
    by_owner: dict[str, list] = {}
    for segment in spool.segments():
        by_owner.setdefault(segment.owner, []).extend(records(spool, segment))
    assert len(by_owner) == 3
    for owner_records in by_owner.values():
        assert [r["i"] for r in owner_records] == list(range(300))
        assert len({r["pid"] for r in owner_records}) == 1


def test_a_running_owner_is_locked_and_a_killed_one_is_not(spool_dir):
    child = _child("5", "wait", stdin=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "appended"
        spool = Spool(URI)
        (owner,) = {s.owner for s in spool.segments()}
        assert spool.try_lock_owner(owner) is None  # its process still runs
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        fd = spool.try_lock_owner(owner)
        assert fd is not None
        assert [r["i"] for s in spool.segments() for r in records(spool, s)] == list(range(5))
        spool.release_owner(owner, fd)
    finally:
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()


def test_a_forked_child_writes_as_a_new_owner(spool_dir):
    spool = Spool(URI)
    spool.append([{"who": "parent"}])
    pid = os.fork()
    if pid == 0:
        try:
            spool.append([{"who": "child"}])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    spool.append([{"who": "parent"}])
    owners = {}
    for segment in spool.segments():
        owners.setdefault(segment.owner, []).extend(r["who"] for r in records(spool, segment))
    assert sorted(owners.values()) == [["child"], ["parent", "parent"]]


def test_status_shows_size_and_the_oldest_waiting_record(spool_dir):
    import datetime

    from autolog.tracking.stores.spool_sync import status_lines

    assert status_lines() == [f"spool: empty ({spool_dir})"]
    spool = Spool(URI)
    oldest = 1_767_000_000_000
    spool.append([{"op": "log_batch", "at": oldest + 5_000, "run": "r"}])
    (segment,) = spool.segments()
    first = next(c for c, _p in spool.read(segment, Cursor()))
    spool.append([{"op": "log_batch", "at": oldest + 9_000, "run": "r"}])
    spool.save_cursor(segment, first)  # the first record was replayed already
    (line,) = status_lines()
    waiting = datetime.datetime.fromtimestamp((oldest + 9_000) / 1000)
    assert f"{waiting:%Y-%m-%d %H:%M:%S}" in line
    assert f"{spool.total_bytes(fresh=True):,} bytes in 1 segment(s)" in line
    assert URI in line
