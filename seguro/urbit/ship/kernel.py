"""The reference ship's kernel: its state, how each event changes it, its snapshots and its boot
sequence. The package docstring (seguro.urbit.ship) describes the events it understands."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from seguro.urbit import ames, behn, newt
from seguro.urbit.noun import Noun, cord, from_list, jam, mug, tape, to_list, uncord
from seguro.urbit.record import RecordError, da_from_unix, split_event
from seguro.urbit.serf_protocol import SUPPORTED_PROTOCOL

log = logging.getLogger(__name__)

PROTOCOL = SUPPORTED_PROTOCOL  # the one protocol both sides speak
HOON_KELVIN = 138
NOCK_KELVIN = 4
BOOT_LIFE = 1
LIFECYCLE_FORMULA: Noun = (2, ((0, 3), (0, 2)))  # Arvo's lifecycle formula: [2 [0 3] [0 2]]
BOOT_WIRE: Noun = (0, (cord("seguro"), (cord("boot"), 0)))
CRUD_WIRE: Noun = (0, (cord("arvo"), 0))
SNAPSHOT_NAME = "snapshot.jam"
SNAPSHOT_TAG = cord("seguro-snap")
SNAPSHOT_VERSION = 2  # 2: pending timers are part of the kernel
GENESIS_CHAIN = int.from_bytes(hashlib.blake2b(b"seguro reference ship", digest_size=16).digest(), "little")


def _h128(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "little")


def goof(mote: str, text: str) -> Noun:
    """`[mote tang]` with one %leaf tank, the shape vere's u3m_soft reports a crash in."""
    return (cord(mote), from_list([(cord("leaf"), tape(text))]))


def boot_events(who: str, wall_s: float | None = None) -> list[Noun]:
    """The boot sequence for `who` (e.g. "~zod"): BOOT_LIFE formula events, then timestamped events."""
    if not who.startswith("~") or len(who) < 2 or not all(c.islower() or c == "-" for c in who[1:]):
        raise ValueError(f"ship name must look like ~sampel-palnet, got {who!r}")
    da = da_from_unix(time.time() if wall_s is None else wall_s)
    return [
        LIFECYCLE_FORMULA,
        (da, (BOOT_WIRE, (cord("who"), cord(who)))),
        (da, (ames.AMES_WIRE, (cord("born"), 0))),
    ]


class Crash(Exception):
    """The event crashed; the kernel is unchanged. Carries the goof."""

    def __init__(self, goof_noun: Noun) -> None:
        super().__init__("event crashed")
        self.goof = goof_noun


class Evil(Crash):
    """The event is rejected outright (vere's %evil: bad ciphertext); no %crud is attempted."""


class Fatal(Exception):
    """The serf must exit(1), as vere's serf does on a bad writ or an impossible request."""


class ExitRequested(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"exit {code}")
        self.code = code


@dataclass(frozen=True)
class Peer:
    packets: int
    chain: int
    last_eve: int


def peer_digest(lane: Noun, peer: Peer) -> int:
    return _h128(jam((lane, (peer.packets, (peer.chain, peer.last_eve)))))


@dataclass(frozen=True)
class Step:
    """What one event does, computed without touching the kernel (so a crash leaves it intact)."""

    chain: int
    who: str | None = None
    peer: tuple[Noun, Peer] | None = None
    crud: bool = False
    effects: list[Noun] = field(default_factory=list)
    timers: tuple[tuple[int, Noun], ...] | None = None  # the new pending (@da, lane) timers, when changed


@dataclass
class Kernel:
    who: str = ""
    eve: int = 0
    chain: int = GENESIS_CHAIN
    peers: dict[Noun, Peer] = field(default_factory=dict)
    peer_sum: int = 0
    cruds: int = 0
    timers: tuple[tuple[int, Noun], ...] = ()  # pending `later` timers, (@da, lane), earliest first
    diverge_at: int = 0  # fault injection for tests: nondeterminism at this event (0 = never)

    def noun(self) -> Noun:
        timers = from_list([(da, lane) for da, lane in self.timers])
        counts = (len(self.peers), (self.cruds, timers))
        return (cord(self.who), (self.eve, (self.chain, (self.peer_sum, counts))))

    def mug(self) -> int:
        """The kernel mug vere reports; 0 before boot, as in `_serf_ripe`."""
        return 0 if self.eve == 0 else mug(self.noun())

    def commit(self, step: Step) -> None:
        self.eve += 1
        self.chain = step.chain ^ (1 if self.eve == self.diverge_at else 0)
        if step.who is not None:
            self.who = step.who
        if step.crud:
            self.cruds += 1
        if step.timers is not None:
            self.timers = step.timers
        if step.peer is not None:
            lane, peer = step.peer
            old = self.peers.get(lane)
            if old is not None:
                self.peer_sum -= peer_digest(lane, old)
            self.peers[lane] = peer
            self.peer_sum = (self.peer_sum + peer_digest(lane, peer)) % (1 << 128)


def save_snapshot(pier: Path, kernel: Kernel) -> Path:
    """Write the kernel to pier/snapshot.jam atomically: tmp file, fsync, rename, fsync the directory."""
    peers = from_list([(lane, (p.packets, (p.chain, p.last_eve))) for lane, p in kernel.peers.items()])
    data = jam((SNAPSHOT_TAG, (SNAPSHOT_VERSION, (kernel.mug(), (kernel.noun(), peers)))))
    path = pier / SNAPSHOT_NAME
    tmp = pier / (SNAPSHOT_NAME + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(pier, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load_snapshot(pier: Path) -> Kernel:
    """The kernel in pier/snapshot.jam, or a fresh one; Fatal if the file is corrupt (mug mismatch)."""
    path = pier / SNAPSHOT_NAME
    if not path.exists():
        return Kernel()
    try:
        tag, (version, rest) = newt.decode_noun(path.read_bytes())
        if (tag, version) == (SNAPSHOT_TAG, SNAPSHOT_VERSION - 1):  # an older kernel: replay the log instead
            log.warning("ignoring a snapshot of an older kernel version (%s); replaying the log", path)
            return Kernel()
        saved_mug, (noun, peers) = rest
        who, (eve, (chain, (peer_sum, (peer_count, (cruds, timers))))) = noun
        pending = tuple((da, lane) for da, lane in to_list(timers))  # type: ignore[misc]
        kernel = Kernel(uncord(who), eve, chain, {}, peer_sum, cruds, pending)
        for lane, (packets, (peer_chain, last_eve)) in to_list(peers):
            kernel.peers[lane] = Peer(packets, peer_chain, last_eve)
    except (newt.NewtError, TypeError, ValueError) as exc:
        raise Fatal(f"snapshot {path} is malformed: {exc}") from exc
    total = sum(peer_digest(lane, p) for lane, p in kernel.peers.items()) % (1 << 128)
    if (
        (tag, version) != (SNAPSHOT_TAG, SNAPSHOT_VERSION)
        or total != peer_sum
        or len(kernel.peers) != peer_count
    ):
        raise Fatal(f"snapshot {path} is inconsistent (tag, version, peer digests or count)")
    if kernel.mug() != saved_mug:
        raise Fatal(f"snapshot {path} mug mismatch: saved {saved_mug:#x}, computed {kernel.mug():#x}")
    return kernel


def plan(kernel: Kernel, job: Noun, booting: bool = False, live: bool = False) -> Step:
    """The Step for `job` as event kernel.eve + 1; raises Crash/Evil. Pure: reads the kernel only."""
    eve = kernel.eve + 1
    if booting and eve <= BOOT_LIFE:
        if job != LIFECYCLE_FORMULA:
            raise Crash(goof("exit", f"boot event {eve} is not the lifecycle formula"))
        return Step(chain=_h128(kernel.chain.to_bytes(16, "little") + jam(job)))
    try:
        _, wire, card = split_event(job)
    except RecordError as e:
        raise Crash(goof("exit", f"job is not [@da [wire card]]: {e}")) from None
    chain = _h128(kernel.chain.to_bytes(16, "little") + jam(job))
    if booting and wire == BOOT_WIRE and isinstance(card, tuple) and card[0] == cord("who"):
        return Step(chain=chain, who=_who(card[1]))
    if wire == CRUD_WIRE and isinstance(card, tuple) and card[0] == cord("crud"):
        return Step(chain=chain, crud=True)
    card_name = behn.behn_card(job[1])  # type: ignore[index]
    if card_name:
        return _plan_behn(kernel, eve, chain, card_name, job[0])  # type: ignore[index]
    try:
        hear = ames.hear_of_ovum(job[1])
    except ames.AmesError as exc:
        raise Crash(goof("exit", f"bad %hear: {exc}")) from exc
    if hear is None:
        return Step(chain=chain)
    try:
        return _plan_hear(kernel, eve, chain, *hear, now=job[0], live=live)  # type: ignore[index]
    except ames.AmesError as exc:  # whatever a packet says, the event crashes (%crud); the ship runs on
        raise Crash(goof("exit", f"packet could not be answered: {exc}")) from exc


def _plan_behn(kernel: Kernel, eve: int, chain: int, card_name: str, now: int) -> Step:
    """%wake: every `later` timer due by now answers `woke <eve>` to its lane; %born: say the timer
    again (a new master's behn starts with none armed). Either way the one timer is re-armed."""
    if card_name == "born":
        return Step(chain=chain, effects=[_doze(kernel.timers)])
    due = [(da, lane) for da, lane in kernel.timers if da <= now]
    left = tuple(t for t in kernel.timers if t[0] > now)
    effects = [ames.send_effect(lane, f"woke {eve}".encode()) for _, lane in due] + [_doze(left)]
    return Step(chain=chain, timers=left, effects=effects)


def _doze(timers: tuple[tuple[int, Noun], ...]) -> Noun:
    return behn.doze_effect(timers[0][0] if timers else None)


SLOW_MAX_MS = 600_000
DILL_WIRE: Noun = (cord("d"), (cord("term"), (1, 0)))  # /d/term/1


def _plan_hear(
    kernel: Kernel, eve: int, chain: int, lane: Noun, packet: int, now: int = 0, live: bool = False
) -> Step:
    payload = packet.to_bytes((packet.bit_length() + 7) // 8, "little")
    later = re.fullmatch(rb"later (\d{1,7})", payload)
    if later:  # no ack now: a timer, and `woke <N>` to this lane from the %wake event N that finds it due
        due = now + int(later.group(1)) * behn.DA_SECOND // 1000
        timers = tuple(sorted([*kernel.timers, (due, lane)], key=lambda t: t[0]))
        return Step(chain=chain, timers=timers, effects=[_doze(timers)])
    slow = re.fullmatch(rb"slow (\d{1,6})", payload)
    if slow and live:  # a long event (a kernel upgrade, a large desk commit); replays do not wait again
        time.sleep(min(int(slow.group(1)), SLOW_MAX_MS) / 1000)
    if payload.startswith(b"crash"):
        raise Crash(goof("exit", f"packet asked to crash event {eve}"))
    if payload.startswith(b"evil"):
        raise Evil(goof("evil", f"packet rejected as evil in event {eve}"))
    old = kernel.peers.get(lane, Peer(packets=0, chain=GENESIS_CHAIN, last_eve=0))
    peer = Peer(old.packets + 1, _h128(old.chain.to_bytes(16, "little") + payload), eve)
    peers = len(kernel.peers) + (lane not in kernel.peers)
    ack = f"ack {eve} peers={peers} seen={peer.packets}".encode()
    effects = [ames.send_effect(lane, ack)]
    galaxy = re.fullmatch(rb"galaxy (\d{1,3}) (.+)", payload, re.S)
    if galaxy and int(galaxy.group(1)) < 256:  # also a datagram to a galaxy's lane, [%.y g]
        effects.append(ames.send_effect((0, int(galaxy.group(1))), galaxy.group(2)))
    if payload == b"blit":  # also a terminal effect, as dill's %blit: a driver Seguro does not serve yet
        effects.append((DILL_WIRE, (cord("blit"), from_list([(cord("lin"), tape("blit"))]))))
    return Step(chain=chain, peer=(lane, peer), effects=effects)


def _who(name: Noun) -> str:
    """The ship name of a boot %who card; a Crash (boot bail) if it is not a UTF-8 cord."""
    try:
        return uncord(name)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise Crash(goof("exit", f"%who needs a cord ship name: {exc}")) from exc


def crud_job(job: Noun, dud: Noun) -> Noun:
    """vere's `_serf_make_crud`: `[now [%$ %arvo ~] [%crud dud ovum]]`."""
    now, ovum = job
    return (now, (CRUD_WIRE, (cord("crud"), (dud, ovum))))
