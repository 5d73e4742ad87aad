"""A replica that starts with an empty log takes the newest snapshot a peer keeps, instead of replaying the
ship from event 1: its log then begins after the snapshot's event, and the usual catch-up (pushes from
the master, etcd, peers' logs) brings the rest.

Runs once, at start, before the node's core exists (the core starts from the log's last event). Every
failure (no peer has one, a peer goes away, a file does not match its manifest) leaves the log empty and
the node replays from event 1 as before: a snapshot is an optimisation, never a requirement.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from seguro.node import tls
from seguro.node.config import NodeConfig
from seguro.node.etcd.coordinator import CoordinationError, Coordinator
from seguro.node.eventlog import EventLog
from seguro.node.peer_fetch import FETCH_IDLE_S, PeerMismatch, Watchdog
from seguro.node.snapshots import Manifest, SnapshotError, SnapshotStore
from seguro.node.wire import Identity, grpc_options, replica_addresses
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc
from seguro.urbit.launch import Launch
from seguro.urbit.pier.layout import log_dir

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 5.0
ADMISSION_WAIT_S = 15.0  # peers admit us once their registry shows us (a status round or two)


@dataclass(frozen=True)
class Bootstrapped:
    """What a replica started from: the snapshot's event, format and size, and the peer it came from."""

    event: int
    format: str
    size_bytes: int
    peer: str

    def to_dict(self) -> dict[str, object]:
        return {"event": self.event, "format": self.format, "size_bytes": self.size_bytes, "peer": self.peer}


def bootstrap(
    etcd: list[str], identity_of: tuple[str, str], eventlog: EventLog, store: SnapshotStore,
    snapshot_format: str, pier: Path, targets: dict[str, Path], max_message_bytes: int,
) -> Bootstrapped | None:  # fmt: skip
    """Fill an empty log's runtime from a peer's snapshot: `identity_of` is (ship, node id), `pier` the
    runtime's pier, `targets` where it loads each snapshot file. None when the node should replay from
    event 1."""
    if eventlog.last_event() or eventlog.meta().get("genesis") or not snapshot_format:
        return None
    ship, node_id = identity_of
    try:
        with Coordinator(etcd, ship) as coord:
            genesis = coord.genesis()
            if genesis is None:
                return None
            coord.put_replica(node_id, {"role": "joining", "durable_event": 0})  # so that peers admit us
            peers = replica_addresses(coord.replicas(), node_id)
    except CoordinationError as e:
        log.warning("no snapshot bootstrap: etcd unreachable", extra={"error": str(e)})
        return None
    me = Identity(ship, genesis.id, node_id)
    fetcher = _Fetcher(me, grpc_options(max_message_bytes))
    found = fetcher.best(peers, snapshot_format, set(targets))
    if found is None:
        return None
    manifest, peer = found
    try:
        fetcher.fetch(peers[peer], manifest, store)
        shutil.rmtree(log_dir(pier), ignore_errors=True)  # a pier log of an earlier life: never continued
        store.restore(targets, genesis.id)
    except (grpc.RpcError, PeerMismatch, SnapshotError, OSError) as e:
        store.discard(manifest.event)  # never advertise a snapshot this replica could not install
        log.warning("snapshot bootstrap failed; replaying from 1", extra={"peer": peer, "error": str(e)})
        return None
    eventlog.set_base(manifest.event, genesis=genesis.id, pier=dict(genesis.vere) if genesis.vere else None,
                      base_mug=manifest.mug)  # fmt: skip  # one synced write: no half-adopted log
    done = Bootstrapped(manifest.event, manifest.format, manifest.size, peer)
    log.info("started from a peer's snapshot", extra=done.to_dict())
    return done


class _Fetcher:
    def __init__(self, me: Identity, options: list[tuple[str, int]]) -> None:
        self._me, self._options = me, options

    def best(self, peers: dict[str, str], fmt: str, names: set[str]) -> tuple[Manifest, str] | None:
        """The newest snapshot of format `fmt` (with exactly the files `names`) and of our genesis among
        the peers (asked until they admit us, bounded)."""
        deadline = time.monotonic() + ADMISSION_WAIT_S
        while True:
            found, refused = [], 0
            for peer, address in peers.items():
                try:
                    manifest = self._manifest(address)
                except grpc.RpcError as e:
                    refused += e.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
                    continue
                except (PeerMismatch, SnapshotError):
                    continue
                ours = manifest.genesis == self._me.genesis and {f.name for f in manifest.files} == names
                if manifest.format == fmt and ours:
                    found.append((manifest, peer))
            if found or not refused or time.monotonic() > deadline:
                return max(found, key=lambda f: f[0].event) if found else None
            time.sleep(1.0)

    def _call(self, address: str, manifest_only: bool) -> tuple[grpc.Channel, object]:
        channel = tls.channel(address, options=self._options)
        me = self._me
        request = pb.SnapshotRequest(ship=me.ship, genesis=me.genesis, replica_id=me.replica_id,
                                     manifest_only=manifest_only)  # fmt: skip
        timeout_s = ASK_TIMEOUT_S if manifest_only else None  # a transfer is cut only when it stalls
        return channel, rpc.ReplicationStub(channel).FetchSnapshot(request, timeout=timeout_s)

    def _manifest(self, address: str) -> Manifest:
        channel, call = self._call(address, manifest_only=True)
        with channel:
            first = next(iter(call), None)  # type: ignore[call-overload]
            self._check(address, call)
            if first is None:
                raise SnapshotError(f"{address} sent no manifest")
            return Manifest.decode(first.data)

    def fetch(self, address: str, want: Manifest, store: SnapshotStore) -> None:
        channel, call = self._call(address, manifest_only=False)
        watchdog = Watchdog(FETCH_IDLE_S, call.cancel)  # type: ignore[attr-defined]
        try:
            with channel:
                chunks = iter(call)  # type: ignore[call-overload]
                head = next(chunks, None)
                if head is None:
                    raise SnapshotError(f"{address} sent no manifest")
                got = Manifest.decode(head.data)
                self._check(address, call)
                if got != want:
                    raise SnapshotError(f"{address} now keeps another snapshot (event {got.event})")

                def parts():  # type: ignore[no-untyped-def]
                    for chunk in chunks:
                        watchdog.pet()
                        yield chunk.name, chunk.offset, chunk.data

                store.receive(want, parts())
        finally:
            watchdog.stop()

    def _check(self, address: str, call: object) -> None:
        said = dict(call.initial_metadata())  # type: ignore[attr-defined]
        stranger = self._me.mismatch(str(said.get("seguro-ship", "")), str(said.get("seguro-genesis", "")))
        if stranger:
            raise PeerMismatch(f"{address} answers for another ship: {stranger}")


class KeptSnapshots:
    """This node's side of snapshot exchange: at start, an empty log is filled from a peer's snapshot;
    after each runtime snapshot (on the runtime thread), a copy is kept to serve peers and chop by."""

    def __init__(self, cfg: NodeConfig, eventlog: EventLog, how: Launch) -> None:
        self.store = SnapshotStore(cfg.data_dir)
        self._eventlog, self._launch, self._pier = eventlog, how, cfg.data_dir / "pier"
        started = None
        if not cfg.log_only and not cfg.follow_pier:
            started = bootstrap(
                list(cfg.etcd), (cfg.ship, cfg.node_id), eventlog, self.store, how.snapshot_format,
                self._pier, how.snapshot_files(self._pier), cfg.max_event_bytes,
            )  # fmt: skip
        self.bootstrapped = started.to_dict() if started is not None else None
        genesis = eventlog.meta().get("genesis")
        newest = self.store.newest(genesis) if genesis else None
        self.event = newest[0].event if newest is not None else 0  # what status shows and chop reads

    def keep(self, event: int, mug: int) -> None:
        """The runtime saved a snapshot at committed `event`: copy it (a failure is logged; the runtime's
        own snapshot is unaffected)."""
        if not self._launch.snapshot_format:
            return
        genesis = str(self._eventlog.meta().get("genesis") or "")
        files = self._launch.snapshot_files(self._pier)
        try:
            self.event = self.store.keep(event, mug, self._launch.snapshot_format, files, genesis).event
        except OSError as e:
            log.error("could not keep the snapshot for peers", extra={"event": event, "error": str(e)})

    def chunks(self, genesis: str, manifest_only: bool) -> Iterator[tuple[Manifest, str, int, bytes]]:
        return self.store.chunks(genesis, manifest_only)
