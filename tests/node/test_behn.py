"""The master's timer: arming, clearing, and what happens when the core does not take a %wake."""

from __future__ import annotations

import queue
import time

from seguro.core import messages as m
from seguro.node.behn import Behn
from seguro.urbit import ames, behn
from seguro.urbit.record import da_from_unix

WALL_S = 1_700_000_000.0


class Clock:
    def now_s(self) -> float:
        return time.monotonic()

    def wall_s(self) -> float:
        return WALL_S


def next_event(events: queue.Queue[m.Event], timeout_s: float = 5.0) -> m.IncomingEvent:
    event = events.get(timeout=timeout_s)
    assert isinstance(event, m.IncomingEvent) and event.source == "behn"
    return event


def test_a_due_timer_offers_wake_and_a_refused_wake_is_offered_again() -> None:
    """Found in review: a %wake the core did not take (run-ahead full) was lost, and the ship's timers
    stalled until the next failover."""
    events: queue.Queue[m.Event] = queue.Queue()
    timer = Behn(Clock(), events.put)
    timer.arm(da_from_unix(WALL_S))  # due now
    first = next_event(events)
    assert behn.behn_card(first.job.noun[1]) == "wake"  # type: ignore[attr-defined]
    first.job.answer(0, "5000 events already wait for their commit or acks")  # type: ignore[attr-defined]
    again = next_event(events, timeout_s=3.0)  # a second later
    again.job.answer(0, "this replica is not the master (it is follower)")  # type: ignore[attr-defined]
    assert events.empty() and (time.sleep(1.5) or events.empty())  # a follower's wake is not retried


def test_clearing_or_rearming_cancels_the_timer_and_its_retries() -> None:
    events: queue.Queue[m.Event] = queue.Queue()
    timer = Behn(Clock(), events.put)
    timer.arm(da_from_unix(WALL_S + 0.3))
    timer.clear()  # a fence
    timer.arm(da_from_unix(WALL_S + 60))
    timer.arm(None)  # %doze ~
    time.sleep(0.6)
    assert events.empty() and timer.armed_for is None
    timer.born()
    born = next_event(events)
    timer.clear()  # a fence
    born.job.answer(0, "lost to a fence before it was committed")  # type: ignore[attr-defined]
    time.sleep(1.3)
    assert events.empty()  # no longer master: no retry of the %born


def test_each_refused_born_is_offered_again_whatever_the_timer_does() -> None:
    """Found in review: with behn's and ames's %born both refused, only one was retried, and a re-arm
    cancelled the other's retry."""
    events: queue.Queue[m.Event] = queue.Queue()
    timer = Behn(Clock(), events.put)
    timer.born()
    timer.born(ames.born_event)
    first, second = next_event(events), next_event(events)
    for offered in (first, second):
        offered.job.answer(0, "the master's runtime is restarting")  # type: ignore[attr-defined]
    timer.arm(da_from_unix(WALL_S + 60))  # a %doze released meanwhile
    again = {behn.behn_card(next_event(events, 3.0).job.noun[1]) for _ in range(2)}  # type: ignore[attr-defined]
    assert again == {"born", ""}  # behn's (a behn card) and ames's (not a behn card) both again
