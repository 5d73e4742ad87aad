"""What flows into the replication core (events) and out of it (a `Ready`: what to do now).

The core never performs I/O. A driver feeds it these events, performs the `Ready` it returns, and feeds
the results back as further events — the way etcd-io/raft hands `Ready` to its caller.
Records are opaque bytes here (vere EVENTS values); jobs are opaque objects (nouns) the driver made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seguro.core.election import PeerView


@dataclass(frozen=True)
class Batch:
    """Contiguous records `first_event ..` written under fencing token `epoch` (0 when not known)."""

    epoch: int
    first_event: int
    records: tuple[bytes, ...]

    @property
    def last_event(self) -> int:
        return self.first_event + len(self.records) - 1

    def size_bytes(self) -> int:
        return sum(len(r) for r in self.records)


# ---- events: lease ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseGranted:
    lease_id: int
    ttl_s: float
    sent_at_s: float


@dataclass(frozen=True)
class KeepaliveAcked:
    lease_id: int
    ttl_s: float
    sent_at_s: float


@dataclass(frozen=True)
class LeaseLost:
    """etcd says the lease is gone (expired or revoked)."""

    lease_id: int


@dataclass(frozen=True)
class LeaseRequestFailed:
    """A grant or keepalive could not reach etcd. The deadline will pass on its own if this persists."""

    reason: str


# ---- events: election --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenesisObserved:
    """The ship's genesis id as etcd held it at `revision`; None when the ship does not exist there."""

    genesis_id: str | None
    revision: int


@dataclass(frozen=True)
class MasterObserved:
    """The master key as seen at etcd revision `revision`; holder None = no master."""

    holder: str | None
    epoch: int
    revision: int


@dataclass(frozen=True)
class PeersObserved:
    """The other replicas as their published statuses show them: who may serve before us. With the
    operators' controls read in the same round: `paused` (maintenance mode: who paused, '' when not) and
    `candidate` (the one replica a switchover or failover hands the ship to, '' when none)."""

    peers: tuple[PeerView, ...]
    paused: str = ""
    candidate: str = ""


@dataclass(frozen=True)
class CampaignResult:
    """The campaign made with lease `lease_id`."""

    won: bool
    lease_id: int
    epoch: int = 0
    error: str = ""


@dataclass(frozen=True)
class CatchUpFetched:
    """Committed batches read from etcd (or a peer) while catching up."""

    batch: Batch


@dataclass(frozen=True)
class CatchUpDone:
    """etcd's committed head at the end of a catch-up read made for promotion `epoch`."""

    head: int
    epoch: int
    error: str = ""


# ---- events: log and runtime ---------------------------------------------------------------------


@dataclass(frozen=True)
class IncomingEvent:
    """A job (an event noun made by the driver, e.g. from a datagram) offered to this node."""

    job: object
    size_bytes: int
    source: str = "udp"


@dataclass(frozen=True)
class WorkDone:
    """The runtime ran event `eve` (run-ahead on the master). `record` is what gets logged. `job` is set
    when somebody waits to hear whether the event commits (an admin poke), None for datagrams."""

    eve: int
    record: bytes
    effects: tuple[object, ...]
    job: object = None


@dataclass(frozen=True)
class Tailed:
    """The next event of a log another program writes (a running vere whose pier this node follows): the
    master commits it as it would its runtime's work. It has no effects here: vere emits them."""

    eve: int
    record: bytes
    epoch: int  # the term it was read for: a late one from an earlier term is dropped


@dataclass(frozen=True)
class WorkRefused:
    """The runtime rejected a job without consuming an event number (vere's %work %bail)."""

    reason: str
    job: object = None


@dataclass(frozen=True)
class RuntimeFailed:
    """The runtime died, stalled or broke protocol."""

    reason: str


@dataclass(frozen=True)
class RuntimeReady:
    """The runtime (re)started and holds exactly the events up to `eve`."""

    eve: int


@dataclass(frozen=True)
class Applied:
    """A follower's runtime applied committed events up to `eve`, mugs matching."""

    eve: int


@dataclass(frozen=True)
class Diverged:
    """The runtime's mug disagrees with the log: this replica must stop applying."""

    eve: int
    detail: str


@dataclass(frozen=True)
class CommitDone:
    """Result of the etcd append of in-flight batch `seq`."""

    seq: int
    ok: bool
    fence_lost: bool = False
    actual_head: int = -1
    error: str = ""


@dataclass(frozen=True)
class BatchReceived:
    """A committed batch pushed to this follower on stream `stream_id` by a master of `sender_epoch`.
    The batch's own epoch is 0: the pusher reads its local log, which does not keep each event's epoch."""

    stream_id: int
    batch: Batch
    sender_epoch: int
    sender_genesis: str = ""
    sender_id: str = ""  # the replica the pusher says it is (under TLS, its certificate's name)


@dataclass(frozen=True)
class FollowerAck:
    replica_id: str
    durable_event: int


@dataclass(frozen=True)
class Reconfigured:
    """`seguro reload` (or SIGHUP): the settings that may change while the node runs."""

    nofailover: bool
    failover_priority: int


@dataclass(frozen=True)
class StepDown:
    """An operator asked the master to step down."""


Event = (
    LeaseGranted
    | KeepaliveAcked
    | LeaseLost
    | LeaseRequestFailed
    | GenesisObserved
    | MasterObserved
    | PeersObserved
    | CampaignResult
    | CatchUpFetched
    | CatchUpDone
    | IncomingEvent
    | WorkDone
    | Tailed
    | WorkRefused
    | RuntimeFailed
    | RuntimeReady
    | Applied
    | Diverged
    | CommitDone
    | BatchReceived
    | FollowerAck
    | StepDown
    | Reconfigured
)


# ---- the output --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    seq: int
    expected_head: int
    batch: Batch


@dataclass(frozen=True)
class AckOut:
    stream_id: int
    durable_event: int
    highest_epoch: int
    error: str = ""


@dataclass
class Ready:
    """What the driver must do now, in this order: persist, ack, commit, release, the rest."""

    persist: list[Batch] = field(default_factory=list)
    acks: list[AckOut] = field(default_factory=list)
    commit: Commit | None = None
    release: list[tuple[int, tuple[object, ...]]] = field(default_factory=list)
    run: list[object] = field(default_factory=list)
    apply_to: int | None = None
    record_genesis: str | None = None  # adopt the ship's genesis: write it to the local log's metadata
    restart_runtime: bool = False
    grant_lease: bool = False
    revoke_lease: int | None = None
    renew_lease: int | None = None
    campaign: bool = False
    catch_up_from: int | None = None
    resign_epoch: int | None = None
    trim_below: int | None = None
    record_epoch: tuple[int, int] | None = None
    refused: list[tuple[IncomingEvent, str]] = field(default_factory=list)  # events not run, and why
    answers: list[tuple[object, int, str]] = field(default_factory=list)  # (job, committed event, why not)
    stop: str | None = None  # this replica stopped applying (a divergence): status shows why
    halt: str | None = None  # this node must not run at all (its data belongs to another genesis)
