"""Freeing etcd when its space alarm (NOSPACE) stopped every write: delete the ship's old batches (reads
and deletes still work under the alarm), compact the history, defragment every member, disarm."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from seguro.node import tls
from seguro.node.etcd.coordinator import CoordinationError, Coordinator, etcd_client
from seguro.node.etcd.schema import describe, parse_endpoints


@dataclass
class ReclaimReport:
    head: int
    trimmed_below: int
    batches_deleted: int
    revision: int
    db_bytes_before: dict[str, int] = field(default_factory=dict)
    db_bytes_after: dict[str, int] = field(default_factory=dict)
    alarms_before: list[str] = field(default_factory=list)
    alarms_after: list[str] = field(default_factory=list)


def reclaim(endpoints: str, ship: str, keep_events: int) -> ReclaimReport:
    """Keep the newest `keep_events` committed events of `ship` in etcd, then compact, defragment each
    member and disarm the alarms. Replicas hold every event in their own logs; a follower further behind
    catches up from the master or a peer."""
    members = [f"{h}:{p}" for h, p in parse_endpoints(endpoints, secure=tls.current() is not None)]
    before = _db_sizes(members)
    with Coordinator(endpoints, ship, timeout_s=10.0) as coord:
        alarms = coord.alarms()
        head, _ = coord.head()
        below = max(1, head - keep_events + 1)
        deleted = coord.trim(None, below) if below > 1 else 0
        revision = coord.compact(coord.revision())
    _defragment(members, before)
    with Coordinator(endpoints, ship, timeout_s=10.0) as coord:
        coord.disarm_space_alarms()
        after = coord.alarms()
    return ReclaimReport(head, below, deleted, revision, before, _db_sizes(members), alarms, after)


def _defragment(members: list[str], before: dict[str, int], rounds: int = 5) -> None:
    """Defragment each member. Compaction reaches each member's backend in its own time: a member
    defragmented before that frees nothing, so it is done again (bounded) until its file shrinks."""
    pending = list(members)
    for attempt in range(rounds):
        for member in pending:
            with _client(member) as client:
                client.defragment()
        sizes = _db_sizes(pending)
        pending = [m for m in pending if sizes[m] > before[m] // 2]
        if not pending:
            return
        time.sleep(0.2 * (attempt + 1))


@contextlib.contextmanager
def _client(member: str) -> Iterator[Any]:
    """A client of one member (defragmenting and sizes are per member); any failure is a
    CoordinationError naming the member, not a traceback."""
    try:
        with etcd_client(member, timeout_s=60.0) as client:
            yield client
    except CoordinationError:
        raise
    except Exception as e:  # pyetcd raises its own and grpc's errors
        raise CoordinationError(f"etcd member {member}: {describe(e)}") from e


def _db_sizes(members: list[str]) -> dict[str, int]:
    sizes = {}
    for member in members:
        with _client(member) as client:
            sizes[member] = int(client.status().db_size)
    return sizes
