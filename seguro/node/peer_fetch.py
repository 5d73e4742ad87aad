"""Catch-up from a peer's local log, for a new master whose missing events etcd has already trimmed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import grpc

from seguro.core import messages as m
from seguro.node import tls
from seguro.node.wire import Identity, batch_from_pb, grpc_options, replica_addresses
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc

log = logging.getLogger(__name__)

FETCH_IDLE_S = 30.0  # a peer that sends nothing for this long is cut off; the next one is asked


class PeerMismatch(Exception):
    """The peer dialled serves another ship or genesis: nothing it sends is taken."""


class PeerFetcher:
    """Reads committed events from the other registered replicas' logs over gRPC `Fetch`, posting each
    batch to the driver as `CatchUpFetched`."""

    def __init__(
        self,
        identity: Callable[[], Identity],
        replicas: Callable[[], dict[str, dict]],
        post: Callable[[m.Event], None],
        max_message_bytes: int,
    ) -> None:
        self._identity, self._replicas, self._post = identity, replicas, post
        self._options = grpc_options(max_message_bytes)
        self._next = 0  # the next event wanted: progress survives a peer failing part-way

    def fetch(self, first: int, last: int) -> bool:
        """Catch up events first..last from the peers' local logs; False when the live peers together did
        not have them all. What one peer sent is kept: the next peer is asked only for the rest."""
        me = self._identity()
        for replica_id, address in replica_addresses(self._replicas(), me.replica_id).items():
            self._next = first
            try:
                self._fetch(me, address, first, last)
            except (grpc.RpcError, PeerMismatch) as e:
                log.warning("peer fetch failed", extra={"peer": replica_id, "error": str(e)})
            first = self._next  # what this peer sent is kept, also when it failed part-way
            if first > last:
                return True
        return False

    def _fetch(self, me: Identity, address: str, first: int, last: int) -> int:
        """Stream first..last from one peer; returns the next event still wanted. No deadline on the whole
        stream (a long catch-up is progress, not a hang): only a peer silent for FETCH_IDLE_S is cut."""
        expected = first
        with tls.channel(address, options=self._options) as channel:
            request = pb.FetchRequest(from_event=first, to_event=last, ship=me.ship, genesis=me.genesis,
                                      replica_id=me.replica_id)  # fmt: skip
            call = rpc.ReplicationStub(channel).Fetch(request)
            watchdog = Watchdog(FETCH_IDLE_S, call.cancel)
            try:
                self._check_identity(me, address, call)
                for wire in call:
                    watchdog.pet()
                    batch = batch_from_pb(wire)
                    batch = m.Batch(0, batch.first_event, batch.records)  # a peer's epochs are not recorded
                    if batch.first_event != expected:
                        raise PeerMismatch(f"{address} sent events from {batch.first_event}, not {expected}")
                    self._post(m.CatchUpFetched(batch))
                    expected = self._next = batch.last_event + 1
            finally:
                watchdog.stop()
        return expected

    @staticmethod
    def _check_identity(me: Identity, address: str, call: grpc.Call) -> None:
        said = dict(call.initial_metadata())
        if "seguro-ship" not in said:
            next(call, None)  # type: ignore[call-overload]  # a refusal (and why) surfaces as an RpcError
            call.cancel()
            raise PeerMismatch(f"{address} did not say which ship it serves")
        stranger = me.mismatch(str(said["seguro-ship"]), str(said.get("seguro-genesis", "")))
        if stranger:  # an address that now belongs to another ship's replica
            call.cancel()
            raise PeerMismatch(f"{address} answers for another ship: {stranger}")


class Watchdog:
    """Calls `fire` unless petted within every `idle_s`."""

    def __init__(self, idle_s: float, fire: Callable[[], object]) -> None:
        self._idle_s, self._fire = idle_s, fire
        self._timer: threading.Timer | None = None
        self.pet()

    def pet(self) -> None:
        self.stop()
        self._timer = threading.Timer(self._idle_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
