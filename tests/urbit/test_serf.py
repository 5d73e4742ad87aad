"""The king-side client against real child processes: the reference ship, and fake serfs that misbehave."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seguro.urbit import ames
from seguro.urbit.noun import Noun, cord, from_list
from seguro.urbit.serf import (
    PlayBail,
    Serf,
    SerfBusy,
    SerfDied,
    SerfError,
    SerfProtocolError,
    SerfTimeout,
    WorkBail,
    WorkDone,
)
from seguro.urbit.ship import kernel

WALL_S = 1_700_000_000.0
EVENTS = 10_000
SNAPSHOT_AT = 5_000  # events after boot


def packet_event(i: int) -> Noun:
    """Event i of the workload: 7 peers, and every 997th packet crashes its event (the swap path)."""
    payload = b"crash %d" % i if i % 997 == 500 else b"packet %d" % i
    return ames.datagram_event(WALL_S + i / 1000, "127.0.0.1", 40000 + i % 7, payload)


def run_pipelined(serf: Serf, jobs: list[Noun]) -> list[WorkDone]:
    results: list[WorkDone] = []
    for job in jobs:
        if serf.in_flight == serf.max_in_flight:
            results.append(serf.next_work_result())
        serf.submit_work(job)
    while serf.in_flight:
        results.append(serf.next_work_result())
    return results


def booted(pier: Path, **kwargs: object) -> Serf:
    serf = Serf(pier=pier, timeout_s=10, **kwargs)  # type: ignore[arg-type]
    serf.play(1, kernel.boot_events("~zod", WALL_S))
    return serf


def fake_serf(body: str) -> list[str]:
    """A child that writes what `body` says on stdout (with `ripe` = a valid %ripe frame available)."""
    prelude = (
        "import sys, time\n"
        "from seguro.urbit import newt\n"
        "from seguro.urbit.noun import cord\n"
        "out = sys.stdout.buffer\n"
        "def send(noun):\n"
        "    out.write(newt.encode_noun(noun)); out.flush()\n"
        "ripe = (cord('ripe'), ((1, (138, 4)), (0, 0)))\n"
    )
    return [sys.executable, "-c", prelude + body]


def test_10k_events_snapshot_kill_restart_replay_agree(tmp_path: Path) -> None:
    jobs = [packet_event(i) for i in range(EVENTS)]
    started = time.monotonic()
    serf = booted(tmp_path / "a")
    boot_eve = serf.eve
    first = run_pipelined(serf, jobs[:SNAPSHOT_AT])
    serf.save()
    rest = run_pipelined(serf, jobs[SNAPSHOT_AT:])
    elapsed_s = time.monotonic() - started
    serf.kill()
    results = first + rest
    assert [r.eve for r in results] == list(range(boot_eve + 1, boot_eve + EVENTS + 1))
    assert sum(r.swapped for r in results) == 10
    for result in results:
        datagrams = ames.effects_to_datagrams(result.effects)
        if result.swapped:
            assert datagrams == [] and result.job[1][1][0] == cord("crud")
        else:
            [(_, payload)] = datagrams
            assert payload.startswith(b"ack %d " % result.eve)
    logged = [r.job for r in results]  # what a king would have written to its log
    print(f"10k pipelined events: {elapsed_s:.2f}s")

    restarted = Serf(pier=tmp_path / "a", timeout_s=10)
    snap_eve = boot_eve + SNAPSHOT_AT
    assert (restarted.eve, restarted.mug) == (snap_eve, results[SNAPSHOT_AT - 1].mug)
    for start in range(SNAPSHOT_AT, EVENTS, 2_000):
        restarted.play(boot_eve + start + 1, logged[start : start + 2_000])
    assert (restarted.eve, restarted.mug) == (results[-1].eve, results[-1].mug)
    assert restarted.exit() == 0

    fresh = booted(tmp_path / "b")  # replay of the whole log from boot agrees too
    assert fresh.play(boot_eve + 1, logged) == results[-1].mug
    fresh.kill()


def test_sync_work_peek_save_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="seguro.urbit")
    with booted(tmp_path, stderr_path=tmp_path / "ship.log") as serf:
        done = serf.work(packet_event(1))
        assert (done.eve, done.swapped, done.mug) == (4, False, serf.mug)
        swapped = serf.work(packet_event(500))
        assert swapped.swapped and swapped.eve == 5 and swapped.job != packet_event(500)
        with pytest.raises(WorkBail, match="%evil"):
            serf.work(ames.datagram_event(WALL_S, "127.0.0.1", 1, b"evil"))
        assert serf.eve == 5  # a bail adds no event, and the serf stays usable
        assert serf.peek((0, from_list([cord("eve")]))) == (0, (cord("noun"), 5))
        serf.save()
        assert (tmp_path / "snapshot.jam").exists()
    assert "worker slog: booted ~zod in 3 events" in caplog.text
    assert "worker flog: saved snapshot at 5" in caplog.text


def test_play_bail_leaves_the_serf_usable(tmp_path: Path) -> None:
    with booted(tmp_path) as serf:
        crash = ames.datagram_event(WALL_S, "127.0.0.1", 1, b"crash")
        with pytest.raises(PlayBail) as info:
            serf.play(4, [packet_event(1), crash])
        assert (info.value.eve, serf.eve, serf.mug) == (4, 4, info.value.mug)
        assert serf.work(packet_event(2)).eve == 5
        with pytest.raises(ValueError, match="start at event 6"):
            serf.play(9, [packet_event(3)])


def test_backpressure(tmp_path: Path) -> None:
    with booted(tmp_path, max_in_flight=2) as serf:
        serf.submit_work(packet_event(1))
        serf.submit_work(packet_event(2))
        with pytest.raises(SerfBusy, match="2 jobs in flight"):
            serf.submit_work(packet_event(3))
        with pytest.raises(SerfBusy, match="cannot save"):
            serf.save()
        assert [serf.next_work_result().eve for _ in range(2)] == [4, 5]
        with pytest.raises(SerfBusy, match="no work in flight"):
            serf.next_work_result()


def test_sigkill_while_work_in_flight_is_serf_died(tmp_path: Path) -> None:
    serf = booted(tmp_path)
    os.kill(serf.pid, signal.SIGSTOP)  # guarantees the job is still in flight when the kill lands
    serf.submit_work(packet_event(1))
    os.kill(serf.pid, signal.SIGKILL)
    with pytest.raises(SerfDied) as info:
        serf.next_work_result(timeout_s=10)
    assert info.value.signal == signal.SIGKILL and "SIGKILL" in str(info.value)
    with pytest.raises(SerfDied):  # and the client stays failed
        serf.work(packet_event(2))
    serf.kill()


def test_sigkill_during_a_busy_pipeline_never_hangs(tmp_path: Path) -> None:
    serf = booted(tmp_path)
    os.kill(serf.pid, signal.SIGSTOP)  # the whole pipeline is still in flight when the kill lands
    for i in range(serf.max_in_flight):
        serf.submit_work(packet_event(i))
    os.kill(serf.pid, signal.SIGKILL)
    with pytest.raises(SerfDied):
        for _ in range(serf.max_in_flight):
            serf.next_work_result(timeout_s=10)
    serf.kill()


def test_stalled_child_is_a_timeout_on_read_and_on_write(tmp_path: Path) -> None:
    serf = booted(tmp_path)
    os.kill(serf.pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(SerfTimeout, match="no reply"):
        serf.work(packet_event(1), timeout_s=0.5)
    assert time.monotonic() - started < 5
    serf.kill()  # SIGKILL works on a stopped process

    serf = booted(tmp_path / "w")
    os.kill(serf.pid, signal.SIGSTOP)
    big = [ames.datagram_event(WALL_S, "127.0.0.1", 9, os.urandom(1400)) for _ in range(200)]  # > pipe buffer
    with pytest.raises(SerfTimeout, match="write timed out"):
        serf.play(4, big, timeout_s=0.5)
    serf.kill()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("out.write(b'\\x07garbage'); out.flush(); time.sleep(30)", "bad newt version byte 0x07"),
        (
            "out.write(b'\\x00\\x03\\x00\\x00\\x00\\x00\\x00\\x00'); out.flush(); time.sleep(30)",
            "not a valid jam",
        ),
        ("out.write(b'\\x00\\xff\\xff\\xff\\x7f'); out.flush(); time.sleep(30)", "exceeds the limit"),
        ("send((cord('ripe'), ((2, (138, 4)), (0, 0)))); time.sleep(30)", "unsupported serf protocol 2"),
        ("send((cord('live'), 0)); time.sleep(30)", "expected %ripe"),
        ("send((cord('ripe'), 5)); time.sleep(30)", "invalid %ripe"),
        ("out.write(b'\\x00\\x09\\x00'); out.flush()", "EOF inside a frame"),
    ],
)
def test_garbage_from_the_child_is_a_protocol_error(body: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(SerfProtocolError, match=message):
        Serf(fake_serf(body), timeout_s=10)
    assert time.monotonic() - started < 8


def test_unexpected_reply_to_work_is_a_protocol_error() -> None:
    body = "send(ripe); sys.stdin.buffer.read(1); send((cord('live'), 0)); time.sleep(30)"
    serf = Serf(fake_serf(body), timeout_s=10)
    with pytest.raises(SerfProtocolError, match="expected %work"):
        serf.work(packet_event(1))
    with pytest.raises(SerfProtocolError):
        serf.peek(0)
    serf.kill()


def test_wrong_event_number_is_a_protocol_error() -> None:
    done = "(cord('work'), (cord('done'), (9, (1, 0))))"
    body = f"send(ripe); sys.stdin.buffer.read(1); send({done}); time.sleep(30)"
    with (
        pytest.raises(SerfProtocolError, match="finished event 9, expected 1"),
        Serf(fake_serf(body)) as serf,
    ):
        serf.work(packet_event(1))


def test_child_exit_status_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SerfDied, match="exit status 3") as info:
        Serf(fake_serf("send(ripe); sys.exit(3)"), timeout_s=10).work(packet_event(1))
    assert info.value.returncode == 3 and info.value.signal is None
    # the reference ship exits 1 when asked to save at the wrong event (as vere's serf does)
    serf = booted(tmp_path, stderr_path=tmp_path / "ship.log")
    with pytest.raises(SerfDied, match="exit status 1"):
        serf.save(eve=99)
    serf.kill()
    assert "save failed" in (tmp_path / "ship.log").read_text()


def test_exit_and_constructor_checks(tmp_path: Path) -> None:
    serf = Serf(pier=tmp_path)
    assert serf.ripe.eve == 0 and serf.exit(code=0) == 0 and not serf.alive
    with pytest.raises(SerfError):
        serf.save()
    with pytest.raises(ValueError, match="give argv, or pier"):
        Serf()


def test_missing_binary_and_clean_close(tmp_path: Path) -> None:
    with pytest.raises(SerfError, match="could not start worker"):
        Serf([str(tmp_path / "no-such-binary")])
    serf = booted(tmp_path)
    serf.close()
    assert serf._proc.returncode == 0  # a clean %live %exit, not a SIGKILL


def test_failed_boot_is_a_play_bail(tmp_path: Path) -> None:
    with Serf(pier=tmp_path, timeout_s=10) as serf:
        with pytest.raises(PlayBail, match="no identity") as info:
            serf.play(1, [kernel.LIFECYCLE_FORMULA, kernel.boot_events("~zod", WALL_S)[2]])
        assert (info.value.eve, info.value.mug, serf.eve) == (0, 0, 0)
        assert serf.play(1, kernel.boot_events("~nec", WALL_S)) == serf.mug != 0


def test_the_seguro_ship_cli_is_the_same_runtime(tmp_path: Path) -> None:
    cli = [sys.executable, "-c", "from seguro.cli import main; main()"]
    argv = [*cli, "ship", "serve", "--pier", str(tmp_path)]
    with Serf(argv, timeout_s=10) as serf:
        serf.play(1, kernel.boot_events("~zod", WALL_S))
        done = serf.work(packet_event(1))
    with booted(tmp_path / "module") as reference:
        assert reference.work(packet_event(1)).mug == done.mug


def test_an_event_has_no_deadline_of_its_own_only_a_liveness_bound(tmp_path: Path) -> None:
    """Found in review: every %work had the 30 s control deadline, so a legitimately long event (a kernel
    upgrade) was killed and retried for ever. Here the control deadline is 1 s and the event takes 2 s."""
    job = ames.datagram_event(1_700_000_000.0, "127.0.0.1", 4000, b"slow 2000")
    with Serf(pier=tmp_path / "a", timeout_s=1.0, work_timeout_s=10.0) as serf:
        serf.play(1, kernel.boot_events("~zod", 1_700_000_000.0))
        started = time.monotonic()
        done = serf.work(job)
        assert done.eve == 4 and time.monotonic() - started >= 2.0
    with Serf(pier=tmp_path / "b", timeout_s=1.0, work_timeout_s=0.5) as serf:  # a hung worker is found
        serf.play(1, kernel.boot_events("~zod", 1_700_000_000.0))
        with pytest.raises(SerfTimeout):
            serf.work(job)


def test_a_worker_busy_with_a_long_event_may_leave_its_pipe_full(tmp_path: Path) -> None:
    """Found in review: the write of the next job had the 30 s control deadline, so jobs queued behind
    a long event (more than a pipe's worth) made a healthy worker look hung."""
    slow = ames.datagram_event(1_700_000_000.0, "127.0.0.1", 4000, b"slow 2000")
    big = ames.datagram_event(1_700_000_000.0, "127.0.0.1", 4000, b"x" * 60_000)
    with Serf(pier=tmp_path, timeout_s=1.0, work_timeout_s=10.0) as serf:
        serf.play(1, kernel.boot_events("~zod", 1_700_000_000.0))
        serf.submit_work(slow)
        for _ in range(4):  # 240 KB, more than the pipe holds: blocks until the worker reads, about 2 s
            serf.submit_work(big)
        assert [serf.next_work_result().eve for _ in range(5)] == [4, 5, 6, 7, 8]


def test_a_worker_dies_with_the_node_that_started_it(tmp_path: Path) -> None:
    """A node SIGKILLed mid-run must not leave its worker writing on: the child gets SIGKILL too."""
    script = (  # the worker is inside a 30 s event (it would only see its stdin close after it)
        "import sys, time\n"
        "from seguro.urbit import ames\n"
        "from seguro.urbit.serf import Serf\n"
        "from seguro.urbit.ship import kernel\n"
        f"serf = Serf(pier={str(tmp_path / 'pier')!r}, timeout_s=10)\n"
        "serf.play(1, kernel.boot_events('~zod', 1.7e9))\n"
        "serf.submit_work(ames.datagram_event(1.7e9 + 1, '127.0.0.1', 4000, b'slow 30000'))\n"
        "time.sleep(0.5)\n"
        "print(serf.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    node = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(node.stdout.readline())  # type: ignore[union-attr]
        node.kill()
        node.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker_pid):
            time.sleep(0.05)
        assert not _alive(worker_pid), "the worker outlived its node"
    finally:
        node.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (dead, not yet reaped by init) is not alive
        return f.read().split(") ", 1)[1][0] != "Z"
