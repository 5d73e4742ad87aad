"""The etcd requests a node's driver performs for its core, through the adapter in seguro.node.etcd, on
worker threads. Each answers the core with an event posted back to the driver, a failure too, so that
no in-flight flag of the core waits forever on a reply that will never come.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from seguro.core import messages as m
from seguro.core.clock import Clock
from seguro.node.etcd.coordinator import (
    CoordinationError,
    Coordinator,
    FenceLost,
    Genesis,
    LeaseLost,
    LogTrimmed,
)
from seguro.node.etcd.schema import SPACE_HELP
from seguro.node.wire import batch_from_pb

log = logging.getLogger(__name__)


def quietly(what: str, fn: Callable[..., Any], *args: object) -> bool:
    """Make a best-effort etcd request: a failure is logged, never raised (the core asks again).
    Returns whether it succeeded."""
    try:
        fn(*args)
    except CoordinationError as e:
        log.warning("etcd request failed", extra={"what": what, "error": str(e)})
        return False
    return True


class EtcdTasks:
    """Grant, renew and revoke on the lease connection (fail fast, never queued behind appends);
    campaign, commit, catch up, trim and resign on the main one."""

    def __init__(
        self,
        coord: Coordinator,
        lease: Coordinator,
        clock: Clock,
        post: Callable[[m.Event], None],
        fetch_from_peers: Callable[[int, int], bool],
        node_id: str,
        lease_ttl_s: int,
        addresses: dict[str, str],
        on_commit: Callable[[float, int, int, bool], None] | None = None,
    ) -> None:
        self._coord, self._lease, self._clock, self._post = coord, lease, clock, post
        self._on_commit = on_commit  # (latency_s, events, bytes, ok) of every append, for metrics
        self._fetch_from_peers = fetch_from_peers
        self._node_id, self._ttl_s, self._addresses = node_id, lease_ttl_s, addresses
        self._resign_busy = threading.Event()
        self._last_warning_s: dict[str, float] = {}
        self._warn_lock = threading.Lock()
        self._compact_to = 0  # etcd revision of the previous trim
        self._genesis: Genesis | None = None  # as last read; a campaign compares it inside its Txn

    def claim_resign(self) -> bool:
        """The core asks for a resign every second while the key names us: never queue them up while
        etcd is away. True when no resign is in flight (and one now is)."""
        if self._resign_busy.is_set():
            return False
        self._resign_busy.set()
        return True

    def observe_genesis(self) -> None:
        """Tell the core which genesis etcd holds for the ship (nothing when etcd does not answer)."""
        try:
            genesis, revision = self._coord.genesis_at()
        except CoordinationError as e:
            self.warn_now_and_then("cannot read the ship's genesis from etcd", str(e))
            return
        self._genesis = genesis
        self._post(m.GenesisObserved(genesis.id if genesis else None, revision))

    def alarms(self) -> list[str] | None:
        """etcd's active alarms (None when etcd does not answer); a full etcd is said loudly."""
        try:
            alarms = self._coord.alarms()
        except CoordinationError as e:
            self.warn_now_and_then("cannot read etcd's alarms", str(e))
            return None
        if any(alarm.startswith("NOSPACE") for alarm in alarms):
            self.warn_now_and_then(SPACE_HELP, ", ".join(alarms), level=logging.ERROR)
        return alarms

    def genesis_vere(self) -> dict | None:
        """The vere META an imported ship's genesis carries (for the local log, so it can be exported)."""
        genesis = self._genesis
        return dict(genesis.vere) if genesis is not None and genesis.vere else None

    def registry(self) -> dict[str, dict] | None:
        """The ship's replica registry (`replica/<id>`), None when etcd does not answer."""
        try:
            return self._coord.replicas()
        except CoordinationError as e:
            self.warn_now_and_then("cannot read the replica registry from etcd", str(e))
            return None

    def controls(self) -> dict[str, dict] | None:
        """The operators' controls (pause, candidate), None when etcd does not answer."""
        try:
            return self._coord.controls()
        except CoordinationError as e:
            self.warn_now_and_then("cannot read the operators' controls from etcd", str(e))
            return None

    def revoke(self, lease_id: int) -> None:
        quietly("revoke", self._lease.revoke, lease_id)

    def resign(self, epoch: int) -> None:
        try:
            quietly("resign", self._coord.resign, epoch)
        finally:
            self._resign_busy.clear()

    def grant(self) -> None:
        sent_at_s = self._clock.now_s()
        try:
            lease_id = self._lease.grant_lease(self._ttl_s)
        except CoordinationError as e:
            self.warn_now_and_then("cannot get an etcd lease; not electable until etcd answers", str(e))
            self._post(m.LeaseRequestFailed(str(e)))
            return
        self._post(m.LeaseGranted(lease_id, float(self._ttl_s), sent_at_s))

    def renew(self, lease_id: int) -> None:
        sent_at_s = self._clock.now_s()
        try:
            self._lease.keepalive(lease_id)
        except LeaseLost:
            self._post(m.LeaseLost(lease_id))
            return
        except CoordinationError as e:
            self.warn_now_and_then("keepalive failed; the lease deadline will fence this node", str(e))
            self._post(m.LeaseRequestFailed(str(e)))
            return
        # The TTL etcd reports is rounded down to whole seconds; the granted TTL is what was restarted.
        self._post(m.KeepaliveAcked(lease_id, float(self._ttl_s), sent_at_s))

    def warn_now_and_then(
        self, message: str, detail: str, every_s: float = 5.0, level: int = logging.WARNING
    ) -> None:
        """Log `message` at most once per `every_s`: a condition that persists must not flood the log."""
        with self._warn_lock:
            now_s = self._clock.now_s()
            if now_s - self._last_warning_s.get(message, float("-inf")) < every_s:
                return
            self._last_warning_s[message] = now_s
        log.log(level, message, extra={"error": detail})

    def campaign(self, lease_id: int, genesis_id: str | None) -> None:
        """Campaign under the genesis the core joined (compared with etcd's inside the Txn)."""
        if not lease_id:
            self._post(m.CampaignResult(False, lease_id, error="no lease"))
            return
        if self._genesis is None or self._genesis.id != genesis_id:
            self._post(m.CampaignResult(False, lease_id, error=f"etcd's genesis is not {genesis_id}"))
            return
        try:
            won = self._coord.campaign(self._node_id, lease_id, self._addresses, self._genesis)
        except CoordinationError as e:
            self._post(m.CampaignResult(False, lease_id, error=str(e)))
            return
        self._post(m.CampaignResult(won is not None, lease_id, epoch=won.epoch if won else 0))

    def commit(self, commit: m.Commit) -> None:
        batch = commit.batch
        started_s = self._clock.now_s()
        try:
            result = self._coord.append_records(batch.epoch, commit.expected_head, batch.records)
        except (CoordinationError, ValueError) as e:
            self._observe(started_s, batch, ok=False)
            self._post(m.CommitDone(commit.seq, ok=False, fence_lost=isinstance(e, FenceLost), error=str(e)))
            return
        self._observe(started_s, batch, ok=result.ok)
        self._post(
            m.CommitDone(
                commit.seq, ok=result.ok, fence_lost=result.fence_lost, actual_head=result.head_event
            )
        )

    def _observe(self, started_s: float, batch: m.Batch, ok: bool) -> None:
        if self._on_commit is not None:
            size = sum(len(r) for r in batch.records)
            self._on_commit(self._clock.now_s() - started_s, len(batch.records), size, ok)

    def catch_up(self, first: int, epoch: int) -> None:
        """Read committed batches from etcd from `first`; what etcd trimmed comes from a peer's log."""
        try:
            try:
                for wire in self._coord.read_batches(first):
                    self._post(m.CatchUpFetched(batch_from_pb(wire)))
            except LogTrimmed as e:
                if not self._fetch_from_peers(first, e.first_available_event - 1):
                    self._post(m.CatchUpDone(0, epoch, error=f"no live peer holds events {first}.. : {e}"))
                    return
                for wire in self._coord.read_batches(e.first_available_event):
                    self._post(m.CatchUpFetched(batch_from_pb(wire)))
            head, _ = self._coord.head()
        except CoordinationError as e:
            self._post(m.CatchUpDone(0, epoch, error=str(e)))
            return
        self._post(m.CatchUpDone(head, epoch))

    def trim(self, epoch: int, below: int) -> None:
        """Delete batches below `below`, and compact history up to the previous trim's revision: one trim
        interval back, so a catch-up that is paging through batches at its revision is not cut off."""
        try:
            deleted = self._coord.trim(epoch, below)
            if self._compact_to:
                self._coord.compact(self._compact_to)
            self._compact_to = self._coord.revision()
        except CoordinationError as e:
            log.warning("trim failed", extra={"below": below, "error": str(e)})
            return
        log.info("trimmed etcd", extra={"below": below, "batches_deleted": deleted})
