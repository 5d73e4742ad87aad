"""Moving a ship's log between vere's pier and Seguro: import a pier into a node's local log (or into a
cluster through etcd), and export a replicated log back into a pier vere boots."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from seguro.node.eventlog import EventLog
from seguro.urbit.pier.layout import SNAPSHOT_FILES, Meta, PierError
from seguro.urbit.pier.reader import segments
from seguro.urbit.pier.verify import PierReport, walk
from seguro.urbit.pier.writer import write_pier

IMPORT_BATCH_EVENTS = 10_000
SNAPSHOT_DIR = "pier-snapshot"  # beside DIR/log: the snapshot a chopped log begins after

Progress = Callable[[int], None]


def batched(records: Iterator[tuple[int, bytes]], size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(first event, records) groups of at most `size` contiguous records."""
    first, group = 0, []
    for event, record in records:
        if not group:
            first = event
        group.append(record)
        if len(group) >= size:
            yield first, group
            group = []
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
        snapshot = _keep_snapshot(layout[0].path, layout[0].epoch_format, data_dir) if base else []
        meta = {**report.meta, "epoch_format": layout[-1].epoch_format, "snapshot": snapshot}
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
        return write_pier(pier, meta, base, _counted(log.read(base + 1), progress), vere_major,
                          snapshot or None, force)  # fmt: skip


def _counted(records: Iterator[tuple[int, bytes]], progress: Progress | None) -> Iterator[tuple[int, bytes]]:
    for event, record in records:
        if progress is not None and event % IMPORT_BATCH_EVENTS == 0:
            progress(event)
        yield event, record
