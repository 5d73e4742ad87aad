"""Seguro's etcd adapter: leases, master election with a fencing token, and fenced log appends.

The keys and what each holds: `seguro.node.etcd.schema.Keys`.

Safety never rests on leases (a lease can outlive its TTL): every master write is one Txn that compares the
master key's create_revision with the writer's epoch. An ambiguous failure (timeout after the server applied
the write) is retried, so writes are made idempotent: an append whose exact batch is already at `log/<first>`
and a campaign whose own value already holds `master` both report success.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import pyetcd
from pyetcd import etcdrpc
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

from seguro.invariant import require
from seguro.node import tls
from seguro.node.etcd.schema import (  # noqa: F401 - re-exported: the etcd layer's public names
    CHUNK_BYTES,
    GRPC_MAX_RECEIVE_BYTES,
    MAX_CHUNKED_RECORDS,
    MAX_REQUEST_BYTES,
    MIN_LEASE_TTL_S,
    READ_PAGE_BATCHES,
    READ_PAGE_CHUNKS,
    SPACE_EXCEEDED,
    SPACE_HELP,
    AppendResult,
    CoordinationError,
    CoordinationUnavailable,
    EtcdSpaceExceeded,
    FenceLost,
    Genesis,
    Keys,
    LeaseLost,
    LogTrimmed,
    MasterInfo,
    OnMasterChange,
    ShipExists,
    check_name,
    decode_master,
    describe,
    encode_batch,
    encode_master,
    head_compares,
    head_value,
    is_transient,
    keys_for,
    parse_endpoints,
    parse_head,
    split_chunks,
    token_error,
    token_metadata,
    unconfirmed_renewal,
)
from seguro.node.etcd.sealing import Keyring, open_record, seal_record
from seguro.node.etcd.watch import MasterWatch
from seguro.proto.seguro.v1 import replication_pb2 as pb

log = logging.getLogger(__name__)

# ---- imperative shell -------------------------------------------------------------------------------------


def etcd_client(endpoints: list[str] | str, timeout_s: float) -> pyetcd.MultiEndpointEtcd3Client:
    """The pyetcd client Seguro uses: every endpoint, failover on, and a 1 s wait before a failed endpoint
    is tried again (pyetcd's default of 300 s leaves a one-endpoint client dead after any blip)."""
    opts = [("grpc.max_receive_message_length", GRPC_MAX_RECEIVE_BYTES)]
    files = tls.current()  # mutual TLS with the process's files (etcd: --client-cert-auth)
    creds = files.channel_credentials() if files is not None else None
    eps = [
        pyetcd.Endpoint(h, p, secure=files is not None, creds=creds, time_retry=1.0, opts=opts)
        for h, p in parse_endpoints(endpoints, secure=files is not None)
    ]
    return pyetcd.MultiEndpointEtcd3Client(eps, timeout=timeout_s, failover=True)


class Coordinator:
    """One ship's coordination state in etcd. Thread-safe enough to share between a keepalive thread and an
    append thread (gRPC stubs are thread-safe; calls are not serialized)."""

    def __init__(
        self, endpoints: list[str] | str, ship: str, timeout_s: float = 2.0, retry_budget_s: float = 6.0,
        keyring: Keyring | None = None,
    ) -> None:  # fmt: skip
        self.ship = ship
        self.keyring = keyring  # events are sealed in etcd under it (sealing.py); None: plaintext
        self.keys = keys_for(ship)
        self.timeout_s = timeout_s
        self.retry_budget_s = retry_budget_s
        self._netlocs = [f"{h}:{p}" for h, p in parse_endpoints(endpoints, secure=tls.current() is not None)]
        self._client = etcd_client(endpoints, timeout_s)
        self._t = self._client.transactions
        self._watches: list[MasterWatch] = []
        self._login = tls.current_login()  # an etcd user: its token rides on every call (pyetcd metadata)

    def close(self) -> None:
        """Cancel this coordinator's watches and close its channels."""
        for watch in self._watches:
            watch.cancel()
        self._client.close()

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- retries ----

    def _call(self, what: str, fn: Callable[..., Any], *args: object, **kwargs: object) -> Any:
        """Run one etcd call with bounded retries on transient errors; map failures to Seguro's errors."""
        started = time.monotonic()
        attempts = 0
        retrying = Retrying(
            stop=stop_after_delay(self.retry_budget_s) | stop_after_attempt(200),
            wait=wait_exponential(multiplier=0.05, max=0.5),
            retry=retry_if_exception(lambda e: is_transient(e) or self._token_rejected(e)),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    if self._login is not None and self._client.metadata is None:
                        self._log_in()
                    return fn(*args, **kwargs)
        except Exception as e:
            if is_transient(e):
                raise CoordinationUnavailable(
                    f"etcd unreachable for {what} (ship {self.ship}, endpoints {','.join(self._netlocs)}): "
                    f"{attempts} attempts in {time.monotonic() - started:.1f} s, last error {describe(e)}"
                ) from e
            if isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.NOT_FOUND:
                raise LeaseLost(f"{what}: {describe(e)}") from e
            if isinstance(e, grpc.RpcError) and SPACE_EXCEEDED in (e.details() or ""):
                raise EtcdSpaceExceeded(f"etcd refused {what} (ship {self.ship}): {SPACE_HELP}") from e
            if isinstance(e, grpc.RpcError):
                raise CoordinationError(f"etcd refused {what} (ship {self.ship}): {describe(e)}") from e
            raise

    def _log_in(self) -> None:
        """A token for the process's etcd user from the current endpoint. A dead endpoint is marked failed
        as pyetcd does for its own calls (its private hook), so the retry logs in through another."""
        if self._login is None:
            return
        try:
            self._client.metadata = token_metadata(self._client.authstub, self._login, self.timeout_s)
        except grpc.RpcError as e:
            self._client._manage_grpc_errors(e)

    def _token_rejected(self, e: BaseException) -> bool:
        """etcd no longer takes our token (it expired, or the endpoint changed: simple tokens are kept by
        the member that issued them): forget it, so the retry logs in again. False without a login."""
        if self._login is None or not isinstance(e, grpc.RpcError) or not token_error(e):
            return False
        self._client.metadata = None
        return True

    def _txn(self, what: str, compare: list, success: list, failure: list) -> tuple[bool, list]:
        return self._call(what, self._client.transaction, compare=compare, success=success, failure=failure)

    # ---- leases ----

    def grant_lease(self, ttl_s: int) -> int:
        if ttl_s < MIN_LEASE_TTL_S:
            raise ValueError(f"lease TTL must be >= {MIN_LEASE_TTL_S} s (etcd's minimum), got {ttl_s}")
        return self._call("grant_lease", self._client.lease, ttl_s).id

    def keepalive(self, lease_id: int) -> int:
        """Refresh the lease and confirm it with a quorum read (`unconfirmed_renewal` says why); its TTL.
        LeaseLost when it is gone; CoordinationUnavailable when the renewal is not confirmed."""
        replies = self._call("keepalive", lambda: list(self._client.refresh_lease(lease_id)))
        ttl_s = replies[0].TTL if replies else 0
        if ttl_s <= 0:
            raise LeaseLost(f"lease {lease_id:x} is gone (expired or revoked)")
        try:
            read = self._call("keepalive check", self._client.get_response, self.keys.master, count_only=True)
        except CoordinationError:
            if self._login is None or self._client.metadata is not None:
                raise
            # etcd dropped our token (keepalives carry none it checks): log in and read again. A later
            # read confirms the renewal just as well, as long as member and term are unchanged.
            read = self._call("keepalive check", self._client.get_response, self.keys.master, count_only=True)
        if doubt := unconfirmed_renewal(replies[0].header, read.header):
            raise CoordinationUnavailable(f"keepalive of lease {lease_id:x} not confirmed: {doubt}")
        return ttl_s

    def revoke(self, lease_id: int) -> None:
        with contextlib.suppress(LeaseLost):  # already gone: revoking is idempotent
            self._call("revoke", self._client.revoke_lease, lease_id)

    # ---- genesis ----

    def create_genesis(self, genesis: Genesis, records: Sequence[bytes]) -> None:
        """Bring the ship's log into being: the genesis record and its first batch (epoch 0, no master yet)
        in one Txn that fails if the ship has a genesis or a log. ShipExists names what is there."""
        if not records:
            raise ValueError("a ship's first batch cannot be empty")
        k, t = self.keys, self._t
        first, last = genesis.first_event, genesis.first_event + len(records) - 1
        wire = [seal_record(self.keyring, self.ship, 0, first + i, r) for i, r in enumerate(records)]
        value = encode_batch(0, first - 1, pb.Batch(epoch=0, first_event=first, records=wire))
        compare = [t.version(k.genesis) == 0, t.version(k.head) == 0]
        success = [
            t.put(k.genesis, genesis.encode()), t.put(k.log(first), value), t.put(k.head, head_value(last, 0))
        ]  # fmt: skip
        ok, replies = self._txn("create_genesis", compare, success, [t.get(k.genesis), t.get(k.head)])
        if ok:
            return
        found, heads = replies
        if found and found[0][0] == genesis.encode():
            return  # our own retried attempt had landed
        if found:
            raise ShipExists(f"ship {self.ship} already exists (genesis {Genesis.decode(found[0][0]).id})")
        raise ShipExists(f"etcd already holds a log for ship {self.ship} (head {parse_head(heads[0][0])[0]}) "
                         "with no genesis record")  # fmt: skip

    def seal_genesis(self, genesis: Genesis, head: int) -> None:
        """Write the genesis of a log imported batch by batch (each batch appended at epoch 0: no master),
        once its last batch is in: nodes wait for the genesis, so none serves a half-imported log."""
        k, t = self.keys, self._t
        compare = [t.version(k.genesis) == 0, t.create(k.master) == 0, *head_compares(t, k.head, head)]
        value = genesis.encode()
        ok, replies = self._txn("seal_genesis", compare, [t.put(k.genesis, value)], [t.get(k.genesis)])
        if not ok and not (replies[0] and replies[0][0][0] == value):  # not our own retry, landed
            raise ShipExists(f"ship {self.ship} changed during the import (a genesis, a master, more events)")

    def genesis(self) -> Genesis | None:
        """The ship's genesis record; None when the ship has not been created in this etcd."""
        return self.genesis_at()[0]

    def genesis_at(self) -> tuple[Genesis | None, int]:
        """The ship's genesis record (None: not created) and the etcd revision it was read at."""
        reply = self._call("genesis", self._client.get_response, self.keys.genesis)
        value = reply.kvs[0].value if reply.kvs else None
        return (None if value is None else Genesis.decode(value)), reply.header.revision

    # ---- master election ----

    def campaign(self, node_id: str, lease_id: int, info: dict, genesis: Genesis) -> MasterInfo | None:
        """Become master iff nobody is and the ship's genesis is still `genesis` (a wiped or re-created ship
        elects no one of the old one); the key's create_revision is the epoch. None when another holds it."""
        check_name("node_id", node_id)
        value = encode_master(node_id, info)
        k, t = self.keys.master, self._t
        compare = [t.create(k) == 0, t.value(self.keys.genesis) == genesis.encode()]
        won, replies = self._txn("campaign", compare, [t.put(k, value, lease=lease_id), t.get(k)], [t.get(k)])
        kvs = replies[-1]
        if not won and not kvs:
            raise CoordinationError(f"campaign refused: ship {self.ship}'s genesis is not {genesis.id}")
        require(len(kvs) == 1, "master key absent inside the campaign Txn", ship=self.ship, won=won)
        held, meta = kvs[0]
        if won or (meta.lease_id == lease_id and held == value):  # the latter: a retried, applied attempt
            return decode_master(held, meta.create_revision, meta.lease_id)
        return None

    def master(self) -> MasterInfo | None:
        value, meta = self._call("master", self._client.get, self.keys.master)
        if meta is None:
            return None
        ttl_s = None
        if meta.lease_id:
            lease = self._call("master lease", self._client.get_lease_info, meta.lease_id)
            ttl_s = lease.TTL if lease.TTL >= 0 else None
        return decode_master(value, meta.create_revision, meta.lease_id, ttl_s)

    def resign(self, epoch: int) -> bool:
        """Delete `master` only if it is still ours (create_revision == epoch). True when deleted."""
        k, t = self.keys.master, self._t
        done, _ = self._txn("resign", [t.create(k) == epoch], [t.delete(k)], [])
        return done

    def watch_master(self, on_change: OnMasterChange, poll_interval_s: float = 1.0) -> MasterWatch:
        """Call on_change(holder or None, revision) now and on every change, from a background thread.

        `revision` is the etcd revision the state was observed at (strictly increasing across calls)."""
        watch = MasterWatch(self._netlocs, self.keys.master, on_change, self.timeout_s, poll_interval_s)
        self._watches.append(watch)
        return watch

    # ---- the log ----

    def head(self) -> tuple[int, int]:
        """(last committed event, epoch that wrote it); (0, 0) for an empty log."""
        value, _ = self._call("head", self._client.get, self.keys.head)
        return parse_head(value)

    def append(self, epoch: int, expected_head: int, batch: pb.Batch) -> AppendResult:
        """Commit `batch` iff `master` still carries `epoch` and `head` is `expected_head`: one Txn."""
        value = encode_batch(epoch, expected_head, batch)
        k, t = self.keys, self._t
        first, last = batch.first_event, batch.first_event + len(batch.records) - 1
        compare = [t.create(k.master) == epoch, *head_compares(t, k.head, expected_head)]
        compare += [t.version(k.chunk(r.event, r.chunks - 1)) > 0 for r in batch.records if r.chunks]
        success = [t.put(k.log(first), value), t.put(k.head, head_value(last, epoch))]
        failure = [t.get(k.master), t.get(k.head), t.get(k.log(first))]
        ok, replies = self._txn("append", compare, success, failure)
        if ok:
            return AppendResult(True, False, last, epoch, epoch)
        masters, heads, logs = replies
        head_event, head_epoch = parse_head(heads[0][0] if heads else None)
        master_epoch = masters[0][1].create_revision if masters else 0
        if logs and logs[0][0] == value:  # an earlier attempt was applied before its reply was lost
            return AppendResult(True, False, last, epoch, master_epoch, duplicate=True)
        if master_epoch != epoch:
            return AppendResult(False, True, head_event, head_epoch, master_epoch)
        if head_event != expected_head:
            return AppendResult(False, False, head_event, head_epoch, master_epoch)
        raise ValueError(
            f"append of events {first}..{last}: a chunked record's chunks are missing (put_chunks)"
        )

    def append_records(self, epoch: int, expected_head: int, records: Sequence[bytes]) -> AppendResult:
        """Commit `records` as events expected_head+1.. under `epoch`: one record larger than a chunk is
        first written as fenced chunks, and the batch references it (FenceLost if the fence goes)."""
        first = expected_head + 1
        wire = []
        for event, data in enumerate(records, start=first):
            record = seal_record(self.keyring, self.ship, epoch, event, data)
            if len(record.data) > CHUNK_BYTES:
                chunks = self.put_chunks(epoch, event, record.data)
                wire.append(pb.Record(event=event, chunks=chunks, size=len(record.data), key=record.key))
            else:
                wire.append(record)
        return self.append(epoch, expected_head, pb.Batch(epoch=epoch, first_event=first, records=wire))

    def put_chunks(self, epoch: int, event: int, data: bytes) -> int:
        """Store `data` as chunk keys of `event`, each Txn fenced by `epoch`; returns the number of chunks."""
        pieces = split_chunks(data)
        k, t = self.keys, self._t
        for i, piece in enumerate(pieces):
            ops = [t.put(k.chunk(event, i), piece)]
            if i == 0:  # drop leftovers of a deposed master's attempt at this event (beyond our last chunk)
                ops.append(t.delete(k.chunk(event, len(pieces)), f"{k.prefix}chunk/{event:020d}0"))
            ok, _ = self._txn("put_chunks", [t.create(k.master) == epoch], ops, [])
            if not ok:
                raise FenceLost(f"put_chunks event {event}: master no longer has epoch {epoch}")
        return len(pieces)

    def read_batches(self, from_event: int, to_event: int | None = None) -> Iterator[pb.Batch]:
        """Committed batches covering events >= from_event (the first may start earlier), in order, read at
        one revision, chunked records reassembled. LogTrimmed when etcd no longer holds from_event."""
        from_event = max(from_event, 1)
        start, revision = self._locate(from_event)
        if start is None:
            return
        end = self.keys.log(to_event + 1) if to_event is not None else self.keys.prefix + "log0"
        expected_first = None
        while True:
            page = self._call(
                "read_batches",
                self._client.get_range_response,
                start,
                end,
                limit=READ_PAGE_BATCHES,
                revision=revision,
            )
            for kv in page.kvs:
                batch = pb.Batch.FromString(kv.value)
                require(expected_first in (None, batch.first_event), "gap in etcd log", at=expected_first)
                expected_first = batch.first_event + len(batch.records)
                if expected_first > from_event:  # the floor batch may end before from_event
                    yield self._reassemble(batch, revision)
            if not page.more or not page.kvs:
                return
            start = page.kvs[-1].key + b"\0"

    def _locate(self, from_event: int) -> tuple[str | None, int]:
        """Key of the batch holding from_event (None when from_event > head) and the revision to read at."""
        k = self.keys
        floor = self._call(
            "read_batches", self._client.get_range_response, k.prefix + "log/", k.log(from_event) + "\0",
            sort_order="descend", limit=1, keys_only=True,
        )  # fmt: skip
        revision = floor.header.revision
        if floor.kvs:
            return floor.kvs[0].key.decode(), revision
        head_raw = self._call("read_batches", self._client.get_response, k.head, revision=revision)
        head_event, _ = parse_head(head_raw.kvs[0].value if head_raw.kvs else None)
        if head_event < from_event:
            return None, revision
        after = self._call(
            "read_batches", self._client.get_range_response, k.log(from_event), k.prefix + "log0",
            limit=1, keys_only=True, revision=revision,
        )  # fmt: skip
        first = int(after.kvs[0].key.decode().rsplit("/", 1)[1]) if after.kvs else head_event + 1
        raise LogTrimmed(f"events {from_event}..{first - 1} were trimmed from etcd", first)

    def _reassemble(self, batch: pb.Batch, revision: int) -> pb.Batch:
        for r in batch.records:
            if r.chunks:
                r.data = self._read_chunks(r.event, r.chunks, revision)
                require(len(r.data) == r.size, "chunked event has wrong size", event=r.event, size=r.size)
                r.chunks, r.size = 0, 0
            open_record(self.keyring, self.ship, batch.epoch, r)
        return batch

    def _read_chunks(self, event: int, count: int, revision: int) -> bytes:
        parts: list[bytes] = []
        while len(parts) < count:
            page = self._call(
                "read chunks", self._client.get_range_response, self.keys.chunk(event, len(parts)),
                self.keys.chunk(event, count), limit=READ_PAGE_CHUNKS, revision=revision,
            )  # fmt: skip
            require(len(page.kvs) > 0, "chunk missing from a committed event", event=event, chunk=len(parts))
            parts += [kv.value for kv in page.kvs]
        return b"".join(parts)

    def trim(self, epoch: int | None, before_event: int) -> int:
        """Delete batches (and chunks) wholly below before_event, fenced by epoch; returns batches deleted.
        epoch None: unfenced, for an operator reclaiming space (old batches are immutable: deleting them
        races with nothing a master does but its own trims, which delete the same keys)."""
        k, t = self.keys, self._t
        last = self._call(
            "trim", self._client.get_range_response, k.prefix + "log/", k.log(before_event),
            sort_order="descend", limit=1,
        )  # fmt: skip
        if not last.kvs:
            return 0
        batch = pb.Batch.FromString(last.kvs[0].value)
        end = batch.first_event + len(batch.records) - 1
        keep_from = end + 1 if end < before_event else batch.first_event
        ops = [
            t.delete(k.prefix + "log/", k.log(keep_from)),
            t.delete(k.prefix + "chunk/", f"{k.prefix}chunk/{keep_from:020d}"),
        ]
        fence = [] if epoch is None else [t.create(k.master) == epoch]
        ok, replies = self._txn("trim", fence, ops, [])
        if not ok:
            raise FenceLost(f"trim below {before_event}: master no longer has epoch {epoch}")
        return replies[0].response_delete_range.deleted

    def revision(self) -> int:
        """etcd's current store revision."""
        return self._call("revision", self._client.get_response, self.keys.head).header.revision

    def compact(self, revision: int) -> int:
        """Compact etcd's history up to `revision` (frees what trim deleted); returns it. Reads pinned to an
        older revision (a catch-up paging through batches) fail after this: pass a revision old enough."""
        try:
            self._call("compact", self._client.compact, revision)
        except CoordinationError as e:
            if "compacted" not in str(e):
                raise
        return revision

    # ---- replicas ----

    def put_replica(self, node_id: str, status: dict, lease_id: int | None = None) -> None:
        """Publish a replica's status (updated_at added when missing); attach it to lease_id if given."""
        check_name("node_id", node_id)
        value = json.dumps({"updated_at": time.time(), **status}, sort_keys=True)
        self._call("put_replica", self._client.put, self.keys.replica(node_id), value, lease=lease_id)

    def delete_replica(self, node_id: str) -> bool:
        """Remove a replica's published status (a decommissioned replica); True when there was one."""
        check_name("node_id", node_id)
        return bool(self._call("delete_replica", self._client.delete, self.keys.replica(node_id)))

    def replicas(self) -> dict[str, dict]:
        prefix = self.keys.prefix + "replica/"
        found = self._call("replicas", lambda: list(self._client.get_prefix(prefix)))
        return {meta.key.decode()[len(prefix) :]: json.loads(value) for value, meta in found}

    def controls(self) -> dict[str, dict]:
        """The operators' controls that are set (`control/<name>`: JSON)."""
        prefix = self.keys.prefix + "control/"
        found = self._call("controls", lambda: list(self._client.get_prefix(prefix)))
        return {meta.key.decode()[len(prefix) :]: json.loads(value) for value, meta in found}

    def put_control(self, name: str, value: dict, lease_id: int | None = None) -> None:
        key = self.keys.control(name)
        self._call("put_control", self._client.put, key, json.dumps(value), lease=lease_id)

    def delete_control(self, name: str) -> bool:
        return bool(self._call("delete_control", self._client.delete, self.keys.control(name)))

    # ---- maintenance ----

    def disarm_space_alarms(self) -> None:
        """Disarm NOSPACE on every member that raised it (once space was freed: a still-full etcd raises it
        again at the next write). Other alarms (CORRUPT) are left for an operator."""
        for alarm in self._call("alarms", lambda: list(self._client.list_alarms())):
            if alarm.alarm_type == etcdrpc.NOSPACE:
                self._call("disarm", self._client.disarm_alarm, alarm.member_id)

    def alarms(self) -> list[str]:
        """etcd's active alarms, as 'NOSPACE on member <id>' (empty when none)."""
        found = self._call("alarms", lambda: list(self._client.list_alarms()))
        return [f"{etcdrpc.AlarmType.Name(a.alarm_type)} on member {a.member_id:x}" for a in found]
