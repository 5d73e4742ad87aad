"""Catch-up from a peer's local log, for a new master whose missing events etcd has already trimmed."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc

from seguro.core import messages as m
from seguro.node.wire import Identity, batch_from_pb, grpc_options, replica_addresses
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 30.0


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

    def fetch(self, first: int, last: int) -> bool:
        """Catch up events first..last from any peer's local log; False when no live peer had them all."""
        me = self._identity()
        for replica_id, address in replica_addresses(self._replicas(), me.replica_id).items():
            try:
                if self._fetch(me, address, first, last):
                    return True
            except (grpc.RpcError, PeerMismatch) as e:
                log.warning("peer fetch failed", extra={"peer": replica_id, "error": str(e)})
        return False

    def _fetch(self, me: Identity, address: str, first: int, last: int) -> bool:
        expected = first
        with grpc.insecure_channel(address, options=self._options) as channel:
            request = pb.FetchRequest(from_event=first, to_event=last, ship=me.ship, genesis=me.genesis,
                                      replica_id=me.replica_id)  # fmt: skip
            call = rpc.ReplicationStub(channel).Fetch(request, timeout=FETCH_TIMEOUT_S)
            said = dict(call.initial_metadata())
            if "seguro-ship" not in said:
                next(call, None)  # a refusal (PERMISSION_DENIED, and why) surfaces here as an RpcError
                call.cancel()
                raise PeerMismatch(f"{address} did not say which ship it serves")
            stranger = me.mismatch(str(said["seguro-ship"]), str(said.get("seguro-genesis", "")))
            if stranger:  # an address that now belongs to another ship's replica
                call.cancel()
                raise PeerMismatch(f"{address} answers for another ship: {stranger}")
            for wire in call:
                batch = batch_from_pb(wire)
                if batch.first_event != expected:
                    return False
                self._post(m.CatchUpFetched(batch))
                expected = batch.last_event + 1
        return expected > last
