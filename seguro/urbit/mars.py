"""King-side client of protocol 2 (vere >= 4.0: `urbit work`, pkg/vere/mars.c), over seguro.urbit.child.

The worker owns its event log: it replays that log before its %ripe (so the hello may take as long as a
replay: it waits for the liveness bound), stamps each poked ovum with its own clock, writes the event to
its LMDB log and answers `[%poke %.y effects]` only once that write is durable. The answer names no
event number: a poke that succeeds is the worker's next event, one that fails (`%.n`) consumes none, so
the client counts. What was logged (the time, or the %crud that replaced a crashing event) is read from
the worker's log by the caller.

Errors are those of protocol 1 (SerfDied, SerfTimeout, SerfProtocolError break the client; PokeBail and
PeekBail leave it usable). Not thread-safe: one caller thread per Mars.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seguro.urbit import mars_protocol as p2
from seguro.urbit import newt
from seguro.urbit.child import EXIT_GRACE_S, WorkerProcess
from seguro.urbit.noun import Noun
from seguro.urbit.serf_protocol import SerfBusy, SerfProtocolError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Poked:
    """A poke the worker ran and logged as event `eve`."""

    eve: int
    effects: list[Noun]


class Mars(WorkerProcess):
    """One protocol-2 worker child."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        stderr_path: str | Path | None = None,
        timeout_s: float = 30.0,
        work_timeout_s: float | None = None,
        max_in_flight: int = 64,
        max_frame_bytes: int = newt.MAX_FRAME_BYTES_DEFAULT,
    ) -> None:
        """Start the child and wait for its %ripe, which comes after it has replayed its log."""
        super().__init__(argv, stderr_path=stderr_path, timeout_s=timeout_s, work_timeout_s=work_timeout_s,
                         max_in_flight=max_in_flight, max_frame_bytes=max_frame_bytes)  # fmt: skip
        self.ripe = self._hello(p2.parse_ripe2, self.work_timeout_s)
        self.eve = self.ripe.eve
        log.info("worker ripe", extra={"pid": self.pid, "eve": self.eve, "mug": self.ripe.mug})

    def exit(self, code: int = 0, timeout_s: float = EXIT_GRACE_S) -> int:
        """`[%exit ~]`: the worker snapshots (!) and exits. Only ever when every event it holds is
        committed: a snapshot of an uncommitted event would outlive a fence. Returns the exit status."""
        del code  # protocol 2's %exit carries none
        return self._exit_with(p2.exit_(), timeout_s)

    # ------------------------------------------------------------------ synchronous requests

    def save(self, timeout_s: float | None = None) -> tuple[int, int]:
        """`[%sync %save ~]` -> (event, mug) of the snapshot the worker wrote."""
        self._require_idle("save")
        self._send(p2.sync_save(), timeout_s)
        answer = self._recv(self.work_timeout_s if timeout_s is None else timeout_s)
        eve, mug = self._parse(p2.parse_sync, answer)
        if eve != self.eve:
            raise self._break(SerfProtocolError(f"worker saved at event {eve}, it is at {self.eve}"))
        return eve, mug

    def peek(self, sam: Noun, mil_ms: int = 0, timeout_s: float | None = None) -> Noun:
        self._require_idle("peek")
        self._send(p2.peek(sam, mil_ms), timeout_s)
        return self._parse(p2.parse_peek2, self._recv(timeout_s))

    def pack(self, timeout_s: float | None = None) -> None:
        self._require_idle("pack")
        self._send(p2.live_pack(), timeout_s)
        self._parse(p2.parse_live2, self._recv(self.work_timeout_s if timeout_s is None else timeout_s))

    # ------------------------------------------------------------------ pipelined pokes

    def submit_poke(self, ovum: Noun, mil_ms: int = 0) -> None:
        """Send `[%poke mil ovum]` without waiting. SerfBusy when max_in_flight results are untaken."""
        self._check_usable()
        if len(self._pending) >= self.max_in_flight:
            raise SerfBusy(f"{len(self._pending)} pokes in flight (max {self.max_in_flight})")
        if not isinstance(ovum, tuple):
            raise ValueError("an ovum is a cell [wire card]")
        self._send(p2.poke(ovum, mil_ms), self.work_timeout_s)
        self._pending.append(ovum)

    def next_poke_result(self) -> Poked:
        """The oldest poke's result: Poked (logged as the next event) or PokeBail (nothing logged)."""
        if not self._pending:
            raise SerfBusy("no poke in flight")
        message = self._recv(self.work_timeout_s)
        self._pending.popleft()
        effects = self._parse(p2.parse_poke, message)
        self.eve += 1
        return Poked(self.eve, effects)
