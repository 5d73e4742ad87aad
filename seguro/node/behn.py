"""The master's behn: the ship's one timer. A released `%doze` effect arms (or clears) it; when it is due,
a `%wake` event is offered to the core like any incoming event. Only a master releases effects, so only
a master's timer runs; a fence clears it, and a new master re-arms it from the `%born` it sends."""

from __future__ import annotations

import threading
from collections.abc import Callable

from seguro.core import messages as m
from seguro.core.clock import Clock
from seguro.node.runtime import Job
from seguro.urbit import behn, record
from seguro.urbit.noun import jam


class Behn:
    def __init__(self, clock: Clock, post: Callable[[m.Event], None]) -> None:
        self._clock, self._post = clock, post
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.armed_for: int | None = None  # the @da the timer is armed for, for status

    def arm(self, da: int | None) -> None:
        """Arm the one timer for `da`, or clear it (None)."""
        with self._lock:
            self._cancel()
            self.armed_for = da
            if da is not None:
                now_da = record.da_from_unix(self._clock.wall_s())
                self._timer = threading.Timer(behn.seconds_until(da, now_da), self._wake)
                self._timer.daemon = True
                self._timer.start()

    def clear(self) -> None:
        with self._lock:
            self._cancel()
            self.armed_for = None

    def born(self) -> None:
        """Tell the ship its behn (re)started here: it answers with the %doze for its timer."""
        self.offer(behn.born_event(self._clock.wall_s()))

    def offer(self, event: object) -> None:
        size = len(jam(event))  # type: ignore[arg-type]
        self._post(m.IncomingEvent(Job(event, size), size, source="behn"))  # type: ignore[arg-type]

    def _wake(self) -> None:
        with self._lock:
            self._timer, self.armed_for = None, None
        self.offer(behn.wake_event(self._clock.wall_s()))

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
