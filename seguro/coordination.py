"""Seguro's etcd adapter: leases, master election with a fencing token, and fenced log appends.

Key layout under `/seguro/<ship>/`:

- `master`: JSON {"id": node_id, ...info}, attached to the holder's lease. Its create_revision is the
  master's epoch, the fencing token that every master write compares.
- `head`: "<last committed event>:<epoch that wrote it>", decimal ASCII; absent means event 0.
- `log/<first_event:020d>`: one committed pb.Batch (serialized), put in the same Txn that moves `head`.
- `chunk/<event:020d>/<i:06d>`: piece i of an event too large for one request; its record in the batch
  carries chunks=N, size=len(data), data=b"".
- `replica/<id>`: JSON status a replica publishes (durable_event, applied_event, role, grpc, udp, updated_at).

Safety never rests on leases (a lease can outlive its TTL): every master write is one Txn that compares the
master key's create_revision with the writer's epoch. An ambiguous failure (timeout after the server applied
the write) is retried, so writes are made idempotent: an append whose exact batch is already at `log/<first>`
and a campaign whose own value already holds `master` both report success.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
import pyetcd
from pyetcd import etcdrpc
from pyetcd import exceptions as etcd_errors
from pyetcd.etcdrpc import kv_pb2
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

from seguro.invariant import require
from seguro.proto.seguro.v1 import replication_pb2 as pb

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1_468_006  # 1.4 MiB of payload; etcd refuses requests over 1.5 MiB by default
CHUNK_BYTES = 1 << 20
MAX_CHUNKED_RECORDS = 100  # one compare each; etcd allows 128 per Txn
READ_PAGE_BATCHES = 16
READ_PAGE_CHUNKS = 8
GRPC_MAX_RECEIVE_BYTES = 64 << 20
MIN_LEASE_TTL_S = 2


class CoordinationError(RuntimeError):
    """etcd answered, but not as Seguro needs (refused request, compacted revision, ...)."""


class CoordinationUnavailable(CoordinationError):
    """etcd could not be reached within the retry budget."""


class LeaseLost(CoordinationError):
    """The lease expired or was revoked; anything attached to it is gone."""


class FenceLost(CoordinationError):
    """The master key no longer carries the writer's epoch: another master may be writing."""


class LogTrimmed(CoordinationError):
    """The wanted events were trimmed from etcd; fetch them from a peer's local log."""

    def __init__(self, message: str, first_available_event: int) -> None:
        super().__init__(message)
        self.first_available_event = first_available_event


@dataclass(frozen=True)
class MasterInfo:
    node_id: str
    epoch: int
    lease_id: int
    info: dict
    ttl_remaining_s: int | None = None


OnMasterChange = Callable[[MasterInfo | None, int], None]


@dataclass(frozen=True)
class AppendResult:
    """ok: committed (duplicate: found already committed by an earlier attempt). Otherwise fence_lost, or the
    head moved and head_event/head_epoch say where it is. master_epoch is 0 when nobody holds `master`."""

    ok: bool
    fence_lost: bool
    head_event: int
    head_epoch: int
    master_epoch: int
    duplicate: bool = False

    @property
    def head_moved(self) -> bool:
        return not self.ok and not self.fence_lost


# ---- functional core --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    prefix: str

    @property
    def master(self) -> str:
        return self.prefix + "master"

    @property
    def head(self) -> str:
        return self.prefix + "head"

    def log(self, first_event: int) -> str:
        return f"{self.prefix}log/{first_event:020d}"

    def chunk(self, event: int, i: int) -> str:
        return f"{self.prefix}chunk/{event:020d}/{i:06d}"

    def replica(self, node_id: str) -> str:
        return self.prefix + "replica/" + node_id


def keys_for(ship: str) -> Keys:
    check_name("ship", ship)
    return Keys(f"/seguro/{ship}/")


def check_name(what: str, name: str) -> None:
    if not name or "/" in name or not name.isprintable():
        raise ValueError(f"{what} must be a non-empty printable name without '/', got {name!r}")


def parse_endpoints(endpoints: list[str] | str) -> list[tuple[str, int]]:
    """'http://h:p,h2:p2' or a list of such -> [(host, port)]."""
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    parsed = []
    for item in (i.strip() for i in items if i.strip()):
        url = urlsplit(item if "://" in item else f"http://{item}")
        if not url.hostname or not url.port:
            raise ValueError(f"etcd endpoint needs host:port, got {item!r}")
        parsed.append((url.hostname, url.port))
    if not parsed:
        raise ValueError("no etcd endpoints given")
    return parsed


def head_value(event: int, epoch: int) -> str:
    return f"{event}:{epoch}"


def parse_head(value: bytes | None) -> tuple[int, int]:
    if not value:
        return 0, 0
    event, epoch = value.decode().split(":")
    return int(event), int(epoch)


def head_compares(txns: pyetcd.Transactions, key: str, expected: int) -> list:
    """`head` holds exactly `expected`. The epoch suffix is unknown to the caller, so compare a value range:
    ':' and ';' sort above every digit, so only "<expected>:..." lies strictly between the two bounds."""
    if expected == 0:
        return [txns.version(key) == 0]
    return [txns.value(key) > f"{expected}:", txns.value(key) < f"{expected};"]


def encode_master(node_id: str, info: dict) -> bytes:
    if info.get("id", node_id) != node_id:
        raise ValueError(f"info id {info['id']!r} differs from node_id {node_id!r}")
    return json.dumps({**info, "id": node_id}, sort_keys=True).encode()


def decode_master(value: bytes, create_revision: int, lease_id: int, ttl_s: int | None = None) -> MasterInfo:
    info = json.loads(value)
    node_id = info.pop("id")
    return MasterInfo(node_id, create_revision, lease_id, info, ttl_s)


def encode_batch(epoch: int, expected_head: int, batch: pb.Batch) -> bytes:
    """Validate a batch for append and serialize it; ValueError names what is wrong."""
    if batch.epoch != epoch:
        raise ValueError(f"batch.epoch {batch.epoch} != epoch {epoch}")
    if batch.first_event != expected_head + 1:
        raise ValueError(f"batch.first_event {batch.first_event} != expected_head + 1 = {expected_head + 1}")
    if not batch.records:
        raise ValueError("empty batch")
    for i, r in enumerate(batch.records):
        if r.event != batch.first_event + i:
            raise ValueError(f"record {i} has event {r.event}, expected {batch.first_event + i}")
        if r.chunks and r.data:
            raise ValueError(f"chunked record {r.event} must carry data=b''")
    if sum(1 for r in batch.records if r.chunks) > MAX_CHUNKED_RECORDS:
        raise ValueError(f"more than {MAX_CHUNKED_RECORDS} chunked records in one batch")
    value = batch.SerializeToString()
    if len(value) > MAX_REQUEST_BYTES:
        raise ValueError(
            f"batch is {len(value)} bytes > MAX_REQUEST_BYTES {MAX_REQUEST_BYTES}: chunk or split it"
        )
    return value


def split_chunks(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> list[bytes]:
    return [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]


def is_transient(e: BaseException) -> bool:
    transient = (
        etcd_errors.ConnectionFailedError,
        etcd_errors.ConnectionTimeoutError,
        etcd_errors.NoServerAvailableError,
        etcd_errors.InternalServerError,
    )
    if isinstance(e, transient):
        return True
    codes = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    return isinstance(e, grpc.RpcError) and e.code() in codes


def describe(e: BaseException) -> str:
    if isinstance(e, grpc.RpcError):
        return f"{e.code().name}: {e.details()}"
    return f"{type(e).__name__}: {e}"


# ---- imperative shell -------------------------------------------------------------------------------------


class Coordinator:
    """One ship's coordination state in etcd. Thread-safe enough to share between a keepalive thread and an
    append thread (gRPC stubs are thread-safe; calls are not serialized)."""

    def __init__(
        self, endpoints: list[str] | str, ship: str, timeout_s: float = 2.0, retry_budget_s: float = 6.0
    ) -> None:
        self.ship = ship
        self.keys = keys_for(ship)
        self.timeout_s = timeout_s
        self.retry_budget_s = retry_budget_s
        self._netlocs = [f"{h}:{p}" for h, p in parse_endpoints(endpoints)]
        opts = [("grpc.max_receive_message_length", GRPC_MAX_RECEIVE_BYTES)]
        eps = [
            pyetcd.Endpoint(h, p, secure=False, time_retry=1.0, opts=opts)
            for h, p in parse_endpoints(endpoints)
        ]
        self._client = pyetcd.MultiEndpointEtcd3Client(eps, timeout=timeout_s, failover=True)
        self._t = self._client.transactions
        self._watches: list[MasterWatch] = []

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
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    return fn(*args, **kwargs)
        except Exception as e:
            if is_transient(e):
                raise CoordinationUnavailable(
                    f"etcd unreachable for {what} (ship {self.ship}, endpoints {','.join(self._netlocs)}): "
                    f"{attempts} attempts in {time.monotonic() - started:.1f} s, last error {describe(e)}"
                ) from e
            if isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.NOT_FOUND:
                raise LeaseLost(f"{what}: {describe(e)}") from e
            if isinstance(e, grpc.RpcError):
                raise CoordinationError(f"etcd refused {what} (ship {self.ship}): {describe(e)}") from e
            raise

    def _txn(self, what: str, compare: list, success: list, failure: list) -> tuple[bool, list]:
        return self._call(what, self._client.transaction, compare=compare, success=success, failure=failure)

    # ---- leases ----

    def grant_lease(self, ttl_s: int) -> int:
        if ttl_s < MIN_LEASE_TTL_S:
            raise ValueError(f"lease TTL must be >= {MIN_LEASE_TTL_S} s (etcd's minimum), got {ttl_s}")
        return self._call("grant_lease", self._client.lease, ttl_s).id

    def keepalive(self, lease_id: int) -> int:
        """Refresh the lease; return its remaining TTL in seconds. LeaseLost when it is gone."""
        replies = self._call("keepalive", lambda: list(self._client.refresh_lease(lease_id)))
        ttl_s = replies[0].TTL if replies else 0
        if ttl_s <= 0:
            raise LeaseLost(f"lease {lease_id:x} is gone (expired or revoked)")
        return ttl_s

    def revoke(self, lease_id: int) -> None:
        with contextlib.suppress(LeaseLost):  # already gone: revoking is idempotent
            self._call("revoke", self._client.revoke_lease, lease_id)

    # ---- master election ----

    def campaign(self, node_id: str, lease_id: int, info: dict) -> MasterInfo | None:
        """Become master iff nobody is; the key's create_revision is the epoch. None when another holds it."""
        check_name("node_id", node_id)
        value = encode_master(node_id, info)
        k, t = self.keys.master, self._t
        won, replies = self._txn(
            "campaign", [t.create(k) == 0], [t.put(k, value, lease=lease_id), t.get(k)], [t.get(k)]
        )
        kvs = replies[-1]
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

    def trim(self, epoch: int, before_event: int) -> int:
        """Delete batches (and chunks) wholly below before_event, fenced by epoch; returns batches deleted."""
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
        ok, replies = self._txn("trim", [t.create(k.master) == epoch], ops, [])
        if not ok:
            raise FenceLost(f"trim below {before_event}: master no longer has epoch {epoch}")
        return replies[0].response_delete_range.deleted

    def compact(self) -> int:
        """Compact etcd's history up to the current revision (frees space after trim); returns it."""
        revision = self._call("compact", self._client.get_response, self.keys.head).header.revision
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

    def replicas(self) -> dict[str, dict]:
        prefix = self.keys.prefix + "replica/"
        found = self._call("replicas", lambda: list(self._client.get_prefix(prefix)))
        return {meta.key.decode()[len(prefix) :]: json.loads(value) for value, meta in found}


# ---- master watch -----------------------------------------------------------------------------------------


class MasterWatch:
    """Watches `master` from a background thread, on its own channels, one endpoint at a time.

    pyetcd never re-creates a watch, and a watch on a hung (SIGSTOPped) or minority member stays silent. So a
    stream error, or a read with a deadline (made after `poll_interval_s` without news) that fails or twice
    shows a change the stream did not bring, moves to the next endpoint after a bounded backoff and re-watches
    from the revision after the last delivered change: missed changes are replayed, in revision order, each
    delivered once. Only when that history is compacted does the watch jump to the present state.
    """

    def __init__(
        self,
        netlocs: list[str],
        key: str,
        on_change: OnMasterChange,
        timeout_s: float,
        poll_interval_s: float = 1.0,
        max_backoff_s: float = 1.0,
    ) -> None:
        self._netlocs = netlocs
        self._key = key.encode()
        self._on_change = on_change
        self._timeout_s = timeout_s
        self._poll_interval_s = poll_interval_s
        self._max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._stream: grpc.Future | None = None
        self._revision = 0  # every change up to this revision is delivered
        self._state: tuple[int, int] | None = None  # _state_of() the key as last delivered
        self.endpoint = netlocs[0]
        self.sessions = 0
        self._thread = threading.Thread(target=self._run, name=f"seguro-watch-{key}", daemon=True)
        self._thread.start()

    def cancel(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        backoff_s, index = 0.05, 0
        while not self._stop.is_set():
            self.endpoint = self._netlocs[index % len(self._netlocs)]
            self.sessions += 1
            started = time.monotonic()
            try:
                self._session(self.endpoint)
            except Exception as e:  # any failure of this endpoint: move on to the next
                if not self._stop.is_set():
                    log.info("master watch via %s ended: %s", self.endpoint, describe(e))
            if time.monotonic() - started > 3 * self._poll_interval_s:
                backoff_s = 0.05  # that session was healthy for a while: this is a fresh failure
            index += 1
            self._stop.wait(backoff_s)
            backoff_s = min(backoff_s * 2, self._max_backoff_s)

    def _session(self, netloc: str) -> None:
        """Watch from the revision after the last delivered one (replaying what was missed); when quiet,
        re-read the key and give up on the stream if it twice misses a change. Returns when broken."""
        with grpc.insecure_channel(netloc) as channel:
            kv = etcdrpc.KVStub(channel)
            if self._state is None:
                self._sync(kv)  # the first call of on_change: the holder now
            create = etcdrpc.WatchCreateRequest(key=self._key, start_revision=self._revision + 1)
            requests: queue.Queue = queue.Queue()
            requests.put(etcdrpc.WatchRequest(create_request=create))
            self._stream = etcdrpc.WatchStub(channel).Watch(iter(requests.get, None))
            replies: queue.Queue = queue.Queue()
            threading.Thread(target=self._read, args=(self._stream, replies), daemon=True).start()
            suspect = False
            try:
                while not self._stop.is_set():
                    try:
                        reply = replies.get(timeout=self._poll_interval_s)
                    except queue.Empty:
                        missed = self._missed_change(kv)
                        if missed and suspect:
                            return  # the stream is stale: replay from another endpoint
                        suspect = missed
                        continue
                    suspect = False
                    if reply is None or isinstance(reply, Exception):
                        raise reply or ConnectionError("watch stream closed")
                    if reply.compact_revision:
                        self._sync(kv)  # history we missed is compacted away: jump to the present
                        return
                    if reply.canceled:
                        return
                    self._apply_events(reply.events)
            finally:
                requests.put(None)
                self._stream.cancel()

    @staticmethod
    def _read(stream: Iterator, replies: queue.Queue) -> None:
        try:
            for reply in stream:
                replies.put(reply)
            replies.put(None)
        except Exception as e:
            replies.put(e)

    def _read_key(self, kv: etcdrpc.KVStub) -> etcdrpc.RangeResponse:
        """Linearizable read through this endpoint, with a deadline (a hung member fails it)."""
        return kv.Range(etcdrpc.RangeRequest(key=self._key), timeout=self._timeout_s)

    def _sync(self, kv: etcdrpc.KVStub) -> None:
        reply = self._read_key(kv)
        self._revision = max(self._revision, reply.header.revision)
        self._deliver(reply.kvs[0] if reply.kvs else None, reply.header.revision)

    def _missed_change(self, kv: etcdrpc.KVStub) -> bool:
        """True when the key differs from what was delivered; else nothing changed up to the read."""
        reply = self._read_key(kv)
        if _state_of(reply.kvs[0] if reply.kvs else None) != self._state:
            return True
        self._revision = max(self._revision, reply.header.revision)  # re-watches start near the present
        return False

    def _apply_events(self, events: list) -> None:
        for event in events:
            if event.kv.mod_revision <= self._revision:
                continue  # already delivered (or reflected by a read at a later revision)
            self._revision = event.kv.mod_revision
            put = event.type == kv_pb2.Event.PUT
            self._deliver(event.kv if put else None, event.kv.mod_revision)

    def _deliver(self, kv: kv_pb2.KeyValue | None, revision: int) -> None:
        state = _state_of(kv)
        if state == self._state:
            return
        self._state = state
        info = decode_master(kv.value, kv.create_revision, kv.lease) if kv is not None else None
        try:
            self._on_change(info, revision)
        except Exception:
            log.exception("master watch callback failed")


def _state_of(kv: kv_pb2.KeyValue | None) -> tuple[int, int]:
    """What identifies a state of the master key: (create_revision, mod_revision); (0, 0) when absent."""
    return (kv.create_revision, kv.mod_revision) if kv is not None else (0, 0)
