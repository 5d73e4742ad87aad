"""Scripted scenarios for self-fencing: the lease deadline, lost fences, and what a fence throws away.

No sockets, no threads, a hand-moved clock (tests.core.script)."""

from __future__ import annotations

import pytest

from seguro.core import messages as m
from seguro.core.fencing import RENEW_RETRY_S
from seguro.core.replication import FOLLOWER, MASTER
from tests.core.script import TTL_S, Script


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


def test_an_event_arriving_after_the_deadline_is_not_run() -> None:
    """Found by the simulator: the fence and the new job landed in one Ready, and the job ran."""
    s = Script()
    s.become_master()
    s.run_event()
    s.now_s += TTL_S
    ready = s.step(m.IncomingEvent(job="late", size_bytes=1))
    assert ready.run == [] and ready.restart_runtime and s.r.role == FOLLOWER


def test_a_failed_runtime_fences_the_master_and_restarts() -> None:
    s = Script()
    s.become_master()
    s.step(m.IncomingEvent(job="x", size_bytes=1))
    ready = s.step(m.RuntimeFailed("serf died: SIGKILL"))
    assert s.r.role == FOLLOWER and ready.restart_runtime and not s.r.runtime_ready
    assert not s.step(m.MasterObserved(holder=None, epoch=0, revision=50)).campaign  # not before RuntimeReady


def test_a_fence_restarts_the_runtime_holding_a_job_no_batch_has_taken() -> None:
    """Found in review (then in the boot path): the count of jobs in the runtime must cover every job
    handed out, or a fence with one job in flight and nothing in a batch keeps an uncommitted event in
    the runtime, and the next term commits mugs no replay of the log gives."""
    s = Script(durable=3)
    s.become_master()
    assert s.step(m.IncomingEvent(job="d1", size_bytes=1)).run == ["d1"]  # in the runtime, unanswered
    ready = s.step(m.StepDown())
    assert s.r.role == FOLLOWER and ready.restart_runtime and not s.r.runtime_ready


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
