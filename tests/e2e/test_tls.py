"""End to end on a `cluster up --tls` cluster: etcd over TLS with client certificates and auth (a user per
ship, limited to its prefix), nodes over mutual TLS with per-call roles. The ship runs (pushes between
replicas go over mTLS); a plaintext client, a certificate from another CA, and a certificate of another
ship are each refused by etcd and by every node's gRPC port; a replica's certificate cannot step the
master down; the operator's can. No refused peer's record is ever stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from seguro.node import tls
from seguro.node.etcd.coordinator import CoordinationError, Coordinator
from seguro.node.tls import TlsFiles
from seguro.ops import cluster as local
from seguro.ops import cluster_tls
from seguro.ops.pki import Authority
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc
from tests.e2e.helpers import Cluster, wait_until

pytestmark = pytest.mark.e2e


def call(address: str, files: TlsFiles | None, what: str) -> grpc.StatusCode:
    """One call of `what` (status, step_down, push, fetch) with these client files; its status code."""
    channel = (
        grpc.insecure_channel(address)
        if files is None
        else grpc.secure_channel(address, files.channel_credentials())
    )
    try:
        with channel:
            admin, replication = rpc.AdminStub(channel), rpc.ReplicationStub(channel)
            if what == "status":
                admin.Status(pb.StatusRequest(), timeout=3)
            elif what == "step_down":
                admin.StepDown(pb.StepDownRequest(), timeout=3)
            elif what == "push":
                hello = pb.PushMessage(hello=pb.Hello(master_id="evil", epoch=1 << 40, ship="zod"))
                batch = pb.PushMessage(
                    batch=pb.Batch(epoch=1 << 40, first_event=1, records=[pb.Record(event=1, data=b"forged")])
                )
                list(replication.Push(iter([hello, batch]), timeout=3))
            else:
                list(
                    replication.Fetch(pb.FetchRequest(from_event=1, ship="zod", replica_id="evil"), timeout=3)
                )
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()  # type: ignore[attr-defined]


def impersonate(cluster: Cluster, address: str, master: str) -> str:
    """Another replica's certificate (the same ship's, a role that may push) claiming to be the master at
    its real epoch: the follower's answer."""
    ca = cluster_tls.authority(cluster.workdir)
    impostor = next(n["id"] for n in cluster.state["nodes"] if n["id"] != master)
    files = TlsFiles(ca.cert_path, ca.root / f"node-{impostor}.pem", ca.root / f"node-{impostor}.key")
    epoch = cluster.master()["epoch"]
    hello = pb.Hello(master_id=master, epoch=epoch, ship="zod", genesis=cluster.state["genesis"])
    forged = pb.Batch(epoch=epoch, first_event=10**6, records=[pb.Record(event=10**6, data=b"forged")])
    with grpc.secure_channel(address, files.channel_credentials()) as channel:
        acks = rpc.ReplicationStub(channel).Push(
            iter([pb.PushMessage(hello=hello), pb.PushMessage(batch=forged)]), timeout=5
        )
        return " ".join(ack.error for ack in acks)


def seguro(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "seguro.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def etcd_refuses(endpoints: str, files: TlsFiles | None) -> str:
    tls.configure(files)
    try:
        with Coordinator(endpoints, "zod", timeout_s=1.0, retry_budget_s=1.0) as coord:
            coord.genesis()
        return ""
    except (CoordinationError, ValueError) as e:
        return str(e)
    finally:
        tls.configure(cluster_tls.operator(WORKDIR[0]))


WORKDIR: list[Path] = []


def test_a_tls_cluster_serves_its_own_and_refuses_strangers(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", secure=True)
    WORKDIR[:] = [cluster.workdir]
    try:
        assert cluster.etcd.startswith("https://") and cluster.state["tls"]["cert"].endswith("operator.pem")
        cluster.send(200)
        wait_until("200 datagrams answered", lambda: cluster.peer.answered() >= 200, 30)
        wait_until("replicas to converge over mTLS", cluster.converged, 60, every_s=0.5)
        heads = cluster.logs_agree()

        ca = cluster_tls.authority(cluster.workdir)
        stranger = Authority(tmp_path / "other-ca").issue("x", "root", uris=(tls.uri("*", "admin", "x"),))
        other_ship = ca.issue("nec", "seguro-nec", uris=(tls.uri("nec", "replica", "n0"),))
        replica = TlsFiles(ca.cert_path, ca.root / "node-n1.pem", ca.root / "node-n1.key")
        operator = cluster_tls.operator(cluster.workdir)
        master = cluster.master()["id"]
        follower = next(n for n in local.read_state(cluster.workdir)["nodes"] if n["id"] != master)
        address = follower["grpc"]

        for what in ("status", "push", "fetch", "step_down"):
            assert call(address, None, what) == grpc.StatusCode.UNAVAILABLE, f"plaintext {what}"
            assert call(address, stranger, what) == grpc.StatusCode.UNAVAILABLE, f"another CA: {what}"
        assert call(address, other_ship, "status") == grpc.StatusCode.OK  # any certificate of the CA
        for what in ("push", "fetch", "step_down"):
            assert call(address, other_ship, what) == grpc.StatusCode.PERMISSION_DENIED, (
                f"another ship: {what}"
            )
        assert call(address, replica, "step_down") == grpc.StatusCode.PERMISSION_DENIED, (
            "a replica is no admin"
        )

        plain = cluster.etcd.replace("https://", "http://")
        assert "unreachable" in etcd_refuses(plain, None)
        assert "https:// needs TLS files" in etcd_refuses(cluster.etcd, None)
        assert "unreachable" in etcd_refuses(cluster.etcd, stranger)
        assert "PERMISSION_DENIED" in etcd_refuses(cluster.etcd, other_ship)

        assert cluster.logs_agree() == heads, "a refused peer's record was stored"
        logs = [path.read_text(errors="replace") for path in cluster.workdir.rglob("*.log")]
        assert logs and not any("PRIVATE KEY" in text for text in logs), "a private key in a log"
        env = {
            **os.environ,
            "SEGURO_ETCD": cluster.etcd,
            "SEGURO_SHIP": "zod",
            "SEGURO_CACERT": str(operator.ca),
            "SEGURO_CERT": str(operator.cert),
            "SEGURO_KEY": str(operator.key),
        }
        done = seguro(env, "step-down", "--json")
        assert done.returncode == 0, done.stderr
        status = seguro(env, "status")
        assert status.returncode == 0 and "master" in status.stdout, status.stderr
        bare = {k: v for k, v in env.items() if k not in ("SEGURO_CACERT", "SEGURO_CERT", "SEGURO_KEY")}
        refused = seguro(bare, "status")
        assert refused.returncode == 2 and "https:// needs TLS files" in refused.stderr
    finally:
        cluster.close()
