"""An in-memory model of the part of etcd Seguro uses: leases, the master key, the fenced log.

It follows etcd's rules that matter for safety: one revision counter, a lease expires no earlier than its
TTL after the last keepalive it received (and may be extended by a simulated etcd leader change), the
master key dies with its lease, and an append compares the key's create revision and the head atomically.
Trimming only hides old batches from readers (the model keeps them, so the simulator can check every
record against what was committed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seguro.core import messages as m


@dataclass
class MasterKey:
    holder: str
    lease_id: int
    create_revision: int


class Trimmed(Exception):
    """A read from below what the master trimmed: those events now live only in replicas' logs."""

    def __init__(self, first_available: int) -> None:
        super().__init__(f"trimmed below {first_available}")
        self.first_available = first_available


@dataclass
class MemEtcd:
    revision: int = 1
    leases: dict[int, tuple[float, float]] = field(default_factory=dict)  # id -> (expiry_s, ttl_s)
    master: MasterKey | None = None
    log: list[tuple[int, bytes]] = field(default_factory=list)  # (epoch, record); event = index + 1
    batches: list[m.Batch] = field(default_factory=list)
    trimmed_below: int = 1  # readers see events from here on
    _next_lease: int = 100
    master_changes: list[tuple[float, str | None, int]] = field(default_factory=list)
    genesis: str | None = None  # the ship does not exist until create_genesis

    def create_genesis(self, genesis_id: str, records: tuple[bytes, ...]) -> bool:
        """`seguro ship create`: the genesis and the first batch (epoch 0) in one Txn; False if it exists."""
        if self.genesis is not None or self.log:
            return False
        self.revision += 1
        self.genesis = genesis_id
        self.log.extend((0, r) for r in records)
        self.batches.append(m.Batch(0, 1, records))
        return True

    @property
    def head(self) -> int:
        return len(self.log)

    def grant(self, ttl_s: float, now_s: float) -> int:
        self._next_lease += 1
        self.leases[self._next_lease] = (now_s + ttl_s, ttl_s)
        return self._next_lease

    def keepalive(self, lease_id: int, now_s: float) -> float | None:
        self.expire(now_s)
        if lease_id not in self.leases:
            return None
        _, ttl_s = self.leases[lease_id]
        self.leases[lease_id] = (now_s + ttl_s, ttl_s)
        return ttl_s

    def revoke(self, lease_id: int, now_s: float) -> bool:
        """Drop a lease (and the master key on it); True when the master key went away."""
        self.leases.pop(lease_id, None)
        return self.expire(now_s)

    def trim(self, epoch: int, below: int, now_s: float) -> None:
        """Hide batches below `below` from readers, under the master's fence (the real trim deletes them)."""
        self.expire(now_s)
        if self.master is not None and self.master.create_revision == epoch and below <= self.head + 1:
            self.trimmed_below = max(self.trimmed_below, below)

    def extend_all(self, extra_s: float) -> None:
        """An etcd leader change: every lease gets its full TTL again (it never shrinks)."""
        for lease_id, (expiry_s, ttl_s) in self.leases.items():
            self.leases[lease_id] = (expiry_s + extra_s, ttl_s)

    def lease_alive(self, lease_id: int, now_s: float) -> bool:
        return lease_id in self.leases and self.leases[lease_id][0] > now_s

    def expire(self, now_s: float) -> bool:
        """Drop expired leases and the master key with its lease. True when the master key went away."""
        for lease_id in [lid for lid, (exp, _) in self.leases.items() if exp <= now_s]:
            del self.leases[lease_id]
        if self.master is not None and self.master.lease_id not in self.leases:
            self._set_master(None, now_s)
            return True
        return False

    def _set_master(self, key: MasterKey | None, now_s: float) -> None:
        self.revision += 1
        if key is not None:
            key.create_revision = self.revision
        self.master = key
        self.master_changes.append((now_s, key.holder if key else None, self.revision))

    def campaign(self, node_id: str, lease_id: int, genesis: str | None, now_s: float) -> m.CampaignResult:
        """The real Txn also compares the genesis key's value with the campaigner's genesis."""
        self.expire(now_s)
        if genesis is None or genesis != self.genesis:
            return m.CampaignResult(won=False, lease_id=lease_id, error=f"genesis is not {genesis}")
        if not self.lease_alive(lease_id, now_s):
            return m.CampaignResult(won=False, lease_id=lease_id, error="lease not found")
        if self.master is not None:
            return m.CampaignResult(won=False, lease_id=lease_id)
        self._set_master(MasterKey(node_id, lease_id, 0), now_s)
        return m.CampaignResult(won=True, lease_id=lease_id, epoch=self.revision)

    def resign(self, epoch: int, now_s: float) -> None:
        if self.master is not None and self.master.create_revision == epoch:
            self._set_master(None, now_s)

    def observe(self) -> m.MasterObserved:
        if self.master is None:
            return m.MasterObserved(None, 0, self.revision)
        return m.MasterObserved(self.master.holder, self.master.create_revision, self.revision)

    def append(self, commit: m.Commit, now_s: float) -> m.CommitDone:
        self.expire(now_s)
        if self.master is None or self.master.create_revision != commit.batch.epoch:
            return m.CommitDone(commit.seq, ok=False, fence_lost=True, actual_head=self.head)
        if self.head != commit.expected_head:
            return m.CommitDone(commit.seq, ok=False, actual_head=self.head)
        self.revision += 1
        self.log.extend((commit.batch.epoch, r) for r in commit.batch.records)
        self.batches.append(commit.batch)
        return m.CommitDone(commit.seq, ok=True, actual_head=self.head)

    def read_from(self, first_event: int) -> list[m.Batch]:
        """Committed records from `first_event`, regrouped into one batch per original epoch run."""
        if first_event < self.trimmed_below:
            raise Trimmed(self.trimmed_below)
        out: list[m.Batch] = []
        for event in range(first_event, self.head + 1):
            epoch, record = self.log[event - 1]
            if out and out[-1].epoch == epoch:
                last = out[-1]
                out[-1] = m.Batch(epoch, last.first_event, last.records + (record,))
            else:
                out.append(m.Batch(epoch, event, (record,)))
        return out
