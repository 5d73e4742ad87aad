"""The master's behn: the ship's one timer. A released `%doze` effect arms (or clears) it; when it is due,
a `%wake` event is offered to the core like any incoming event. Only a master releases effects, so only
a master's timer runs; a fence clears it, and a new master re-arms it from the `%born` it sends.

A %wake or %born the core does not take (its run-ahead is full, its runtime restarting) is offered
again a second later, as vere retries a failed wake: else the ship's timers would stall until the next
failover. Not once this node stopped being master (its successor sends its own %born)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from seguro.core import messages as m
from seguro.core.clock import Clock
from seguro.node.runtime import Job
from seguro.urbit import behn, record
from seguro.urbit.noun import Noun, jam

RETRY_S = 1.0
NOT_MASTER = "this replica is not the master"


class Behn:
    def __init__(self, clock: Clock, post: Callable[[m.Event], None]) -> None:
        self._clock, self._post = clock, post
        self._timer: threading.Timer | None = None
        self._generation = 0  # bumped by arm() and clear(): a timer or retry of an older one does nothing
        self._lock = threading.Lock()
        self.armed_for: int | None = None  # the @da the timer is armed for, for status
        self._term = 0  # bumped by clear(): a %born of an earlier term is not offered again
        self._born_retries: list[threading.Timer] = []  # one per refused %born: each driver's is retried

    def arm(self, da: int | None) -> None:
        """Arm the one timer for `da`, or clear it (None)."""
        with self._lock:
            generation = self._reset()
            self.armed_for = da
            if da is not None:
                delay_s = behn.seconds_until(da, record.da_from_unix(self._clock.wall_s()))
                self._start(delay_s, lambda: self._wake(generation))

    def clear(self) -> None:
        """This node stopped being master: no timer, and no %born offered again."""
        with self._lock:
            self._reset()
            self.armed_for = None
            self._term += 1
            for retry in self._born_retries:
                retry.cancel()
            self._born_retries.clear()

    def born(self, make: Callable[[float], Noun] = behn.born_event) -> None:
        """Tell the ship a driver (re)started here, behn's by default: it answers with the %doze for its
        timer. Offered again every second until taken, independently of the timer and of any other
        driver's %born, as long as this node stays master."""
        with self._lock:
            term = self._term
        event = make(self._clock.wall_s())
        size = len(jam(event))
        reply: Future[tuple[int, str]] = Future()
        reply.add_done_callback(lambda done: self._born_answered(done.result(), make, term))
        self._post(m.IncomingEvent(Job(event, size, reply=reply), size, source="behn"))

    def _born_answered(self, answer: tuple[int, str], make: Callable[[float], Noun], term: int) -> None:
        event, why = answer
        if event or why.startswith(NOT_MASTER):
            return
        with self._lock:
            if term == self._term:
                retry = threading.Timer(RETRY_S, lambda: self._born_again(make, term))
                retry.daemon = True
                self._born_retries.append(retry)
                retry.start()

    def _born_again(self, make: Callable[[float], Noun], term: int) -> None:
        with self._lock:
            me = threading.current_thread()
            self._born_retries = [t for t in self._born_retries if t is not me]
            if term != self._term:
                return
        self.born(make)

    def _wake(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # re-armed or cleared meanwhile
            self._timer, self.armed_for = None, None
        self._offer(lambda: behn.wake_event(self._clock.wall_s()), generation)

    def _offer(self, make: Callable[[], Noun], generation: int) -> None:
        event = make()
        size = len(jam(event))
        reply: Future[tuple[int, str]] = Future()
        reply.add_done_callback(lambda done: self._answered(done.result(), make, generation))
        self._post(m.IncomingEvent(Job(event, size, reply=reply), size, source="behn"))

    def _answered(self, answer: tuple[int, str], make: Callable[[], Noun], generation: int) -> None:
        event, why = answer
        if event or why.startswith(NOT_MASTER):
            return  # committed; or this node no longer serves, and its successor sends its own %born
        with self._lock:
            if generation == self._generation and self._timer is None:
                self._start(RETRY_S, lambda: self._offer(make, generation))

    def _start(self, delay_s: float, fire: Callable[[], None]) -> None:
        self._timer = threading.Timer(delay_s, fire)
        self._timer.daemon = True
        self._timer.start()

    def _reset(self) -> int:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._generation += 1
        return self._generation
