"""Scripted scenarios for the core's election: leases, campaigns, promotion, step-down, stale keys.

No sockets, no threads, a hand-moved clock (tests.core.script)."""

from __future__ import annotations

import pytest

from seguro.core import messages as m
from seguro.core.replication import FOLLOWER, MASTER, PROMOTING
from seguro.invariant import InvariantViolation
from tests.core.script import TTL_S, Script


def test_fresh_ship_boots_under_the_first_master() -> None:
    s = Script()
    ready = s.become_master(epoch=10)
    assert ready.boot and ready.record_epoch == (10, 1)
    commit = s.step(m.Booted((b"formula", b"born"))).commit
    assert commit is not None and commit.batch == m.Batch(10, 1, (b"formula", b"born"))
    assert s.run_event().commit is None  # queued behind the boot batch


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
    assert s.r.role == MASTER and ready.record_epoch == (10, 6) and not ready.boot


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
