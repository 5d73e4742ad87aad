"""Events sealed in etcd (AES-GCM): against real etcd, nothing under the ship's prefix holds an event's
plaintext; a record moved to another event, epoch or ship, altered, or written in plaintext into a sealed
ship is refused loudly; keys rotate with old batches still readable; the keyring file is guarded."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pyetcd
import pytest

from seguro.invariant import InvariantViolation
from seguro.node.etcd import sealing
from seguro.node.etcd.coordinator import CHUNK_BYTES, Coordinator
from seguro.node.etcd.sealing import Keyring, KeyringError, SealError
from seguro.ops import keys
from seguro.ops.etcd_server import EtcdCluster
from seguro.proto.seguro.v1 import replication_pb2 as pb
from tests.conftest import BARE_GENESIS as G
from tests.conftest import put_bare_genesis

SHIP = "sampel-palnet"


def ring(*ids: int, current: int | None = None) -> Keyring:
    return Keyring(current or ids[-1], {i: bytes([i]) * 32 for i in ids})


def raw(cluster: EtcdCluster) -> pyetcd.MultiEndpointEtcd3Client:
    host, port = cluster.client_urls[0].removeprefix("http://").split(":")
    return pyetcd.MultiEndpointEtcd3Client([pyetcd.Endpoint(host, int(port), secure=False)], timeout=5)


def everything_under(cluster: EtcdCluster, ship: str) -> list[tuple[bytes, bytes]]:
    client = raw(cluster)
    try:
        return [(meta.key, value) for value, meta in client.get_prefix(f"/seguro/{ship}/")]
    finally:
        client.close()


def test_a_record_is_bound_to_its_ship_event_and_epoch() -> None:
    keyring = ring(1)
    key_id, blob = keyring.seal("zod", 7, 3, b"the ship's keys")
    assert key_id == 1 and b"the ship's keys" not in blob
    assert keyring.open("zod", 7, 3, key_id, blob) == b"the ship's keys"
    for ship, event, epoch in (("nec", 7, 3), ("zod", 8, 3), ("zod", 7, 4)):
        with pytest.raises(SealError, match="fails authentication"):
            keyring.open(ship, event, epoch, key_id, blob)
    with pytest.raises(SealError, match="fails authentication"):
        keyring.open("zod", 7, 3, key_id, blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(SealError, match="lacks"):
        ring(2).open("zod", 7, 3, key_id, blob)
    assert isinstance(SealError("x"), InvariantViolation), "a node stops rather than apply or skip it"
    assert "\\x01" not in repr(keyring), "keys never printed"


def test_the_keyring_file_is_guarded_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    made = keys.create(path)
    assert (made.current, made.ids) == (1, [1]) and os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(KeyringError, match="never overwritten"):
        keys.create(path)
    added = keys.add(path)
    assert (added.current, added.ids) == (1, [1, 2])
    assert keys.use(path, 2).current == 2 and sealing.load(path).current == 2
    with pytest.raises(KeyringError, match="the current key"):
        keys.drop(path, 2)
    assert keys.drop(path, 1).ids == [2]
    keys.add(path)
    keys.drop(path, 3)
    assert keys.add(path).ids == [2, 4], "a dropped id is never given out again"
    os.chmod(path, 0o644)
    with pytest.raises(KeyringError, match="readable by its owner only"):
        sealing.load(path)
    os.chmod(path, 0o600)
    path.write_text('{"current": 1, "keys": {"1": "not base64!"}}')
    with pytest.raises(KeyringError, match="cannot be read") as e:
        sealing.load(path)
    assert "not base64" not in str(e.value), "no key material in errors"
    good = base64.b64encode(bytes(32)).decode()
    for bad in ('{"current": 1, "keys": {"01": "%s"}}', '{"current": true, "keys": {"1": "%s"}}',
                '{"current": 1.9, "keys": {"1": "%s"}}', '{"current": 1, "keys": {" 1": "%s"}}'):  # fmt: skip
        path.write_text(bad % good)
        with pytest.raises(KeyringError, match="cannot be read"):
            sealing.load(path)


def test_a_keyring_behind_a_symlink_is_rotated_in_place_and_a_bad_directory_is_named(tmp_path: Path) -> None:
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    keys.create(real)
    link.symlink_to(real)
    keys.add(link)
    assert link.is_symlink() and sealing.load(real).ids == [1, 2], "the file the link names got the key"
    with pytest.raises(KeyringError, match="never overwritten"):
        keys.create(link)
    with pytest.raises(KeyringError, match="cannot be written"):
        keys.create(tmp_path / "no" / "such" / "dir.json")


@pytest.fixture
def sealed(etcd1: EtcdCluster):
    put_bare_genesis(etcd1.endpoints, SHIP)
    coord = Coordinator(etcd1.endpoints, SHIP, keyring=ring(1))
    yield coord
    coord.close()


def test_etcd_holds_no_plaintext_and_readers_get_it_back(etcd1: EtcdCluster, sealed: Coordinator) -> None:
    m = sealed.campaign("a", sealed.grant_lease(10), {}, G)
    small = [b"ping %d from the demo peer" % i + b"\xab" * 40 for i in range(1, 6)]
    big = os.urandom(64) * (CHUNK_BYTES // 64 + 100)  # chunked, sealed before it is cut
    assert sealed.append_records(m.epoch, 0, small).ok
    assert sealed.append_records(m.epoch, 5, [big]).ok
    stored = everything_under(etcd1, SHIP)
    for record in [*small, big[:4096], big[-4096:]]:
        assert not any(record[:32] in value for _, value in stored), "plaintext in etcd"
    read = [r.data for b in sealed.read_batches(1) for r in b.records]
    assert read == [*small, big] and all(r.key == 0 for b in sealed.read_batches(1) for r in b.records)
    with Coordinator(etcd1.endpoints, SHIP) as keyless, pytest.raises(SealError, match="no keyring"):
        list(keyless.read_batches(1))
    with Coordinator(etcd1.endpoints, SHIP, keyring=ring(2)) as stranger, pytest.raises(SealError):
        list(stranger.read_batches(1))


def test_a_copied_or_plaintext_record_is_refused(etcd1: EtcdCluster, sealed: Coordinator) -> None:
    m = sealed.campaign("a", sealed.grant_lease(10), {}, G)
    assert sealed.append_records(m.epoch, 0, [b"first event", b"second event"]).ok
    value = everything_under(etcd1, SHIP)
    batch = pb.Batch.FromString(next(v for k, v in value if b"/log/" in k))
    first = batch.records[0]
    moved = pb.Batch(epoch=m.epoch, first_event=3,
                     records=[pb.Record(event=3, data=first.data, key=first.key)])
    assert sealed.append(m.epoch, 2, moved).ok  # etcd takes it (a writer with etcd access could)
    with pytest.raises(SealError, match="event 3 .* fails authentication"):
        list(sealed.read_batches(3))
    put_bare_genesis(etcd1.endpoints, "other")
    with Coordinator(etcd1.endpoints, "other", keyring=ring(1)) as other:
        mo = other.campaign("a", other.grant_lease(10), {}, G)
        copied = pb.Batch(epoch=mo.epoch, first_event=1, records=[batch.records[0]])
        assert other.append(mo.epoch, 0, copied).ok
        with pytest.raises(SealError, match="fails authentication"):
            list(other.read_batches(1))  # another ship's record, even at its own event number
        plain = pb.Batch(epoch=mo.epoch, first_event=2, records=[pb.Record(event=2, data=b"injected")])
        assert other.append(mo.epoch, 1, plain).ok
        with pytest.raises(SealError, match="in plaintext"):
            list(other.read_batches(2))


def test_a_rotation_keeps_old_batches_readable(etcd1: EtcdCluster, sealed: Coordinator) -> None:
    m = sealed.campaign("a", sealed.grant_lease(10), {}, G)
    assert sealed.append_records(m.epoch, 0, [b"under key 1"]).ok
    sealed.keyring = ring(1, 2, current=1)  # step 1: every reader can open key 2; writes stay under key 1
    assert sealed.append_records(m.epoch, 1, [b"still key 1"]).ok
    sealed.keyring = ring(1, 2, current=2)  # step 2: new batches under key 2
    assert sealed.append_records(m.epoch, 2, [b"under key 2"]).ok
    batches = [pb.Batch.FromString(v) for k, v in everything_under(etcd1, SHIP) if b"/log/" in k]
    assert sorted(r.key for b in batches for r in b.records) == [1, 1, 2]
    assert [r.data for b in sealed.read_batches(1) for r in b.records] == [
        b"under key 1", b"still key 1", b"under key 2"
    ]
