"""Piers for tests, written with raw LMDB calls straight from vere's source description (pkg/vere/disk.c,
pkg/vere/db/lmdb.c at vere-v3.5 and vere-v4.5), not with Seguro's own writer, so that the reader and the
writer are each checked against vere's layout rather than against each other.

Events come from the reference ship, so every record is a real record (mug + jam) that replays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lmdb

from seguro.urbit.ames import datagram_event
from seguro.urbit.record import encode_record
from seguro.urbit.serf import Serf
from seguro.urbit.ship.kernel import BOOT_LIFE, boot_events

WALL_S = 1_700_000_000.0
WHO = 0x1234_5678  # a planet-sized @p
VERE_TXT = {1: "3.5", 2: "4.5"}
SNAPSHOTS = {1: ("north.bin", "south.bin"), 2: ("image.bin",)}


def ship_records(count: int, workdir: Path) -> list[bytes]:
    """`count` records of a reference ship: its boot sequence, then datagrams."""
    records: list[bytes] = []
    with Serf(pier=workdir / "maker") as serf:
        boot = boot_events("~zod", WALL_S)
        serf.play(1, boot)
        records += [encode_record(0, e) for e in boot]
        for i in range(count - len(boot)):
            done = serf.work(datagram_event(WALL_S + i, "127.0.0.1", 4000 + i % 7, b"ping %d" % i))
            records.append(encode_record(done.mug, done.job))
    return records[:count]


def le(value: int) -> bytes:
    """META's encoding: little-endian bytes, trailing zeros stripped (vere's _disk_save_meta)."""
    return value.to_bytes(16, "little").rstrip(b"\0")


@dataclass
class PierSpec:
    version: int = 3
    who: int = WHO
    fake: bool = False
    life: int = BOOT_LIFE


def env(path: Path) -> lmdb.Environment:
    path.mkdir(parents=True, exist_ok=True)
    return lmdb.open(str(path), map_size=1 << 30, max_dbs=2, mode=0o664)


def put_meta(e: lmdb.Environment, spec: PierSpec, **raw: bytes | None) -> None:
    """META as vere writes it from `spec`, with `raw` values (None: the key is left out) instead."""
    values = {b"version": le(spec.version), b"who": le(spec.who),
              b"fake": b"" if spec.fake else b"\x01", b"life": le(spec.life)}  # fmt: skip
    values.update({k.encode(): v for k, v in raw.items()})
    with e.begin(db=e.open_db(b"META"), write=True) as txn:
        for k, v in values.items():
            if v is None:
                txn.delete(k)
            else:
                txn.put(k, v)


def put_events(e: lmdb.Environment, first: int, records: list[bytes]) -> None:
    db = e.open_db(b"EVENTS", integerkey=True)
    with e.begin(db=db, write=True) as txn:
        for i, record in enumerate(records):
            txn.put((first + i).to_bytes(8, "little"), record)


def epoch_pier(pier: Path, epochs: list[tuple[int, list[bytes]]], fmt: int = 2, spec: PierSpec | None = None,
               snapshot_of_first: bool = True) -> Path:  # fmt: skip
    """A vere >= 3 pier: top-level META (version 3) and epochs (base, the records from base+1)."""
    spec = spec or PierSpec()
    log = pier / ".urb" / "log"
    top = env(log)
    put_meta(top, spec)
    top.close()
    for index, (base, records) in enumerate(epochs):
        path = log / f"0i{base}"
        e = env(path)
        put_meta(e, spec)
        put_events(e, base + 1, records)
        e.close()
        (path / "epoc.txt").write_text(str(fmt))
        (path / "vere.txt").write_text(VERE_TXT[fmt])
        if base and (index or snapshot_of_first):
            for name in SNAPSHOTS[fmt]:
                (path / name).write_bytes(b"snapshot %d of %s" % (base, name.encode()))
    for name in ("put", "get", "chk"):
        (pier / ".urb" / name).mkdir(exist_ok=True)
    return pier


def legacy_pier(pier: Path, records: list[bytes], spec: PierSpec | None = None) -> Path:
    """A vere 1.x-2.x pier: one environment at .urb/log with EVENTS and META (version 1)."""
    spec = spec or PierSpec(version=1)
    e = env(pier / ".urb" / "log")
    put_meta(e, spec)
    put_events(e, 1, records)
    e.close()
    return pier


def read_events(path: Path) -> dict[int, bytes]:
    """Every EVENTS entry of one environment, raw."""
    e = lmdb.open(str(path), max_dbs=2, readonly=True)
    try:
        with e.begin(db=e.open_db(b"EVENTS", integerkey=True, create=False)) as txn:
            return {int.from_bytes(k, "little"): bytes(v) for k, v in txn.cursor()}
    finally:
        e.close()


def read_meta(path: Path) -> dict[bytes, bytes]:
    e = lmdb.open(str(path), max_dbs=2, readonly=True)
    try:
        with e.begin(db=e.open_db(b"META", create=False)) as txn:
            return {bytes(k): bytes(v) for k, v in txn.cursor()}
    finally:
        e.close()
