"""The runtime worker on a real reference ship and a real RocksDB log: replay, mug checks, snapshots."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from seguro.core import messages as m
from seguro.node.effects import GalaxySend, Unserved, effects_of
from seguro.node.eventlog import EventLog
from seguro.node.runtime import Job, RuntimeWorker
from seguro.urbit import ames, behn
from seguro.urbit.ames import datagram_event
from seguro.urbit.noun import cord, from_list
from seguro.urbit.record import DA_TICK, da_from_unix, decode_record, encode_record, split_event
from seguro.urbit.serf import Serf
from seguro.urbit.ship.kernel import SNAPSHOT_NAME, boot_events

WALL_S = 1_700_000_000.0


def make_log(data: Path, events: int) -> EventLog:
    """A committed log as a master would have written it: boot events (mug 0), then datagrams."""
    log = EventLog(data)
    with Serf(pier=data / "maker") as serf:
        boot = boot_events("~zod", WALL_S)
        serf.play(1, boot)
        records = [encode_record(0, e) for e in boot]
        for i in range(events):
            done = serf.work(datagram_event(WALL_S + i, "127.0.0.1", 4000 + i % 7, b"ping %d" % i))
            records.append(encode_record(done.mug, done.job))
    log.append(1, records)
    return log


def next_event(events: queue.Queue[m.Event], kind: type, timeout_s: float = 30.0) -> m.Event:
    """The next event of `kind`, skipping others (bounded by the timeout on each wait)."""
    while True:
        event = events.get(timeout=timeout_s)
        if isinstance(event, kind):
            return event
        assert not isinstance(event, m.RuntimeFailed | m.Diverged), event


def test_restart_replays_the_log_and_snapshots_cut_the_replay(tmp_path: Path, monkeypatch) -> None:
    played: list[int] = []
    real_play = Serf.play

    def play(self, event, jobs):  # type: ignore[no-untyped-def]
        played.append(event)
        return real_play(self, event, jobs)

    monkeypatch.setattr(Serf, "play", play)
    log = make_log(tmp_path, 60)
    events: queue.Queue[m.Event] = queue.Queue()
    worker = RuntimeWorker(log, events.put, pier=tmp_path / "pier", snapshot_every=20)
    worker.start()
    try:
        assert next_event(events, m.RuntimeReady).eve == 63  # type: ignore[attr-defined]
        played.clear()  # startup's replay is done (RuntimeReady came after it)
        worker.snapshot_if_due()
        snapshot = tmp_path / "pier" / SNAPSHOT_NAME
        deadline_s = time.monotonic() + 30
        while not snapshot.exists() and time.monotonic() < deadline_s:
            time.sleep(0.02)  # a restart drops requests made before it, snapshots included
        worker.restart()
        assert next_event(events, m.RuntimeReady).eve == 63  # type: ignore[attr-defined]
        assert played == [], f"restart replayed {len(played)} plays despite the snapshot at 63"
        assert (tmp_path / "pier" / SNAPSHOT_NAME).exists()
    finally:
        worker.stop()
        log.close()


def test_replay_plays_the_boot_sequence_then_batches_of_at_most_500(tmp_path: Path, monkeypatch) -> None:
    batches: list[tuple[int, int]] = []
    real_play = Serf.play

    def play(self, event, jobs):  # type: ignore[no-untyped-def]
        batches.append((event, len(jobs)))
        return real_play(self, event, jobs)

    monkeypatch.setattr(Serf, "play", play)
    log = make_log(tmp_path, 1200)
    batches.clear()  # the log's maker booted a runtime too
    events: queue.Queue[m.Event] = queue.Queue()
    worker = RuntimeWorker(log, events.put, pier=tmp_path / "pier")
    worker.start()
    try:
        assert next_event(events, m.RuntimeReady).eve == 1203  # type: ignore[attr-defined]
        assert batches == [(1, 3), (4, 500), (504, 500), (1004, 200)]
    finally:
        worker.stop()
        log.close()


def test_a_snapshot_asked_for_before_a_restart_never_saves_discarded_run_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: the runtime is busy with run-ahead event 9 when a snapshot is asked for; the node
    is fenced (restart) and another master's different events 9 and 10 land in the log. The old request
    then saw 9 <= 10 and saved the discarded event 9, so the restart reported a false divergence (or,
    with the log at 9, silently kept an event that was never committed)."""
    committed = make_log(tmp_path / "theirs", 7)  # boot events 1..3, then 4..10
    records = [record for _, record in committed.read(1, 10)]
    committed.close()
    log = EventLog(tmp_path / "ours")
    log.append(1, records[:8])
    events: queue.Queue[m.Event] = queue.Queue()
    worker = RuntimeWorker(log, events.put, pier=tmp_path / "ours" / "pier", snapshot_every=1)
    inside, release = threading.Event(), threading.Event()
    real_result = Serf.next_work_result

    def slow_result(self, timeout_s=None):  # type: ignore[no-untyped-def]
        inside.set()
        release.wait(10)
        return real_result(self, timeout_s)

    monkeypatch.setattr(Serf, "next_work_result", slow_result)
    worker.start()
    try:
        assert next_event(events, m.RuntimeReady).eve == 8  # type: ignore[attr-defined]
        worker.run(Job(datagram_event(WALL_S + 99, "127.0.0.1", 5000, b"run-ahead"), 100))
        assert inside.wait(10)
        worker.snapshot_if_due()
        worker.restart()
        log.append(9, records[8:10])
        release.set()
        assert next_event(events, m.RuntimeReady).eve == 10  # type: ignore[attr-defined]
    finally:
        worker.stop()
        log.close()


def test_run_ahead_work_is_numbered_by_the_runtime_and_not_snapshotted(tmp_path: Path) -> None:
    log = make_log(tmp_path, 5)
    events: queue.Queue[m.Event] = queue.Queue()
    worker = RuntimeWorker(log, events.put, pier=tmp_path / "pier", snapshot_every=1)
    worker.start()
    try:
        next_event(events, m.RuntimeReady)
        worker.run(Job(datagram_event(WALL_S + 99, "127.0.0.1", 5000, b"hello"), 100))
        done = next_event(events, m.WorkDone)
        assert done.eve == 9 and done.effects[0][1].startswith(b"ack 9")  # type: ignore[attr-defined]
        worker.snapshot_if_due()  # the runtime is ahead of the log: no snapshot may hold event 9
        worker.run(Job((1, 2), 10))  # not [@da ovum]: refused, the runtime lives on
        assert "malformed job" in next_event(events, m.WorkRefused).reason  # type: ignore[attr-defined]
        worker.restart()
        assert next_event(events, m.RuntimeReady).eve == 8  # type: ignore[attr-defined]
    finally:
        worker.stop()
        log.close()


def test_a_state_that_leaves_the_logs_is_a_divergence_at_its_first_event(tmp_path: Path) -> None:
    log = make_log(tmp_path, 40)
    records = [record for _, record in log.read(1)]
    log.close()
    for i in range(29, 43):  # from event 30 on, the master's state was another one than this runtime's
        bad = decode_record(records[i])
        records[i] = encode_record(bad.mug ^ 1, bad.event)
    other = EventLog(tmp_path / "other")
    other.append(1, records[:20])
    events: queue.Queue[m.Event] = queue.Queue()
    worker = RuntimeWorker(other, events.put, pier=tmp_path / "pier2")
    worker.start()
    try:
        assert next_event(events, m.RuntimeReady).eve == 20  # type: ignore[attr-defined]
        other.append(21, records[20:])
        worker.apply_to(43)
        assert events.get(timeout=30) == m.Applied(29)  # everything before it matched
        diverged = events.get(timeout=30)
        assert isinstance(diverged, m.Diverged) and diverged.eve == 30 and "the log says" in diverged.detail
        worker.apply_to(43)  # nothing more is applied after a divergence
        with pytest.raises(queue.Empty):  # (restart() right away would make this apply stale anyway)
            events.get(timeout=1.0)
        worker.restart()  # ... and a restart finds the same divergence in the log
        after = events.get(timeout=30)
        assert isinstance(after, m.Diverged) and after.eve == 30, after  # no Applied(43) before it
    finally:
        worker.stop()
        other.close()


def test_event_time_never_goes_backwards_across_a_failover(tmp_path: Path) -> None:
    """A new master whose wall clock is behind the last logged event's (here a day behind) stamps its
    events after it: each event's @da is at least the previous one's plus vere's tick (2^48)."""
    log = make_log(tmp_path, 5)  # logged by a master whose clock said WALL_S .. WALL_S + 4
    last_da = split_event(decode_record(log.get(log.last_event())).event)[0]  # type: ignore[arg-type]
    events: queue.Queue[m.Event] = queue.Queue()
    worker = RuntimeWorker(log, events.put, pier=tmp_path / "pier")
    worker.start()
    try:
        next_event(events, m.RuntimeReady)
        for i in range(3):
            worker.run(Job(datagram_event(WALL_S - 86_400 + i, "127.0.0.1", 4000, b"late %d" % i), 64))
        times = [split_event(decode_record(next_event(events, m.WorkDone).record).event)[0]  # type: ignore[attr-defined]
                 for _ in range(3)]  # fmt: skip
        assert times == [last_da + DA_TICK, last_da + 2 * DA_TICK, last_da + 3 * DA_TICK]
        worker.run(Job(datagram_event(WALL_S + 86_400, "127.0.0.1", 4000, b"on time"), 64))
        on_time = split_event(decode_record(next_event(events, m.WorkDone).record).event)[0]  # type: ignore[attr-defined]
        assert on_time == da_from_unix(WALL_S + 86_400)  # a clock that is ahead is taken as it is
    finally:
        worker.stop()
        log.close()


def test_the_effects_a_node_performs_are_datagrams_and_the_last_doze(tmp_path: Path) -> None:
    lane = ames.encode_lane("127.0.0.1", 4001)
    blit = ((0, 0), (cord("blit"), 0))
    galaxy = ames.send_effect((0, 7), b"to ~let")  # a [%.y 7] lane
    effects = [behn.doze_effect(5), ames.send_effect(lane, b"hi"), blit, behn.doze_effect(None), galaxy]
    expected = ((("127.0.0.1", 4001), b"hi"), Unserved("blit"), GalaxySend(7, b"to ~let"), behn.Doze(None))
    assert effects_of(effects) == expected  # the serf client's list
    assert effects_of(from_list(effects)) == expected  # a noun list
