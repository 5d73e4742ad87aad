"""vere's event log on disk: every layout read and verified, corrupt ones refused with the event named,
and what Seguro writes read back with raw LMDB as vere would."""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from seguro.urbit.pier.layout import Meta, PierError
from seguro.urbit.pier.verify import verify, walk
from seguro.urbit.pier.writer import write_pier
from tests.urbit.piers import (
    PierSpec,
    epoch_pier,
    le,
    legacy_pier,
    put_events,
    put_meta,
    read_events,
    read_meta,
    ship_records,
)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return ship_records(80, tmp_path_factory.mktemp("ship"))


def layouts(tmp: Path, records: list[bytes]) -> dict[str, tuple[Path, int, int]]:
    """Every layout vere has written: (pier, first event, last event)."""
    return {
        "1.x-2.x": (legacy_pier(tmp / "legacy", records[:50]), 1, 50),
        "3.x one epoch": (epoch_pier(tmp / "v3", [(0, records[:50])], fmt=1), 1, 50),
        "4.x three epochs": (
            epoch_pier(tmp / "v4", [(0, records[:40]), (40, records[40:70]), (70, [])]), 1, 70
        ),
        "4.x chopped": (epoch_pier(tmp / "chop", [(40, records[40:70]), (70, records[70:80])]), 41, 80),
        "3.x chopped": (epoch_pier(tmp / "chop3", [(40, records[40:60])], fmt=1), 41, 60),
    }


def test_every_layout_verifies(tmp_path: Path, records: list[bytes]) -> None:
    for name, (pier, first, last) in layouts(tmp_path, records).items():
        report = verify(pier)
        assert report.ok, (name, report.problem)
        assert (report.first_event, report.last_event) == (first, last), name
        assert report.meta["who"] == 0x1234_5678 and report.meta["fake"] is False and report.meta["life"] == 1
        assert [e for e, _ in walk(pier)] == list(range(first, last + 1)), name


def _edit(pier: Path, epoch: str, **raw: bytes | None) -> None:
    e = lmdb.open(str(pier / ".urb" / "log" / epoch), max_dbs=2, map_size=1 << 30)
    put_meta(e, PierSpec(), **raw)  # type: ignore[arg-type]
    e.close()


def _put(pier: Path, epoch: str, first: int, data: list[bytes]) -> None:
    e = lmdb.open(str(pier / ".urb" / "log" / epoch), max_dbs=2, map_size=1 << 30)
    put_events(e, first, data)
    e.close()


@pytest.mark.parametrize(
    ("damage", "says", "event"),
    [
        ("gap", "event 21 is missing", 21),
        ("truncated", "event 7: record too short", 7),
        ("no cue", "event 9:", 9),
        ("trailing zero", "event 5: jam has 1 trailing zero", 5),
        ("overlap", "overlaps", 36),
        ("epoch gap", "leaves a gap", 41),
        ("version", "META version 4", None),
        ("fake", "not a loobean", None),
        ("no who", "META lacks who", None),
        ("life", "life 2147483648", None),
        ("chopped, no snapshot", "lacks its snapshot (image.bin)", None),
        ("epoch format", "epoch format 7", None),
    ],
)
def test_a_corrupt_pier_is_refused_naming_the_event(
    tmp_path: Path, records: list[bytes], damage: str, says: str, event: int | None
) -> None:
    pier = tmp_path / "pier"
    epochs = [(0, records[:40]), (40, records[40:60])]
    if damage == "overlap":
        epochs = [(0, records[:40]), (35, records[35:60])]
    elif damage == "epoch gap":
        epochs = [(0, records[:40]), (45, records[45:60])]
    elif damage == "chopped, no snapshot":
        epochs = [(40, records[40:60])]
    epoch_pier(pier, epochs, snapshot_of_first=damage != "chopped, no snapshot")
    if damage == "gap":
        e = lmdb.open(str(pier / ".urb" / "log" / "0i0"), max_dbs=2, map_size=1 << 30)
        with e.begin(db=e.open_db(b"EVENTS", integerkey=True), write=True) as txn:
            txn.delete((21).to_bytes(8, "little"))
        e.close()
    elif damage == "truncated":
        _put(pier, "0i0", 7, [b"\0\0\0\0"])
    elif damage == "no cue":
        _put(pier, "0i0", 9, [b"\x01\x02\x03\x04\xff\xff\xff\x07"])
    elif damage == "trailing zero":
        _put(pier, "0i0", 5, [records[4] + b"\0"])
    elif damage == "version":
        _edit(pier, "0i40", version=le(4))
    elif damage == "fake":
        _edit(pier, "0i40", fake=b"\x02")
    elif damage == "no who":
        _edit(pier, "0i40", who=None)
    elif damage == "life":
        _edit(pier, "0i40", life=le(1 << 31))
    elif damage == "epoch format":
        (pier / ".urb" / "log" / "0i40" / "epoc.txt").write_text("7")
    report = verify(pier)
    assert not report.ok and says in report.problem, report.problem
    assert report.bad_event == event


def test_what_seguro_writes_is_what_vere_reads(tmp_path: Path, records: list[bytes]) -> None:
    pier = tmp_path / "out"
    meta = Meta(3, 0x1234_5678, False, 1)
    assert write_pier(pier, meta, 0, enumerate(records[:30], start=1), vere_major=3) == 30
    log = pier / ".urb" / "log"
    expected_meta = {b"version": b"\x03", b"who": le(0x1234_5678), b"fake": b"\x01", b"life": b"\x01"}
    assert read_meta(log) == expected_meta and read_meta(log / "0i0") == expected_meta
    assert read_events(log / "0i0") == dict(enumerate(records[:30], start=1))
    assert (log / "0i0" / "epoc.txt").read_text() == "1" and (log / "0i0" / "vere.txt").read_text() == "3.5"
    assert (pier / ".urb" / "put").is_dir() and (pier / ".urb" / "get").is_dir()
    assert not list(log.rglob("*.tmp"))
    with pytest.raises(PierError, match="refusing to overwrite"):
        write_pier(pier, meta, 0, enumerate(records[:30], start=1))
    write_pier(pier, meta, 0, enumerate(records[:10], start=1), force=True)
    assert len(read_events(log / "0i0")) == 10 and (log / "0i0" / "epoc.txt").read_text() == "2"


def test_a_chopped_log_is_written_with_its_snapshot_or_not_at_all(
    tmp_path: Path, records: list[bytes]
) -> None:
    snap = tmp_path / "image.bin"
    snap.write_bytes(b"loom")
    meta = Meta(3, 7, True, 1)
    with pytest.raises(PierError, match="needs its snapshot"):
        write_pier(tmp_path / "a", meta, 40, enumerate(records[40:50], start=41))
    write_pier(tmp_path / "b", meta, 40, enumerate(records[40:50], start=41), snapshot={"image.bin": snap})
    epoch = tmp_path / "b" / ".urb" / "log" / "0i40"
    assert (epoch / "image.bin").read_bytes() == b"loom"
    assert (tmp_path / "b" / ".urb" / "chk" / "image.bin").exists()
    assert read_meta(epoch)[b"fake"] == b"" and verify(tmp_path / "b").ok


def test_a_just_rolled_epoch_without_events_yet_is_sound(tmp_path: Path, records: list[bytes]) -> None:
    """Found in review: vere creates an epoch's EVENTS table at its first event, so right after a roll the
    newest epoch has META only; that was reported as corrupt and refused by import."""
    pier = epoch_pier(tmp_path / "pier", [(0, records[:30])])
    rolled = pier / ".urb" / "log" / "0i30"
    e = lmdb.open(str(rolled), max_dbs=2, map_size=1 << 30)
    put_meta(e, PierSpec())  # META, no EVENTS
    e.close()
    (rolled / "epoc.txt").write_text("2")
    (rolled / "vere.txt").write_text("4.5")
    (rolled / "image.bin").write_bytes(b"snapshot at 30")
    report = verify(pier)
    assert report.ok and report.last_event == 30, report.problem
