"""Injected time. The replication core never reads a clock; drivers pass `now` in seconds, and the shell
hands its adapters a `Clock` (seguro.node.clock.SystemClock in production, a fake one in tests)."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def now_s(self) -> float:
        """Monotonic seconds, for deadlines and timeouts."""
        ...

    def wall_s(self) -> float:
        """Unix seconds, for event timestamps (@da)."""
        ...
