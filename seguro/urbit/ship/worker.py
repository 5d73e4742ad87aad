"""The reference ship's worker: the serf side of vere's king <-> serf protocol (vere <= 3.x,
pkg/vere/serf.c) over this process's stdin/stdout, one writ in and one plea (or nothing) out."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from seguro.urbit import newt
from seguro.urbit.noun import Noun, cord, from_list, tape, to_list, uncord
from seguro.urbit.record import RecordError, split_event
from seguro.urbit.ship import scry
from seguro.urbit.ship.kernel import (
    BOOT_LIFE,
    HOON_KELVIN,
    NOCK_KELVIN,
    PROTOCOL,
    Crash,
    Evil,
    ExitRequested,
    Fatal,
    Kernel,
    crud_job,
    goof,
    load_snapshot,
    plan,
    save_snapshot,
)

log = logging.getLogger(__name__)


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
            hunk = scry.peek_fine(self.kernel, sam)
            hunk = scry.peek_mesa(self.kernel, sam) if hunk is None else hunk
        except Crash as crash:
            return (cord("peek"), (cord("bail"), crash.goof))
        if hunk is not None:
            return (cord("peek"), (cord("done"), hunk))
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
            step = plan(self.kernel, job, live=True)
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


def protocol_fds() -> tuple[int, int]:
    """Like vere's serf: the protocol fds are duplicated and fd 1 is pointed at stderr, so a stray print
    cannot corrupt the stream. Returns (in, out)."""
    inn_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    return inn_fd, out_fd


def sender(out_fd: int) -> Callable[[Noun], None]:
    return lambda plea: newt.write_all(out_fd, newt.encode_noun(plea))


def answer_writs(inn_fd: int, writ: Callable[[Noun], Noun | None], send: Callable[[Noun], None],
                 max_frame_bytes: int, name: str) -> int:  # fmt: skip
    """One writ in, one plea (or nothing) out, until %exit (its code) or EOF or a bad writ (1)."""
    with os.fdopen(inn_fd, "rb", buffering=1 << 16) as stream:
        while True:
            try:
                payload = newt.read_frame(stream, max_frame_bytes)
                if payload is None:
                    log.error("%s: pier unexpectedly shut down", name)  # vere's words for a closed pipe
                    return 1
                plea = writ(newt.decode_noun(payload))
            except ExitRequested as req:
                return req.code
            except (Fatal, newt.NewtError, ValueError, TypeError) as exc:  # a PierError is a ValueError
                log.error("%s: bad writ: %s", name, exc)
                return 1
            if plea is not None:
                send(plea)


def serve(pier: Path, max_frame_bytes: int = newt.MAX_FRAME_BYTES_DEFAULT, diverge_at: int = 0) -> int:
    """Run the serf on this process's stdin/stdout until %exit or EOF; returns the exit code."""
    inn_fd, out_fd = protocol_fds()
    pier.mkdir(parents=True, exist_ok=True)
    try:
        kernel = load_snapshot(pier)
    except Fatal as exc:
        log.error("serf: %s", exc)
        return 1
    kernel.diverge_at = diverge_at
    serf = Serf(pier, kernel, sender(out_fd))
    serf.send(serf.ripe())
    return answer_writs(inn_fd, serf.writ, serf.send, max_frame_bytes, "serf")


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
