"""The node's gRPC services: Replication (Push from the master, Fetch for a peer's catch-up) and Admin.

Push is lock-step: the master sends one message and waits for the follower's Ack before the next, which
is the flow control (a slow follower slows only its own stream). The services reach the driver through
`NodeHandle`, a narrow protocol, never the whole node.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from concurrent import futures
from typing import Protocol

import grpc

from seguro.core import messages as m
from seguro.invariant import InvariantViolation
from seguro.node.eventlog import EventLog
from seguro.node.wire import PUSH_BATCH_EVENTS, batch_from_pb, batch_to_pb, grpc_options, read_batch
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc

ACK_TIMEOUT_S = 10.0


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
