"""The protocol-2 runtime on the reference ship as vere 4.x's worker, with a real RocksDB log and a real
LMDB pier: run-ahead is cut back on a fence, followers append and replay, a mug that differs stops it."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from seguro.core import messages as m
from seguro.node.eventlog import EventLog
from seguro.node.mars_runtime import MarsRuntime, pier_meta
from seguro.node.runtime import Job
from seguro.urbit.ames import datagram_event
from seguro.urbit.launch import launch, vere_argv
from seguro.urbit.pier.log import PierLog
from seguro.urbit.record import decode_record, encode_record
from seguro.urbit.ship.kernel import SNAPSHOT_NAME, boot_events
from tests.node.test_runtime import WALL_S, next_event


def boot_log(data: Path) -> EventLog:
    log = EventLog(data)
    log.set_meta(who="~zod")
    log.append(1, [encode_record(0, e) for e in boot_events("~zod", WALL_S)])
    return log


def runtime(log: EventLog, data: Path, events: queue.Queue[m.Event], **kwargs: object) -> MarsRuntime:
    pier = data / "pier"
    worker = MarsRuntime(log, events.put, pier=pier, argv=launch(["ship2"], pier).argv,
                         stderr_path=data / "runtime.log", **kwargs)  # type: ignore[arg-type]  # fmt: skip
    worker.start()
    assert isinstance(next_event(events, m.RuntimeReady), m.RuntimeReady)
    return worker


def work(worker: MarsRuntime, events: queue.Queue[m.Event], count: int, start: int = 0) -> list[m.WorkDone]:
    for i in range(start, start + count):
        worker.run(Job(datagram_event(WALL_S, "127.0.0.1", 4000 + i % 3, b"ping %d" % i), 10))
    return [next_event(events, m.WorkDone) for _ in range(count)]  # type: ignore[misc]


def test_run_ahead_is_cut_back_on_a_restart_and_committed_work_stays(tmp_path: Path) -> None:
    log, events = boot_log(tmp_path / "data"), queue.Queue()  # type: ignore[var-annotated]
    worker = runtime(log, tmp_path / "data", events)
    try:
        done = work(worker, events, 10)
        assert [d.eve for d in done] == list(range(4, 14))
        assert decode_record(done[-1].record).event[0] > WALL_S  # the worker's time, read from its log
        log.append(4, [d.record for d in done[:6]])  # the core committed 4..9; 10..13 were run-ahead
        worker.restart()  # a fence
        assert next_event(events, m.RuntimeReady).eve == 9  # type: ignore[attr-defined]
        again = work(worker, events, 2, start=100)
        assert [d.eve for d in again] == [10, 11] and again[0].record != done[6].record
    finally:
        worker.stop()
    with PierLog(tmp_path / "data" / "pier") as pier:
        assert pier.head() == 11 and pier.get(9) == done[5].record
    log.close()


def test_a_follower_appends_committed_records_and_replays_them_to_snapshot(tmp_path: Path) -> None:
    master_log, events = boot_log(tmp_path / "m"), queue.Queue()  # type: ignore[var-annotated]
    master = runtime(master_log, tmp_path / "m", events)
    try:
        records = [d.record for d in work(master, events, 30)]
    finally:
        master.stop()
    follower_log, followed = boot_log(tmp_path / "f"), queue.Queue()  # type: ignore[var-annotated]
    saved: list[tuple[int, int]] = []
    follower = runtime(follower_log, tmp_path / "f", followed, snapshot_every=20,
                       on_snapshot=lambda eve, mug: saved.append((eve, mug)))  # fmt: skip
    try:
        follower_log.append(4, records)
        follower.apply_to(33)
        assert next_event(followed, m.Applied).eve == 33  # type: ignore[attr-defined]
        follower.snapshot_if_due()
        follower.apply_to(33)  # queued behind the snapshot cycle: it has ended when this is Applied
        next_event(followed, m.Applied)
        assert (tmp_path / "f" / "pier" / SNAPSHOT_NAME).exists()
        assert saved == [(33, decode_record(records[-1]).mug)]  # at the committed head, with its logged mug
        assert follower.pid is None  # the follower's worker ran only to replay and save
    finally:
        follower.stop()
    with PierLog(tmp_path / "f" / "pier") as pier:
        assert [r for _, r in pier.read(4, 33)] == records
    master_log.close()
    follower_log.close()


def test_a_worker_whose_state_is_not_the_logs_is_a_divergence(tmp_path: Path) -> None:
    log, events = boot_log(tmp_path / "data"), queue.Queue()  # type: ignore[var-annotated]
    worker = runtime(log, tmp_path / "data", events)
    try:
        done = work(worker, events, 3)
        wrong = decode_record(done[-1].record)
        log.append(4, [d.record for d in done[:2]] + [encode_record(wrong.mug ^ 1, wrong.event)])
        worker.restart()
        next_event(events, m.RuntimeReady)
        worker.run(Job(datagram_event(WALL_S, "127.0.0.1", 4000, b"after"), 10))
        diverged = events.get(timeout=30)
        while not isinstance(diverged, m.Diverged):
            diverged = events.get(timeout=30)
        assert diverged.eve == 6 and "mug mismatch" in diverged.detail
    finally:
        worker.stop()
        log.close()


def test_the_runtime_setting_selects_protocol_and_argv() -> None:
    pier = Path("/p")
    assert launch([], pier).protocol == 1
    assert launch(["ship2", "-x"], pier).argv[-3:] == ("--protocol", "2", "-x")
    v3 = launch(["vere3:/usr/bin/urbit"], pier)
    assert (v3.protocol, v3.vere, len(v3.argv)) == (1, True, 11) and v3.argv[1:4] == ("serf", "/p", "0:0:0:0")
    v4 = launch(["vere4:/usr/bin/urbit"], pier)
    assert (v4.protocol, v4.argv[:4]) == (2, ("/usr/bin/urbit", "work", "--snap-dir", "/p"))
    assert int(v4.argv[v4.argv.index("--snap-time") + 1]) * 1000 < 1 << 32  # mars.c's 32-bit product
    assert vere_argv(4, "u", pier) == ("u", *v4.argv[1:])
    assert launch(["/bin/my-serf", "-x"], pier) == launch(["/bin/my-serf", "-x"], pier)
    with pytest.raises(ValueError, match="takes the path"):
        launch(["vere4:"], pier)


def test_the_piers_meta_is_the_imported_ships_or_the_reference_ships(tmp_path: Path) -> None:
    with EventLog(tmp_path / "a") as log:
        log.set_meta(who="~nec")
        assert (pier_meta(log).who, pier_meta(log).fake) == (1, True)
    with EventLog(tmp_path / "b") as log:
        log.set_meta(pier={"version": 3, "who": 65536, "fake": False, "life": 2})
        assert (pier_meta(log).who, pier_meta(log).fake, pier_meta(log).life) == (65536, False, 2)


def test_every_job_gathered_hears_why_when_the_worker_cannot_start(tmp_path: Path) -> None:
    """Found in review: jobs gathered behind the first waited out their timeout when the worker died at
    start; each now hears why at once, before the runtime's failure."""
    log, events = boot_log(tmp_path / "data"), queue.Queue()  # type: ignore[var-annotated]
    worker = MarsRuntime(log, events.put, pier=tmp_path / "data" / "pier", argv=["false"], timeout_s=5)
    worker.start()
    try:
        assert isinstance(next_event(events, m.RuntimeReady), m.RuntimeReady)  # the pier is in step
        for i in range(3):
            worker.run(Job(datagram_event(WALL_S, "127.0.0.1", 4000, b"x %d" % i), 10))
        seen = [events.get(timeout=30) for _ in range(4)]  # jobs queued after the failure: "lost"
        assert sorted(type(e).__name__ for e in seen) == ["RuntimeFailed"] + ["WorkRefused"] * 3
        assert "did not start" in seen[0].reason  # type: ignore[attr-defined]
    finally:
        worker.stop()
        log.close()
