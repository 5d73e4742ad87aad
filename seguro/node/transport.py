"""gRPC edges of a node: the Replication and Admin services, and the master's push streams.

Push is lock-step: the master sends one message and waits for the follower's Ack before the next, which
is the flow control (a slow follower slows only its own stream). The master's push stream tails its own
local log, which only ever holds committed events, so one mechanism serves both live replication and
catch-up of a follower that was down: the follower's first Ack says where to start.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Protocol

import grpc

from seguro.core import messages as m
from seguro.invariant import InvariantViolation
from seguro.node.eventlog import EventLog
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc

log = logging.getLogger(__name__)

PUSH_BATCH_EVENTS = 500
PUSH_BATCH_BYTES = 4 << 20
ACK_TIMEOUT_S = 10.0
RECONNECT_S = 0.5


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


class NodeHandle(Protocol):
    """What the services need from the node (the driver)."""

    node_id: str
    eventlog: EventLog

    def post(self, event: m.Event) -> None: ...
    def open_stream(self) -> tuple[int, queue.Queue[m.AckOut]]: ...
    def close_stream(self, stream_id: int) -> None: ...
    def status(self) -> dict[str, object]: ...
    def poke(self, jam: bytes) -> str: ...
    def die(self, error: InvariantViolation) -> None: ...


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


class ReplicationService(rpc.ReplicationServicer):
    def __init__(self, node: NodeHandle) -> None:
        self._node = node

    def Push(
        self, request_iterator: Iterator[pb.PushMessage], context: grpc.ServicerContext
    ) -> Iterator[pb.Ack]:
        stream_id, acks = self._node.open_stream()
        sender_epoch = 0
        try:
            for message in request_iterator:
                if message.HasField("hello"):
                    sender_epoch = message.hello.epoch
                    batch = m.Batch(0, 1, ())  # stores nothing; the ack tells the master where we are
                else:
                    try:
                        batch = batch_from_pb(message.batch)
                    except ValueError as e:
                        yield pb.Ack(replica_id=self._node.node_id, error=f"malformed batch: {e}")
                        return
                self._node.post(m.BatchReceived(stream_id, batch, sender_epoch))
                try:
                    ack = acks.get(timeout=ACK_TIMEOUT_S)
                except queue.Empty:
                    yield pb.Ack(replica_id=self._node.node_id, error="replica busy: no ack in time")
                    return
                yield pb.Ack(
                    replica_id=self._node.node_id,
                    durable_event=ack.durable_event,
                    highest_epoch=ack.highest_epoch,
                    error=ack.error,
                )
                if ack.error:
                    return
        finally:
            self._node.close_stream(stream_id)

    def Fetch(self, request: pb.FetchRequest, context: grpc.ServicerContext) -> Iterator[pb.Batch]:
        """Committed events from this node's local log, for a peer that etcd can no longer serve."""
        log_ = self._node.eventlog
        first = max(1, request.from_event)
        last = min(request.to_event or log_.last_event(), log_.last_event())
        while first <= last:
            try:
                batch = read_batch(log_, first, 0, min(PUSH_BATCH_EVENTS, last - first + 1))
            except InvariantViolation as e:  # our own log is broken: stop the node, not just this call
                self._node.die(e)
                context.abort(grpc.StatusCode.INTERNAL, f"replica stopping: {e}")
            if not batch.records:
                return
            yield batch_to_pb(batch)
            first = batch.last_event + 1


class AdminService(rpc.AdminServicer):
    def __init__(self, node: NodeHandle) -> None:
        self._node = node

    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.NodeStatus:
        s = self._node.status()
        return pb.NodeStatus(
            id=str(s["id"]), role=str(s["role"]), epoch=int(s["epoch"]),  # type: ignore[arg-type]
            durable_event=int(s["durable_event"]), applied_event=int(s["applied_event"]),  # type: ignore[arg-type]
            committed_event=int(s["committed_event"]), effects_sent=int(s["effects_sent"]),  # type: ignore[arg-type]
            datagrams_dropped=int(s["dropped"]), error=str(s["error"]),  # type: ignore[arg-type]
        )  # fmt: skip

    def StepDown(self, request: pb.StepDownRequest, context: grpc.ServicerContext) -> pb.StepDownReply:
        was_master = self._node.status()["role"] == "master"
        self._node.post(m.StepDown())
        return pb.StepDownReply(was_master=was_master)

    def Poke(self, request: pb.PokeRequest, context: grpc.ServicerContext) -> pb.PokeReply:
        error = self._node.poke(request.jam)
        return pb.PokeReply(accepted=not error, error=error)


def serve(node: NodeHandle, address: str, max_message_bytes: int) -> tuple[grpc.Server, int]:
    """Start the gRPC server on `address` (port 0: any free port); returns it and the bound port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=grpc_options(max_message_bytes))
    rpc.add_ReplicationServicer_to_server(ReplicationService(node), server)
    rpc.add_AdminServicer_to_server(AdminService(node), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the gRPC server to {address}")
    server.start()
    return server, port


class PushStream:
    """The master's stream to one follower: tails the local log, reports the follower's acks."""

    def __init__(
        self,
        follower_id: str,
        address: str,
        eventlog: EventLog,
        epoch: int,
        master_id: str,
        post: Callable[[m.Event], None],
        appended: threading.Condition,
        max_message_bytes: int,
        die: Callable[[InvariantViolation], None],
    ) -> None:
        self.follower_id, self.address, self.epoch = follower_id, address, epoch
        self._die = die
        self._log, self._master_id, self._post, self._appended = eventlog, master_id, post, appended
        self._options = grpc_options(max_message_bytes)
        self._stop = threading.Event()
        self._call: grpc.Future | None = None
        self.error = ""
        self._thread = threading.Thread(target=self._loop, name=f"seguro-push-{follower_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        with self._appended:
            self._appended.notify_all()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except grpc.RpcError as e:
                self.error = f"{e.code().name}: {e.details()}"  # type: ignore[attr-defined]
            except InvariantViolation as e:  # our own log is broken: the node must stop, not retry
                self._die(e)
                return
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}"
                log.exception("push stream failed", extra={"follower": self.follower_id})
            self._stop.wait(RECONNECT_S)

    def _session(self) -> None:
        outbox: queue.Queue[pb.PushMessage | None] = queue.Queue()

        def requests() -> Iterator[pb.PushMessage]:
            while True:
                message = outbox.get()
                if message is None:
                    return
                yield message

        with grpc.insecure_channel(self.address, options=self._options) as channel:
            call = rpc.ReplicationStub(channel).Push(requests())
            self._call = call
            try:
                outbox.put(pb.PushMessage(hello=pb.Hello(master_id=self._master_id, epoch=self.epoch)))
                ack = self._next_ack(call)
                while not self._stop.is_set() and not ack.error:
                    self._post(m.FollowerAck(self.follower_id, ack.durable_event))
                    batch = self._wait_for_events(ack.durable_event + 1)
                    if batch is None:
                        continue
                    outbox.put(pb.PushMessage(batch=batch_to_pb(batch)))
                    ack = self._next_ack(call)
                self.error = ack.error
            finally:
                outbox.put(None)
                call.cancel()

    def _next_ack(self, call: Iterator[pb.Ack]) -> pb.Ack:
        """The follower's next ack; one from another replica than we dialled is an error, never counted:
        a stale `replica/<id>` entry naming a live replica's address would make one follower count twice
        towards `--ack-replicas`."""
        timer = threading.Timer(ACK_TIMEOUT_S, call.cancel)  # type: ignore[attr-defined]
        timer.start()
        try:
            ack = next(call)
        finally:
            timer.cancel()
        if ack.replica_id != self.follower_id:
            return pb.Ack(error=f"{self.address} is replica {ack.replica_id!r}, not {self.follower_id!r}")
        return ack

    def _wait_for_events(self, first: int) -> m.Batch | None:
        with self._appended:
            if self._log.last_event() < first and not self._stop.is_set():
                self._appended.wait(timeout=0.5)
        batch = read_batch(self._log, first, 0)  # the events' own epochs are not kept per event
        return batch if batch.records else None
