"""The reference ship runtime's logic, driven in-process through its writ handler, plus its entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from seguro.cli import main as cli_main
from seguro.urbit import ames, behn, newt
from seguro.urbit.noun import Noun, cord, from_list, jam, to_list, uncord
from seguro.urbit.record import da_from_unix
from seguro.urbit.serf_protocol import render_tank
from seguro.urbit.ship import kernel, worker

WALL_S = 1_700_000_000.0


class Harness:
    """A worker.Serf with its out-of-band pleas (%slog/%flog) collected."""

    def __init__(self, pier: Path) -> None:
        self.sent: list[Noun] = []
        self.serf = worker.Serf(pier, kernel.load_snapshot(pier), self.sent.append)

    def writ(self, *parts: Noun) -> Noun:
        message: Noun = parts[-1]
        for part in reversed(parts[:-1]):
            message = (part, message)
        return self.serf.writ(message)

    def boot(self) -> Noun:
        return self.writ(cord("play"), 1, from_list(kernel.boot_events("~zod", WALL_S)))

    def work(self, payload: bytes, port: int = 4000) -> Noun:
        return self.writ(cord("work"), 0, ames.datagram_event(WALL_S, "127.0.0.1", port, payload))


def test_ripe_before_boot_is_eve_zero_mug_zero(tmp_path: Path) -> None:
    assert Harness(tmp_path).serf.ripe() == (cord("ripe"), ((1, (138, 4)), (0, 0)))


def test_boot_then_ack_effects_name_the_event(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    tag, (done, mug) = h.boot()
    assert (tag, done) == (cord("play"), cord("done")) and mug == h.serf.kernel.mug() != 0
    assert h.serf.kernel.eve == 3 and h.serf.kernel.who == "~zod"
    [(slog, (priority, tank))] = h.sent
    assert (slog, priority, render_tank(tank)) == (cord("slog"), 0, "booted ~zod in 3 events")
    for n, port in enumerate([4000, 4001, 4000], start=4):
        _, (tag, (eve, (mug, effects))) = h.work(b"hello", port)
        assert (tag, eve, mug) == (cord("done"), n, h.serf.kernel.mug())
        [(lane, payload)] = ames.effects_to_datagrams(effects)
        assert lane == ("127.0.0.1", port)
        assert payload.startswith(f"ack {n} ".encode())
    assert payload == b"ack 6 peers=2 seen=2"


def test_unknown_wires_change_the_mug_without_effects(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.boot()
    before = h.serf.kernel.mug()
    _, (tag, (eve, (mug, effects))) = h.writ(cord("work"), 0, (5, (((cord("b"), 0)), (cord("wake"), 0))))
    assert (tag, eve, effects) == (cord("done"), 4, 0) and mug != before


def test_crash_packet_swaps_in_a_crud_like_vere(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.boot()
    job = ames.datagram_event(WALL_S, "127.0.0.1", 4000, b"crash now")
    _, (tag, (eve, (mug, (new_job, effects)))) = h.writ(cord("work"), 0, job)
    assert (tag, eve, effects) == (cord("swap"), 4, 0)
    now, (wire, (crud, (goof, ovum))) = new_job
    assert (now, wire, crud, ovum) == (job[0], (0, (cord("arvo"), 0)), cord("crud"), job[1])
    assert goof[0] == cord("exit") and h.serf.kernel.cruds == 1
    # replaying the logged (swapped) job reproduces the same mug
    fresh = Harness(tmp_path / "replay")
    fresh.boot()
    assert fresh.writ(cord("play"), 4, from_list([new_job])) == (cord("play"), (cord("done"), mug))


def test_evil_packet_bails_and_adds_no_event(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.boot()
    mug = h.serf.kernel.mug()
    _, (tag, goofs) = h.work(b"evil bytes")
    assert tag == cord("bail") and [uncord(g[0]) for g in to_list(goofs)] == ["evil"]
    assert (h.serf.kernel.eve, h.serf.kernel.mug()) == (3, mug)


def test_play_bail_reports_where_replay_stopped(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.boot()
    ok = ames.datagram_event(WALL_S, "127.0.0.1", 4000, b"fine")
    bad = ames.datagram_event(WALL_S, "127.0.0.1", 4000, b"crash")
    _, (tag, (eve, (mug, goof))) = h.writ(cord("play"), 4, from_list([ok, bad, ok]))
    assert (tag, eve, mug) == (cord("bail"), 4, h.serf.kernel.mug()) and goof[0] == cord("exit")


def test_boot_without_identity_bails_at_zero(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    reply = h.writ(cord("play"), 1, from_list([kernel.LIFECYCLE_FORMULA, (1, ((0, 0), (cord("x"), 0)))]))
    assert reply[1][0] == cord("bail") and reply[1][1][:2] == (0, (0, reply[1][1][1][1]))
    _, (_, (eve, (mug, goof))) = reply
    assert (
        (eve, mug) == (0, 0) and goof[0] == cord("exit") and "no identity" in render_tank(to_list(goof[1])[0])
    )
    assert h.serf.kernel.eve == 0


def test_peek(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.boot()
    h.work(b"a")
    assert h.writ(cord("peek"), 0, (0, from_list([cord("eve")]))) == (
        cord("peek"),
        (cord("done"), (0, (cord("noun"), 4))),
    )
    assert h.writ(cord("peek"), 0, (0, from_list([cord("peers")])))[1][1] == (0, (cord("noun"), 1))
    assert h.writ(cord("peek"), 0, (0, from_list([cord("nope")])))[1][1] == 0


def test_snapshot_roundtrip_and_corruption(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.boot()
    for i in range(20):
        h.work(b"p%d" % i, 4000 + i % 3)
    assert h.writ(cord("live"), cord("save"), 23) == (cord("live"), 0)
    assert not (tmp_path / "snapshot.jam.tmp").exists()
    restored = kernel.load_snapshot(tmp_path)
    assert (restored.eve, restored.mug(), restored.peers) == (23, h.serf.kernel.mug(), h.serf.kernel.peers)
    data = bytearray((tmp_path / "snapshot.jam").read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "snapshot.jam").write_bytes(bytes(data))
    with pytest.raises(kernel.Fatal, match="snapshot"):
        kernel.load_snapshot(tmp_path)


@pytest.mark.parametrize(
    "writ",
    [
        5,
        (cord("bogus"), (1, 2)),
        (cord("live"), (cord("save"), 99)),  # save at the wrong event: vere's serf exits
        (cord("play"), (7, from_list([1]))),  # not the next event
        (cord("work"), (0, (1, ((0, 0), (0, 0))))),  # work before boot
    ],
)
def test_impossible_writs_are_fatal(tmp_path: Path, writ: Noun) -> None:
    with pytest.raises(kernel.Fatal):
        Harness(tmp_path).serf.writ(writ)


def test_exit_writ(tmp_path: Path) -> None:
    with pytest.raises(kernel.ExitRequested) as info:
        Harness(tmp_path).writ(cord("live"), cord("exit"), 3)
    assert info.value.code == 3


def test_boot_events_shape_and_validation() -> None:
    events = kernel.boot_events("~sampel-palnet", WALL_S)
    assert events[: kernel.BOOT_LIFE] == [kernel.LIFECYCLE_FORMULA]
    assert all(isinstance(e[0], int) and e[0] > 1 << 127 for e in events[kernel.BOOT_LIFE :])
    with pytest.raises(ValueError, match="ship name"):
        kernel.boot_events("zod")


def test_module_entry_point_speaks_newt_and_exits_1_on_eof(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "seguro.urbit.ship", "--pier", str(tmp_path)],
        input=b"",
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 1 and b"unexpectedly shut down" in proc.stderr
    assert newt.decode_noun(newt.FrameDecoder().feed(proc.stdout)[0]) == (
        cord("ripe"),
        ((1, (138, 4)), (0, 0)),
    )


def test_cli_command_has_the_same_options() -> None:
    result = CliRunner().invoke(cli_main, ["ship", "serve", "--help"])
    assert result.exit_code == 0
    assert (
        "--pier" in result.output and "--max-frame-bytes" in result.output and "--log-level" in result.output
    )
    as_module = subprocess.run(
        [sys.executable, "-m", "seguro.urbit.ship", "--help"], capture_output=True, text=True
    )
    assert as_module.returncode == 0 and "Usage: python -m seguro.urbit.ship" in as_module.stdout
    options = [line.split()[0] for line in result.output.splitlines() if line.strip().startswith("--")]
    assert options and all(option in as_module.stdout for option in options)


def test_bad_ship_flags_are_usage_errors(tmp_path: Path) -> None:
    for flags in (["--log-level", "FOO"], ["--max-frame-bytes", "0"], ["--fault-diverge-at", "-1"]):
        result = CliRunner().invoke(cli_main, ["ship", "serve", "--pier", str(tmp_path), *flags])
        assert result.exit_code == 2, flags


def test_boot_with_a_non_cord_name_bails(tmp_path: Path) -> None:
    events = kernel.boot_events("~zod", WALL_S)
    da, (wire, (who, _)) = events[1]
    events[1] = (da, (wire, (who, (1, 2))))
    reply = Harness(tmp_path).writ(cord("play"), 1, from_list(events))
    assert reply[1][0] == cord("bail") and "cord ship name" in render_tank(to_list(reply[1][1][1][1][1])[0])


def test_later_sets_a_timer_that_wake_answers_and_born_rearms(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.boot()
    _, (_, (eve, (_, effects))) = h.work(b"later 4000", port=4001)
    due = da_from_unix(WALL_S) + 4 * behn.DA_SECOND
    assert ames.effects_to_datagrams(effects) == []  # no ack now
    assert [behn.effect_to_doze(e) for e in to_list(effects)] == [behn.Doze(due)]

    def event(card: str, wall_s: float) -> Noun:
        event = behn.wake_event(wall_s) if card == "wake" else behn.born_event(wall_s)
        return h.writ(cord("work"), 0, event)

    _, (_, (_, (_, effects))) = event("born", WALL_S + 1)  # a new master's behn: the ship says its timer
    assert [behn.effect_to_doze(e) for e in to_list(effects)] == [behn.Doze(due)]
    _, (_, (_, (_, effects))) = event("wake", WALL_S + 2)  # early: nothing is due yet
    assert ames.effects_to_datagrams(effects) == [] and h.serf.kernel.timers
    _, (_, (woke, (_, effects))) = event("wake", WALL_S + 5)
    assert ames.effects_to_datagrams(effects) == [(("127.0.0.1", 4001), f"woke {woke}".encode())]
    assert [behn.effect_to_doze(e) for e in to_list(effects)][-1] == behn.Doze(None)
    assert not h.serf.kernel.timers
    snapshot = kernel.save_snapshot(tmp_path, h.serf.kernel)
    assert kernel.load_snapshot(snapshot.parent).mug() == h.serf.kernel.mug()


def test_no_packet_can_stop_the_ship(tmp_path: Path) -> None:
    """Found in review: `galaxy 5 ` (an empty body) raised out of the event and the ship exited."""
    h = Harness(tmp_path)
    h.boot()
    _, (tag, (eve, _)) = h.work(b"galaxy 5 ")
    assert tag == cord("done")  # an ordinary packet: acked, no galaxy datagram
    tag, body = h.work(b"galaxy 5 x")
    assert body[0] == cord("done")


def test_a_snapshot_of_an_older_kernel_is_ignored_and_the_log_replays(tmp_path: Path) -> None:
    old = jam((kernel.SNAPSHOT_TAG, (kernel.SNAPSHOT_VERSION - 1, (0, (0, 0)))))
    (tmp_path / kernel.SNAPSHOT_NAME).write_bytes(old)
    assert kernel.load_snapshot(tmp_path).eve == 0
