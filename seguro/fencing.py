"""Self-fencing: when may this node still believe it holds its etcd lease?

etcd expires a lease no earlier than TTL after the last keepalive it *received*, and a keepalive is
received after we *sent* it. So `sent_at + ttl` is a lower bound on when anyone else can see our lease
gone, whatever etcd's leader does (a new etcd leader only ever extends leases). We subtract a safety
margin for clock-rate differences and for the time between deciding to emit and the packet leaving.
Past the deadline a master must stop emitting at once: another node may already be master.
"""

from __future__ import annotations

from dataclasses import dataclass

from seguro.invariant import require


@dataclass(frozen=True)
class LeaseDeadline:
    """The local deadline of one etcd lease, as seen by its holder."""

    lease_id: int
    ttl_s: float
    margin_s: float
    deadline_s: float

    @classmethod
    def granted(cls, lease_id: int, ttl_s: float, margin_s: float, sent_at_s: float) -> LeaseDeadline:
        """A lease whose grant request was sent at `sent_at_s` (the grant counts as a keepalive)."""
        require(ttl_s > margin_s >= 0, "lease margin must be below its TTL", ttl_s=ttl_s, margin_s=margin_s)
        return cls(lease_id, ttl_s, margin_s, sent_at_s + ttl_s - margin_s)

    def renewed(self, ttl_s: float, sent_at_s: float) -> LeaseDeadline:
        """After etcd acknowledged a keepalive sent at `sent_at_s`. Never moves the deadline back."""
        require(ttl_s > self.margin_s, "renewed TTL below the safety margin", ttl_s=ttl_s)
        candidate_s = sent_at_s + ttl_s - self.margin_s
        return LeaseDeadline(self.lease_id, ttl_s, self.margin_s, max(self.deadline_s, candidate_s))

    def holds(self, now_s: float) -> bool:
        """True while effects may still leave this node."""
        return now_s < self.deadline_s

    def remaining_s(self, now_s: float) -> float:
        return max(0.0, self.deadline_s - now_s)
