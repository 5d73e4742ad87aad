"""End to end: replicas keep runtime snapshots taken at committed events and serve them; a replica whose
disk is wiped mid-run starts again from a peer's snapshot and a short tail, not from event 1."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from seguro.node.eventlog import EventLog
from seguro.ops import cluster as local
from seguro.ops.admin import status_rows
from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.test_protocols import pump

pytestmark = pytest.mark.e2e
SNAPSHOT_EVERY = 400


@pytest.mark.parametrize("runtime", ["ship", "ship2"])
def test_a_wiped_replica_rejoins_from_a_peers_snapshot_and_a_short_tail(tmp_path: Path, runtime: str) -> None:
    cluster = Cluster(
        tmp_path / "cluster", extra=["--runtime", runtime, "--snapshot-every", str(SNAPSHOT_EVERY)]
    )
    try:
        pump(cluster, 1500, timeout_s=120)

        def rows() -> dict[str, dict]:
            return {r["id"]: r for r in status_rows(cluster.etcd, cluster.ship)["replicas"]}

        def all_kept() -> bool:
            return all(r["snapshot_event"] >= SNAPSHOT_EVERY for r in rows().values())

        wait_until("every replica to keep a snapshot", all_kept, 60, every_s=0.5)
        master = cluster.master()["id"]
        victim = next(n for n in cluster.state["nodes"] if n["id"] != master)
        os.kill(cluster.node(victim["id"])["pid"], signal.SIGKILL)
        shutil.rmtree(victim["data"])  # the disk is gone: log, pier, snapshots
        pump(cluster, 1700, timeout_s=60)
        local.restart_node(cluster.workdir, victim["id"])
        pump(cluster, 2000 + 2 * SNAPSHOT_EVERY, timeout_s=60)  # enough of a tail for a snapshot of its own
        wait_until("replicas to converge", cluster.converged, 90, every_s=0.5)
        came_back = rows()[victim["id"]]
        started = came_back["bootstrapped"]
        assert started is not None, "the wiped replica replayed from event 1"
        print(f"{runtime}: rejoined from {started}, head {came_back['durable_event']}")
        assert started["event"] >= SNAPSHOT_EVERY and started["peer"] != victim["id"]
        assert started["format"] == "ship" and started["size_bytes"] > 0
        last = cluster.logs_agree()
        assert not cluster.peer.doubles(), "double boot"
        assert came_back["durable_event"] == max(last.values())
        # its own later snapshot: its runtime replayed the tail on top of the fetched one, every mug checked
        wait_until("the rejoined replica's own snapshot", lambda: rows()[victim["id"]]["snapshot_event"]
                   > started["event"], 60, every_s=0.5)  # fmt: skip
    finally:
        cluster.close()
    with EventLog(Path(victim["data"]), create=False, read_only=True) as log:
        assert log.first_event() == started["event"] + 1  # it holds the tail only
