"""The real clock, which the core never reads itself: the driver reads it and passes `now` in."""

from __future__ import annotations

import time


class SystemClock:
    """Monotonic (boot-time) seconds for deadlines, wall time for event timestamps. A `core.clock.Clock`."""

    def now_s(self) -> float:
        # CLOCK_BOOTTIME keeps counting while the host is suspended, as etcd's lease clocks do;
        # CLOCK_MONOTONIC would not, and a resumed master would believe its deadline still held.
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    def wall_s(self) -> float:
        return time.time()
