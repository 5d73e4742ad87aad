"""Which settings a running node takes on at once, and which it names as needing a restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from seguro.node.config import NodeConfig
from seguro.node.etcd import sealing
from seguro.node.reload import LIVE, changes, reload_settings
from seguro.ops import keys

BASE = NodeConfig(node_id="a", ship="zod", data_dir=Path("/d"), etcd=("http://127.0.0.1:2379",))


def test_live_settings_apply_and_the_rest_are_named() -> None:
    new = replace(BASE, failover_priority=4, nofailover=True, lease_ttl_s=5, udp="127.0.0.1:9")
    live, restart = changes(BASE, new)
    assert live == {"failover_priority": 4, "nofailover": True}
    assert sorted(restart) == ["lease_ttl_s", "udp"]
    assert changes(BASE, BASE) == ({}, [])
    assert set(LIVE) <= {f for f in NodeConfig.__dataclass_fields__}


class FakeNode:
    """The parts of a Node a reload touches (seguro.node.reload.Reloadable), recording what it did."""

    def __init__(self, cfg: NodeConfig, read: NodeConfig, keyring: object) -> None:
        self.cfg, self.read_settings, self.http = cfg, lambda: read, None
        self.coord = type("Coord", (), {"keyring": keyring})()
        self.runtime = type("Runtime", (), {"set_snapshot_every": lambda self, n: None})()
        self.posted: list[object] = []

    def post(self, event: object) -> None:
        self.posted.append(event)


def test_a_key_rotation_applies_and_sealing_cannot_be_turned_on_or_off_live(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys.create(path)
    sealed = replace(BASE, event_keys=str(path))
    node = FakeNode(sealed, sealed, sealing.load(path))
    keys.add(path)
    done = reload_settings(node)  # type: ignore[arg-type]
    assert done["error"] == "" and done["applied"] == {"event_keys": {"current": 1, "ids": [1, 2]}}
    assert node.coord.keyring == sealing.load(path)
    plain = replace(BASE, failover_priority=7)  # event_keys dropped from the file, and another change
    node = FakeNode(sealed, plain, sealing.load(path))
    refused = reload_settings(node)  # type: ignore[arg-type]
    assert "cannot be turned on or off live" in refused["error"] and refused["applied"] == {}
    assert node.cfg == sealed and node.posted == [], "a refused reload changes nothing"
    node = FakeNode(plain, sealed, None)  # a plaintext ship's node handed a keyring
    refused = reload_settings(node)  # type: ignore[arg-type]
    assert "cannot be turned on or off live" in refused["error"] and node.coord.keyring is None
