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

RENEW_RETRY_S = 0.2  # after a failed keepalive: soon, but not at every tick against an etcd that is down


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


class LeaseKeeper:
    """One node's etcd lease as its holder sees it: when to ask for a grant or a keepalive, and until when
    it holds. A node holds one lease at a time: a grant that arrives while one is held is to be revoked,
    or a master could end up renewing a lease other than the one its master key sits on."""

    def __init__(self, ttl_s: float, margin_s: float) -> None:
        self.ttl_s, self.margin_s = ttl_s, margin_s
        self.lease: LeaseDeadline | None = None
        self._inflight_since_s: float | None = None
        self._last_renew_s = float("-inf")

    @property
    def lease_id(self) -> int | None:
        return self.lease.lease_id if self.lease else None

    def holds(self, now_s: float) -> bool:
        return self.lease is not None and self.lease.holds(now_s)

    def remaining_s(self, now_s: float) -> float:
        return self.lease.remaining_s(now_s) if self.lease else 0.0

    def due(self, now_s: float) -> tuple[bool, int | None]:
        """(ask for a grant?, lease id to renew): at most one request in flight; renew every TTL/3."""
        inflight = self._inflight_since_s
        if inflight is not None and now_s - inflight > self.ttl_s:
            self._inflight_since_s = None  # the driver lost the answer; ask again
        if self._inflight_since_s is not None:
            return False, None
        if self.lease is None:
            self._inflight_since_s = now_s
            return True, None
        if now_s - self._last_renew_s >= self.ttl_s / 3:
            self._inflight_since_s = self._last_renew_s = now_s
            return False, self.lease.lease_id
        return False, None

    def granted(self, lease_id: int, ttl_s: float, sent_at_s: float) -> int | None:
        """Adopt a granted lease; returns the id to revoke when one is already held."""
        self._inflight_since_s = None
        if self.lease is not None:
            return lease_id
        self.lease = LeaseDeadline.granted(lease_id, ttl_s, self.margin_s, sent_at_s)
        self._last_renew_s = sent_at_s
        return None

    def acked(self, lease_id: int, ttl_s: float, sent_at_s: float) -> None:
        self._inflight_since_s = None
        if self.lease is not None and self.lease.lease_id == lease_id:
            self.lease = self.lease.renewed(ttl_s, sent_at_s)

    def lost(self, lease_id: int) -> bool:
        """etcd says `lease_id` is gone; True when it was the lease we hold."""
        self._inflight_since_s = None
        if self.lease is not None and self.lease.lease_id == lease_id:
            self.lease = None
            return True
        return False

    def failed(self, now_s: float) -> None:
        """A lease request failed (it renewed nothing): try again soon, not a whole TTL/3 after the
        failed send, or two quick failures in a row would run a healthy master's deadline out."""
        self._inflight_since_s = None
        self._last_renew_s = min(self._last_renew_s, now_s - self.ttl_s / 3 + RENEW_RETRY_S)
