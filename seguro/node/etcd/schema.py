"""etcd's side of Seguro as plain data: error classes, key layout, value encodings, request checks.

No I/O here: seguro.node.etcd.coordinator performs the requests, seguro.node.etcd.watch follows the
master key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import grpc
import pyetcd
from pyetcd import etcdrpc
from pyetcd import exceptions as etcd_errors

from seguro.node.tls import Login
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


class EtcdSpaceExceeded(CoordinationError):
    """etcd's backend reached its quota and raised the NOSPACE alarm: it refuses every write (reads and
    deletes still work) until an operator frees space and disarms it: `seguro etcd reclaim`."""


SPACE_EXCEEDED = "database space exceeded"
SPACE_HELP = ("etcd is full (alarm NOSPACE): it refuses every write, so nothing commits and no master "
              "can be elected; free it with `seguro etcd reclaim` (README: etcd is full)")  # fmt: skip


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


class ShipExists(CoordinationError):
    """`create_genesis` found the ship already in etcd (its genesis, or a log from before genesis records)."""


@dataclass(frozen=True)
class Genesis:
    """The record that brings a ship's log into being, written once with its first batch. `id` is random:
    the same ship name created again (after etcd was wiped, on another cluster) is another genesis, and
    every replica, push stream and campaign checks it."""

    id: str
    who: str
    created_by: str
    created_at: str
    first_event: int = 1
    vere: dict | None = None  # an imported pier's vere META (version, who, fake, life); None: made here

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, value: bytes) -> Genesis:
        try:
            fields = json.loads(value)
            known = {k: fields[k] for k in ("id", "who", "created_by", "created_at", "first_event")}
            return cls(**known, vere=fields.get("vere"))
        except (ValueError, KeyError, TypeError) as e:
            raise CoordinationError(f"the ship's genesis record in etcd is unreadable: {e}") from e


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
    """Where one ship's state lives in etcd, under `/seguro/<ship>/`:

    - `genesis`: the ship's identity (`Genesis`), written once by `seguro ship create` or an import.
    - `master`: JSON {"id": node_id, ...info}, attached to the holder's lease. Its create_revision is the
      master's epoch, the fencing token that every master write compares.
    - `head`: "<last committed event>:<epoch that wrote it>", decimal ASCII; absent means event 0.
    - `log/<first_event:020d>`: one committed pb.Batch (serialized), put in the same Txn that moves `head`.
    - `chunk/<event:020d>/<i:06d>`: piece i of an event too large for one request; its record in the batch
      carries chunks=N, size=len(data), data=b"".
    - `replica/<id>`: JSON status a replica publishes (durable_event, applied_event, role, grpc, udp,
      updated_at).
    - `control/<name>`: an operator's control (see `control`).
    """

    prefix: str

    @property
    def master(self) -> str:
        return self.prefix + "master"

    @property
    def head(self) -> str:
        return self.prefix + "head"

    @property
    def genesis(self) -> str:
        return self.prefix + "genesis"

    def log(self, first_event: int) -> str:
        return f"{self.prefix}log/{first_event:020d}"

    def chunk(self, event: int, i: int) -> str:
        return f"{self.prefix}chunk/{event:020d}/{i:06d}"

    def replica(self, node_id: str) -> str:
        return self.prefix + "replica/" + node_id

    def control(self, name: str) -> str:
        """An operator's control: `pause` (maintenance mode) or `candidate` (the replica a switchover or
        failover hands the ship to; on a lease, so it lapses by itself)."""
        return self.prefix + "control/" + name


def keys_for(ship: str) -> Keys:
    check_name("ship", ship)
    return Keys(f"/seguro/{ship}/")


def check_name(what: str, name: str) -> None:
    if not name or "/" in name or not name.isprintable():
        raise ValueError(f"{what} must be a non-empty printable name without '/', got {name!r}")


def parse_endpoints(endpoints: list[str] | str, secure: bool = False) -> list[tuple[str, int]]:
    """'http://h:p,h2:p2' or a list of such -> [(host, port)]. The scheme must match how the process dials
    etcd (`secure`: with TLS files): an https:// URL is never dialled in plaintext, nor http:// with TLS;
    a bare HOST:PORT follows the TLS setting. Credentials in a URL are refused, not dropped."""
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    parsed = []
    for item in (i.strip() for i in items if i.strip()):
        url = urlsplit(item if "://" in item else f"{'https' if secure else 'http'}://{item}")
        if url.scheme not in ("http", "https"):
            raise ValueError(f"etcd endpoint {item!r}: the scheme must be http:// or https:// (or none)")
        if url.scheme == "https" and not secure:
            raise ValueError(f"etcd endpoint {item!r}: https:// needs TLS files (--cacert/--cert/--key, or "
                             "SEGURO_CACERT/SEGURO_CERT/SEGURO_KEY, or a node's tls_* settings)")  # fmt: skip
        if url.scheme == "http" and secure:
            raise ValueError(f"etcd endpoint {item!r}: with TLS files, etcd URLs must be https://")
        if url.username or url.password:
            raise ValueError(f"etcd endpoint {item.split('@')[-1]!r}: credentials in the URL are refused "
                             "(etcd authenticates Seguro by its client certificate)")  # fmt: skip
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
    if not isinstance(e, grpc.RpcError):
        return False
    if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return True
    # During an etcd leader election the server's own proposal can time out; it reports that as UNKNOWN.
    details = (e.details() or "") if e.code() == grpc.StatusCode.UNKNOWN else ""
    return any(text in details for text in TRANSIENT_SERVER_ERRORS)


TRANSIENT_SERVER_ERRORS = (
    "context deadline exceeded",
    "etcdserver: request timed out",
    "etcdserver: leader changed",
    "etcdserver: no leader",
    "etcdserver: too many requests",
)


def token_metadata(auth: etcdrpc.AuthStub, login: Login, timeout_s: float) -> tuple[tuple[str, str]]:
    """Log in as `login` through `auth` (one endpoint's AuthStub): the metadata that carries the token."""
    request = etcdrpc.AuthenticateRequest(name=login.user, password=login.password)
    reply = auth.Authenticate(request, timeout_s)
    return (("token", reply.token),)


def token_error(e: grpc.RpcError) -> bool:
    """etcd refused the token (expired, issued by another member, older than its auth store), or a call
    went out while another thread was renewing it ("user name is empty"): not the user's fault."""
    details = e.details() or ""
    stale = ("invalid auth token", "user name is empty", "revision of auth store is old")
    return e.code() == grpc.StatusCode.UNAUTHENTICATED or any(text in details for text in stale)


def describe(e: BaseException) -> str:
    if isinstance(e, grpc.RpcError):
        return f"{e.code().name}: {e.details()}"
    return f"{type(e).__name__}: {e}"


def unconfirmed_renewal(renewed: etcdrpc.ResponseHeader, read: etcdrpc.ResponseHeader) -> str | None:
    """Why a keepalive reply cannot extend the self-fencing deadline, or None when it can.

    etcd before 3.4.31 and 3.5.13 (the OS packages ship 3.4.23) renews a lease on whichever member believes
    it leads, with no quorum round. A leader cut off from its quorum, or whose raft loop is stuck on a slow
    disk, still acknowledges keepalives while the others may elect a new leader, whose clock for the lease
    never hears of them (etcd-io/etcd#15247): trusting such a reply could keep two masters emitting.

    So a reply counts only if a linearizable read sent after it returns from the same member with the same
    raft term in its header. A header's term is the member's applied term, filled in before the renewal
    runs; the read returns only after a leader of the member's current term confirmed it with a quorum,
    and after the member applied an entry of that term. Equal terms therefore mean the member stayed in one
    term throughout: the renewal went to that term's only leader, and a quorum still followed it after the
    renewal, so no newer leader (which restarts every lease's TTL when it takes over) can have started its
    clock before the keepalive was sent. A renewal that spans an election is refused too (and retried)."""
    if (renewed.member_id, renewed.raft_term) == (read.member_id, read.raft_term):
        return None
    return (
        f"the renewal came from member {renewed.member_id:x} in term {renewed.raft_term}, "
        f"the quorum read from member {read.member_id:x} in term {read.raft_term}"
    )
