"""Which settings a running node takes on at once, and which it names as needing a restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from seguro.node.config import NodeConfig
from seguro.node.reload import LIVE, changes

BASE = NodeConfig(node_id="a", ship="zod", data_dir=Path("/d"), etcd=("http://127.0.0.1:2379",))


def test_live_settings_apply_and_the_rest_are_named() -> None:
    new = replace(BASE, failover_priority=4, nofailover=True, lease_ttl_s=5, udp="127.0.0.1:9")
    live, restart = changes(BASE, new)
    assert live == {"failover_priority": 4, "nofailover": True}
    assert sorted(restart) == ["lease_ttl_s", "udp"]
    assert changes(BASE, BASE) == ({}, [])
    assert set(LIVE) <= {f for f in NodeConfig.__dataclass_fields__}
