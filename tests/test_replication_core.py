"""Scripted scenarios for the replication core: no sockets, no threads, a hand-moved clock."""

from __future__ import annotations

import pytest

from seguro.core import messages as m
from seguro.core.config import Config
from seguro.core.fencing import RENEW_RETRY_S
from seguro.core.replication import FOLLOWER, MASTER, PROMOTING, STOPPED, Replica
from seguro.invariant import InvariantViolation

TTL_S = 3.0


class Script:
    """A replica plus a clock, with shorthands that read like the scenario."""

    def __init__(self, durable: int = 0, **config: object) -> None:
        self.now_s = 100.0
        self.r = Replica(Config(node_id="a", lease_ttl_s=TTL_S, **config), durable_event=durable)  # type: ignore[arg-type]

    def step(self, event: m.Event) -> m.Ready:
        return self.r.step(event, self.now_s)

    def tick(self, advance_s: float = 0.0) -> m.Ready:
        self.now_s += advance_s
        return self.r.tick(self.now_s)

    def follower_with_lease(self, runtime_eve: int = 0) -> None:
        assert self.tick().grant_lease
        self.step(m.LeaseGranted(lease_id=7, ttl_s=TTL_S, sent_at_s=self.now_s))
        self.step(m.RuntimeReady(eve=runtime_eve))

    def become_master(self, epoch: int = 10, head: int | None = None) -> m.Ready:
        self.follower_with_lease(runtime_eve=self.r.durable)
        ready = self.step(m.MasterObserved(holder=None, epoch=0, revision=epoch - 1))
        assert ready.campaign
        ready = self.step(m.CampaignResult(won=True, lease_id=7, epoch=epoch))
        assert self.r.role == PROMOTING and ready.catch_up_from == self.r.durable + 1
        ready = self.step(m.CatchUpDone(head=self.r.durable if head is None else head, epoch=epoch))
        assert self.r.role == MASTER
        return ready

    def run_event(self, job: object = "job", effects: tuple[object, ...] = ("fx",)) -> m.Ready:
        assert self.step(m.IncomingEvent(job=job, size_bytes=10)).run == [job]
        eve = self.r.applied + 1
        return self.step(m.WorkDone(eve=eve, record=b"rec%d" % eve, effects=effects))


def test_fresh_ship_boots_under_the_first_master() -> None:
    s = Script()
    ready = s.become_master(epoch=10)
    assert ready.boot and ready.record_epoch == (10, 1)
    commit = s.step(m.Booted((b"formula", b"born"))).commit
    assert commit is not None and commit.batch == m.Batch(10, 1, (b"formula", b"born"))
    assert s.run_event().commit is None  # queued behind the boot batch


def test_effects_wait_for_the_commit_then_leave() -> None:
    s = Script()
    s.become_master()
    ready = s.run_event()
    assert (
        ready.commit is not None and ready.commit.batch.first_event == 1 and ready.commit.expected_head == 0
    )
    assert ready.release == []
    ready = s.step(m.CommitDone(seq=ready.commit.seq, ok=True))
    assert ready.release == [(1, ("fx",))]
    assert [b.first_event for b in ready.persist] == [1] and s.r.durable == 1


def test_group_commit_one_batch_in_flight_and_the_rest_queue() -> None:
    s = Script()
    s.become_master()
    first = s.run_event().commit
    assert first is not None
    for _ in range(3):
        assert s.run_event().commit is None  # one transaction in flight
    second = s.step(m.CommitDone(seq=first.seq, ok=True)).commit
    assert second is not None and second.batch.first_event == 2 and len(second.batch.records) == 3
    assert second.batch.epoch == 10 and second.expected_head == 1


def test_batches_respect_the_size_limit_and_a_huge_record_goes_alone() -> None:
    s = Script(max_batch_bytes=100)
    s.become_master()
    ready = s.step(m.IncomingEvent(job="x", size_bytes=10))
    first = s.step(m.WorkDone(eve=1, record=b"x" * 60, effects=())).commit
    assert first is not None
    for eve, size in [(2, 60), (3, 500), (4, 10)]:
        s.step(m.IncomingEvent(job="x", size_bytes=size))
        s.step(m.WorkDone(eve=eve, record=b"x" * size, effects=()))
    sizes = []
    commit = first
    for _ in range(4):
        sizes.append([len(r) for r in commit.batch.records])
        ready = s.step(m.CommitDone(seq=commit.seq, ok=True))
        if ready.commit is None:
            break
        commit = ready.commit
    assert sizes == [[60], [60], [500], [10]]


def test_no_effect_leaves_after_the_lease_deadline_even_if_the_commit_lands() -> None:
    s = Script()
    s.become_master()
    commit = s.run_event().commit
    assert commit is not None
    ready = s.tick(advance_s=TTL_S)  # no keepalive acknowledged: the deadline has passed
    assert s.r.role == FOLLOWER and ready.restart_runtime and ready.resign_epoch == 10
    assert s.step(m.CommitDone(seq=commit.seq, ok=True)).release == []
    assert s.r.counters["effects_discarded"] == 1


def test_acknowledged_keepalives_keep_the_master_emitting() -> None:
    s = Script()
    s.become_master()
    for _ in range(10):
        ready = s.tick(advance_s=1.0)
        assert ready.renew_lease == 7
        s.step(m.KeepaliveAcked(lease_id=7, ttl_s=TTL_S, sent_at_s=s.now_s))
        commit = s.run_event().commit
        assert commit is not None
        assert s.step(m.CommitDone(seq=commit.seq, ok=True)).release
    assert s.r.role == MASTER


def test_deadline_counts_from_the_keepalive_send_time_not_its_reply() -> None:
    s = Script(lease_margin_s=0.5)
    s.become_master()
    sent_at_s = s.now_s
    s.tick(advance_s=2.0)
    s.step(m.KeepaliveAcked(lease_id=7, ttl_s=TTL_S, sent_at_s=sent_at_s + 0.1))  # reply came late
    assert s.r.lease_deadline_s() == pytest.approx(sent_at_s + 0.1 + TTL_S - 0.5)


def test_k_follower_acks_gate_effects() -> None:
    s = Script(ack_replicas=2)
    s.become_master()
    commit = s.run_event().commit
    assert commit is not None
    assert s.step(m.CommitDone(seq=commit.seq, ok=True)).release == []
    assert s.step(m.FollowerAck("b", 1)).release == []
    assert s.step(m.FollowerAck("c", 1)).release == [(1, ("fx",))]


def test_a_follower_that_lost_its_disk_no_longer_counts_for_acks_or_trimming() -> None:
    s = Script(ack_replicas=1, etcd_retain_events=2)
    s.become_master()
    trims = []
    for eve in range(1, 5):
        commit = s.run_event().commit
        assert commit is not None
        trims.append(s.step(m.CommitDone(seq=commit.seq, ok=True)).trim_below)
        assert s.step(m.FollowerAck("b", eve)).release == [(eve, ("fx",))]
    s.step(m.FollowerAck("b", 0))  # b's disk was replaced: it starts again from nothing
    commit = s.run_event().commit
    assert commit is not None
    ready = s.step(m.CommitDone(seq=commit.seq, ok=True))
    assert ready.release == [] and ready.trim_below is None  # event 5 is on this disk and in etcd only
    assert s.step(m.FollowerAck("b", 5)).release == [(5, ("fx",))]
    assert [t for t in trims if t] == [1, 2, 3]  # each behind what b then held


def test_a_follower_back_on_an_empty_disk_no_longer_vouches_for_held_effects() -> None:
    s = Script(ack_replicas=2, durable=3)
    s.become_master()
    commit = s.run_event().commit
    assert commit is not None
    s.step(m.CommitDone(seq=commit.seq, ok=True))  # event 4 is committed, held for two acks
    s.step(m.FollowerAck("b", 4))
    s.step(m.FollowerAck("b", 0))  # b's disk was replaced before c acked
    assert s.step(m.FollowerAck("c", 4)).release == []  # only c holds event 4 now
    assert s.step(m.FollowerAck("b", 4)).release == [(4, ("fx",))]


def test_fence_lost_commit_discards_run_ahead() -> None:
    s = Script()
    s.become_master()
    commit = s.run_event().commit
    assert commit is not None
    s.run_event()
    ready = s.step(
        m.CommitDone(seq=commit.seq, ok=False, fence_lost=True, actual_head=commit.batch.last_event)
    )
    assert s.r.role == FOLLOWER and ready.restart_runtime and not ready.release
    assert s.step(m.WorkDone(eve=3, record=b"late", effects=("fx",))).commit is None  # stale run-ahead


def test_a_retried_append_that_had_landed_counts_as_committed() -> None:
    s = Script()
    s.become_master()
    commit = s.run_event().commit
    assert commit is not None
    ready = s.step(m.CommitDone(seq=commit.seq, ok=False, actual_head=1))
    assert s.r.role == MASTER and ready.release == [(1, ("fx",))]


def test_master_seeing_another_holder_fences_at_once() -> None:
    s = Script()
    s.become_master(epoch=10)
    s.run_event()
    ready = s.step(m.MasterObserved(holder="b", epoch=20, revision=21))
    assert s.r.role == FOLLOWER and ready.restart_runtime


def test_old_observations_do_not_fence_a_new_master() -> None:
    s = Script()
    s.become_master(epoch=10)
    s.step(
        m.MasterObserved(holder=None, epoch=0, revision=9)
    )  # not older than the last view, older than our epoch
    assert s.r.role == MASTER


def test_follower_stores_acks_and_applies_pushed_batches() -> None:
    s = Script()
    s.follower_with_lease()
    s.step(m.MasterObserved(holder="b", epoch=4, revision=4))
    ready = s.step(m.BatchReceived(stream_id=1, batch=m.Batch(0, 1, (b"r1", b"r2")), sender_epoch=4))
    assert ready.persist == [m.Batch(0, 1, (b"r1", b"r2"))] and ready.apply_to == 2
    assert ready.acks == [m.AckOut(1, 2, 4, "")]
    ready = s.step(m.BatchReceived(stream_id=1, batch=m.Batch(0, 2, (b"r2", b"r3")), sender_epoch=4))
    assert ready.persist == [m.Batch(0, 3, (b"r3",))]


def test_follower_refuses_a_stale_epoch_and_leaves_gaps_to_the_sender() -> None:
    s = Script()
    s.follower_with_lease()
    s.step(m.BatchReceived(stream_id=1, batch=m.Batch(0, 1, (b"r1",)), sender_epoch=9))
    ready = s.step(m.BatchReceived(stream_id=2, batch=m.Batch(0, 2, (b"r2",)), sender_epoch=8))
    assert ready.persist == [] and "stale epoch" in ready.acks[0].error
    ready = s.step(m.BatchReceived(stream_id=1, batch=m.Batch(0, 5, (b"r5",)), sender_epoch=9))
    assert ready.persist == [] and ready.acks == [m.AckOut(1, 1, 9, "")]


def test_followers_drop_datagrams_and_count_them() -> None:
    s = Script()
    s.follower_with_lease()
    ready = s.step(m.IncomingEvent(job="x", size_bytes=1))
    assert ready.run == [] and "not the master" in ready.refused[0][1]
    assert s.r.counters["dropped"] == 1


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


def test_divergence_stops_the_replica_for_good() -> None:
    s = Script()
    s.follower_with_lease()
    ready = s.step(m.Diverged(eve=3, detail="mug 0x1 != 0x2"))
    assert s.r.role == STOPPED and ready.stop and "event 3" in ready.stop
    assert not s.step(m.MasterObserved(holder=None, epoch=0, revision=30)).campaign
    ready = s.step(m.BatchReceived(stream_id=1, batch=m.Batch(0, 1, (b"r1",)), sender_epoch=40))
    assert ready.persist == [] and "stopped" in ready.acks[0].error  # its acks must not count


def test_a_divergence_in_the_start_up_replay_still_shows_how_far_the_runtime_got() -> None:
    """Seen in a loaded e2e run: a new replica's runtime started after pushes had filled its log, so the
    divergence came in its start-up replay, with no Applied before it, and status showed applied 0."""
    s = Script(durable=120)
    assert s.tick().grant_lease
    s.step(m.Diverged(eve=100, detail="mug 0x1 != 0x2"))
    assert s.r.role == STOPPED and s.r.status(s.now_s)["applied_event"] == 99


def test_oversized_events_are_refused_with_a_reason() -> None:
    s = Script(max_event_bytes=1000)
    s.become_master()
    ready = s.step(m.IncomingEvent(job="big", size_bytes=1001, source="admin"))
    assert ready.run == [] and ready.refused and "exceeds the limit of 1000 bytes" in ready.refused[0][1]


def test_runtime_event_numbers_must_be_contiguous() -> None:
    s = Script()
    s.become_master()
    s.step(m.IncomingEvent(job="x", size_bytes=1))
    with pytest.raises(InvariantViolation):
        s.step(m.WorkDone(eve=2, record=b"r", effects=()))


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


def test_an_event_arriving_after_the_deadline_is_not_run() -> None:
    """Found by the simulator: the fence and the new job landed in one Ready, and the job ran."""
    s = Script()
    s.become_master()
    s.run_event()
    s.now_s += TTL_S
    ready = s.step(m.IncomingEvent(job="late", size_bytes=1))
    assert ready.run == [] and ready.restart_runtime and s.r.role == FOLLOWER


def test_a_refused_job_takes_no_event_number() -> None:
    s = Script()
    s.become_master()
    s.step(m.IncomingEvent(job="bad", size_bytes=1))
    s.step(m.WorkRefused("bail: bad"))
    commit = s.run_event().commit
    assert commit is not None and commit.batch.first_event == 1 and s.r.counters["refused"] == 1


def test_a_failed_runtime_fences_the_master_and_restarts() -> None:
    s = Script()
    s.become_master()
    s.step(m.IncomingEvent(job="x", size_bytes=1))
    ready = s.step(m.RuntimeFailed("serf died: SIGKILL"))
    assert s.r.role == FOLLOWER and ready.restart_runtime and not s.r.runtime_ready
    assert not s.step(m.MasterObserved(holder=None, epoch=0, revision=50)).campaign  # not before RuntimeReady


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


def test_the_master_trims_etcd_behind_the_retained_window_but_not_past_its_followers() -> None:
    s = Script(etcd_retain_events=4)
    s.become_master()
    trims = []
    for eve in range(1, 21):
        commit = s.run_event().commit
        assert commit is not None
        if eve <= 8:
            s.step(m.FollowerAck("b", eve))  # the follower stops acknowledging after event 8
        trims.append(s.step(m.CommitDone(seq=commit.seq, ok=True)).trim_below)
    # Every retain/2 events, keeping the last 4 — and never an event only this node holds.
    assert [t for t in trims if t] == [2, 4, 6, 8]
    assert max(t for t in trims if t) <= 8 + 1


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


def test_a_master_fenced_during_boot_restarts_its_runtime() -> None:
    """Found in review: the serf kept boot events that never committed."""
    s = Script()
    assert s.become_master().boot
    ready = s.tick(advance_s=TTL_S)
    assert s.r.role == FOLLOWER and ready.restart_runtime


def test_effects_waiting_for_acks_are_bounded() -> None:
    s = Script(ack_replicas=1, max_run_ahead_events=3)
    s.become_master()
    for _ in range(3):
        commit = s.run_event().commit
        if commit is not None:
            s.step(m.CommitDone(seq=commit.seq, ok=True))
    assert s.step(m.IncomingEvent(job="x", size_bytes=1)).run == []  # no follower acks: shed load


def test_a_campaign_reply_slower_than_the_watch_is_stale() -> None:
    """Found by the simulator: the key won at epoch 10 had died and epoch 20 was seen before the reply."""
    s = Script()
    s.follower_with_lease()
    s.step(m.MasterObserved(holder=None, epoch=0, revision=9))
    s.step(m.MasterObserved(holder="b", epoch=20, revision=20))
    ready = s.step(m.CampaignResult(won=True, lease_id=7, epoch=10))
    assert s.r.role == FOLLOWER and ready.resign_epoch == 10


def test_a_fence_restarts_the_runtime_when_a_job_taken_during_the_boot_was_counted_off() -> None:
    """Found in review: Booted reset the count of jobs in the runtime, forgetting a datagram taken while
    the boot ran; a later fence with one job in flight then kept the runtime, holding an event that was
    never committed, and the next term's commits carried mugs no replay of the log gives."""
    s = Script()
    assert s.become_master().boot
    assert s.step(m.IncomingEvent(job="d1", size_bytes=1)).run == ["d1"]  # while the boot runs
    commit = s.step(m.Booted((b"formula", b"born"))).commit
    assert commit is not None
    s.step(m.WorkDone(eve=3, record=b"r3", effects=("fx",)))
    commit = s.step(m.CommitDone(seq=commit.seq, ok=True)).commit
    assert commit is not None
    s.step(m.CommitDone(seq=commit.seq, ok=True))
    assert s.r.durable == s.r.applied == 3
    assert s.step(m.IncomingEvent(job="d2", size_bytes=1)).run == ["d2"]  # in the runtime, uncommitted
    ready = s.step(m.StepDown())
    assert s.r.role == FOLLOWER and ready.restart_runtime and not s.r.runtime_ready


def test_more_runtime_answers_than_jobs_stop_the_replica_loudly() -> None:
    s = Script(durable=3)  # no boot to run
    s.become_master()
    s.run_event()
    with pytest.raises(InvariantViolation, match="more runtime answers than jobs"):
        s.step(m.WorkRefused("bailed"))


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


def test_a_failed_keepalive_is_retried_soon_not_a_third_of_the_ttl_later() -> None:
    """Found in review: after a keepalive failed fast, the next went a full TTL/3 after the failed one,
    so two quick failures (etcd leader changes) ran a healthy master's deadline out."""
    s = Script()
    s.become_master()
    sends_s = []
    for _ in range(60):
        ready = s.tick(0.05)
        if ready.renew_lease:
            sends_s.append(s.now_s)
            if len(sends_s) == 1:
                s.step(m.KeepaliveAcked(lease_id=7, ttl_s=TTL_S, sent_at_s=s.now_s))
            elif len(sends_s) == 2:
                s.step(m.LeaseRequestFailed("etcdserver: leader changed"))
    assert len(sends_s) >= 3 and sends_s[2] - sends_s[1] <= RENEW_RETRY_S + 0.05 + 1e-9


def test_a_late_catch_up_read_never_releases_a_masters_held_effects() -> None:
    s = Script(durable=3)
    s.become_master()
    s.run_event()  # event 4 is held until our commit of it lands
    ready = s.step(m.CatchUpFetched(m.Batch(9, 4, (b"someone else's 4",))))
    assert ready.release == [] and ready.persist == [] and s.r.committed == 3
