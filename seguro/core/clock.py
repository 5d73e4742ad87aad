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
