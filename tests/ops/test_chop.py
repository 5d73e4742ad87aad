"""`seguro log chop`: a replica's log drops what its kept snapshot stands for; the chopped log exports to
a pier with that snapshot, imports back, and a runtime started on the import replays only the tail."""

from __future__ import annotations

import json
import queue
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from seguro.cli import main
from seguro.core import messages as m
from seguro.node.etcd.coordinator import Coordinator
from seguro.node.eventlog import EventLog
from seguro.node.runtime import RuntimeWorker
from seguro.node.snapshots import SnapshotStore
from seguro.ops.chop import ChopError, chop
from seguro.ops.etcd_server import EtcdCluster
from seguro.ops.pier import export_from_data, import_to_data
from seguro.urbit.pier.layout import Meta, epochs
from seguro.urbit.pier.verify import verify
from seguro.urbit.record import decode_record
from seguro.urbit.serf import Serf
from seguro.urbit.ship.kernel import SNAPSHOT_NAME
from tests.node.test_runtime import make_log, next_event

EVENTS, SNAPSHOT_AT = 800, 503  # the snapshot: boot, then 5 plays of 100
META = Meta(3, 0, True, 1)


def test_a_chop_replaces_the_mug_of_an_earlier_base(tmp_path: Path) -> None:
    """Found in review: a bootstrapped replica (base B, the mug at B) chopped later kept B's mug for
    its new base, and its next start was a false divergence."""
    replica_with_snapshot(tmp_path / "data")
    with EventLog(tmp_path / "data") as log:
        log.chop(3, mug=12345)  # as if it had started from a snapshot at event 3
        assert log.meta()["base_mug"] == 12345
    chop(tmp_path / "data")
    with EventLog(tmp_path / "data") as log:
        assert log.meta()["base"] == SNAPSHOT_AT and log.meta()["base_mug"] != 12345
        log.chop(SNAPSHOT_AT + 10)  # no mug known for this cut: none is checked
        assert "base_mug" not in log.meta()


def replica_with_snapshot(data: Path) -> list[tuple[int, bytes]]:
    """A stopped replica's data dir: a log of 3 + EVENTS events and a kept snapshot at SNAPSHOT_AT."""
    with make_log(data, EVENTS) as log:
        records = list(log.read(1))
    with Serf(pier=data / "pier") as serf:
        serf.play(1, [decode_record(r).event for _, r in records[:3]])
        for first in range(4, SNAPSHOT_AT, 100):
            serf.play(first, [decode_record(r).event for _, r in records[first - 1 : first + 99]])
        serf.save()
        files = {SNAPSHOT_NAME: data / "pier" / SNAPSHOT_NAME}
        SnapshotStore(data).keep(serf.eve, serf.mug, "ship", files, genesis="")  # the log has no genesis
    return records


def test_a_chopped_log_exports_with_its_snapshot_and_imports_back(tmp_path: Path) -> None:
    records = replica_with_snapshot(tmp_path / "data")
    out = CliRunner().invoke(main, ["log", "chop", "--data", str(tmp_path / "data"), "--alone", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"through": SNAPSHOT_AT, "events_dropped": SNAPSHOT_AT,
                                      "snapshot_event": SNAPSHOT_AT, "held_by_all": 0}  # fmt: skip
    with EventLog(tmp_path / "data") as log:
        assert (log.first_event(), log.last_event()) == (SNAPSHOT_AT + 1, EVENTS + 3)
        kept = SnapshotStore(tmp_path / "data").newest("")
        assert kept is not None and log.meta()["base_mug"] == kept[0].mug  # the state at the new base
        events: queue.Queue[m.Event] = queue.Queue()
        worker = RuntimeWorker(log, events.put, pier=tmp_path / "data" / "pier")
        worker.start()
        try:  # its own snapshot at the base, checked against that mug, then the tail
            assert next_event(events, m.RuntimeReady).eve == EVENTS + 3  # type: ignore[attr-defined]
        finally:
            worker.stop()
    again = CliRunner().invoke(main, ["log", "chop", "--data", str(tmp_path / "data"), "--alone"])
    assert again.exit_code == 1 and "nothing to chop" in again.output

    assert export_from_data(tmp_path / "data", tmp_path / "pier", meta=META) == EVENTS + 3
    assert epochs(tmp_path / "pier") == [SNAPSHOT_AT] and (tmp_path / "pier" / SNAPSHOT_NAME).exists()
    assert verify(tmp_path / "pier").ok
    import_to_data(tmp_path / "pier", tmp_path / "back")
    with EventLog(tmp_path / "back") as log:
        assert list(log.read(1)) == records[SNAPSHOT_AT:]
        events: queue.Queue[m.Event] = queue.Queue()
        worker = RuntimeWorker(log, events.put, pier=tmp_path / "back" / "pier")
        worker.start()
        try:  # from the imported snapshot, the tail replays to every logged mug
            assert next_event(events, m.RuntimeReady).eve == EVENTS + 3  # type: ignore[attr-defined]
        finally:
            worker.stop()


def test_chop_asks_etcd_for_the_lowest_snapshot_every_replica_keeps(
    tmp_path: Path, etcd1: EtcdCluster
) -> None:
    replica_with_snapshot(tmp_path / "data")
    with pytest.raises(ChopError, match="holds no event log"):
        chop(tmp_path / "empty")
    with EventLog(tmp_path / "short") as short:  # a kept snapshot past the log's end is another log's
        short.append(1, [b"\x00" * 4 + b"\x01"])
    shutil.copytree(tmp_path / "data" / "snapshots", tmp_path / "short" / "snapshots")
    with pytest.raises(ChopError, match="past the log's last event 1"):
        chop(tmp_path / "short")
    with Coordinator([etcd1.endpoints], "zod") as coord:
        coord.put_replica("a", {"snapshot_event": SNAPSHOT_AT, "durable_event": 803})
        coord.put_replica("b", {"snapshot_event": 300, "durable_event": 803})
    done = chop(tmp_path / "data", etcd1.endpoints, "zod")
    assert (done.through, done.events_dropped, done.held_by_all) == (300, 300, 300)
    with EventLog(tmp_path / "data") as log:
        assert log.first_event() == 301
