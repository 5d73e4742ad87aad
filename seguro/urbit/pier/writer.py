"""Writing a log vere can replay: top-level META, one epoch `0i<base>` with EVENTS and META, `epoc.txt`
and `vere.txt` (each through a fsynced .tmp file, renamed, as vere does), the snapshot at `base` when the
log begins after event 1, and `.urb/put` and `.urb/get`. LMDB is opened as vere opens it: a directory
environment, two tables, a 1 TiB map, mode 0664, synced writes."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import lmdb

from seguro.urbit.pier.layout import (
    EPOCH_FORMATS,
    EVENTS,
    FILE_MODE,
    MAP_SIZE,
    MAX_DBS,
    META,
    SNAPSHOT_FILES,
    VERE_VERSIONS,
    VERSION_EPOCHS,
    Meta,
    PierError,
    epoch_dir,
    event_key,
    fsync_dir,
    log_dir,
    write_text_atomically,
)

WRITE_BATCH_EVENTS = 10_000  # events per LMDB write transaction (vere's own are at most 100)


def open_new_env(path: Path) -> lmdb.Environment:
    path.mkdir(parents=True, exist_ok=True)
    return lmdb.open(str(path), map_size=MAP_SIZE, max_dbs=MAX_DBS, mode=FILE_MODE, sync=True, metasync=True)


def put_meta(env: lmdb.Environment, meta: Meta) -> None:
    db = env.open_db(META)
    with env.begin(db=db, write=True) as txn:
        for key, value in meta.encode().items():
            txn.put(key, value)


def write_pier(
    pier: Path,
    meta: Meta,
    base: int,
    records: Iterable[tuple[int, bytes]],
    vere_major: int = 4,
    snapshot: dict[str, Path] | None = None,
    force: bool = False,
    snapshot_in_place: bool = False,
) -> int:
    """Write events base+1.. from `records` ((event, record) in order) as a pier vere `vere_major` boots;
    returns the last event written. `snapshot`: the files standing for events 1..base (required when base
    > 0), copied into the epoch and into `.urb/chk`. Refuses a pier that has a log unless `force`."""
    if vere_major not in EPOCH_FORMATS:
        raise PierError(f"vere {vere_major}: this exports for vere 3 (3.x) or 4 (4.x)")
    epoch_format = EPOCH_FORMATS[vere_major]
    if not snapshot_in_place:  # else the runtime already holds the state of events 1..base where it loads it
        _check_snapshot(base, epoch_format, snapshot)
    _clear(pier, force, keep_checkpoint=snapshot_in_place)
    top = open_new_env(log_dir(pier))
    try:
        put_meta(top, Meta(VERSION_EPOCHS, meta.who, meta.fake, meta.life))
    finally:
        top.close()
    epoch = epoch_dir(pier, base)
    epoch.mkdir(mode=0o700)
    for name, source in (snapshot or {}).items():
        shutil.copyfile(source, epoch / name)
        (pier / ".urb" / "chk").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, pier / ".urb" / "chk" / name)
    write_text_atomically(epoch / "epoc.txt", str(epoch_format))
    write_text_atomically(epoch / "vere.txt", VERE_VERSIONS[vere_major])
    env = open_new_env(epoch)
    try:
        put_meta(env, Meta(VERSION_EPOCHS, meta.who, meta.fake, meta.life))
        last = _put_events(env, base, records)
    finally:
        env.close()
    for name in ("put", "get"):
        (pier / ".urb" / name).mkdir(exist_ok=True)
    fsync_dir(log_dir(pier))
    return last


def _check_snapshot(base: int, epoch_format: int, snapshot: dict[str, Path] | None) -> None:
    wanted = set(SNAPSHOT_FILES[epoch_format])
    if base and set(snapshot or {}) != wanted:
        names = ", ".join(sorted(wanted))
        raise PierError(f"a log that begins after event {base} needs its snapshot ({names} for epoch "
                        f"format {epoch_format}); have {sorted(snapshot or {})}")  # fmt: skip


def _clear(pier: Path, force: bool, keep_checkpoint: bool = False) -> None:
    """Refuse a pier that has a log or a checkpoint; with `force`, remove both (a stale .urb/chk would make
    vere load a snapshot of another history and replay this log on top of it). `keep_checkpoint`: the
    checkpoint is the one this log continues from."""
    candidates = (log_dir(pier),) if keep_checkpoint else (log_dir(pier), pier / ".urb" / "chk")
    stale = [d for d in candidates if d.exists()]
    if stale and not force:
        raise PierError(f"{pier} already has an event log or a checkpoint ({', '.join(map(str, stale))}); "
                        "refusing to overwrite it")  # fmt: skip
    for d in stale:
        shutil.rmtree(d)
    log_dir(pier).parent.mkdir(parents=True, exist_ok=True)


def _put_events(env: lmdb.Environment, base: int, records: Iterable[tuple[int, bytes]]) -> int:
    db = env.open_db(EVENTS, integerkey=True)
    expected, pending = base + 1, []
    for event, record in records:
        if event != expected:
            raise PierError(f"event {expected} is missing from what is exported (got {event})")
        pending.append((event_key(event), record))
        expected += 1
        if len(pending) >= WRITE_BATCH_EVENTS:
            _commit(env, db, pending)
    _commit(env, db, pending)
    return expected - 1


def _commit(env: lmdb.Environment, db: object, pending: list[tuple[bytes, bytes]]) -> None:
    if pending:
        with env.begin(db=db, write=True) as txn:
            cursor = txn.cursor()
            cursor.putmulti(pending, append=True)  # keys ascend: LMDB's append mode
        pending.clear()
