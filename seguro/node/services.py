"""The node's gRPC services: Replication (Push from the master; Fetch and FetchSnapshot for a peer's
catch-up) and Admin; beside them the standard gRPC health service (`grpc.health.v1.Health`, for
grpc_health_probe and load balancers) and server reflection (for grpcurl).

Push is lock-step: the master sends one message and waits for the follower's Ack before the next, which
is the flow control (a slow follower slows only its own stream). The services reach the driver through
`NodeHandle`, a narrow protocol, never the whole node.
"""

from __future__ import annotations

import json
import queue
import weakref
from collections.abc import Iterator
from concurrent import futures
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from seguro.core import messages as m
from seguro.invariant import InvariantViolation
from seguro.node import tls
from seguro.node.authz import Authorizer
from seguro.node.eventlog import EventLog
from seguro.node.snapshots import Manifest, SnapshotError
from seguro.node.wire import PUSH_BATCH_EVENTS, Identity, batch_from_pb, batch_to_pb, grpc_options, read_batch
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc
from seguro.urbit.record import decode_record

ACK_TIMEOUT_S = 10.0
# What the health service reports on: the whole server ("") and each of Seguro's services.
SEGURO_SERVICES = tuple(service.full_name for service in pb.DESCRIPTOR.services_by_name.values())
HEALTH_NAMES = (health.OVERALL_HEALTH, *SEGURO_SERVICES)


class SnapshotSource(Protocol):
    def chunks(self, genesis: str, manifest_only: bool) -> Iterator[tuple[Manifest, str, int, bytes]]: ...


class NodeHandle(Protocol):
    """What the services need from the node (the driver)."""

    node_id: str
    eventlog: EventLog
    snapshots: SnapshotSource

    def identity(self) -> Identity: ...
    def registered(self, replica_id: str) -> bool: ...
    def refused(self, what: str, detail: str) -> None: ...
    def post(self, event: m.Event) -> None: ...
    def open_stream(self) -> tuple[int, queue.Queue[m.AckOut]]: ...
    def close_stream(self, stream_id: int) -> None: ...
    def status(self) -> dict[str, object]: ...
    def poke(self, jam: bytes) -> tuple[int, str]: ...
    def reload(self) -> dict[str, object]: ...
    def die(self, error: InvariantViolation) -> None: ...


class ReplicationService(rpc.ReplicationServicer):
    """Every push and fetch is checked before the core sees it: a stranger (another ship or genesis, a
    replica not in the registry), a batch before its hello, or a record that is empty or does not decode
    is refused with an error ack or status, counted, and never stored. Nothing a peer sends stops the node."""

    def __init__(self, node: NodeHandle) -> None:
        self._node = node

    def _refuse(self, what: str, detail: str) -> pb.Ack:
        self._node.refused(what, detail)
        me = self._node.identity()
        return pb.Ack(replica_id=me.replica_id, ship=me.ship, genesis=me.genesis, error=f"{what}: {detail}")

    def Push(
        self, request_iterator: Iterator[pb.PushMessage], context: grpc.ServicerContext
    ) -> Iterator[pb.Ack]:
        stream_id, acks = self._node.open_stream()
        hello: pb.Hello | None = None
        try:
            for message in request_iterator:
                if message.HasField("hello"):
                    hello, problem = message.hello, self._check_hello(message.hello, context)
                    batch = m.Batch(0, 1, ())  # stores nothing; the ack tells the master where we are
                elif hello is None:
                    problem = "a batch before the stream's hello"
                else:
                    batch, problem = _decode_batch(message.batch)
                if problem:
                    yield self._refuse("push refused", problem)
                    return
                assert hello is not None  # for the type checker: a hello came first (checked above)
                pushed = m.BatchReceived(stream_id, batch, hello.epoch, hello.genesis, hello.master_id)
                self._node.post(pushed)
                try:
                    ack = acks.get(timeout=ACK_TIMEOUT_S)
                except queue.Empty:
                    yield self._refuse("push refused", "replica busy: no ack in time")
                    return
                me = self._node.identity()
                yield pb.Ack(
                    replica_id=me.replica_id, ship=me.ship, genesis=me.genesis,
                    durable_event=ack.durable_event, highest_epoch=ack.highest_epoch, error=ack.error,
                )  # fmt: skip
                if ack.error:
                    self._node.refused("push refused", ack.error)
                    return
        finally:
            self._node.close_stream(stream_id)

    def _check_hello(self, hello: pb.Hello, context: grpc.ServicerContext) -> str:
        stranger = self._node.identity().mismatch(hello.ship, hello.genesis)
        if stranger:
            return stranger
        if not tls.speaks_for(context, hello.ship, hello.master_id):
            return f"the caller's certificate does not name replica {hello.master_id!r} of {hello.ship!r}"
        if not self._node.registered(hello.master_id):
            return f"replica {hello.master_id!r} is not in ship {hello.ship!r}'s registry"
        return ""

    def _admit(self, request: pb.FetchRequest | pb.SnapshotRequest, context: grpc.ServicerContext) -> None:
        """Serve only a registered replica of this ship and genesis, and say who we are first."""
        me = self._node.identity()
        problem = me.mismatch(request.ship, request.genesis)
        if not problem and not self._node.registered(request.replica_id):
            problem = f"replica {request.replica_id!r} is not in ship {request.ship!r}'s registry"
        if not problem and not tls.speaks_for(context, request.ship, request.replica_id):
            problem = f"the caller's certificate does not name replica {request.replica_id!r}"
        if problem:
            self._node.refused("fetch refused", problem)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"fetch refused: {problem}")
        context.send_initial_metadata((("seguro-ship", me.ship), ("seguro-genesis", me.genesis)))

    def FetchSnapshot(
        self, request: pb.SnapshotRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SnapshotChunk]:
        """The newest snapshot this node keeps: its manifest, then its files."""
        self._admit(request, context)
        try:
            genesis = self._node.identity().genesis
            for manifest, name, offset, data in self._node.snapshots.chunks(genesis, request.manifest_only):
                yield pb.SnapshotChunk(event=manifest.event, mug=manifest.mug, format=manifest.format,
                                       name=name, offset=offset, data=data)  # fmt: skip
        except (SnapshotError, OSError) as e:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no snapshot: {e}")

    def Fetch(self, request: pb.FetchRequest, context: grpc.ServicerContext) -> Iterator[pb.Batch]:
        """Committed events from this node's local log, for a peer that etcd can no longer serve."""
        self._admit(request, context)
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


def _decode_batch(wire: pb.Batch) -> tuple[m.Batch, str]:
    """The batch, or why it is refused: records out of order, empty, or not a vere record (mug + jam)."""
    try:
        batch = batch_from_pb(wire)
    except ValueError as e:
        return m.Batch(0, 1, ()), f"malformed batch: {e}"
    batch = m.Batch(0, batch.first_event, batch.records)  # a peer's word on epochs is never recorded
    if batch.first_event < 1:
        return batch, "malformed batch: events start at 1"
    for i, record in enumerate(batch.records):
        try:
            decode_record(record)
        except ValueError as e:  # RecordError, or a jam that does not cue
            return batch, f"malformed record at event {batch.first_event + i}: {e}"
    return batch, ""


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
            genesis=str(s.get("genesis", "")),
        )  # fmt: skip

    def StepDown(self, request: pb.StepDownRequest, context: grpc.ServicerContext) -> pb.StepDownReply:
        was_master = self._node.status()["role"] == "master"
        self._node.post(m.StepDown())
        return pb.StepDownReply(was_master=was_master)

    def Reload(self, request: pb.ReloadRequest, context: grpc.ServicerContext) -> pb.ReloadReply:
        """Read the settings again, as SIGHUP does."""
        done = self._node.reload()
        applied = {k: json.dumps(v) for k, v in dict(done["applied"]).items()}  # type: ignore[call-overload]
        return pb.ReloadReply(applied=applied, restart_needed=list(done["restart_needed"]),  # type: ignore[call-overload]
                              error=str(done["error"]))  # fmt: skip

    def Reinit(self, request: pb.ReinitRequest, context: grpc.ServicerContext) -> pb.ReinitReply:
        """Refused (with why) or accepted: the node then restarts itself and rebuilds from its peers."""
        error, aside = self._node.reinit(request.by or "an operator")
        return pb.ReinitReply(accepted=not error, error=error, aside=aside)

    def Poke(self, request: pb.PokeRequest, context: grpc.ServicerContext) -> pb.PokeReply:
        """Answers once the event is committed in etcd (with its number), or with why it was not."""
        event, error = self._node.poke(request.jam)
        return pb.PokeReply(accepted=not error, error=error, event=event)


_health_of: weakref.WeakKeyDictionary[grpc.Server, health.HealthServicer] = weakref.WeakKeyDictionary()


def serve(node: NodeHandle, address: str, max_message_bytes: int) -> tuple[grpc.Server, int]:
    """Start the gRPC server on `address` (port 0: any free port); returns it and the bound port. It serves
    health (every name in `HEALTH_NAMES` SERVING from the start; `health_of(server)` is its servicer, for
    `set_serving`) and reflection over Seguro's services, health and reflection itself."""
    files = tls.current()
    interceptors = [Authorizer(node.identity().ship)] if files is not None else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=grpc_options(max_message_bytes),
                         interceptors=interceptors)  # fmt: skip
    rpc.add_ReplicationServicer_to_server(ReplicationService(node), server)
    rpc.add_AdminServicer_to_server(AdminService(node), server)
    health_servicer = health.HealthServicer()  # non-blocking Watch: a watcher holds no worker thread
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    set_serving(health_servicer, True)
    _health_of[server] = health_servicer
    reflected = (*SEGURO_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(reflected, server)
    try:
        if files is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, files.server_credentials())  # mutual TLS, then Authorizer
    except RuntimeError:  # grpcio reports a failed bind (address in use, not ours) this way
        port = 0
    if port == 0:
        raise OSError(f"cannot bind the gRPC server to {address}")
    server.start()
    return server, port


def health_of(server: grpc.Server) -> health.HealthServicer:
    """The health servicer of a server that `serve` started."""
    return _health_of[server]


def set_serving(health_servicer: health.HealthServicer, serving: bool) -> None:
    """Report the whole server and each Seguro service SERVING, or NOT_SERVING (a node that is stopping or
    has halted); open Watch streams hear the change at once."""
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in HEALTH_NAMES:
        health_servicer.set(name, status)
