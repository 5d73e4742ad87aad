"""Protocol 2 end to end in one pier: the king's client (seguro.urbit.mars) against the reference ship as a
vere 4.x worker that owns its LMDB event log (seguro.urbit.pier.log)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from seguro.urbit import ames
from seguro.urbit.mars import Mars
from seguro.urbit.mars_protocol import PokeBail
from seguro.urbit.noun import Noun, cord
from seguro.urbit.pier.layout import Meta, PierError
from seguro.urbit.pier.log import PierLog
from seguro.urbit.record import decode_record, encode_record
from seguro.urbit.serf import SerfDied
from seguro.urbit.ship import kernel

WALL_S = 1_700_000_000.0


def ovum(i: int, payload: bytes | None = None) -> Noun:
    """The ovum (no time: the worker stamps it) of a datagram from one of 5 peers."""
    event = ames.datagram_event(WALL_S, "127.0.0.1", 40000 + i % 5, payload or b"packet %d" % i)
    return event[1]  # type: ignore[index]


def new_pier(path: Path) -> Path:
    with PierLog.create(path, Meta(3, 0, True, kernel.BOOT_LIFE)) as events:
        events.append((i, encode_record(0, e)) for i, e in enumerate(kernel.boot_events("~zod", WALL_S), 1))
    return path


def start(pier: Path) -> Mars:
    argv = [sys.executable, "-m", "seguro.urbit.ship", "--pier", str(pier), "--protocol", "2"]
    return Mars(argv, stderr_path=pier / "worker.log", timeout_s=10, work_timeout_s=60)


def test_the_worker_logs_each_poke_before_answering_and_replays_its_own_log(tmp_path: Path) -> None:
    pier = new_pier(tmp_path / "pier")
    with start(pier) as mars:
        assert (mars.ripe.protocol, mars.ripe.eve, mars.ripe.fake) == (2, 3, True)
        for i in range(1, 601):
            mars.submit_poke(ovum(i))
            if mars.in_flight == 16:
                mars.next_poke_result()
        while mars.in_flight:
            done = mars.next_poke_result()
        assert done.eve == 603 and len(done.effects) == 1  # the ack
        with PierLog(pier) as events:  # written, with the worker's time, before the answer
            record = decode_record(events.get(603) or b"")
            assert events.head() == 603 and record.event[0] > kernel.da_from_unix(WALL_S)  # type: ignore[index]
        crashed = mars.submit_poke(ovum(0, b"crash now")) or mars.next_poke_result()
        with PierLog(pier) as events:  # logged as the %crud that replaced it
            assert decode_record(events.get(crashed.eve) or b"").event[1][1][0] == cord("crud")  # type: ignore[index]
        mars.submit_poke(ovum(0, b"evil"))
        with pytest.raises(PokeBail, match="evil"):
            mars.next_poke_result()
        assert mars.eve == 604 and mars.peek((0, (cord("eve"), 0))) is not None
        eve, mug = mars.save()
        assert eve == 604
    # restarted without its snapshot, it replays the whole log (in batches of 500) to the same state
    (pier / kernel.SNAPSHOT_NAME).unlink()
    with start(pier) as again:
        assert (again.ripe.eve, again.ripe.mug) == (604, mug)


def test_a_snapshot_ahead_of_the_log_is_refused(tmp_path: Path) -> None:
    pier = new_pier(tmp_path / "pier")
    with start(pier) as mars:
        mars.submit_poke(ovum(1))
        mars.next_poke_result()
        mars.save()
    with PierLog(pier) as events:
        assert events.truncate_after(3) == 1 and events.head() == 3
        with pytest.raises(PierError, match="below the epoch's base"):
            events.truncate_after(-1)
        with pytest.raises(PierError, match="append of event 5 after 3"):
            events.append([(5, b"x")])
    with pytest.raises(SerfDied):
        start(pier)
    assert "snapshot at event 4 is ahead of the log at 3" in (pier / "worker.log").read_text()


def test_a_pier_without_a_log_is_a_clear_failure(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SerfDied):
        start(tmp_path / "empty")
    assert "no event log" in (tmp_path / "empty" / "worker.log").read_text()
