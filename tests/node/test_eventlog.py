"""EventLog on a real RocksDB in tmp_path: durability, contiguity, epochs, locking, verify."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rocksdict

from seguro.invariant import InvariantViolation
from seguro.node.eventlog import EventLog, EventLogError, EventLogLocked, event_key
from seguro.urbit.noun import jam

SUBPROCESS_TIMEOUT_S = 20.0


def record(event: int, mug: int = 0x1234) -> bytes:
    """A valid vere EVENTS value for a small, event-specific noun: 4-byte LE mug + jam."""
    return mug.to_bytes(4, "little") + jam((event, (event * 7, 0)))


def records(first: int, count: int) -> list[bytes]:
    return [record(event) for event in range(first, first + count)]


def raw_db(data_dir: Path) -> rocksdict.Rdict:
    """The log's database opened directly, to craft damage EventLog itself refuses to write."""
    return rocksdict.Rdict(
        str(data_dir / "log"), rocksdict.Options(raw_mode=True), {"meta": rocksdict.Options(raw_mode=True)}
    )


def test_append_read_reopen(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        assert (log.first_event(), log.last_event()) == (0, 0)
        assert log.append(1, records(1, 3)) == 3
        assert log.append(4, records(4, 2)) == 5
        assert list(log.read(2, 4)) == [(2, record(2)), (3, record(3)), (4, record(4))]
        assert list(log.read(5)) == [(5, record(5))]
        assert list(log.read(6)) == []
        assert log.get(5) == record(5)
        assert log.get(6) is None and log.get(0) is None
    with EventLog(tmp_path, create=False) as log:
        assert (log.first_event(), log.last_event()) == (1, 5)
        assert [event for event, _ in log.read(1)] == [1, 2, 3, 4, 5]
        assert log.append(6, [b"\x00\x00\x00\x00\x02"]) == 6
    # Other tools rely on this layout: default column family, 8-byte big-endian keys, raw record values.
    db = raw_db(tmp_path)
    try:
        assert db[(4).to_bytes(8, "big")] == record(4)
        assert list(db.keys())[-1] == event_key(6)
    finally:
        db.close()


def test_contiguity_violations_raise_and_write_nothing(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        with pytest.raises(InvariantViolation, match="must be contiguous"):
            log.append(2, records(2, 1))  # log is empty: must start at 1
        log.append(1, records(1, 2))
        with pytest.raises(InvariantViolation, match="must be contiguous"):
            log.append(4, records(4, 1))  # gap
        with pytest.raises(InvariantViolation, match="must be contiguous"):
            log.append(2, [b"\x00\x00\x00\x00\x0c"])  # overwrite
        assert log.get(4) is None and log.get(2) == record(2) and log.last_event() == 2
        with pytest.raises(ValueError, match="at least one"):
            log.append(3, [])
        with pytest.raises(ValueError, match="event 4 is empty"):
            log.append(3, [record(3), b""])
        assert log.last_event() == 2 and log.get(3) is None


def test_every_append_is_one_synced_write(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        before = log.wal_syncs()
        for first in range(1, 1001, 100):
            log.append(first, records(first, 100))
        assert log.wal_syncs() - before == 10


def test_meta_and_epochs_persist_and_stay_monotonic(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.set_meta(who="~sampel-palnet", life=3)
        log.record_epoch(2, 1)
        log.append(1, records(1, 4))
        log.append(5, records(5, 2), epoch=5)  # recorded atomically with the batch
        log.append(7, records(7, 1), epoch=5)  # same epoch: nothing new
        log.record_epoch(5, 5)  # idempotent repeat of the latest entry
        with pytest.raises(InvariantViolation, match="strictly increase"):
            log.record_epoch(4, 8)
        with pytest.raises(InvariantViolation, match="must not decrease"):
            log.record_epoch(6, 3)
        with pytest.raises(InvariantViolation, match="strictly increase"):
            log.append(8, records(8, 1), epoch=3)
        assert log.last_event() == 7
        with pytest.raises(InvariantViolation, match="another ship"):
            log.set_meta(who="~zod")
    with EventLog(tmp_path) as log:
        assert log.epochs() == [(2, 1), (5, 5)]
        assert log.meta() == {"layout": 1, "who": "~sampel-palnet", "life": 3}
        log.record_epoch(9, 8)
        assert log.epochs()[-1] == (9, 8)


_WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.node.test_eventlog import records
from seguro.node.eventlog import EventLog
log = EventLog(Path({data!r}))
print("ready", flush=True)
event = log.last_event() + 1
for _ in range(100000):
    log.append(event, records(event, 10))
    event += 10
    print(event - 1, flush=True)
"""


def _spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_sigkill_mid_write_loses_nothing_acknowledged(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    writer = _spawn(_WRITER.format(root=root, data=str(tmp_path)))
    acked = 0
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        while acked < 2000 and time.monotonic() < deadline:
            acked = int(writer.stdout.readline())
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=SUBPROCESS_TIMEOUT_S)
    assert writer.stdout is not None
    for line in writer.stdout.read().split():  # acks printed before the kill but not yet read
        acked = max(acked, int(line))
    assert acked >= 2000, "writer too slow"
    with EventLog(tmp_path, create=False) as log:
        assert log.first_event() == 1 and acked <= log.last_event() <= acked + 10  # + one batch in flight
        assert all(value == record(event) for event, value in log.read(1))
        assert log.verify().ok


_HOLDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from seguro.node.eventlog import EventLog
log = EventLog(Path({data!r}))
log.append(1, [bytes.fromhex("0000000002")])
print("ready", flush=True)
time.sleep({hold_s})
"""


def test_db_open_elsewhere_fails_clearly_but_reads_work(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    holder = _spawn(_HOLDER.format(root=root, data=str(tmp_path), hold_s=SUBPROCESS_TIMEOUT_S))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(EventLogLocked, match="in use by another process"):
            EventLog(tmp_path)
        with EventLog(tmp_path, create=False, read_only=True) as reader:
            assert reader.last_event() == 1 and reader.verify().ok
            with pytest.raises(EventLogError, match="read-only"):
                reader.append(2, [b"\x00\x00\x00\x00\x02"])
    finally:
        holder.kill()
        holder.wait(timeout=SUBPROCESS_TIMEOUT_S)


def test_same_process_double_open_is_refused_and_close_releases(tmp_path: Path) -> None:
    first = EventLog(tmp_path)
    with pytest.raises(EventLogLocked):
        EventLog(tmp_path)
    first.close()
    first.close()
    with EventLog(tmp_path) as again:
        assert again.last_event() == 0


def test_missing_log_without_create_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="no event log at"):
        EventLog(tmp_path / "nothing-here", create=False)
    assert not (tmp_path / "nothing-here").exists()
    other = rocksdict.Rdict(str(tmp_path / "x" / "log"), rocksdict.Options(raw_mode=True))
    other.close()
    with pytest.raises(EventLogError, match="not an event log"):
        EventLog(tmp_path / "x")


def test_verify_reports_gap_bad_key_and_corrupt_records(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append(1, records(1, 5))
        report = log.verify()
        assert report.ok and (report.first_event, report.last_event, report.count) == (1, 5, 5)
    db = raw_db(tmp_path)
    db[event_key(9)] = record(9)  # events 6..8 missing
    db[event_key(3)] = b"\x00\x00\x00\x00" + b"\xff\xff\xff"  # jam that does not cue
    db[event_key(4)] = b"\x01\x02"  # shorter than a mug
    db[b"\x00\x00\x00\x00\x00\x00\x00\x02x"] = b"junk"  # 9-byte key
    db.close()
    with EventLog(tmp_path, create=False) as log:
        assert log.last_event() == 9
        report = log.verify()
        with pytest.raises(InvariantViolation, match="not contiguous"):
            list(log.read(1))
    assert not report.ok
    kinds = [(problem.kind, problem.event) for problem in report.problems]
    assert kinds == [("bad-key", 2), ("corrupt", 3), ("corrupt", 4), ("gap", 6)]
    assert str(report.problems[3]) == "gap at 6: events 6..8 missing"
    assert str(report.problems[1]).startswith("corrupt record at 3: ")
    assert report.count == 6 and report.last_event == 9
    assert "BAD" in report.summary() and "4 problems" in report.summary()


def test_verify_caps_listed_problems_but_counts_all(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append(1, [b"\x00\x00\x00\x00"] * 30)  # a mug and no jam: every record corrupt
        report = log.verify(max_problems=3)
    assert report.problems_total == 30 and len(report.problems) == 3


def test_storage_corruption_is_reported_not_read_as_a_shorter_log(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        for first in range(1, 2001, 100):
            log.append(first, [os.urandom(4) + b"\x02" + os.urandom(1000) for _ in range(100)])
    db = raw_db(tmp_path)
    db.flush()  # move the events from the WAL into an SST file
    db.close()
    sst = max((tmp_path / "log").glob("*.sst"), key=lambda file: file.stat().st_size)
    with sst.open("r+b") as file:
        file.seek(sst.stat().st_size // 2)
        file.write(b"\xff" * 64)
    with EventLog(tmp_path, create=False) as log:
        report = log.verify(decode=lambda data: None)
        with pytest.raises(EventLogError, match="storage error"):
            list(log.read(1))
    assert not report.ok and report.problems[-1].kind == "storage"
    assert 1 < report.count < 2000 and "checksum mismatch" in report.problems[-1].detail


def test_a_log_of_another_layout_is_refused(tmp_path: Path) -> None:
    EventLog(tmp_path).close()
    db = raw_db(tmp_path)
    db.get_column_family("meta")[b"layout"] = b"2"
    db.close()
    with pytest.raises(EventLogError, match="has layout 2; this Seguro reads layout 1"):
        EventLog(tmp_path)


def test_a_log_can_begin_after_event_1_as_a_chopped_vere_log_does(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.set_base(40)
        assert log.last_event() == 40 and log.first_event() == 0
        with pytest.raises(InvariantViolation, match="must be contiguous"):
            log.append(1, [b"\0\0\0\0\x02"])
        log.append(41, [b"\0\0\0\0\x02", b"\0\0\0\0\x03"])
        with pytest.raises(InvariantViolation, match="only an empty log takes a base"):
            log.set_base(100)
    with EventLog(tmp_path) as log:
        assert (log.first_event(), log.last_event(), log.meta()["base"]) == (41, 42, 40)
        assert [e for e, _ in log.read(41)] == [41, 42]
