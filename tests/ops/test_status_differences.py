"""Settings every replica must share (TTL, ack_replicas, retention) and the version are compared across
the replicas' published statuses, in real etcd, and `seguro status` names the ones that differ."""

from __future__ import annotations

import time

from click.testing import CliRunner

from seguro.cli import main
from seguro.node.config import SHARED_SETTINGS, NodeConfig, shared_settings
from seguro.node.etcd.coordinator import Coordinator
from seguro.node.etcd.sealing import Keyring
from seguro.ops.etcd_server import EtcdCluster
from tests.conftest import put_bare_genesis


def settings(**changed: object) -> dict[str, object]:
    cfg = NodeConfig.load(None, {"node_id": "x", "ship": "zod", "data_dir": "/tmp/x", "etcd": "127.0.0.1:1"})
    return {**shared_settings(cfg), **changed}


def test_status_names_replicas_whose_shared_settings_or_versions_differ(etcd1: EtcdCluster) -> None:
    put_bare_genesis(etcd1.endpoints, "zod")
    with Coordinator(etcd1.endpoints, "zod") as coord:
        coord.put_replica("n1", {"role": "follower", "settings": settings(), "version": "0.1.0"})
        coord.put_replica("n2", {"role": "follower", "version": "0.2.0",
                                 "settings": settings(event_keys={"current": 1, "ids": [1]})})  # fmt: skip
        coord.put_replica("n3", {"role": "follower", "settings": settings(lease_ttl_s=5), "version": "0.1.0"})
        stale = {"role": "follower", "settings": settings(ack_replicas=2), "updated_at": time.time() - 60}
        coord.put_replica("old", {**stale, "version": "0.0.1"})
    result = CliRunner().invoke(main, ["status", "--etcd", etcd1.endpoints, "--ship", "zod"])
    assert result.exit_code == 0, result.output
    assert "replicas differ in lease_ttl_s: 3 on n1, n2; 5 on n3" in result.output
    assert 'replicas differ in version: "0.1.0" on n1, n3; "0.2.0" on n2' in result.output
    assert 'replicas differ in event_keys: null on n1, n3; {"current": 1, "ids": [1]} on n2' in result.output
    assert "ack_replicas" not in result.output, "an unreachable replica's settings are not compared"


def test_every_shared_setting_is_published_and_the_key_ids_held() -> None:
    assert set(settings()) == {*SHARED_SETTINGS, "event_keys"}
    cfg = NodeConfig.load(None, {"node_id": "x", "ship": "zod", "data_dir": "/tmp/x", "etcd": "127.0.0.1:1"})
    held = shared_settings(cfg, Keyring(2, {1: b"k" * 32, 2: b"j" * 32}))["event_keys"]
    assert held == {"current": 2, "ids": [1, 2]}, "ids only, never key bytes"
