"""Scripted scenarios for the master: run-ahead, group commit, effect release behind commits and acks, trims.

No sockets, no threads, a hand-moved clock (tests.core.script)."""

from __future__ import annotations

import pytest

from seguro.core import messages as m
from seguro.core.election import PeerView
from seguro.core.replication import MASTER
from seguro.invariant import InvariantViolation
from tests.core.script import Script


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


def test_k_follower_acks_gate_effects() -> None:
    s = Script(ack_replicas=2)
    s.become_master()
    commit = s.run_event().commit
    assert commit is not None
    assert s.step(m.CommitDone(seq=commit.seq, ok=True)).release == []
    assert s.step(m.FollowerAck("b", 1)).release == []
    assert s.step(m.FollowerAck("c", 1)).release == [(1, ("fx",))]


def test_scry_answers_wait_for_the_same_acks_as_effects() -> None:
    """Found in review: scry answers left once their event was committed, before any follower held it."""
    s = Script(ack_replicas=1)
    s.become_master()
    commit = s.run_event().commit
    assert commit is not None
    s.step(m.CommitDone(seq=commit.seq, ok=True))
    assert (s.r.committed, s.r.released_through()) == (1, 0)
    s.step(m.FollowerAck("b", 1))
    assert s.r.released_through() == 1


def test_a_follower_that_lost_its_disk_no_longer_counts_for_acks() -> None:
    s = Script(ack_replicas=1)
    s.become_master()
    for eve in range(1, 5):
        commit = s.run_event().commit
        assert commit is not None
        s.step(m.CommitDone(seq=commit.seq, ok=True))
        assert s.step(m.FollowerAck("b", eve)).release == [(eve, ("fx",))]
    s.step(m.FollowerAck("b", 0))  # b's disk was replaced: it starts again from nothing
    commit = s.run_event().commit
    assert commit is not None
    assert s.step(m.CommitDone(seq=commit.seq, ok=True)).release == []  # event 5: this disk and etcd only
    assert s.step(m.FollowerAck("b", 5)).release == [(5, ("fx",))]


def test_a_forgotten_replica_stops_counting_for_acks_at_once() -> None:
    """Found in review: after `seguro forget-replica`, its last ack kept counting towards ack_replicas."""
    s = Script(ack_replicas=1)
    s.become_master()
    s.step(m.FollowerAck("b", 0))
    s.step(m.PeersObserved((PeerView("b", 0, fresh=True),)))
    commit = s.run_event().commit
    assert commit is not None
    s.step(m.CommitDone(seq=commit.seq, ok=True))
    s.step(m.PeersObserved(()))  # b was forgotten
    assert s.step(m.FollowerAck("c", 0)).release == []
    assert s.step(m.FollowerAck("b", 1)).release == []  # a late ack of b: b is not in the registry


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


def test_a_retried_append_that_had_landed_counts_as_committed() -> None:
    s = Script()
    s.become_master()
    commit = s.run_event().commit
    assert commit is not None
    ready = s.step(m.CommitDone(seq=commit.seq, ok=False, actual_head=1))
    assert s.r.role == MASTER and ready.release == [(1, ("fx",))]


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


def test_a_refused_job_takes_no_event_number() -> None:
    s = Script()
    s.become_master()
    s.step(m.IncomingEvent(job="bad", size_bytes=1))
    s.step(m.WorkRefused("bail: bad"))
    commit = s.run_event().commit
    assert commit is not None and commit.batch.first_event == 1 and s.r.counters["refused"] == 1


def test_the_master_trims_etcd_to_the_retained_window_whatever_its_followers_hold() -> None:
    """etcd stays bounded with followers away (an away follower catches up from the master's push stream
    or a peer's log); a trim keeps exactly the newest `etcd_retain_events` and comes every half window."""
    s = Script(etcd_retain_events=4, etcd_retain_bytes=0)
    s.become_master()
    trims = []
    for eve in range(1, 21):
        commit = s.run_event().commit
        assert commit is not None
        if eve <= 8:
            s.step(m.FollowerAck("b", eve))  # the follower stops acknowledging after event 8
        trims.append((eve, s.step(m.CommitDone(seq=commit.seq, ok=True)).trim_below))
    done = [(eve, below) for eve, below in trims if below]
    assert all(below == eve - 4 + 1 for eve, below in done) and done[-1][1] > 8 + 1
    assert all(b - a >= 2 for (_, a), (_, b) in zip(done, done[1:], strict=False))


def test_the_master_trims_etcd_to_its_byte_bound_when_events_are_large() -> None:
    s = Script(etcd_retain_events=1000, etcd_retain_bytes=100)
    s.become_master()
    for eve in range(1, 11):
        assert s.step(m.IncomingEvent(job="x", size_bytes=30)).run
        ready = s.step(m.WorkDone(eve=eve, record=b"x" * 30, effects=()))
        if ready.commit is not None:
            below = s.step(m.CommitDone(seq=ready.commit.seq, ok=True)).trim_below
            if below:
                assert (eve - below + 1) * 30 <= 100  # what etcd keeps fits in the bound
    assert s.r.committed == 10


def test_effects_waiting_for_acks_are_bounded() -> None:
    s = Script(ack_replicas=1, max_run_ahead_events=3)
    s.become_master()
    for _ in range(3):
        commit = s.run_event().commit
        if commit is not None:
            s.step(m.CommitDone(seq=commit.seq, ok=True))
    assert s.step(m.IncomingEvent(job="x", size_bytes=1)).run == []  # no follower acks: shed load


def test_more_runtime_answers_than_jobs_stop_the_replica_loudly() -> None:
    s = Script(durable=3)  # no boot to run
    s.become_master()
    s.run_event()
    with pytest.raises(InvariantViolation, match="more runtime answers than jobs"):
        s.step(m.WorkRefused("bailed"))


def test_a_late_catch_up_read_never_releases_a_masters_held_effects() -> None:
    s = Script(durable=3)
    s.become_master()
    s.run_event()  # event 4 is held until our commit of it lands
    ready = s.step(m.CatchUpFetched(m.Batch(9, 4, (b"someone else's 4",))))
    assert ready.release == [] and ready.persist == [] and s.r.committed == 3


def test_an_awaited_event_is_answered_with_its_number_once_committed() -> None:
    """Admin.Poke answers when the event is committed, not when it merely ran ahead."""
    s = Script()
    s.become_master()
    job = object()
    assert s.step(m.IncomingEvent(job=job, size_bytes=1)).run == [job]
    ready = s.step(m.WorkDone(eve=1, record=b"r1", effects=(), job=job))
    assert ready.answers == [] and ready.commit is not None
    assert s.step(m.CommitDone(seq=ready.commit.seq, ok=True)).answers == [(job, 1, "")]


def test_an_awaited_event_lost_to_a_fence_is_answered_as_not_committed_or_unknown() -> None:
    """Found in review: an event whose commit was in flight at the fence may yet land; saying 'lost' would
    make a client send it again and apply it twice."""
    s = Script()
    s.become_master()
    in_flight, queued, running = object(), object(), object()
    s.step(m.IncomingEvent(job=in_flight, size_bytes=1))
    assert s.step(m.WorkDone(eve=1, record=b"r1", effects=(), job=in_flight)).commit is not None
    s.step(m.IncomingEvent(job=queued, size_bytes=1))
    s.step(m.WorkDone(eve=2, record=b"r2", effects=(), job=queued))  # behind the batch in flight
    s.step(m.IncomingEvent(job=running, size_bytes=1))  # still in the runtime
    answers = {job: why for job, event, why in s.step(m.StepDown()).answers if event == 0}
    assert answers[in_flight].startswith("outcome unknown") and answers[queued].startswith("lost to a fence")
    late = s.step(m.WorkDone(eve=3, record=b"r3", effects=(), job=running))  # the runtime answers late
    assert late.answers == [(running, 0, "lost to a fence before it was committed")]


def test_a_refused_commit_is_known_lost_not_unknown() -> None:
    s = Script()
    s.become_master()
    job = object()
    s.step(m.IncomingEvent(job=job, size_bytes=1))
    commit = s.step(m.WorkDone(eve=1, record=b"r1", effects=(), job=job)).commit
    assert commit is not None
    ready = s.step(m.CommitDone(seq=commit.seq, ok=False, fence_lost=True))
    assert [why[:17] for _, _, why in ready.answers] == ["lost to a fence b"]


def test_an_awaited_event_the_runtime_refuses_is_answered_with_why() -> None:
    s = Script()
    s.become_master()
    job = object()
    s.step(m.IncomingEvent(job=job, size_bytes=1))
    ready = s.step(m.WorkRefused("bail: %evil", job=job))
    assert ready.answers == [(job, 0, "the runtime refused the event: bail: %evil")]


def test_a_followed_logs_events_are_committed_like_run_ahead_and_a_fence_drops_the_rest() -> None:
    """`seguro pier follow`: the master commits a running vere's new events (Tailed); they hold no effects."""
    s = Script()
    assert s.step(m.Tailed(1, b"r1", 10)).commit is None  # not master: ignored
    s.become_master(epoch=10)
    assert s.step(m.Tailed(1, b"r1", 9)).commit is None  # read for an earlier term: dropped
    commit = s.step(m.Tailed(1, b"r1", 10)).commit
    assert commit is not None and commit.batch.records == (b"r1",)
    s.step(m.Tailed(2, b"r2", 10))
    with pytest.raises(InvariantViolation, match="contiguous"):
        s.step(m.Tailed(4, b"r4", 10))


def test_a_fence_throws_tailed_events_away_and_restarts_the_tailer() -> None:
    s = Script()
    s.become_master()
    commit = s.step(m.Tailed(1, b"r1", 10)).commit
    assert commit is not None
    s.step(m.Tailed(2, b"r2", 10))
    ready = s.step(m.CommitDone(seq=commit.seq, ok=False, fence_lost=True))
    assert s.r.role != MASTER and ready.restart_runtime  # the tailer starts again from the committed log
    assert ready.commit is None and s.r.durable == 0


def test_the_event_bound_waits_for_a_live_follower_but_not_for_an_away_one() -> None:
    """Found in review: with ack_replicas 0, trimming past every follower left etcd the only copy of
    events besides the master's disk while a follower was still there to take them."""
    s = Script(etcd_retain_events=4, etcd_retain_bytes=0)
    s.become_master()
    s.step(m.PeersObserved((PeerView("b", 8, fresh=True),)))
    trims = []
    for eve in range(1, 21):
        commit = s.run_event().commit
        assert commit is not None
        if eve <= 8:
            s.step(m.FollowerAck("b", eve))
        trims.append(s.step(m.CommitDone(seq=commit.seq, ok=True)).trim_below)
    assert max(t for t in trims if t) <= 8 + 1  # b is live and holds 8
    s.step(m.PeersObserved((PeerView("b", 8, fresh=False),)))  # b went away
    commit = s.run_event().commit
    assert commit is not None
    assert s.step(m.CommitDone(seq=commit.seq, ok=True)).trim_below == 21 - 4 + 1
