"""End to end: etcd stays bounded. One replica with a small retention keeps etcd's log window flat; an
etcd that fills up anyway (retention off, a small quota) is said to be full by every view, and
`seguro etcd reclaim` brings the ship back."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from seguro.cli import main
from seguro.node.etcd.coordinator import Coordinator, LogTrimmed
from seguro.ops.admin import wait_for_master
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc
from seguro.urbit.noun import cord, jam
from seguro.urbit.record import da_from_unix
from tests.e2e.helpers import Cluster, wait_until

pytestmark = pytest.mark.e2e


def etcd_window(etcd: str) -> tuple[int, int, int]:
    """(batch keys under the ship's log/, first event etcd still holds, head)."""
    with Coordinator(etcd, "zod") as coord:
        head, _ = coord.head()
        try:
            batches = list(coord.read_batches(1))
        except LogTrimmed as e:
            batches = list(coord.read_batches(e.first_available_event))
    return len(batches), (batches[0].first_event if batches else 0), head


def test_one_replica_with_a_small_retention_keeps_etcd_bounded(tmp_path: Path) -> None:
    """Found in review: a ship with no followers never trimmed (the old rule kept what no follower held)."""
    cluster = Cluster(tmp_path / "cluster", replicas=1, extra=["--etcd-retain-events", "200"])
    try:
        windows = []
        for _ in range(4):
            cluster.send(500)
            wait_until("answers", lambda: cluster.peer.sent - cluster.peer.answered() < 50, timeout_s=30)
            time.sleep(0.5)  # the trim follows the commit
            windows.append(etcd_window(cluster.etcd))
        print(f"(batches, first event kept, head) after each 500 events: {windows}")
        for _, first, head in windows[1:]:
            assert head - first + 1 <= 200 + 100 + 50, windows  # the window, half a window, a batch
        assert windows[-1][2] > 1500 and windows[-1][1] > 1000
    finally:
        cluster.close()


def poke(address: str, size: int, i: int) -> pb.PokeReply:
    event = (da_from_unix(time.time()), ((0, 0), (cord("fill"), (i, 1 << (8 * size)))))
    with grpc.insecure_channel(address) as channel:
        return rpc.AdminStub(channel).Poke(pb.PokeRequest(jam=jam(event)), timeout=15)


def test_a_full_etcd_is_said_everywhere_and_reclaim_brings_the_ship_back(tmp_path: Path) -> None:
    quota = ["--quota-backend-bytes", str(16 << 20)]
    keep_all = ["--etcd-retain-events", "0", "--etcd-retain-bytes", "0"]
    cluster = Cluster(tmp_path / "cluster", replicas=1, extra=keep_all, etcd_args=quota)
    node = cluster.node("n0")
    try:
        replies = []
        for i in range(200):  # bounded: 16 MiB / 256 KiB is 64 events
            reply = poke(node["grpc"], 256 << 10, i)
            replies.append(reply)
            if not reply.accepted:
                break
        assert not replies[-1].accepted and len(replies) > 10, [r.error for r in replies[-3:]]
        runner = CliRunner()
        shown = runner.invoke(main, ["status", "--etcd", cluster.etcd, "--ship", "zod"])
        assert "etcd alarm: NOSPACE" in shown.output and "seguro etcd reclaim" in shown.output

        def node_says_so() -> bool:
            with grpc.insecure_channel(node["grpc"]) as channel:
                return "NOSPACE" in rpc.AdminStub(channel).Status(pb.StatusRequest(), timeout=5).error

        wait_until("the node's status names the alarm", node_says_so, timeout_s=10)
        reclaimed = runner.invoke(main, ["etcd", "reclaim", "--etcd", cluster.etcd, "--ship", "zod",
                                         "--keep-events", "3"])  # fmt: skip
        assert reclaimed.exit_code == 0, reclaimed.output
        assert "NOSPACE" in reclaimed.output and "-> none" in reclaimed.output
        print(reclaimed.output)
        wait_for_master(cluster.etcd, "zod", timeout_s=20)  # holds the key and serves
        after = poke(node["grpc"], 1 << 10, 999)
        assert after.accepted and after.event > replies[-2].event, after.error
    finally:
        cluster.close()
