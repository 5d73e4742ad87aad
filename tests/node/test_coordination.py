"""The coordination adapter against real etcd clusters: election, fencing, appends, failover, watches."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import grpc
import pyetcd
import pytest

from seguro.node.etcd.coordinator import (
    MAX_REQUEST_BYTES,
    CoordinationUnavailable,
    Coordinator,
    FenceLost,
    LeaseLost,
    LogTrimmed,
    MasterInfo,
)
from seguro.ops.etcd_server import EtcdCluster
from seguro.proto.seguro.v1 import replication_pb2 as pb
from tests.conftest import BARE_GENESIS as G
from tests.conftest import put_bare_genesis

SHIP = "sampel-palnet"


def batch(epoch: int, first: int, n: int, size: int = 16) -> pb.Batch:
    records = [pb.Record(event=first + i, data=bytes([(first + i) % 251]) * size) for i in range(n)]
    return pb.Batch(epoch=epoch, first_event=first, records=records)


def wait_for(cond: Callable[[], object], timeout_s: float = 10.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout_s} s")


def raw_create_revision(cluster: EtcdCluster, key: str) -> int:
    host, port = cluster.client_urls[0].removeprefix("http://").split(":")
    client = pyetcd.MultiEndpointEtcd3Client([pyetcd.Endpoint(host, int(port), secure=False)], timeout=2)
    try:
        return client.get(key)[1].create_revision
    finally:
        client.close()


class Recorder:
    """Collects master-watch callbacks."""

    def __init__(self) -> None:
        self.seen: list[MasterInfo | None] = []
        self.revisions: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, info: MasterInfo | None, revision: int) -> None:
        with self.lock:
            self.seen.append(info)
            self.revisions.append(revision)

    def last_is(self, pred: Callable[[MasterInfo | None], bool]) -> bool:
        with self.lock:
            return bool(self.seen) and pred(self.seen[-1])


@pytest.fixture
def pair(etcd1: EtcdCluster):
    put_bare_genesis(etcd1.endpoints, SHIP)
    a, b = Coordinator(etcd1.client_urls, SHIP), Coordinator(etcd1.endpoints, SHIP)
    yield a, b
    a.close()
    b.close()


def test_leases(pair) -> None:
    a, _ = pair
    with pytest.raises(ValueError):
        a.grant_lease(1)
    lease = a.grant_lease(5)
    assert 0 < a.keepalive(lease) <= 5
    a.revoke(lease)
    a.revoke(lease)  # idempotent
    with pytest.raises(LeaseLost):
        a.keepalive(lease)
    with pytest.raises(LeaseLost):
        a.campaign("a", lease, {}, G)


def test_campaign_single_winner_then_takeover_after_expiry(pair, etcd1: EtcdCluster) -> None:
    a, b = pair
    la, lb = a.grant_lease(2), b.grant_lease(10)
    won = a.campaign("a", la, {"grpc": "127.0.0.1:1", "udp": 2}, G)
    assert won is not None and won.node_id == "a" and won.lease_id == la
    assert won.epoch == raw_create_revision(etcd1, f"/seguro/{SHIP}/master")
    assert b.campaign("b", lb, {"grpc": "127.0.0.1:3"}, G) is None
    assert a.campaign("a", la, {"grpc": "127.0.0.1:1", "udp": 2}, G) == won  # a retried win is still a win
    seen = b.master()
    assert (seen.node_id, seen.epoch, seen.info) == ("a", won.epoch, {"grpc": "127.0.0.1:1", "udp": 2})
    assert seen.ttl_remaining_s is not None and seen.ttl_remaining_s <= 2
    # a stops keeping its lease alive: b wins within a few seconds, with a higher epoch
    started = time.monotonic()
    new = wait_for(lambda: b.campaign("b", lb, {"grpc": "127.0.0.1:3"}, G), timeout_s=8)
    assert new.node_id == "b" and new.epoch > won.epoch and time.monotonic() - started < 6
    assert a.resign(won.epoch) is False and b.master().epoch == new.epoch
    assert b.resign(new.epoch) is True and a.master() is None


def test_append_fencing_heads_and_no_fork(pair) -> None:
    a, b = pair
    ma = a.campaign("a", a.grant_lease(10), {}, G)
    assert a.head() == (0, 0)
    for first in (1, 4, 7):
        result = a.append(ma.epoch, first - 1, batch(ma.epoch, first, 3))
        assert result.ok and not result.duplicate and result.head_event == first + 2
    assert a.head() == (9, ma.epoch)
    # a lost reply, retried: the same batch is found committed, nothing is written twice
    again = a.append(ma.epoch, 6, batch(ma.epoch, 7, 3))
    assert again.ok and again.duplicate
    moved = a.append(ma.epoch, 6, batch(ma.epoch, 7, 2))  # a different batch on a stale head
    assert moved.head_moved and (moved.head_event, moved.head_epoch) == (9, ma.epoch)
    with pytest.raises(ValueError):
        a.append(ma.epoch, 9, batch(ma.epoch, 11, 1))  # not contiguous
    # a new master: the old one is fenced, even with the right head
    assert a.resign(ma.epoch)
    mb = b.campaign("b", b.grant_lease(10), {}, G)
    stale = a.append(ma.epoch, 9, batch(ma.epoch, 10, 1))
    assert stale.fence_lost and stale.master_epoch == mb.epoch and stale.head_event == 9
    assert b.append(mb.epoch, 9, batch(mb.epoch, 10, 2)).ok
    with pytest.raises(FenceLost):
        a.put_chunks(ma.epoch, 12, b"x" * 10)
    got = list(b.read_batches(1))
    assert [(x.first_event, x.epoch, len(x.records)) for x in got] == [
        (1, ma.epoch, 3), (4, ma.epoch, 3), (7, ma.epoch, 3), (10, mb.epoch, 2),
    ]  # fmt: skip
    events = [r.event for x in got for r in x.records]
    assert events == list(range(1, 12))
    assert got[3].records[1].data == batch(mb.epoch, 10, 2).records[1].data


def test_oversized_refused_and_chunked_event_round_trips(pair) -> None:
    a, _ = pair
    m = a.campaign("a", a.grant_lease(10), {}, G)
    with pytest.raises(ValueError, match="MAX_REQUEST_BYTES"):
        a.append(
            m.epoch,
            0,
            pb.Batch(
                epoch=m.epoch, first_event=1, records=[pb.Record(event=1, data=b"x" * MAX_REQUEST_BYTES)]
            ),
        )
    big = bytes(range(256)) * (3 * 4096 + 100)  # ~3.1 MiB: 4 chunks
    chunked = pb.Record(event=2, chunks=0, size=len(big))
    missing = pb.Batch(
        epoch=m.epoch,
        first_event=1,
        records=[pb.Record(event=1, data=b"a"), pb.Record(event=2, chunks=4, size=len(big))],
    )
    with pytest.raises(ValueError, match="chunks are missing"):
        a.append(m.epoch, 0, missing)
    a.put_chunks(m.epoch, 2, b"stale" * 1_000_000)  # a deposed attempt left more chunks for event 2
    chunked.chunks = a.put_chunks(m.epoch, 2, big)
    assert chunked.chunks == 4
    ok = a.append(
        m.epoch, 0, pb.Batch(epoch=m.epoch, first_event=1, records=[pb.Record(event=1, data=b"a"), chunked])
    )
    assert ok.ok and a.append(m.epoch, 2, batch(m.epoch, 3, 1)).ok
    (first, second) = list(a.read_batches(2))
    assert first.records[1].data == big and first.records[1].chunks == 0 and second.first_event == 3


def test_read_ranges_trim_compact_and_replicas(pair) -> None:
    a, b = pair
    m = a.campaign("a", a.grant_lease(10), {}, G)
    assert list(a.read_batches(1)) == []
    for first in range(1, 16, 3):  # batches at 1, 4, 7, 10, 13
        assert a.append(m.epoch, first - 1, batch(m.epoch, first, 3)).ok
    assert [x.first_event for x in a.read_batches(5)] == [4, 7, 10, 13]
    assert [x.first_event for x in a.read_batches(5, to_event=10)] == [4, 7, 10]
    assert list(a.read_batches(16)) == []
    with pytest.raises(FenceLost):
        b.trim(m.epoch + 1, 8)
    assert a.trim(m.epoch, 8) == 2  # 1..3 and 4..6 go; 7..9 is not wholly below 8
    with pytest.raises(LogTrimmed) as trimmed:
        list(a.read_batches(2))
    assert trimmed.value.first_available_event == 7
    assert [x.first_event for x in b.read_batches(8)] == [7, 10, 13]
    before = a.revision()
    a.put_replica("a", {"durable_event": 15, "role": "master"})
    assert a.compact(a.revision()) > before and a.head() == (15, m.epoch)
    with pytest.raises(grpc.RpcError, match="compacted"):  # history before it is gone
        a._client.get_response(a.keys.head, revision=before)
    assert [x.first_event for x in a.read_batches(8)] == [7, 10, 13]  # the present reads as before
    a.put_replica("a", {"durable_event": 15, "role": "master"})
    b.put_replica("b", {"durable_event": 12, "role": "follower"}, lease_id=b.grant_lease(10))
    reps = b.replicas()
    assert set(reps) == {"a", "b"} and reps["b"]["durable_event"] == 12 and "updated_at" in reps["a"]


def test_etcd_down_raises_in_bounded_time(etcd1: EtcdCluster) -> None:
    c = Coordinator(etcd1.endpoints, SHIP, timeout_s=1.0, retry_budget_s=1.0)
    try:
        assert c.head() == (0, 0)
        etcd1.stop()
        for call in (c.head, lambda: c.grant_lease(5), c.master):
            started = time.monotonic()
            with pytest.raises(CoordinationUnavailable, match="etcd unreachable"):
                call()
            assert time.monotonic() - started < 3
    finally:
        c.close()


def test_three_members_survive_member_loss_and_watch_follows(etcd3: EtcdCluster) -> None:
    put_bare_genesis(etcd3.endpoints, SHIP)
    a, b = Coordinator(etcd3.client_urls, SHIP), Coordinator(etcd3.client_urls, SHIP)
    seen = Recorder()
    try:
        m = a.campaign("a", a.grant_lease(10), {"grpc": "x"}, G)
        watch = a.watch_master(seen, poll_interval_s=0.5)
        wait_for(lambda: seen.last_is(lambda i: i is not None and i.epoch == m.epoch))
        assert a.append(m.epoch, 0, batch(m.epoch, 1, 4)).ok
        # kill the raft leader and, if different, the member the watch streams from: one member survives
        # per kill, so kill one, restart it, then the other
        victims = list(dict.fromkeys([etcd3.leader(), etcd3.client_urls.index("http://" + watch.endpoint)]))
        for victim in victims:
            etcd3.kill(victim)
            started = time.monotonic()
            head, _ = a.head()
            assert a.append(m.epoch, head, batch(m.epoch, head + 1, 4)).ok
            elapsed_s = time.monotonic() - started
            assert elapsed_s < 8, f"an append took {elapsed_s:.1f} s after killing member {victim}"
            etcd3.restart(victim)
        # the watch still delivers changes: a resigns, b takes over
        assert a.resign(m.epoch)
        mb = b.campaign("b", b.grant_lease(10), {"grpc": "y"}, G)
        wait_for(lambda: seen.last_is(lambda i: i is not None and i.node_id == "b" and i.epoch == mb.epoch))
        # a hung member the watch streams from: the watch moves on by itself and replays, in order, both
        # changes made while it was stuck (a re-read alone would only show the last one)
        paused, sessions_before = watch.endpoint, watch.sessions
        etcd3.pause(etcd3.client_urls.index("http://" + paused))
        assert b.resign(mb.epoch)
        ma2 = a.campaign("a", a.grant_lease(10), {"grpc": "x"}, G)
        wait_for(lambda: seen.last_is(lambda i: i is not None and i.epoch == ma2.epoch))
        # it left the hung member by itself (a later session may come back round to it: not asserted)
        assert watch.sessions > sessions_before, (paused, watch.endpoint, watch.sessions)
        etcd3.resume(etcd3.client_urls.index("http://" + paused))
        watch.cancel()
        assert seen.revisions == sorted(set(seen.revisions)), (
            "deliveries in strictly increasing revision order"
        )
        assert [i.node_id if i else None for i in seen.seen] == ["a", None, "b", None, "a"]
        head, _ = a.head()
        assert head == 4 * (1 + len(victims))  # every append landed, none lost
        assert [r.event for x in b.read_batches(1) for r in x.records] == list(range(1, head + 1))
    finally:
        a.close()
        b.close()


def test_a_keepalive_from_a_leader_without_its_quorum_is_not_trusted(etcd3: EtcdCluster) -> None:
    """Both followers freeze: etcd 3.4's leader still acknowledges the keepalive on its own, but the quorum
    read that must confirm it cannot complete, so the renewal is refused (the deadline then runs out)."""
    put_bare_genesis(etcd3.endpoints, SHIP)
    leader = etcd3.leader()
    assert leader is not None
    c = Coordinator([etcd3.client_urls[leader]], SHIP, timeout_s=1.0, retry_budget_s=0.0)
    followers = [i for i in range(3) if i != leader]
    try:
        lease = c.grant_lease(10)
        assert 0 < c.keepalive(lease) <= 10
        for i in followers:
            etcd3.pause(i)
        raw = pyetcd.client(*etcd3.client_urls[leader].removeprefix("http://").split(":"), timeout=1.0)
        assert list(raw.refresh_lease(lease))[0].TTL > 0, "etcd's leader renews alone: the hazard exists"
        raw.close()
        with pytest.raises(CoordinationUnavailable, match="keepalive check"):  # acknowledged, not confirmed
            c.keepalive(lease)
    finally:
        for i in followers:
            etcd3.resume(i)
        c.close()
    c = Coordinator([etcd3.client_urls[leader]], SHIP, timeout_s=2.0)

    def confirmed() -> bool:  # the first ones may span the election that follows the thaw: refused
        with contextlib.suppress(CoordinationUnavailable):
            return c.keepalive(lease) > 0
        return False

    try:
        assert wait_for(confirmed, 15), "confirmed again once the quorum is back"
    finally:
        c.close()
