"""The node's network edges: the UDP socket standing where the ship's Ames port would be, and the set of
push streams a master keeps to its followers (plus catch-up from a peer when etcd no longer has events)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from seguro.core import messages as m
from seguro.core.clock import Clock
from seguro.node.runtime import Job
from seguro.node.transport import PushStream, batch_from_pb, grpc_options
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc
from seguro.urbit import ames

if TYPE_CHECKING:
    from seguro.node.driver import Node

log = logging.getLogger(__name__)

EVENT_OVERHEAD_BYTES = 64  # what a datagram's event noun adds to its payload, roughly
FETCH_TIMEOUT_S = 30.0


class Ingress:
    """Receives datagrams (every replica gets every one, from the load balancer) and sends effects.

    Effects leave from this same socket, as vere's ames driver does, so peers see replies from the
    ship's address. Malformed datagrams are counted and dropped; they never reach the log.
    """

    def __init__(self, hostport: tuple[str, int], clock: Clock, post: Callable[[m.Event], None]) -> None:
        self._clock, self._post = clock, post
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(hostport)
        except OSError as e:
            self._sock.close()
            raise OSError(f"cannot bind the UDP socket to {hostport[0]}:{hostport[1]}: {e}") from None
        self._sock.settimeout(0.2)
        self.address: tuple[str, int] = self._sock.getsockname()
        self.malformed = self.send_errors = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="seguro-udp", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                payload, (ip, port) = self._sock.recvfrom(65_535)
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                continue
            try:
                noun = ames.datagram_event(self._clock.wall_s(), ip, port, payload)
            except ames.AmesError as e:
                self.malformed += 1
                log.debug("malformed datagram", extra={"from": f"{ip}:{port}", "error": str(e)})
                continue
            except Exception:  # never let one datagram kill the ship's only ear
                self.malformed += 1
                log.exception("datagram could not be turned into an event", extra={"from": f"{ip}:{port}"})
                continue
            size = len(payload) + EVENT_OVERHEAD_BYTES
            self._post(m.IncomingEvent(Job(noun, size), size))

    def send_before(self, payload: bytes, address: tuple[str, int], deadline_s: float, clock: Clock) -> bool:
        """Send unless `deadline_s` has passed; False when fenced. The check sits right against the syscall:
        only a pause between these two lines could still let a datagram out late (see README, Fencing).
        The send never waits for buffer space (that wait would come after the check): a datagram that
        does not fit now is dropped and counted, and Ames retransmits."""
        sendto, now_s = self._sock.sendto, clock.now_s
        if now_s() >= deadline_s:
            return False
        try:
            sendto(payload, socket.MSG_DONTWAIT, address)
        except OSError as e:
            self.send_errors += 1
            log.warning("effect not sent", extra={"to": f"{address[0]}:{address[1]}", "error": str(e)})
        return True

    def close(self) -> None:
        self._closed.set()
        self._thread.join(1.0)
        self._sock.close()


class Peers:
    """The master's push streams, one per other replica registered in etcd."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._streams: dict[str, PushStream] = {}
        self._lock = threading.Lock()
        self._closed = False

    def refresh(self, epoch: int) -> None:
        """Make sure every other registered replica has a live stream at `epoch`, if the node still serves
        it: a refresh that ran late (etcd was slow) must not start streams after a fence or a shutdown
        stopped them. The role is read under the lock `stop_all` takes, after the driver changed it."""
        replicas = self._node.coord.replicas()
        with self._lock:
            if self._closed or not self._node.serves_epoch(epoch):
                return
            for replica_id in [r for r in self._streams if r not in replicas]:  # forgotten by an operator
                self._streams.pop(replica_id).stop()
            for replica_id, status in replicas.items():
                address = str(status.get("grpc", ""))
                if replica_id == self._node.node_id or not address:
                    continue
                stream = self._streams.get(replica_id)
                if stream is not None and (
                    stream.epoch != epoch or stream.address != address or not stream.alive()
                ):
                    stream.stop()
                    stream = None
                if stream is None:
                    self._streams[replica_id] = PushStream(
                        replica_id, address, self._node.eventlog, epoch, self._node.node_id, self._node.post,
                        self._node.appended, self._node.cfg.max_event_bytes, self._node.die,
                    )  # fmt: skip

    def stop_all(self, join_s: float = 0.0, close: bool = False) -> None:
        """Stop every stream; with `close` (shutdown), for good."""
        with self._lock:
            self._closed = self._closed or close
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.stop()
        for stream in streams if join_s else ():
            stream.join(join_s)

    def fetch_from_peers(self, first: int, last: int) -> bool:
        """Catch up events first..last from any peer's local log; False when no live peer had them all."""
        for replica_id, status in self._node.coord.replicas().items():
            address = str(status.get("grpc", ""))
            if replica_id == self._node.node_id or not address:
                continue
            try:
                if self._fetch(address, first, last):
                    return True
            except grpc.RpcError as e:
                log.warning("peer fetch failed", extra={"peer": replica_id, "error": str(e)})
        return False

    def _fetch(self, address: str, first: int, last: int) -> bool:
        options = grpc_options(self._node.cfg.max_event_bytes)
        expected = first
        with grpc.insecure_channel(address, options=options) as channel:
            request = pb.FetchRequest(from_event=first, to_event=last)
            for wire in rpc.ReplicationStub(channel).Fetch(request, timeout=FETCH_TIMEOUT_S):
                batch = batch_from_pb(wire)
                if batch.first_event != expected:
                    return False
                self._node.post(m.CatchUpFetched(batch))
                expected = batch.last_event + 1
        return expected > last
