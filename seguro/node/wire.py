"""What crosses the wire between nodes: gRPC channel options, and committed batches as protobuf messages,
read from the local log in pieces that fit one message."""

from __future__ import annotations

from dataclasses import dataclass

from seguro.core import messages as m
from seguro.core.election import PeerView
from seguro.node.eventlog import EventLog
from seguro.proto.seguro.v1 import replication_pb2 as pb

PUSH_BATCH_EVENTS = 500
PUSH_BATCH_BYTES = 4 << 20


@dataclass(frozen=True)
class Identity:
    """Who speaks on a stream: the ship, its genesis id (the same name created again is another ship),
    and the replica. Every push, ack and fetch carries it; a mismatch is refused on both sides."""

    ship: str
    genesis: str
    replica_id: str

    def mismatch(self, ship: str, genesis: str) -> str:
        """'' when `ship` and `genesis` are ours, else what differs (for the error a peer is given)."""
        if ship != self.ship:
            return f"this is ship {self.ship!r}, not {ship!r}"
        if not self.genesis:
            return f"this replica has not joined ship {self.ship!r} yet (no genesis seen in etcd)"
        if genesis != self.genesis:
            return f"ship {self.ship!r} here is genesis {self.genesis}, not {genesis or '(none)'}"
        return ""


def grpc_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Message limits that fit the largest event, and HTTP/2 keepalives so that a peer that vanished
    without closing its connection (power loss, partition) frees its stream and server thread."""
    limit = max_message_bytes + (1 << 20)
    return [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        ("grpc.keepalive_time_ms", 5_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_ping_interval_without_data_ms", 4_000),
    ]


def batch_to_pb(batch: m.Batch) -> pb.Batch:
    records = [pb.Record(event=batch.first_event + i, data=r) for i, r in enumerate(batch.records)]
    return pb.Batch(epoch=batch.epoch, first_event=batch.first_event, records=records)


def batch_from_pb(batch: pb.Batch) -> m.Batch:
    for i, r in enumerate(batch.records):
        if r.event != batch.first_event + i or r.chunks:
            raise ValueError(
                f"batch record {i} is event {r.event} (chunks={r.chunks}), expected "
                f"{batch.first_event + i} with its data inline"
            )
    return m.Batch(batch.epoch, batch.first_event, tuple(r.data for r in batch.records))


def read_batch(eventlog: EventLog, first: int, epoch: int, max_events: int = PUSH_BATCH_EVENTS) -> m.Batch:
    """Up to max_events / PUSH_BATCH_BYTES records of the local log from `first` (none if it ends before)."""
    records: list[bytes] = []
    size = 0
    last = min(eventlog.last_event(), first + max_events - 1)
    if first <= last:
        for _, record in eventlog.read(first, last):
            if records and size + len(record) > PUSH_BATCH_BYTES:
                break  # a large record goes in a message of its own, within the gRPC limit
            records.append(record)
            size += len(record)
    return m.Batch(epoch, first, tuple(records))


def replica_addresses(replicas: dict[str, dict], self_id: str) -> dict[str, str]:
    """The gRPC address of every other replica in the registry (`replica/<id>` statuses) that has one."""
    found = {rid: str(status.get("grpc", "")) for rid, status in replicas.items() if rid != self_id}
    return {rid: address for rid, address in found.items() if address}


class Freshness:
    """Which replicas published lately, judged by this node's own clock: a status whose content changed
    within `fresh_s` (each carries its publisher's wall time, which changes every round) is fresh.
    Comparing the publisher's wall time with ours would need synchronized clocks; this does not."""

    def __init__(self, fresh_s: float) -> None:
        self.fresh_s = fresh_s
        self._seen: dict[str, tuple[object, float]] = {}  # replica -> (its updated_at, when we saw it change)

    def views(self, registry: dict[str, dict], self_id: str, now_s: float) -> tuple[PeerView, ...]:
        views = []
        for replica_id, status in sorted(registry.items()):
            stamp = status.get("updated_at")
            last = self._seen.get(replica_id)
            if last is None or last[0] != stamp:
                self._seen[replica_id] = last = (stamp, now_s)
            if replica_id == self_id:
                continue
            views.append(PeerView(
                replica_id, int(status.get("durable_event", 0)), fresh=now_s - last[1] < self.fresh_s,
                nofailover=bool(status.get("nofailover", False) or status.get("holding_off", False)),
                failover_priority=int(status.get("failover_priority", 1)),
            ))  # fmt: skip
        for gone in [r for r in self._seen if r not in registry]:
            del self._seen[gone]
        return tuple(views)
