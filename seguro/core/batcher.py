"""Group commit: records run ahead by the master wait here, and leave in batches that fit one etcd request.

One batch is in flight at a time (the core keeps that rule); whatever the runtime finishes meanwhile
forms the next batch. A record larger than a batch goes alone: the etcd adapter writes it as chunks.
"""

from __future__ import annotations

from collections.abc import Iterable

from seguro.core import messages as m


class Batcher:
    """The master's records that are run ahead but not yet in a commit, in event order."""

    def __init__(self, max_batch_bytes: int, max_batch_events: int) -> None:
        self.max_batch_bytes, self.max_batch_events = max_batch_bytes, max_batch_events
        self._pending: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, records: Iterable[tuple[int, bytes]]) -> None:
        """Queue (event number, record) pairs; the core checks that they are contiguous."""
        self._pending.extend(records)

    def clear(self) -> None:
        """A fence throws the run-ahead away."""
        self._pending.clear()

    def cut(self, epoch: int) -> m.Batch | None:
        """Take the next batch from the front, as large as the limits allow; None when nothing waits."""
        if not self._pending:
            return None
        size, count = 0, 0
        for _, record in self._pending:
            if count and (count >= self.max_batch_events or size + len(record) > self.max_batch_bytes):
                break
            size, count = size + len(record), count + 1
        taken, self._pending = self._pending[:count], self._pending[count:]
        return m.Batch(epoch, taken[0][0], tuple(r for _, r in taken))
