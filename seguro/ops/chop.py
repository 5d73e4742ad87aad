"""`seguro log chop`: drop a stopped replica's local events that a kept runtime snapshot stands for (vere's
`urbit chop`, for a Seguro log), and the snapshot side of exporting and importing a chopped log.

Chopping is safe only below a snapshot every replica holds: a replica whose disk is lost starts again
from a peer's snapshot, and a replica that falls behind catches up from the master, whose log must still
hold what it lacks. With `--etcd`, the cut is at the lowest snapshot any registered replica keeps (and
never above this replica's own); `--alone` chops at this replica's snapshot without asking.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from seguro.node.etcd.coordinator import Coordinator
from seguro.node.eventlog import EventLog
from seguro.node.snapshots import Manifest, SnapshotError, SnapshotStore
from seguro.urbit.launch import SNAPSHOT_FILES
from seguro.urbit.pier.layout import PierError
from seguro.urbit.ship.kernel import SNAPSHOT_NAME, load_snapshot

VERE_MAJOR = {"vere3": 3, "vere4": 4}


class ChopError(ValueError):
    """Nothing can be chopped, or not safely; the message says why."""


@dataclass(frozen=True)
class Chopped:
    through: int  # the log now begins at through + 1
    events_dropped: int
    snapshot_event: int  # the kept snapshot this replica restarts from
    held_by_all: int  # the lowest snapshot a registered replica keeps (0: not asked, --alone)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def chop(data_dir: Path, etcd: str | None = None, ship: str | None = None) -> Chopped:
    """Chop the log in `data_dir` (its node stopped: the log is opened for writing)."""
    if not (data_dir / "log").is_dir():
        raise ChopError(f"{data_dir} holds no event log")
    with EventLog(data_dir) as log:
        meta = log.meta()
        newest = SnapshotStore(data_dir).newest(meta.get("genesis", ""))
        if newest is None:
            raise ChopError(f"{data_dir} keeps no runtime snapshot of its ship: nothing stands for what "
                            "would be dropped")  # fmt: skip
        manifest = newest[0]
        if manifest.event > log.last_event():
            raise ChopError(f"the kept snapshot is at event {manifest.event}, past the log's last event "
                            f"{log.last_event()}: it does not belong to this log")  # fmt: skip
        held = _held_by_all(etcd, ship) if etcd else 0
        through = min(manifest.event, held) if etcd else manifest.event
        base = int(meta.get("base", 0))
        if through <= base:
            raise ChopError(f"nothing to chop: the log already begins after event {base}, and the lowest "
                            f"snapshot every replica holds is at {through}")  # fmt: skip
        _restore_if_older(data_dir, manifest, through, meta.get("genesis", ""))
        dropped = log.chop(through, manifest.mug if through == manifest.event else None)
    return Chopped(through, dropped, manifest.event, held)


def _restore_if_older(data_dir: Path, manifest: Manifest, through: int, genesis: str) -> None:
    """The runtime must restart from a snapshot at or after the cut: put the kept one in place of the
    reference ship's own when that is older (vere's snapshots cannot be read here: they are replaced
    whenever the cut is past event 0, the kept snapshot being at or after the cut)."""
    targets = {Path(p).name: data_dir / "pier" / p for p in SNAPSHOT_FILES.get(manifest.format, ())}
    own = data_dir / "pier" / SNAPSHOT_NAME
    if manifest.format == "ship" and own.exists():
        try:
            if load_snapshot(data_dir / "pier").eve >= through:
                return
        except Exception:  # noqa: BLE001 - unreadable: replace it with the kept one
            pass
    try:
        SnapshotStore(data_dir).restore(targets, genesis)
    except (SnapshotError, OSError) as e:
        raise ChopError(f"cannot put the kept snapshot where the runtime loads it: {e}") from None


def _held_by_all(etcd: str, ship: str | None) -> int:
    if not ship:
        raise ChopError("give --ship with --etcd")
    with Coordinator([u.strip() for u in etcd.split(",")], ship) as coord:
        replicas = coord.replicas()
    if not replicas:
        raise ChopError(f"ship {ship} has no registered replicas in etcd")
    # what a replica can restart from: its snapshot, and no further than its own log reaches
    return min(min(int(st.get("snapshot_event", 0)), int(st.get("durable_event", 0))) for st in replicas.values())  # noqa: E501


def kept_snapshot(data_dir: Path, base: int, genesis: str) -> Manifest:
    """The kept snapshot a chopped log (beginning after `base`) exports with."""
    newest = SnapshotStore(data_dir).newest(genesis)
    if newest is None or newest[0].event < base:
        raise PierError(f"{data_dir}: the log begins after event {base} but keeps no snapshot at or after it")
    return newest[0]


def snapshot_for_export(data_dir: Path, manifest: Manifest) -> tuple[int, dict[str, Path] | None]:
    """(vere major, snapshot files for write_pier): vere's own formats go into the epoch and .urb/chk;
    the reference ship's (None here) is put beside the log by `place_ship_snapshot`."""
    files = {f.name: data_dir / "snapshots" / str(manifest.event) / f.name for f in manifest.files}
    return VERE_MAJOR.get(manifest.format, 4), (None if manifest.format == "ship" else files)


def place_ship_snapshot(data_dir: Path, manifest: Manifest, pier: Path) -> None:
    shutil.copyfile(data_dir / "snapshots" / str(manifest.event) / SNAPSHOT_NAME, pier / SNAPSHOT_NAME)


def import_ship_snapshot(pier: Path, base: int, data_dir: Path) -> bool:
    """A chopped pier of the reference ship keeps its snapshot beside the log: keep it for the node, and
    put it where the node's runtime loads it. False when the pier holds none."""
    source = pier / SNAPSHOT_NAME
    if not source.exists():
        return False
    try:
        kernel = load_snapshot(pier)
    except Exception as e:  # noqa: BLE001 - the kernel says Fatal for a corrupt file: any error is a PierError
        raise PierError(f"{source}: {e}") from None
    if kernel.eve != base:
        raise PierError(f"{source} is at event {kernel.eve}, but the log begins after {base}")
    store = SnapshotStore(data_dir)
    store.keep(base, kernel.mug(), "ship", {SNAPSHOT_NAME: source}, genesis="")  # an import has no genesis
    try:
        store.restore({Path(p).name: data_dir / "pier" / p for p in SNAPSHOT_FILES["ship"]}, genesis="")
    except SnapshotError as e:
        raise PierError(str(e)) from None
    return True
