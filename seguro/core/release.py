"""When a master's effects may leave: after their event is committed in etcd, and after `ack_replicas`
followers hold it durably. (The third condition, the self-fencing deadline, is seguro.core.fencing's.)

Followers are counted at their acknowledged position now, not their best: one that lost its disk and
came back acks less, and must stop vouching for events it no longer holds, both here and for trimming.
"""

from __future__ import annotations


class EffectGate:
    """Effects held per event, and what each follower acknowledged holding durably."""

    def __init__(self, ack_replicas: int) -> None:
        self.ack_replicas = ack_replicas
        self._held: dict[int, tuple[object, ...]] = {}
        self._acks: dict[str, int] = {}
        self._members: set[str] | None = None  # the registry as last seen; None until first seen

    def __len__(self) -> int:
        """Events whose effects are held."""
        return len(self._held)

    def hold(self, eve: int, effects: tuple[object, ...]) -> None:
        if effects:
            self._held[eve] = effects

    def discard(self) -> int:
        """A fence: nothing held may ever leave. Returns how many effects were thrown away."""
        count = sum(len(e) for e in self._held.values())
        self._held.clear()
        return count

    def ack(self, replica_id: str, durable_event: int) -> None:
        """A follower's durable position now (acks come in order over its one push stream). A replica
        not in the registry (forgotten; its stream not stopped yet) does not count."""
        if self._members is None or replica_id in self._members:
            self._acks[replica_id] = durable_event

    def forget_acks(self) -> None:
        """A new term: acks made to an earlier master say nothing about this one's streams."""
        self._acks.clear()

    def keep_acks_of(self, replica_ids: set[str]) -> None:
        """Only replicas in the registry count: an operator's forget-replica takes effect at once."""
        self._members = set(replica_ids)
        for gone in [r for r in self._acks if r not in replica_ids]:
            del self._acks[gone]

    def held_by(self, replica_ids: set[str]) -> int | None:
        """The most any of `replica_ids` acknowledged holding; None when none of them acked."""
        return max((self._acks[r] for r in replica_ids if r in self._acks), default=None)

    def ack_floor(self, committed: int) -> int:
        """Highest event that at least `ack_replicas` followers hold durably."""
        k = self.ack_replicas
        if k == 0:
            return committed
        acked = sorted(self._acks.values(), reverse=True)
        return acked[k - 1] if len(acked) >= k else 0

    def releasable(self, committed: int) -> list[tuple[int, tuple[object, ...]]]:
        """Take, in event order, the held effects whose events are committed and acknowledged enough."""
        limit = min(committed, self.ack_floor(committed))
        ready = [(eve, self._held.pop(eve)) for eve in sorted(e for e in self._held if e <= limit)]
        return ready
