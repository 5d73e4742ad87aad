"""A new master's catch-up: read what etcd committed (what it trimmed comes from a peer's log) until the
local log reaches etcd's head, one read at a time, retried after a pause when it fails. A promotion
that is not done within `timeout_s` gives up, so that another replica can try."""

from __future__ import annotations

from seguro.invariant import require


class Promotion:
    """The PROMOTING phase of one term."""

    def __init__(self, retry_s: float, timeout_s: float) -> None:
        self.retry_s, self.timeout_s = retry_s, timeout_s
        self.caught_up = False
        self.reading = False
        self._retry_at_s = 0.0
        self._started_s = 0.0

    def begin(self, now_s: float) -> None:
        self.caught_up, self.reading = False, False
        self._retry_at_s = self._started_s = now_s

    def stop(self) -> None:
        self.reading = False

    def read_due(self, now_s: float) -> bool:
        """Ask for a catch-up read now? Marks one in flight when so."""
        if self.caught_up or self.reading or now_s < self._retry_at_s:
            return False
        self.reading = True
        return True

    def read_done(self, durable: int, head: int, failed: bool, now_s: float) -> None:
        """A read ended: etcd's head was `head` and the local log now ends at `durable`."""
        self.reading = False
        if failed:  # etcd down, or trimmed events no live peer has: try again shortly
            self._retry_at_s = now_s + self.retry_s
        elif durable < head:
            self._retry_at_s = now_s  # more was committed than we read: again
        else:
            require(durable == head, "local log is ahead of etcd: a fork", durable=durable, head=head)
            self.caught_up = True

    def timed_out(self, now_s: float) -> bool:
        return now_s - self._started_s > self.timeout_s
