"""The replication core's settings: what one replica's decisions depend on besides the events it is fed."""

from __future__ import annotations

from dataclasses import dataclass

from seguro.invariant import require


@dataclass(frozen=True)
class Config:
    node_id: str
    lease_ttl_s: float = 3.0
    lease_margin_s: float = 0.75
    ack_replicas: int = 0
    max_batch_bytes: int = 1_200_000
    max_batch_events: int = 1000
    max_event_bytes: int = 64 * 1024 * 1024
    max_run_ahead_events: int = 5000
    campaign_retry_s: float = 0.25
    catch_up_retry_s: float = 0.5
    etcd_retain_events: int = 100_000  # committed events kept in etcd for catch-up; 0: no event bound
    etcd_retain_bytes: int = 256 << 20  # and at most this much of their records; 0: no byte bound
    resign_retry_s: float = 1.0
    nofailover: bool = False  # never campaign (Patroni's name): a witness or backup replica
    failover_priority: int = 1  # among replicas as far along, the higher campaigns first
    failover_grace_s: float = 6.0  # defer to better replicas at most this long while the key is empty
    promotion_timeout_s: float = 300.0  # a new master not serving by then resigns so another can try

    def __post_init__(self) -> None:
        require(self.lease_ttl_s >= 2, "etcd's minimum lease TTL is 2 s", lease_ttl_s=self.lease_ttl_s)
        require(0 < self.lease_margin_s < self.lease_ttl_s / 2, "margin must be within half the TTL")
        require(self.ack_replicas >= 0, "ack_replicas must be >= 0")
        require(self.failover_priority >= 0, "failover_priority must be >= 0")
        require(self.failover_grace_s >= 0 and self.promotion_timeout_s > 0, "grace and timeout must be > 0")
