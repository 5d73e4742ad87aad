"""Scripted scenarios for the core's election: leases, campaigns, promotion, step-down, stale keys.

No sockets, no threads, a hand-moved clock (tests.core.script)."""

from __future__ import annotations

import pytest

from seguro.core import messages as m
from seguro.core.election import PeerView
from seguro.core.replication import FOLLOWER, MASTER, PROMOTING, STOPPED, WAITING
from seguro.invariant import InvariantViolation
from tests.core.script import GENESIS, TTL_S, Script


def test_a_node_never_campaigns_stores_or_boots_before_it_sees_the_genesis() -> None:
    """A mistyped --ship or a wiped etcd must never start a second copy of a ship: without the genesis
    record a node waits, however long the master key stays empty."""
    s = Script()
    assert s.tick().grant_lease
    s.step(m.LeaseGranted(lease_id=7, ttl_s=TTL_S, sent_at_s=s.now_s))
    s.step(m.RuntimeReady(eve=0))
    for revision in range(2, 12):
        ready = s.step(m.MasterObserved(holder=None, epoch=0, revision=revision))
        assert not ready.campaign and not s.tick(advance_s=0.1).campaign
    assert s.r.role == WAITING and "genesis" in str(s.r.status(s.now_s)["error"])
    assert not s.step(m.GenesisObserved(None, 5)).halt  # an empty data dir waits: etcd has no such ship yet
    ready = s.step(m.GenesisObserved(GENESIS, 6))
    assert ready.record_genesis == GENESIS and s.r.role == FOLLOWER and ready.campaign
    ready = s.step(m.CampaignResult(won=True, lease_id=7, epoch=21))
    ready = s.step(m.CatchUpDone(head=0, epoch=21))
    assert s.r.role == MASTER and ready.record_epoch == (21, 1) and ready.persist == []


@pytest.mark.parametrize(
    ("durable", "local", "in_etcd", "says"),
    [
        (3, GENESIS, "g2", f"belongs to genesis {GENESIS}, etcd holds genesis g2"),
        (3, GENESIS, None, "etcd holds no genesis"),
        (3, None, GENESIS, "no genesis id"),
    ],
)
def test_a_log_of_another_genesis_refuses_to_run_and_names_both(
    durable: int, local: str | None, in_etcd: str | None, says: str
) -> None:
    s = Script(durable=durable)
    s.r.genesis = local
    ready = s.step(m.GenesisObserved(in_etcd, 5))
    assert ready.halt and says in ready.halt and ready.record_genesis is None and s.r.role == STOPPED
    assert not s.step(m.MasterObserved(holder=None, epoch=0, revision=30)).campaign


def test_a_genesis_read_older_than_the_one_acted_on_is_ignored() -> None:
    """Found by the simulator: a read from before `seguro ship create` answered after one from after it
    made a node that had just joined refuse to run, as if etcd had been wiped."""
    s = Script()
    s.follower_with_lease()
    assert not s.step(m.GenesisObserved(None, 4)).halt and s.r.role == FOLLOWER


def test_a_master_that_sees_another_genesis_in_etcd_stops_emitting_at_once() -> None:
    """etcd wiped and the name created again while a master ran: it must not emit another ship's acks."""
    s = Script()
    s.become_master()
    s.run_event()
    ready = s.step(m.GenesisObserved("g2", 50))
    assert ready.halt and ready.release == [] and s.r.lease_deadline_s() == float("-inf")


def test_no_campaign_while_a_master_holds_the_key_or_the_lease_is_short() -> None:
    s = Script()
    s.follower_with_lease()
    assert not s.step(m.MasterObserved(holder="b", epoch=4, revision=4)).campaign
    s.now_s += TTL_S - 0.75 - 0.5  # 0.5 s left, under the 0.75 s margin: do not campaign on it
    assert s.r._keeper.holds(s.now_s)
    assert not s.step(m.MasterObserved(holder=None, epoch=4, revision=9)).campaign


def test_promotion_waits_until_the_log_holds_every_committed_batch() -> None:
    s = Script(durable=3)
    s.follower_with_lease(runtime_eve=3)
    s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    s.step(m.CampaignResult(won=True, lease_id=7, epoch=10))
    ready = s.step(m.CatchUpDone(head=5, epoch=10))
    assert s.r.role == PROMOTING and ready.catch_up_from == 4
    ready = s.step(m.CatchUpFetched(m.Batch(7, 4, (b"r4", b"r5"))))
    assert ready.apply_to == 5
    s.step(m.CatchUpDone(head=5, epoch=10))
    assert s.r.role == PROMOTING  # runtime not yet at event 5
    ready = s.step(m.Applied(eve=5))
    assert s.r.role == MASTER and ready.record_epoch == (10, 6)


def test_a_local_log_ahead_of_etcd_stops_the_node() -> None:
    s = Script(durable=6)
    s.follower_with_lease(runtime_eve=6)
    s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    s.step(m.CampaignResult(won=True, lease_id=7, epoch=10))
    with pytest.raises(InvariantViolation, match="fork"):
        s.step(m.CatchUpDone(head=5, epoch=10))


def test_step_down_resigns_and_holds_back_from_the_next_campaign() -> None:
    s = Script()
    s.become_master(epoch=10)
    ready = s.step(m.StepDown())
    assert s.r.role == FOLLOWER and ready.resign_epoch == 10
    campaigned_at = []
    ready = s.step(m.RuntimeReady(eve=0))  # runtime back: only the hold-back stops a campaign now
    ready_obs = s.step(m.MasterObserved(holder=None, epoch=0, revision=12))
    if ready.campaign or ready_obs.campaign:
        campaigned_at.append(s.now_s)
    for _ in range(8):  # keep the lease alive and watch when the campaign comes
        ready = s.tick(1.0)
        acked = s.step(m.KeepaliveAcked(lease_id=7, ttl_s=TTL_S, sent_at_s=s.now_s))
        if ready.campaign or acked.campaign:
            campaigned_at.append(s.now_s)
    assert campaigned_at and campaigned_at[0] >= 100.0 + 2 * TTL_S, campaigned_at


def test_a_failed_catch_up_is_retried_after_a_pause_not_in_a_loop() -> None:
    s = Script(durable=3)
    s.follower_with_lease(runtime_eve=3)
    s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    assert s.step(m.CampaignResult(won=True, lease_id=7, epoch=10)).catch_up_from == 4
    assert s.step(m.CatchUpDone(head=0, epoch=10, error="no live peer")).catch_up_from is None
    assert s.tick(0.1).catch_up_from is None
    assert s.tick(0.5).catch_up_from == 4


def test_a_catch_up_from_an_earlier_promotion_is_ignored() -> None:
    s = Script(durable=3)
    s.follower_with_lease(runtime_eve=3)
    s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    s.step(m.CampaignResult(won=True, lease_id=7, epoch=10))
    s.step(m.CatchUpDone(head=3, epoch=7))
    assert s.r.role == PROMOTING


def test_a_grant_that_arrives_late_is_revoked_not_adopted() -> None:
    """Found in review: a second grant replaced the lease the master key sat on."""
    s = Script()
    s.follower_with_lease()
    ready = s.step(m.LeaseGranted(lease_id=8, ttl_s=TTL_S, sent_at_s=s.now_s))
    assert ready.revoke_lease == 8 and s.r.lease_id() == 7


def test_a_campaign_won_on_a_lease_we_no_longer_hold_is_given_back() -> None:
    s = Script()
    s.follower_with_lease()
    s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    ready = s.step(m.CampaignResult(won=True, lease_id=99, epoch=10))
    assert s.r.role == FOLLOWER and ready.resign_epoch == 10


def test_a_campaign_reply_slower_than_the_watch_is_stale() -> None:
    """Found by the simulator: the key won at epoch 10 had died and epoch 20 was seen before the reply."""
    s = Script()
    s.follower_with_lease()
    s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    s.step(m.MasterObserved(holder="b", epoch=20, revision=20))
    ready = s.step(m.CampaignResult(won=True, lease_id=7, epoch=10))
    assert s.r.role == FOLLOWER and ready.resign_epoch == 10


@pytest.mark.parametrize("how", ["diverged while promoting", "runtime keeps failing"])
def test_a_key_left_on_our_lease_is_resigned_again_until_it_is_gone(how: str) -> None:
    """Found in review: the resign a fence sends can fail (etcd hiccup); only a runtime-ready follower
    retried it, so a stopped replica, or one whose runtime never came back, held the key for good while
    it kept renewing the lease under it: no other replica could ever win."""
    s = Script(durable=3)
    s.follower_with_lease(runtime_eve=1)
    s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    s.step(m.CampaignResult(won=True, lease_id=7, epoch=10))
    s.step(m.CatchUpDone(head=3, epoch=10))
    failure = m.Diverged(eve=2, detail="mug mismatch") if how.startswith("div") else m.RuntimeFailed("x")
    fenced = s.step(failure)
    assert fenced.resign_epoch == 10  # suppose this one is lost
    s.step(m.MasterObserved(holder="a", epoch=10, revision=10))
    resigns = 0
    for _ in range(10):
        ready = s.tick(1.0)
        if ready.renew_lease:
            s.step(m.KeepaliveAcked(lease_id=7, ttl_s=TTL_S, sent_at_s=s.now_s))
        if ready.restart_runtime:
            s.step(m.RuntimeFailed("died again"))
        resigns += ready.resign_epoch == 10
    assert resigns >= 5
    assert s.step(m.MasterObserved(holder="b", epoch=12, revision=12)).resign_epoch is None
    assert s.tick(1.0).resign_epoch is None  # the key is someone else's now


def test_a_replica_defers_to_a_fresher_log_then_campaigns_after_the_grace_delay() -> None:
    s = Script(durable=3, failover_grace_s=6.0)
    s.follower_with_lease(runtime_eve=3)
    s.step(m.PeersObserved((PeerView("b", 9, fresh=True), PeerView("c", 50, fresh=False))))
    assert not s.step(m.MasterObserved(holder=None, epoch=0, revision=9)).campaign
    assert "deferring to b" in str(s.r.status(s.now_s)["campaign"])  # c is away: it does not count
    for _ in range(5):  # keep the lease; the key stays empty
        ready = s.tick(advance_s=1.0)
        if ready.renew_lease:
            s.step(m.KeepaliveAcked(lease_id=7, ttl_s=TTL_S, sent_at_s=s.now_s))
        assert not ready.campaign
    ready = s.tick(advance_s=1.1)
    assert ready.campaign  # b never took over: a lone survivor must


@pytest.mark.parametrize(
    ("mine", "theirs", "defers"),
    [((5, 1), (5, 2), True), ((5, 2), (5, 1), False), ((5, 1), (5, 1), False), ((6, 0), (5, 9), False)],
)
def test_failover_priority_breaks_ties_between_equal_logs(
    mine: tuple[int, int], theirs: tuple[int, int], defers: bool
) -> None:
    s = Script(durable=mine[0], failover_priority=mine[1])
    s.follower_with_lease(runtime_eve=mine[0])
    s.step(m.PeersObserved((PeerView("b", theirs[0], fresh=True, failover_priority=theirs[1]),)))
    assert s.step(m.MasterObserved(holder=None, epoch=0, revision=9)).campaign is not defers


def test_nofailover_replicas_never_campaign_and_are_not_deferred_to() -> None:
    s = Script(nofailover=True)
    s.follower_with_lease()
    assert not s.step(m.MasterObserved(holder=None, epoch=0, revision=9)).campaign
    other = Script()
    other.follower_with_lease()
    other.step(m.PeersObserved((PeerView("witness", 99, fresh=True, nofailover=True),)))
    assert other.step(m.MasterObserved(holder=None, epoch=0, revision=9)).campaign


def test_a_promotion_that_takes_too_long_resigns_and_holds_back() -> None:
    s = Script(durable=3, promotion_timeout_s=10.0)
    s.follower_with_lease(runtime_eve=3)
    s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    s.step(m.CampaignResult(won=True, lease_id=7, epoch=10))
    s.step(m.CatchUpDone(head=500_000, epoch=10))  # a long way to catch up
    ready = m.Ready()
    for _ in range(12):
        ready = s.tick(advance_s=1.0)
        if ready.renew_lease:
            s.step(m.KeepaliveAcked(lease_id=7, ttl_s=TTL_S, sent_at_s=s.now_s))
        if s.r.role != PROMOTING:
            break
    assert s.r.role == FOLLOWER and ready.resign_epoch == 10
    assert not s.step(m.MasterObserved(holder=None, epoch=0, revision=12)).campaign  # others go first


def test_a_paused_ship_fails_over_to_no_one_but_a_named_candidate() -> None:
    """Maintenance mode: with the master key empty, a paused follower does not campaign; an operator's
    failover names the one that may, and it does, pause or not."""
    s = Script(durable=3)
    s.follower_with_lease(runtime_eve=3)
    s.step(m.PeersObserved((), paused="ops@host"))
    ready = s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    for _ in range(4):  # well past the grace period, the lease renewed meanwhile
        assert not s.tick(advance_s=0.5).campaign
        s.step(m.KeepaliveAcked(lease_id=7, ttl_s=TTL_S, sent_at_s=s.now_s))
    assert not ready.campaign
    assert "paused by ops@host" in str(s.r.status(s.now_s)["campaign"]) and s.r.status(s.now_s)["paused"]
    s.step(m.PeersObserved((), paused="ops@host", candidate="b"))  # another replica is named
    assert not s.tick(advance_s=0.5).campaign
    assert "hands the ship to b" in str(s.r.status(s.now_s)["campaign"])
    named = s.step(m.PeersObserved((), paused="ops@host", candidate="a"))  # this one ("a") is named
    assert named.campaign or s.tick(advance_s=0.5).campaign
