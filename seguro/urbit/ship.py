"""Reference ship runtime: the serf side of vere's king <-> serf protocol (vere <= 3.x, pkg/vere/serf.c).

Deterministic, small, but real: it reads newt frames on stdin, answers on stdout, keeps a kernel whose
mug changes with every event, snapshots atomically, and crashes events on request so that a king sees
every answer vere's serf gives: %ripe, %play %done/%bail, %work %done/%swap/%bail, %peek, %live, %slog, %flog.

Kernel: `[who eve chain peer-sum peer-count cruds]`. `chain` is a 128-bit hash chain over every event's
jam, `peer-sum` the sum mod 2^128 of one digest per Ames lane, so an event costs O(size of the event)
and the mug is the mug of that small noun. Events:
- `[da [[%a %ames ~] [%hear lane packet]]]`: counts the packet for its lane and emits exactly one
  `[[%newt ~] [%send lane ack]]` with ack = "ack <eve> peers=<n> seen=<k>".
- a packet starting with b"crash" crashes the event: like vere, the serf then runs and logs
  `[da [[%$ %arvo ~] [%crud goof ovum]]]` in its place and answers %work %swap.
- a packet starting with b"evil" is rejected as vere rejects bad ciphertext: %work %bail, not logged.
- anything else is folded into the chain without effects.
Boot (%play at event 1): `boot_events(who)`; BOOT_LIFE = 1 lifecycle formula, then timestamped events.
Peek: sam = [gang path]; path ~[%eve] / ~[%mug] / ~[%who] / ~[%peers] / ~[%cruds] gives [~ %noun value],
anything else ~.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seguro.urbit import ames, newt
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
SNAPSHOT_VERSION = 1
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


@dataclass
class Kernel:
    who: str = ""
    eve: int = 0
    chain: int = GENESIS_CHAIN
    peers: dict[Noun, Peer] = field(default_factory=dict)
    peer_sum: int = 0
    cruds: int = 0
    diverge_at: int = 0  # fault injection for tests: nondeterminism at this event (0 = never)

    def noun(self) -> Noun:
        return (cord(self.who), (self.eve, (self.chain, (self.peer_sum, (len(self.peers), self.cruds)))))

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
        tag, (version, (saved_mug, (noun, peers))) = newt.decode_noun(path.read_bytes())
        who, (eve, (chain, (peer_sum, (peer_count, cruds)))) = noun
        kernel = Kernel(uncord(who), eve, chain, {}, peer_sum, cruds)
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


def plan(kernel: Kernel, job: Noun, booting: bool = False) -> Step:
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
    try:
        hear = ames.hear_of_ovum(job[1])
    except ames.AmesError as exc:
        raise Crash(goof("exit", f"bad %hear: {exc}")) from exc
    if hear is None:
        return Step(chain=chain)
    return _plan_hear(kernel, eve, chain, *hear)


def _plan_hear(kernel: Kernel, eve: int, chain: int, lane: Noun, packet: int) -> Step:
    payload = packet.to_bytes((packet.bit_length() + 7) // 8, "little")
    if payload.startswith(b"crash"):
        raise Crash(goof("exit", f"packet asked to crash event {eve}"))
    if payload.startswith(b"evil"):
        raise Evil(goof("evil", f"packet rejected as evil in event {eve}"))
    old = kernel.peers.get(lane, Peer(packets=0, chain=GENESIS_CHAIN, last_eve=0))
    peer = Peer(old.packets + 1, _h128(old.chain.to_bytes(16, "little") + payload), eve)
    peers = len(kernel.peers) + (lane not in kernel.peers)
    ack = f"ack {eve} peers={peers} seen={peer.packets}".encode()
    return Step(chain=chain, peer=(lane, peer), effects=[ames.send_effect(lane, ack)])


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


class Serf:
    """The serf's protocol state machine: one writ in, one plea (or nothing) out."""

    def __init__(self, pier: Path, kernel: Kernel, send: Callable[[Noun], None]) -> None:
        self.pier = pier
        self.kernel = kernel
        self.send = send

    def ripe(self) -> Noun:
        return (cord("ripe"), ((PROTOCOL, (HOON_KELVIN, NOCK_KELVIN)), (self.kernel.eve, self.kernel.mug())))

    def writ(self, writ: Noun) -> Noun | None:
        if not isinstance(writ, tuple):
            raise Fatal("writ is an atom")
        tag, com = writ
        handler = {"live": self._live, "peek": self._peek, "play": self._play, "work": self._work}
        name = uncord(tag) if isinstance(tag, int) else ""
        if name not in handler or not isinstance(com, tuple):
            raise Fatal(f"bad writ tag {tag!r}")
        return handler[name](com)

    def _live(self, com: Noun) -> Noun:
        tag, dat = com
        if tag == cord("exit"):
            raise ExitRequested(dat if isinstance(dat, int) and dat < 256 else 1)
        if tag == cord("save"):
            if dat != self.kernel.eve:
                raise Fatal(f"save failed: asked for {dat!r}, at {self.kernel.eve}")
            path = save_snapshot(self.pier, self.kernel)
            self.send((cord("flog"), cord(f"saved snapshot at {self.kernel.eve} to {path}")))
        elif tag not in (cord("cram"), cord("meld"), cord("pack")):
            raise Fatal(f"bad %live command {tag!r}")
        return (cord("live"), 0)

    def _peek(self, com: Noun) -> Noun:
        sam = com[1]
        try:
            path = to_list(sam[1]) if isinstance(sam, tuple) else []
            key = uncord(path[0]) if len(path) == 1 and isinstance(path[0], int) else ""  # type: ignore[arg-type]
        except ValueError:
            key = ""  # not a path of cords: nothing is there
        k = self.kernel
        values = {"eve": k.eve, "mug": k.mug(), "who": cord(k.who), "peers": len(k.peers), "cruds": k.cruds}
        result: Noun = (0, (cord("noun"), values[key])) if key in values else 0
        return (cord("peek"), (cord("done"), result))

    def _play(self, com: Noun) -> Noun:
        eve, lit = com
        if eve != self.kernel.eve + 1 or not isinstance(lit, tuple):
            raise Fatal(f"play of event {eve!r} at {self.kernel.eve} (or an empty list)")
        events = to_list(lit)
        body = self._play_life(events) if self.kernel.eve == 0 else self._play_list(events)
        return (cord("play"), body)

    def _play_life(self, events: list[Noun]) -> Noun:
        fresh = Kernel(diverge_at=self.kernel.diverge_at)
        try:
            for job in events:
                fresh.commit(plan(fresh, job, booting=True))
            if not fresh.who or fresh.eve <= BOOT_LIFE:
                raise Crash(goof("exit", "boot sequence set no identity"))
        except Crash as crash:
            return (cord("bail"), (0, (0, crash.goof)))
        self.kernel = fresh
        self.send((cord("slog"), (0, (cord("leaf"), tape(f"booted {fresh.who} in {fresh.eve} events")))))
        return (cord("done"), fresh.mug())

    def _play_list(self, events: list[Noun]) -> Noun:
        for job in events:
            try:
                self.kernel.commit(plan(self.kernel, job))
            except Crash as crash:
                return (cord("bail"), (self.kernel.eve, (self.kernel.mug(), crash.goof)))
        return (cord("done"), self.kernel.mug())

    def _work(self, com: Noun) -> Noun:
        if self.kernel.eve == 0:
            raise Fatal("%work before boot")
        job = com[1]
        try:
            step = plan(self.kernel, job)
        except Evil as evil:
            return (cord("work"), (cord("bail"), (evil.goof, 0)))
        except Crash as crash:
            return (cord("work"), self._swap(job, crash.goof))
        self.kernel.commit(step)
        k = self.kernel
        return (cord("work"), (cord("done"), (k.eve, (k.mug(), from_list(step.effects)))))

    def _swap(self, job: Noun, dud: Noun) -> Noun:
        try:
            split_event(job)
        except RecordError:
            return (cord("bail"), (dud, 0))
        new_job = crud_job(job, dud)
        try:
            step = plan(self.kernel, new_job)
        except Crash as crash:
            return (cord("bail"), (crash.goof, (dud, 0)))
        self.kernel.commit(step)
        k = self.kernel
        return (cord("swap"), (k.eve, (k.mug(), (new_job, from_list(step.effects)))))


def serve(pier: Path, max_frame_bytes: int = newt.MAX_FRAME_BYTES_DEFAULT, diverge_at: int = 0) -> int:
    """Run the serf on this process's stdin/stdout until %exit or EOF; returns the exit code.

    Like vere's serf, the protocol fds are duplicated and fd 1 is pointed at stderr, so a stray print
    cannot corrupt the stream.
    """
    inn_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    pier.mkdir(parents=True, exist_ok=True)
    try:
        kernel = load_snapshot(pier)
    except Fatal as exc:
        log.error("serf: %s", exc)
        return 1
    kernel.diverge_at = diverge_at
    serf = Serf(pier, kernel, lambda plea: newt.write_all(out_fd, newt.encode_noun(plea)))
    serf.send(serf.ripe())
    with os.fdopen(inn_fd, "rb", buffering=1 << 16) as stream:
        while True:
            try:
                payload = newt.read_frame(stream, max_frame_bytes)
                if payload is None:
                    log.error("serf: pier unexpectedly shut down")
                    return 1
                plea = serf.writ(newt.decode_noun(payload))
            except ExitRequested as req:
                return req.code
            except (Fatal, newt.NewtError, ValueError, TypeError) as exc:
                log.error("serf: bad writ: %s", exc)
                return 1
            if plea is not None:
                serf.send(plea)


def run(
    pier: Path,
    max_frame_bytes: int = newt.MAX_FRAME_BYTES_DEFAULT,
    log_level: str = "WARNING",
    diverge_at: int = 0,
) -> int:
    """Entry point shared by `python -m seguro.urbit.ship` and `seguro ship`: log to stderr, serve, and
    return the exit code."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="ship %(levelname)s %(message)s")
    return serve(pier, max_frame_bytes, diverge_at)


if __name__ == "__main__":  # `python -m seguro.urbit.ship` is `seguro ship`: one set of options
    from seguro.cli.ship import command

    command(prog_name="python -m seguro.urbit.ship")
