"""Scripted scenarios for a follower: storing and acknowledging pushed batches, applying, diverging.

No sockets, no threads, a hand-moved clock (tests.core.script)."""

from __future__ import annotations

from seguro.core import messages as m
from seguro.core.replication import STOPPED
from tests.core.script import Script


def test_follower_stores_acks_and_applies_pushed_batches() -> None:
    s = Script()
    s.follower_with_lease()
    s.step(m.MasterObserved(holder="b", epoch=4, revision=4))
    ready = s.push(1, m.Batch(0, 1, (b"r1", b"r2")), 4)
    assert ready.persist == [m.Batch(0, 1, (b"r1", b"r2"))] and ready.apply_to == 2
    assert ready.acks == [m.AckOut(1, 2, 4, "")]
    ready = s.push(1, m.Batch(0, 2, (b"r2", b"r3")), 4)
    assert ready.persist == [m.Batch(0, 3, (b"r3",))]


def test_follower_refuses_a_stale_epoch_and_a_gap() -> None:
    s = Script()
    s.follower_with_lease()
    s.step(m.MasterObserved(holder="b", epoch=9, revision=9))
    s.push(1, m.Batch(0, 1, (b"r1",)), 9)
    ready = s.push(2, m.Batch(0, 2, (b"r2",)), 8)
    assert ready.persist == [] and "stale epoch" in ready.acks[0].error
    ready = s.push(1, m.Batch(0, 5, (b"r5",)), 9)
    assert ready.persist == [] and "gap" in ready.acks[0].error and s.r.durable == 1
    assert s.r.counters["pushes_refused"] == 2


def test_a_push_at_an_epoch_etcd_has_not_shown_is_refused_and_changes_nothing() -> None:
    """A hostile or confused peer claiming a huge epoch must not raise highest_epoch: every push of the
    real master would then be refused as stale, for good."""
    s = Script()
    s.follower_with_lease()
    s.step(m.MasterObserved(holder="b", epoch=9, revision=9))
    ready = s.push(1, m.Batch(0, 1, (b"r1",)), 2**62)
    assert ready.persist == [] and "not the master's epoch" in ready.acks[0].error
    assert s.r.highest_epoch == 9
    assert s.push(2, m.Batch(0, 1, (b"r1",)), 9).persist == [m.Batch(0, 1, (b"r1",))]


def test_a_push_by_a_replica_that_is_not_the_master_etcd_shows_is_refused() -> None:
    """Found in review: a replica's certificate could claim the master's epoch and push forged records."""
    s = Script()
    s.follower_with_lease()
    s.step(m.MasterObserved(holder="b", epoch=9, revision=9))
    ready = s.push(1, m.Batch(0, 1, (b"forged",)), 9, sender="c")
    assert ready.persist == [] and "pushed by c; etcd shows b as master at 9" in ready.acks[0].error
    assert s.push(2, m.Batch(0, 1, (b"r1",)), 9, sender="b").persist == [m.Batch(0, 1, (b"r1",))]


def test_a_push_for_another_genesis_or_before_the_genesis_is_refused() -> None:
    s = Script()
    ready = s.push(1, m.Batch(0, 1, (b"r1",)), 9)
    assert ready.persist == [] and "genesis" in ready.acks[0].error  # still waiting for the genesis
    s.follower_with_lease()
    s.step(m.MasterObserved(holder="b", epoch=9, revision=9))
    ready = s.push(1, m.Batch(0, 1, (b"r1",)), 9, genesis="another")
    assert ready.persist == [] and "genesis another" in ready.acks[0].error


def test_followers_drop_datagrams_and_count_them() -> None:
    s = Script()
    s.follower_with_lease()
    ready = s.step(m.IncomingEvent(job="x", size_bytes=1))
    assert ready.run == [] and "not the master" in ready.refused[0][1]
    assert s.r.counters["dropped"] == 1


def test_divergence_stops_the_replica_for_good() -> None:
    s = Script()
    s.follower_with_lease()
    ready = s.step(m.Diverged(eve=3, detail="mug 0x1 != 0x2"))
    assert s.r.role == STOPPED and ready.stop and "event 3" in ready.stop
    assert not s.step(m.MasterObserved(holder=None, epoch=0, revision=30)).campaign
    ready = s.push(1, m.Batch(0, 1, (b"r1",)), 40)
    assert ready.persist == [] and "stopped" in ready.acks[0].error  # its acks must not count


def test_a_divergence_in_the_start_up_replay_still_shows_how_far_the_runtime_got() -> None:
    """Seen in a loaded e2e run: a new replica's runtime started after pushes had filled its log, so the
    divergence came in its start-up replay, with no Applied before it, and status showed applied 0."""
    s = Script(durable=120)
    assert s.tick().grant_lease
    s.step(m.Diverged(eve=100, detail="mug 0x1 != 0x2"))
    assert s.r.role == STOPPED and s.r.status(s.now_s)["applied_event"] == 99


def test_a_pushed_batchs_own_epoch_is_never_recorded() -> None:
    """Found in review: a peer's batch carrying epoch 3 to a log that recorded epoch 7 broke the log's
    epoch-history invariant and stopped the node (2^63 poisoned it for good)."""
    s = Script()
    s.follower_with_lease()
    s.step(m.MasterObserved(holder="b", epoch=9, revision=9))
    ready = s.push(1, m.Batch(2**63, 1, (b"r1",)), 9)
    assert ready.persist == [m.Batch(0, 1, (b"r1",))]
