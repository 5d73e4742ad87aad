"""Injected time. The replication core never reads the wall clock; drivers pass `now` in seconds."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_s(self) -> float:
        """Monotonic seconds, for deadlines and timeouts."""
        ...

    def wall_s(self) -> float:
        """Unix seconds, for event timestamps (@da)."""
        ...


class SystemClock:
    """The real clock: monotonic for deadlines, wall time for event timestamps."""

    def now_s(self) -> float:
        # CLOCK_BOOTTIME keeps counting while the host is suspended, as etcd's lease clocks do;
        # CLOCK_MONOTONIC would not, and a resumed master would believe its deadline still held.
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    def wall_s(self) -> float:
        return time.time()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start_s: float = 1000.0, wall_start_s: float = 1_700_000_000.0) -> None:
        self._now_s = start_s
        self._wall_offset_s = wall_start_s - start_s

    def now_s(self) -> float:
        return self._now_s

    def wall_s(self) -> float:
        return self._now_s + self._wall_offset_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now_s += seconds
