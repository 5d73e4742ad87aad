"""King-side client of vere's king <-> serf protocol 1 (vere <= 3.x, pkg/vere/lord.c).

The node drives a ship runtime exactly as vere's king drives urbit-worker: newt frames over the child's
stdin/stdout (seguro.urbit.child), %ripe on start, then %play (replay), %work (new events), %live %save
(snapshot), %peek, %live %exit.

Errors: SerfDied (exit code or signal), SerfTimeout, SerfProtocolError (garbage or unexpected messages)
leave the client unusable (every later call raises the same error: the stream's position is unknown);
kill() it and start a new one. SerfBail subclasses report a deterministic refusal (%play/%work/%peek
%bail) and leave it usable. SerfBusy is backpressure: too many pipelined jobs, or a synchronous call
while pipelined work is outstanding.

Pipelining: the serf numbers events as it finishes them, so a pipelined job's event number is known
only from its result (a %work %bail consumes no number). Not thread-safe: one caller thread per Serf.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from seguro.urbit import newt
from seguro.urbit.child import EXIT_GRACE_S, WorkerProcess
from seguro.urbit.noun import Noun, cord, from_list
from seguro.urbit.record import split_event
from seguro.urbit.serf_protocol import (
    PeekBail,
    PlayBail,
    Ripe,
    SerfBail,
    SerfBusy,
    SerfDied,
    SerfError,
    SerfProtocolError,
    SerfTimeout,
    WorkBail,
    WorkDone,
    parse_live,
    parse_peek,
    parse_play,
    parse_ripe,
    parse_work,
)

__all__ = [
    "PeekBail",
    "PlayBail",
    "Ripe",
    "Serf",
    "SerfBail",
    "SerfBusy",
    "SerfDied",
    "SerfError",
    "SerfProtocolError",
    "SerfTimeout",
    "WorkBail",
    "WorkDone",
    "default_argv",
]

log = logging.getLogger(__name__)


def default_argv(pier: str | Path) -> list[str]:
    """The reference ship runtime, run by this interpreter."""
    return [sys.executable, "-m", "seguro.urbit.ship", "--pier", str(pier)]


class Serf(WorkerProcess):
    """One protocol-1 worker child (urbit-worker, `urbit serf`, or the reference ship)."""

    def __init__(
        self,
        argv: Sequence[str] | None = None,
        *,
        pier: str | Path | None = None,
        stderr_path: str | Path | None = None,
        timeout_s: float = 30.0,
        work_timeout_s: float | None = None,
        max_in_flight: int = 64,
        max_frame_bytes: int = newt.MAX_FRAME_BYTES_DEFAULT,
    ) -> None:
        """Start the child and wait (up to `timeout_s`) for its %ripe."""
        if argv is None:
            if pier is None:
                raise ValueError("give argv, or pier for the reference ship runtime")
            argv = default_argv(pier)
        super().__init__(argv, stderr_path=stderr_path, timeout_s=timeout_s, work_timeout_s=work_timeout_s,
                         max_in_flight=max_in_flight, max_frame_bytes=max_frame_bytes)  # fmt: skip
        self.ripe: Ripe = self._hello(parse_ripe, timeout_s)
        self.eve = self.ripe.eve
        self.mug = self.ripe.mug
        log.info("serf ripe", extra={"pid": self.pid, "eve": self.eve, "mug": self.mug})

    def exit(self, code: int = 0, timeout_s: float = EXIT_GRACE_S) -> int:
        """Ask the serf to exit (`[%live %exit code]`, no reply) and return its exit status."""
        return self._exit_with((cord("live"), (cord("exit"), code)), timeout_s)

    # ------------------------------------------------------------------ synchronous requests

    def play(self, eve: int, events: list[Noun], timeout_s: float | None = None) -> int:
        """Replay `events` as events eve, eve+1, ...; return the mug after. PlayBail on %play %bail.

        At eve 1 this is the boot: the whole list is the lifecycle sequence, as in vere's serf.
        """
        if not events:
            return self.mug
        if eve != self.eve + 1:
            raise ValueError(f"play must start at event {self.eve + 1}, got {eve}")
        self._require_idle("play")
        self._send((cord("play"), (eve, from_list(events))), timeout_s)
        try:
            mug = parse_play(self._recv(self.work_timeout_s if timeout_s is None else timeout_s))
        except PlayBail as bail:
            self.eve, self.mug = bail.eve, bail.mug
            raise
        except SerfProtocolError as exc:
            raise self._break(exc) from None
        self.eve, self.mug = eve + len(events) - 1, mug
        return mug

    def work(self, job: Noun, mil_ms: int = 0, timeout_s: float | None = None) -> WorkDone:
        """Run one new event `job` = [@da ovum]. WorkBail on %work %bail (no event was added)."""
        self._require_idle("work")
        self.submit_work(job, mil_ms, timeout_s)
        return self.next_work_result(timeout_s)

    def save(self, eve: int | None = None, timeout_s: float | None = None) -> None:
        """Snapshot at `eve` (default: the serf's current event; the serf exits if they differ)."""
        self._require_idle("save")
        self._send((cord("live"), (cord("save"), self.eve if eve is None else eve)), timeout_s)
        self._parse(parse_live, self._recv(timeout_s))

    def peek(self, sam: Noun, mil_ms: int = 0, timeout_s: float | None = None) -> Noun:
        """Scry: `[%peek mil sam]`; returns the (unit) the serf produced. PeekBail on %peek %bail."""
        self._require_idle("peek")
        self._send((cord("peek"), (mil_ms, sam)), timeout_s)
        return self._parse(parse_peek, self._recv(timeout_s))

    # ------------------------------------------------------------------ pipelined work

    def submit_work(self, job: Noun, mil_ms: int = 0, timeout_s: float | None = None) -> None:
        """Send `[%work mil job]` without waiting. SerfBusy when max_in_flight results are untaken."""
        self._check_usable()
        if len(self._pending) >= self.max_in_flight:
            raise SerfBusy(
                f"{len(self._pending)} jobs in flight (max {self.max_in_flight}); take results first"
            )
        split_event(job)  # RecordError (a ValueError) before anything is sent: the serf stays usable
        # A worker busy with a long event reads no stdin: a full pipe is not a hung worker before the
        # liveness bound either.
        self._send((cord("work"), (mil_ms, job)), self.work_timeout_s if timeout_s is None else timeout_s)
        self._pending.append(job)

    def next_work_result(self, timeout_s: float | None = None) -> WorkDone:
        """The result of the oldest submitted job. WorkBail if the serf rejected it."""
        if not self._pending:
            raise SerfBusy("no work in flight")
        message = self._recv(self.work_timeout_s if timeout_s is None else timeout_s)
        job = self._pending.popleft()
        done = self._parse(parse_work, message, job, self.eve + 1)
        self.eve, self.mug = done.eve, done.mug
        return done
