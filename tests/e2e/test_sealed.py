"""End to end, a ship whose events are sealed in etcd (`cluster up --seal`): nothing under the ship's
prefix in etcd holds an event's plaintext (no datagram, no boot event), and a key rotation under load,
`seguro keys add` + reload then `seguro keys use` + reload, loses no event and stops no effect; batches
sealed under both keys open to exactly the replicas' log."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import pyetcd
import pytest

from seguro.node.etcd import sealing
from seguro.node.etcd.coordinator import Coordinator
from seguro.node.eventlog import EventLog
from seguro.ops import cluster as local
from seguro.ops import keys
from seguro.ops.admin import status_rows
from seguro.ops.controls import reload_settings
from seguro.proto.seguro.v1 import replication_pb2 as pb
from tests.e2e.helpers import Cluster, wait_until

pytestmark = pytest.mark.e2e


def etcd_values(endpoints: str, ship: str) -> list[tuple[bytes, bytes]]:
    host, port = endpoints.split(",")[0].removeprefix("http://").split(":")
    client = pyetcd.MultiEndpointEtcd3Client([pyetcd.Endpoint(host, int(port), secure=False)], timeout=5)
    try:
        return [(meta.key, value) for value, meta in client.get_prefix(f"/seguro/{ship}/")]
    finally:
        client.close()


def send_steadily(cluster: Cluster, stop: threading.Event, rate_per_s: float = 200.0) -> None:
    while not stop.is_set():
        cluster.peer.send_one()
        time.sleep(1 / rate_per_s)


def reload_everywhere(cluster: Cluster, want: dict) -> None:
    answers = reload_settings(cluster.etcd, cluster.ship)
    assert len(answers) == 3 and all(a["error"] == "" for a in answers.values()), answers  # type: ignore[index]
    assert all(a["applied"]["event_keys"] == want for a in answers.values()), answers  # type: ignore[index]


def test_no_plaintext_in_etcd_and_a_key_rotation_under_load_loses_nothing(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", seal=True)
    keyring = Path(cluster.state["event_keys"])
    stop = threading.Event()
    sender = threading.Thread(target=send_steadily, args=(cluster, stop), daemon=True)
    try:
        sender.start()
        wait_until("traffic under key 1", lambda: cluster.peer.answered() >= 200, 30)
        keys.add(keyring)
        reload_everywhere(cluster, {"current": 1, "ids": [1, 2]})
        wait_until("more traffic", lambda: cluster.peer.answered() >= 400, 30)
        held = {"current": 1, "ids": [1, 2]}
        wait_until("every replica to show it holds key 2", lambda: all(
            r["settings"].get("event_keys") == held for r in status_rows(cluster.etcd, "zod")["replicas"]
        ), 10, every_s=0.2)  # fmt: skip
        keys.use(keyring, 2)
        reload_everywhere(cluster, {"current": 2, "ids": [1, 2]})
        wait_until("traffic under key 2", lambda: cluster.peer.answered() >= 700, 30)
        stop.set()
        sender.join(5)
        wait_until("every datagram answered", lambda: cluster.peer.answered() == cluster.peer.sent, 30)
        print(f"rotated under load: {cluster.peer.sent} datagrams sent, all answered")
        assert not cluster.peer.doubles(), "double boot"

        values = etcd_values(cluster.etcd, cluster.ship)
        batches = [pb.Batch.FromString(v) for k, v in values if b"/log/" in k]
        assert {r.key for b in batches for r in b.records} == {1, 2}, "batches under both keys"
        assert not any(b"ping " in v for _, v in values), "a datagram in plaintext in etcd"
        node = local.read_state(cluster.workdir)["nodes"][0]
        with EventLog(Path(node["data"]), create=False, read_only=True) as log:
            records = [record for _, record in log.read(1, 50)]
        windows = [r[i:i + 32] for r in records if len(r) >= 64 for i in range(0, len(r) - 32, 97)]
        assert windows and not any(w in v for w in windows for _, v in values), "event plaintext in etcd"

        wait_until("replicas to converge", cluster.converged, 60, every_s=0.5)
        last = cluster.logs_agree()
        assert max(cluster.peer.answers()) <= min(last.values()), "an acknowledged event is missing"
        secrets = [base64.b64encode(k) for k in sealing.load(keyring).keys.values()]
        logs = [path.read_bytes() for path in cluster.workdir.rglob("*.log")]
        assert logs and not any(secret in text for secret in secrets for text in logs), "a key in a log"
        with Coordinator(cluster.etcd, cluster.ship, keyring=sealing.load(keyring)) as coord:
            opened = {r.event: r.data for b in coord.read_batches(1) for r in b.records}
        with EventLog(Path(node["data"]), create=False, read_only=True) as log:
            assert opened == dict(log.read(1, max(opened))), "etcd's batches, opened, are the log"
    finally:
        stop.set()
        cluster.close()
