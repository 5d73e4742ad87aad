"""King-side client of vere's king <-> serf protocol (vere <= 3.x, pkg/vere/lord.c).

The node drives a ship runtime exactly as vere's king drives urbit-worker: newt frames over the child's
stdin/stdout, %ripe on start, then %play (replay), %work (new events), %live %save (snapshot), %peek,
%live %exit. The node must never hang on a broken runtime, so every read and write has a deadline: a
reader thread turns the child's stdout into a queue of nouns, and writes go through a non-blocking fd.

Errors: SerfDied (exit code or signal), SerfTimeout, SerfProtocolError (garbage or unexpected messages)
leave the client unusable (every later call raises the same error: the stream's position is unknown);
kill() it and start a new one. SerfBail subclasses report a deterministic refusal (%play/%work/%peek
%bail) and leave it usable. SerfBusy is backpressure: too many pipelined jobs, or a synchronous call
while pipelined work is outstanding.

Pipelining: the serf numbers events as it finishes them, so a pipelined job's event number is known
only from its result (a %work %bail consumes no number). Not thread-safe: one caller thread per Serf.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from seguro.urbit import newt
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
    render_cord,
    render_tank,
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

_EOF = object()
_READ_CHUNK_BYTES = 1 << 16
_EXIT_GRACE_S = 5.0


def default_argv(pier: str | Path) -> list[str]:
    """The reference ship runtime, run by this interpreter."""
    return [sys.executable, "-m", "seguro.urbit.ship", "--pier", str(pier)]


class Serf:
    """One ship runtime child process and the king's end of its pipes."""

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
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.argv = list(argv)
        self.timeout_s = timeout_s
        # Events have no deadline of their own (vere has none: a kernel upgrade or a long replay is
        # legitimate); a dead worker shows as EOF at once, a hung one only after this liveness bound.
        self.work_timeout_s = timeout_s if work_timeout_s is None else work_timeout_s
        self.max_in_flight = max_in_flight
        self._broken: SerfError | None = None
        self._pending: collections.deque[Noun] = collections.deque()
        self._inbox: queue.Queue[object] = queue.Queue()
        self._stderr_file: IO[bytes] | None = None
        if stderr_path is not None:
            self._stderr_file = open(stderr_path, "ab")  # noqa: SIM115 - lives as long as the child
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr_file, bufsize=0
            )
        except OSError as exc:
            if self._stderr_file is not None:
                self._stderr_file.close()
            raise SerfError(f"could not start serf {self.argv!r}: {exc}") from exc
        self._in_fd = self._proc.stdin.fileno()  # type: ignore[union-attr]
        os.set_blocking(self._in_fd, False)
        self._writable = select.poll()
        self._writable.register(self._in_fd, select.POLLOUT)
        self._reader = threading.Thread(
            target=self._read_loop, args=(self._proc.stdout, newt.FrameDecoder(max_frame_bytes)), daemon=True
        )
        self._reader.start()
        try:
            self.ripe: Ripe = parse_ripe(self._recv(timeout_s))
        except BaseException:
            self.kill()
            raise
        self.eve = self.ripe.eve
        self.mug = self.ripe.mug
        log.info("serf ripe", extra={"pid": self.pid, "eve": self.eve, "mug": self.mug})

    # ------------------------------------------------------------------ lifecycle

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def in_flight(self) -> int:
        """Pipelined jobs submitted whose results have not been taken with next_work_result()."""
        return len(self._pending)

    def __enter__(self) -> Serf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout_s: float = _EXIT_GRACE_S) -> None:
        """Shut down: a clean %exit if the serf is healthy and idle, else (or if that fails) SIGKILL."""
        if self._broken is None and not self._pending and self.alive:
            try:
                self.exit(0, timeout_s)
                return
            except SerfError as exc:
                log.warning(
                    "serf did not exit cleanly; killing it", extra={"pid": self.pid, "error": str(exc)}
                )
        self.kill()

    def exit(self, code: int = 0, timeout_s: float = _EXIT_GRACE_S) -> int:
        """Ask the serf to exit (`[%live %exit code]`, no reply) and return its exit status."""
        self._send((cord("live"), (cord("exit"), code)), timeout_s)
        try:
            status = self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise SerfTimeout(f"serf pid {self.pid} did not exit within {timeout_s}s of %exit") from exc
        self._broken = SerfDied(f"serf exited on request with status {status}", status)
        self._cleanup()
        return status

    def kill(self) -> None:
        """SIGKILL the child (if alive), reap it and release the pipes. Idempotent."""
        if self._proc.poll() is None:
            self._proc.kill()
        try:
            self._proc.wait(timeout=_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            log.error("serf did not die after SIGKILL", extra={"pid": self.pid})
        if self._broken is None:
            self._broken = SerfDied("serf was killed by the king", self._proc.returncode)
        self._cleanup()

    def _cleanup(self) -> None:
        self._reader.join(timeout=_EXIT_GRACE_S)
        for stream in (self._proc.stdin, self._proc.stdout, self._stderr_file):
            if stream is not None and not stream.closed:
                with contextlib.suppress(OSError):
                    stream.close()

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

    # ------------------------------------------------------------------ plumbing

    def _require_idle(self, what: str) -> None:
        self._check_usable()
        if self._pending:
            raise SerfBusy(f"cannot {what} with {len(self._pending)} pipelined jobs in flight")

    def _parse(self, parser: object, message: Noun, *args: object) -> object:
        """Run a parse_* function; a protocol error breaks the client, a bail does not."""
        try:
            return parser(message, *args)  # type: ignore[operator]
        except SerfProtocolError as exc:
            raise self._break(exc) from None

    def _break(self, exc: SerfError) -> SerfError:
        self._broken = exc
        log.error("serf unusable", extra={"pid": self.pid, "error": str(exc)})
        return exc

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise self._broken

    def _send(self, message: Noun, timeout_s: float | None) -> None:
        """Write one frame before the deadline; a full pipe to a stalled child becomes SerfTimeout."""
        self._check_usable()
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        view = memoryview(newt.encode_noun(message))
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._break(
                    SerfTimeout(f"serf pid {self.pid} stopped reading its stdin (write timed out)")
                )
            if not self._writable.poll(remaining * 1000):  # poll, not select: no limit on the fd number
                continue
            try:
                view = view[os.write(self._in_fd, view) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise self._break(self._died("serf closed its stdin")) from None
            except OSError as exc:
                raise self._break(self._died(f"write to serf failed: {exc}")) from None

    def _recv(self, timeout_s: float | None) -> Noun:
        """The next non-log message, or SerfTimeout/SerfDied/SerfProtocolError."""
        self._check_usable()
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            item = self._inbox.get(timeout=wait_s)
        except queue.Empty:
            if self._proc.poll() is not None:
                raise self._break(self._died("serf died")) from None
            raise self._break(SerfTimeout(f"no reply from serf pid {self.pid} within {wait_s}s")) from None
        if item is _EOF:
            raise self._break(self._died("serf closed its stdout"))
        if isinstance(item, SerfError):
            raise self._break(item)
        return item  # type: ignore[return-value]

    def _died(self, what: str) -> SerfDied:
        """Reap the child (bounded) and describe how it ended."""
        try:
            status = self._proc.wait(timeout=_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            status = self._proc.wait(timeout=_EXIT_GRACE_S)
            return SerfDied(f"{what} but did not exit; killed it", status)
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            return SerfDied(f"{what}: killed by {name}", status)
        return SerfDied(f"{what}: exit status {status}", status)

    def _read_loop(self, stdout: IO[bytes], decoder: newt.FrameDecoder) -> None:
        """Reader thread: frames -> nouns on the inbox; %slog/%flog are logged here and dropped."""
        fd = stdout.fileno()
        try:
            while True:
                data = os.read(fd, _READ_CHUNK_BYTES)
                if not data:
                    if decoder.buffered_bytes:
                        self._inbox.put(
                            SerfProtocolError(f"EOF inside a frame ({decoder.buffered_bytes} bytes)")
                        )
                    self._inbox.put(_EOF)
                    return
                for payload in decoder.feed(data):
                    message = newt.decode_noun(payload)
                    if not self._log_message(message):
                        self._inbox.put(message)
        except newt.NewtError as exc:
            self._inbox.put(SerfProtocolError(f"bad frame from serf: {exc}"))
        except OSError as exc:  # fd closed under us by kill(): nobody is listening
            self._inbox.put(_EOF)
            log.debug("serf reader stopped", extra={"reason": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a reader bug must surface as an error, not a hang
            self._inbox.put(SerfProtocolError(f"serf reader failed: {exc!r}"))

    def _log_message(self, message: Noun) -> bool:
        """Log %slog [pri tank] and %flog cord messages; True if `message` was one of them."""
        if not isinstance(message, tuple):
            return False
        tag, body = message
        if tag == cord("slog") and isinstance(body, tuple):
            text = render_tank(body[1])
            log.info("serf slog: %s", text, extra={"pid": self.pid, "priority": body[0], "text": text})
            return True
        if tag == cord("flog"):
            text = render_cord(body)
            log.info("serf flog: %s", text, extra={"pid": self.pid, "text": text})
            return True
        return False
