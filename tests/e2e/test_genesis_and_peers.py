"""End to end, the edges around the fenced core: a ship comes into being only by `seguro ship create`, a
data directory of another genesis refuses to run, nodes bound to 0.0.0.0 replicate through their advertised
address (every cluster here binds so), and a follower fed garbage keeps serving."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from seguro.cli import main
from seguro.node.eventlog import EventLog
from seguro.ops import cluster as local
from seguro.ops import processes
from seguro.ops.admin import status_rows, wait_for_master
from seguro.ops.etcd_server import EtcdCluster
from seguro.ops.ship import create_ship
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc
from tests.e2e.helpers import TTL_S, Cluster, wait_until

pytestmark = pytest.mark.e2e
EXIT_HALTED = 3


def test_a_ship_with_no_genesis_is_never_booted_and_starts_once_created(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", replicas=2, who=None)
    try:
        def roles() -> list[str]:
            return [r["role"] for r in status_rows(cluster.etcd, "zod")["replicas"]]

        wait_until("both nodes waiting", lambda: roles() == ["waiting", "waiting"], timeout_s=10)
        cluster.send(200)
        time.sleep(2 * TTL_S)  # long enough for any election: there must be none
        report = status_rows(cluster.etcd, "zod")
        assert cluster.peer.answered() == 0 and report["head"] == 0 and report["master"] is None
        assert all(r["durable_event"] == 0 and "genesis" in r["error"] for r in report["replicas"])
        result = CliRunner().invoke(main, ["ship", "create", "--etcd", cluster.etcd, "--ship", "zod"])
        assert result.exit_code == 0, result.output
        started_s = time.monotonic()
        wait_for_master(cluster.etcd, "zod", timeout_s=15)  # holds the key and serves
        took_s = time.monotonic() - started_s
        cluster.send(100)
        wait_until("answers", lambda: cluster.peer.answered() >= 90, timeout_s=15)
        wait_until("both logs hold the boot and the events", lambda: cluster.converged(2), timeout_s=15)
        print(f"master {took_s:.2f} s after `seguro ship create`")
    finally:
        cluster.close()


def test_a_data_dir_of_another_genesis_refuses_to_run_and_names_both_ids(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", replicas=2)
    try:
        cluster.send(50)
        wait_until("converged", lambda: cluster.converged(2), timeout_s=15)
        n1 = cluster.node("n1")
        assert not processes.stop([n1["pid"]], timeout_s=10, group=True)
        ours = cluster.state["genesis"]
    finally:
        cluster.close()
    with EventLog(Path(n1["data"])) as log:
        before = log.last_event(), log.meta()["genesis"]
    assert before[1] == ours
    elsewhere = EtcdCluster(tmp_path / "other-etcd", members=1).start()
    try:
        run = [sys.executable, "-m", "seguro.cli", "node", "run", "--id", "n1", "--ship", "zod",
               "--data", n1["data"], "--etcd", elsewhere.endpoints]  # fmt: skip
        wiped = subprocess.run(run, capture_output=True, text=True, timeout=60)  # etcd holds no such ship
        assert wiped.returncode == EXIT_HALTED and f"belongs to genesis {ours}" in wiped.stderr
        assert "etcd holds no genesis" in wiped.stderr
        theirs = create_ship(elsewhere.endpoints, "zod").id  # the same name, created again: another ship
        other = subprocess.run(run, capture_output=True, text=True, timeout=60)
        assert other.returncode == EXIT_HALTED
        assert f"belongs to genesis {ours}, etcd holds genesis {theirs}" in other.stderr
    finally:
        elsewhere.stop()
    with EventLog(Path(n1["data"])) as log:
        assert (log.last_event(), log.meta()["genesis"]) == before  # neither side overwritten


def test_a_follower_fed_garbage_refuses_it_and_keeps_replicating(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster")
    try:
        cluster.send(100)
        wait_until("converged", lambda: cluster.converged(), timeout_s=15)
        master = cluster.master()
        follower = next(n for n in local.read_state(cluster.workdir)["nodes"] if n["id"] != master["id"])
        durable = next(r for r in status_rows(cluster.etcd, "zod")["replicas"] if r["id"] == follower["id"])
        genesis = cluster.state["genesis"]
        hello = pb.Hello(master_id=master["id"], epoch=master["epoch"], ship="zod", genesis=genesis)
        first = int(durable["durable_event"]) + 1
        garbage = [
            [pb.PushMessage(hello=hello), pb.PushMessage(batch=pb.Batch(first_event=first,
                                                                        records=[pb.Record(event=first)]))],
            [pb.PushMessage(batch=pb.Batch(first_event=first, records=[pb.Record(event=first, data=b"x")]))],
            [pb.PushMessage(hello=pb.Hello(master_id=master["id"], epoch=2**62, ship="zod",
                                           genesis=genesis))],
        ]  # fmt: skip
        errors = []
        with grpc.insecure_channel(follower["grpc"]) as channel:
            for messages in garbage:
                acks = list(rpc.ReplicationStub(channel).Push(iter(messages), timeout=10))
                errors.append(acks[-1].error)
        assert "malformed record" in errors[0] and "before the stream's hello" in errors[1]
        assert "not the master's epoch" in errors[2], errors
        cluster.send(100)
        wait_until("still replicating", lambda: cluster.converged() and cluster.peer.answered() >= 190, 20)
        cluster.logs_agree()
    finally:
        cluster.close()
