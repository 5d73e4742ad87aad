"""How much of the committed log etcd keeps: the newest `retain_events` events and at most `retain_bytes`
of records, whichever bound cuts deeper. The byte bound is hard, and so is the event bound for a ship
with no followers or whose followers are all away, so etcd's quota never fills; while a follower is
live, the event bound waits for it. A follower further behind catches up from the master's push
stream or a peer's log.

Sizes are known for the batches this replica stored itself (pushed, fetched or committed). A new master
does not know the sizes of the older records the previous master kept, but that master kept them within
the same bound, so etcd holds at most about twice `retain_bytes` until the new master's own commits
push the trim point past them.
"""

from __future__ import annotations

from collections import deque

from seguro.core import messages as m

MAX_TRACKED_BATCHES = 200_000  # sizes kept for the byte bound; older ones are below any sane window


class Retention:
    """Where to trim etcd now, given the committed head; None when no trim is due."""

    def __init__(self, retain_events: int, retain_bytes: int) -> None:
        self.retain_events, self.retain_bytes = retain_events, retain_bytes
        self._sizes: deque[tuple[int, int]] = deque()  # (last event, bytes) of each stored batch, in order
        self._bytes = 0
        self._last_below = 1

    def stored(self, batch: m.Batch) -> None:
        """A committed batch reached the local log (whoever wrote it)."""
        if batch.records and batch.last_event >= self._last_below:
            self._sizes.append((batch.last_event, batch.size_bytes()))
            self._bytes += self._sizes[-1][1]
        window = batch.last_event - self.retain_events if self.retain_events else 0
        while self._sizes and (self._sizes[0][0] < window or len(self._sizes) > MAX_TRACKED_BATCHES):
            self._bytes -= self._sizes.popleft()[1]  # a follower prunes too: memory stays bounded

    def trim_below(self, committed: int, held_by_live_follower: int | None = None) -> int | None:
        """The first event etcd must keep, when that moved far enough to be worth a trim: half the event
        window, or any step when the bytes are over their bound. The event bound waits for a live
        follower (`held_by_live_follower`: the most any follower that publishes lately holds), so etcd
        is not the only copy besides the master's disk while one could still use it; the byte bound
        does not wait, and with no live follower neither does the event bound."""
        by_events = committed - self.retain_events + 1 if self.retain_events else 1
        if held_by_live_follower is not None:
            by_events = min(by_events, held_by_live_follower + 1)
        by_bytes = self._bytes_floor()
        below = min(max(by_events, by_bytes), committed + 1)
        step = max(1, self.retain_events // 2) if self.retain_events else 1
        if below <= self._last_below or (by_bytes <= self._last_below and below - self._last_below < step):
            return None
        self._last_below = below
        while self._sizes and self._sizes[0][0] < below:
            self._bytes -= self._sizes.popleft()[1]
        return below

    def _bytes_floor(self) -> int:
        """The first event to keep so that what is kept (as far as known) fits in `retain_bytes`."""
        if not self.retain_bytes or self._bytes <= self.retain_bytes:
            return 1
        total, floor = self._bytes, 1
        for last, size in self._sizes:
            if total <= self.retain_bytes:
                break
            total, floor = total - size, last + 1
        return floor
