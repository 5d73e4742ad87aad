"""The master's push streams: one lock-step gRPC stream per follower, tailing the master's local log.

The local log only ever holds committed events, so one mechanism serves both live replication and
catch-up of a follower that was down: the follower's first Ack says where to start.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator

import grpc

from seguro.core import messages as m
from seguro.invariant import InvariantViolation
from seguro.node import tls
from seguro.node.eventlog import EventLog
from seguro.node.wire import Identity, batch_to_pb, grpc_options, read_batch, replica_addresses
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 10.0
RECONNECT_S = 0.5

StartStream = Callable[[str, str, int], "PushStream"]  # (follower id, its gRPC address, epoch) -> stream


class PushStreams:
    """The master's push streams, one per other replica registered in etcd. It sees the node only
    through two callables: whether the node still serves an epoch, and a stream factory."""

    def __init__(self, self_id: str, serves_epoch: Callable[[int], bool], start_stream: StartStream) -> None:
        self._self_id = self_id
        self._serves_epoch, self._start_stream = serves_epoch, start_stream
        self._streams: dict[str, PushStream] = {}
        self._lock = threading.Lock()
        self._closed = False

    def refresh(self, epoch: int, registry: dict[str, dict]) -> None:
        """Make sure every other replica in `registry` (as just read) has a live stream at `epoch`, if the
        node still serves it: a refresh that ran late (etcd was slow) must not start streams after a fence
        or a shutdown stopped them. The role is read under the lock `stop_all` takes."""
        addresses = replica_addresses(registry, self._self_id)
        with self._lock:
            if self._closed or not self._serves_epoch(epoch):
                return
            for replica_id in [r for r in self._streams if r not in addresses]:  # forgotten by an operator
                self._streams.pop(replica_id).stop()
            for replica_id, address in addresses.items():
                stream = self._streams.get(replica_id)
                if stream is not None and (
                    stream.epoch != epoch or stream.address != address or not stream.alive()
                ):
                    stream.stop()
                    stream = None
                if stream is None:
                    self._streams[replica_id] = self._start_stream(replica_id, address, epoch)

    def stop_all(self, join_s: float = 0.0, close: bool = False) -> None:
        """Stop every stream; with `close` (shutdown), for good."""
        with self._lock:
            self._closed = self._closed or close
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.stop()
        for stream in streams if join_s else ():
            stream.join(join_s)


class PushStream:
    """The master's stream to one follower: tails the local log, reports the follower's acks."""

    def __init__(
        self,
        follower_id: str,
        address: str,
        eventlog: EventLog,
        epoch: int,
        me: Identity,
        post: Callable[[m.Event], None],
        appended: threading.Condition,
        max_message_bytes: int,
        die: Callable[[InvariantViolation], None],
    ) -> None:
        self.follower_id, self.address, self.epoch = follower_id, address, epoch
        self._die = die
        self._log, self._me, self._post, self._appended = eventlog, me, post, appended
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

        with tls.channel(self.address, options=self._options) as channel:
            call = rpc.ReplicationStub(channel).Push(requests())
            self._call = call
            try:
                me = self._me
                hello = pb.Hello(master_id=me.replica_id, epoch=self.epoch, ship=me.ship, genesis=me.genesis)
                outbox.put(pb.PushMessage(hello=hello))
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
        stranger = "" if ack.error else self._me.mismatch(ack.ship, ack.genesis)
        if stranger:  # an address that now belongs to another ship's replica: never counted
            return pb.Ack(error=f"{self.address} answers for another ship: {stranger}")
        return ack

    def _wait_for_events(self, first: int) -> m.Batch | None:
        with self._appended:
            if self._log.last_event() < first and not self._stop.is_set():
                self._appended.wait(timeout=0.5)
        batch = read_batch(self._log, first, 0)  # the events' own epochs are not kept per event
        return batch if batch.records else None
