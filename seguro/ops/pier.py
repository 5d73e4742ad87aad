"""Moving a ship's log between vere's pier and Seguro: import a pier into a node's local log (or into a
cluster through etcd), and export a replicated log back into a pier vere boots."""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from seguro.core.config import Config
from seguro.node.etcd.coordinator import Coordinator, Genesis, LogTrimmed, ShipExists
from seguro.node.etcd.sealing import Keyring
from seguro.node.eventlog import EventLog
from seguro.node.snapshots import Manifest
from seguro.ops.chop import import_ship_snapshot, kept_snapshot, place_ship_snapshot, snapshot_for_export
from seguro.ops.ship import new_genesis
from seguro.urbit.pier.layout import SNAPSHOT_FILES, Meta, PierError
from seguro.urbit.pier.reader import segments
from seguro.urbit.pier.verify import PierReport, walk
from seguro.urbit.pier.writer import write_pier

IMPORT_BATCH_EVENTS = 10_000
ETCD_IMPORT_MAX_BYTES = 512 << 20  # a quarter of etcd's default 2 GiB quota (history doubles it)
MAX_BATCH_EVENTS, MAX_BATCH_BYTES = Config.max_batch_events, Config.max_batch_bytes  # as the master batches
SNAPSHOT_DIR = "pier-snapshot"  # beside DIR/log: the snapshot a chopped log begins after

Progress = Callable[[int], None]


def batched(
    records: Iterator[tuple[int, bytes]], max_events: int, max_bytes: int | None = None
) -> Iterator[tuple[int, list[bytes]]]:
    """(first event, records) groups of contiguous records: at most `max_events`, and `max_bytes` of
    records when given (a larger record goes alone)."""
    first, group, size = 0, [], 0
    for event, record in records:
        full = len(group) >= max_events or (max_bytes is not None and size + len(record) > max_bytes)
        if group and full:
            yield first, group
            group, size = [], 0
        if not group:
            first = event
        group.append(record)
        size += len(record)
    if group:
        yield first, group


def import_to_data(pier: Path, data_dir: Path, progress: Progress | None = None) -> PierReport:
    """Build a node's local log (DIR/log) byte for byte from the pier, with its META and, for a chopped
    log, its snapshot (DIR/pier-snapshot). Records are checked structurally as they go (mug and a jam
    without trailing zeros); `seguro pier verify` cues every one. Refuses a data dir that has a log."""
    report = PierReport(str(pier))
    layout = segments(pier)
    with EventLog(data_dir) as log:
        if log.last_event() or log.meta().get("genesis") or log.meta().get("pier"):
            raise PierError(f"{data_dir} already holds a log; import into an empty data directory")
        base = layout[0].base
        if base:
            log.set_base(base)
        for first, records in batched(walk(pier, decode=False, report=report), IMPORT_BATCH_EVENTS):
            log.append(first, records)
            if progress is not None:
                progress(first + len(records) - 1)
        ship_snapshot = bool(base) and import_ship_snapshot(pier, base, data_dir)
        snapshot = (
            _keep_snapshot(layout[0].path, layout[0].epoch_format, data_dir)
            if base and not ship_snapshot
            else []
        )
        fmt = (layout[0] if base else layout[-1]).epoch_format  # a chopped log: its snapshot's format
        meta = {**report.meta, "epoch_format": fmt, "snapshot": snapshot}
        log.set_meta(pier=meta)
    return report


def _keep_snapshot(epoch_path: Path, epoch_format: int | None, data_dir: Path) -> list[str]:
    names = list(SNAPSHOT_FILES[epoch_format or 1])
    target = data_dir / SNAPSHOT_DIR
    target.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(epoch_path / name, target / name)
    return names


def export_from_data(
    data_dir: Path, pier: Path, vere_major: int | None = None, force: bool = False,
    meta: Meta | None = None, progress: Progress | None = None,
) -> int:  # fmt: skip
    """Write the node's local log as a pier vere boots; returns the last event. The pier's META is the
    imported one, or `meta` for a ship Seguro created. A chopped log exports with its snapshot, for the
    vere whose snapshot format it has."""
    with EventLog(data_dir, create=False, read_only=True) as log:
        info = log.meta().get("pier") or {}
        if meta is None:
            if not info:
                raise PierError(f"{data_dir} holds no imported pier's META: give who, fake and life")
            meta = Meta(int(info["version"]), int(info["who"]), bool(info["fake"]), int(info["life"]))
        base = int(log.meta().get("base", 0))
        snapshot = {n: data_dir / SNAPSHOT_DIR / n for n in info.get("snapshot", [])}
        fmt = info.get("epoch_format")
        if vere_major is None:
            vere_major = 3 if fmt == 1 and snapshot else 4
        if base and not snapshot:  # chopped here: the runtime snapshot kept at or after its base
            kept = kept_snapshot(data_dir, base, log.meta().get("genesis", ""))
            return _export_chopped(log, data_dir, pier, meta, kept, force, progress)
        return write_pier(pier, meta, base, _counted(log.read(base + 1), progress), vere_major,
                          snapshot or None, force)  # fmt: skip


def _export_chopped(log: EventLog, data_dir: Path, pier: Path, meta: Meta, manifest: Manifest, force: bool,
                    progress: Progress | None) -> int:  # fmt: skip
    """Events after the snapshot, in an epoch based at it, with the snapshot where its runtime loads it."""
    major, files = snapshot_for_export(data_dir, manifest)
    records = _counted(log.read(manifest.event + 1), progress)
    last = write_pier(
        pier, meta, manifest.event, records, major, files, force, snapshot_in_place=files is None
    )
    if files is None:
        place_ship_snapshot(data_dir, manifest, pier)
    return last


def _counted(records: Iterator[tuple[int, bytes]], progress: Progress | None) -> Iterator[tuple[int, bytes]]:
    for event, record in records:
        if progress is not None and event % IMPORT_BATCH_EVENTS == 0:
            progress(event)
        yield event, record


def import_to_etcd(
    pier: Path, etcd: str, ship: str, progress: Progress | None = None,
    max_bytes: int = ETCD_IMPORT_MAX_BYTES, keyring: Keyring | None = None,
) -> tuple[Genesis, PierReport]:  # fmt: skip
    """Seed a cluster with the pier's log: every batch appended at epoch 0 (no master may exist), then the
    genesis, last, so that nodes (which wait for a genesis) never start on a half-imported log. A run that
    stopped part-way is resumed where etcd's head is, once its last record is checked against the pier.
    Refuses a ship name that exists, and a chopped pier (every replica would need its snapshot)."""
    layout = segments(pier)
    if layout[0].base:
        raise PierError(f"{pier} is chopped (its log begins after event {layout[0].base}): every replica "
                        "needs its snapshot; import it with --data on each node instead")  # fmt: skip
    size = sum((s.path / "data.mdb").stat().st_size for s in layout)
    if size > max_bytes:
        raise PierError(f"{pier}'s log is {size >> 20} MiB, more than {max_bytes >> 20} MiB: etcd holds "
                        "the whole log until a master trims it, and would fill its quota; importing through "
                        "etcd is for smaller logs")  # fmt: skip
    report = PierReport(str(pier))
    with Coordinator(etcd, ship, timeout_s=10.0, keyring=keyring) as coord:
        found = coord.genesis()
        if found is not None:
            raise ShipExists(f"ship {ship} already exists (genesis {found.id})")
        head, _ = coord.head()
        records = walk(pier, decode=False, report=report)
        if head:
            _check_resume(coord, pier, head)
            records = (r for r in records if r[0] > head)
        for first, group in batched(records, MAX_BATCH_EVENTS, MAX_BATCH_BYTES):  # as the master batches
            result = coord.append_records(0, first - 1, group)
            if not result.ok:
                raise ShipExists(f"ship {ship} changed during the import (head {result.head_event}, "
                                 f"master epoch {result.master_epoch})")  # fmt: skip
            if progress is not None:
                progress(first + len(group) - 1)
        meta = report.meta
        genesis = new_genesis(_who_text(int(meta["who"])), time.time())  # type: ignore[arg-type]
        genesis = Genesis(genesis.id, genesis.who, genesis.created_by, genesis.created_at, 1,
                          vere={k: meta[k] for k in ("version", "who", "fake", "life")})  # fmt: skip
        coord.seal_genesis(genesis, report.last_event)
    return genesis, report


def _check_resume(coord: Coordinator, pier: Path, head: int) -> None:
    ours = next((record for event, record in walk(pier, decode=False) if event == head), None)
    theirs = next((b.records[-1].data for b in coord.read_batches(head, head)), None)
    if ours is None or ours != theirs:
        raise ShipExists(
            f"etcd holds events ..{head} of ship {coord.ship} with no genesis, and they "
            "are not this pier's: another import was interrupted; remove its keys first"
        )


def _who_text(who: int) -> str:
    return f"0x{who:x}"


def export_from_etcd(
    etcd: str, ship: str, pier: Path, vere_major: int = 4, force: bool = False, keyring: Keyring | None = None
) -> int:
    """Write the ship's log as held in etcd into a pier; etcd must still hold it all (from event 1):
    after trims, export from a node's data directory instead."""
    with Coordinator(etcd, ship, timeout_s=10.0, keyring=keyring) as coord:
        genesis = coord.genesis()
        if genesis is None:
            raise PierError(f"ship {ship} does not exist in this etcd")
        if genesis.vere is None:
            raise PierError(f"ship {ship} was created by `seguro ship create` (a reference ship): its log "
                            "is not a vere ship's")  # fmt: skip
        vere = genesis.vere
        meta = Meta(int(vere["version"]), int(vere["who"]), bool(vere["fake"]), int(vere["life"]))
        batches = coord.read_batches(genesis.first_event)
        try:
            head = next(batches, None)
        except LogTrimmed as e:
            raise PierError(f"etcd no longer holds events {genesis.first_event}.."
                            f"{e.first_available_event - 1} (trimmed): export from a node's data directory "
                            "(--data)") from None  # fmt: skip
        everything = itertools.chain([head] if head else [], batches)
        records = ((r.event, r.data) for b in everything for r in b.records)
        return write_pier(pier, meta, genesis.first_event - 1, records, vere_major, None, force)
