"""A worker child process and the king's end of its newt pipes, whatever the protocol (seguro.urbit.serf
speaks protocol 1 over it, seguro.urbit.mars protocol 2).

The node must never hang on a broken runtime, so every read and write has a deadline: a reader thread
turns the child's stdout into a queue of nouns (logging %slog and %flog as it goes), and writes go
through a non-blocking fd. An error that leaves the stream's position unknown (death, timeout, garbage)
breaks the client: every later call raises the same error; kill() it and start another.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Self, TypeVar

from seguro.urbit import newt
from seguro.urbit.noun import Noun, cord
from seguro.urbit.serf_protocol import (
    SerfBusy,
    SerfDied,
    SerfError,
    SerfProtocolError,
    SerfTimeout,
    render_cord,
    render_tank,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
_EOF = object()
_READ_CHUNK_BYTES = 1 << 16
EXIT_GRACE_S = 5.0


# Started through this shim rather than a preexec_fn: Python code between fork and exec runs the
# at-fork hooks of libraries loaded in the node (grpc's restarts its event engine in the child, which
# was seen to abort the child with SIGABRT before it could exec). The shim arms SIGKILL-on-parent-death,
# checks the parent did not die first, then execs the worker (same pid: the node tracks the worker).
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "armed = ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) == 0\n"
    "if not armed or os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(70)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def dying_with_parent(argv: list[str]) -> list[str]:
    """`argv` wrapped so that the worker gets SIGKILL when the node (the thread that started it) dies, so
    a worker orphaned by a crashed node can never write to a pier the restarted node is cutting back.
    Linux only (PR_SET_PDEATHSIG); elsewhere `argv` as it is."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    if not argv or shutil.which(argv[0]) is None:  # fail here as Popen would, not inside the shim
        raise FileNotFoundError(errno.ENOENT, "no such executable", argv[0] if argv else "")
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


class WorkerProcess:
    """One worker child: spawn, framed send and receive with deadlines, death and garbage as errors."""

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
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.argv = list(argv)
        self.max_in_flight = max_in_flight
        self._pending: collections.deque[Noun] = collections.deque()  # pipelined requests, oldest first
        self.timeout_s = timeout_s
        # Events have no deadline of their own (vere has none: a kernel upgrade or a long replay is
        # legitimate); a dead worker shows as EOF at once, a hung one only after this liveness bound.
        self.work_timeout_s = timeout_s if work_timeout_s is None else work_timeout_s
        self._broken: SerfError | None = None
        self._inbox: queue.Queue[object] = queue.Queue()
        self._stderr_file: IO[bytes] | None = None
        if stderr_path is not None:
            self._stderr_file = open(stderr_path, "ab")  # noqa: SIM115 - lives as long as the child
        try:
            self._proc = subprocess.Popen(
                dying_with_parent(self.argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr_file, bufsize=0,
            )  # fmt: skip
        except OSError as exc:
            if self._stderr_file is not None:
                self._stderr_file.close()
            raise SerfError(f"could not start worker {self.argv!r}: {exc}") from exc
        self._in_fd = self._proc.stdin.fileno()  # type: ignore[union-attr]
        os.set_blocking(self._in_fd, False)
        self._writable = select.poll()
        self._writable.register(self._in_fd, select.POLLOUT)
        self._reader = threading.Thread(
            target=self._read_loop, args=(self._proc.stdout, newt.FrameDecoder(max_frame_bytes)), daemon=True
        )
        self._reader.start()

    def _hello(self, parse: Callable[[Noun], T], timeout_s: float) -> T:
        """The worker's %ripe, parsed; on any failure the child is killed before the error rises."""
        try:
            return parse(self._recv(timeout_s))
        except BaseException:
            self.kill()
            raise

    # ------------------------------------------------------------------ lifecycle

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def in_flight(self) -> int:
        """Pipelined requests sent whose results have not been taken."""
        return len(self._pending)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exit(self, code: int = 0, timeout_s: float = EXIT_GRACE_S) -> int:
        """Ask the worker to exit and return its exit status (each protocol says it its own way)."""
        raise NotImplementedError

    def close(self, timeout_s: float = EXIT_GRACE_S) -> None:
        """Shut down: a clean exit if the worker is healthy and idle, else (or if that fails) SIGKILL."""
        if self._broken is None and not self._pending and self.alive:
            try:
                self.exit(0, timeout_s)
                return
            except SerfError as exc:
                log.warning(
                    "worker did not exit cleanly; killing it", extra={"pid": self.pid, "error": str(exc)}
                )
        self.kill()

    def _exit_with(self, message: Noun, timeout_s: float) -> int:
        """Send the exit request (no reply comes) and reap the child within `timeout_s`."""
        self._send(message, timeout_s)
        try:
            status = self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise SerfTimeout(
                f"worker pid {self.pid} did not exit within {timeout_s}s of its exit request"
            ) from exc
        self._broken = SerfDied(f"worker exited on request with status {status}", status)
        self._cleanup()
        return status

    def kill(self) -> None:
        """SIGKILL the child (if alive), reap it and release the pipes. Idempotent."""
        if self._proc.poll() is None:
            self._proc.kill()
        try:
            self._proc.wait(timeout=EXIT_GRACE_S)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            log.error("worker did not die after SIGKILL", extra={"pid": self.pid})
        if self._broken is None:
            self._broken = SerfDied("worker was killed by the king", self._proc.returncode)
        self._cleanup()

    def _cleanup(self) -> None:
        self._reader.join(timeout=EXIT_GRACE_S)
        for stream in (self._proc.stdin, self._proc.stdout, self._stderr_file):
            if stream is not None and not stream.closed:
                with contextlib.suppress(OSError):
                    stream.close()

    # ------------------------------------------------------------------ plumbing

    def _require_idle(self, what: str) -> None:
        self._check_usable()
        if self._pending:
            raise SerfBusy(f"cannot {what} with {len(self._pending)} pipelined requests in flight")

    def _parse(self, parser: object, message: Noun, *args: object) -> object:
        """Run a parse_* function; a protocol error breaks the client, a bail does not."""
        try:
            return parser(message, *args)  # type: ignore[operator]
        except SerfProtocolError as exc:
            raise self._break(exc) from None

    def _break(self, exc: SerfError) -> SerfError:
        self._broken = exc
        log.error("worker unusable", extra={"pid": self.pid, "error": str(exc)})
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
                    SerfTimeout(f"worker pid {self.pid} stopped reading its stdin (write timed out)")
                )
            if not self._writable.poll(remaining * 1000):  # poll, not select: no limit on the fd number
                continue
            try:
                view = view[os.write(self._in_fd, view) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise self._break(self._died("worker closed its stdin")) from None
            except OSError as exc:
                raise self._break(self._died(f"write to worker failed: {exc}")) from None

    def _recv(self, timeout_s: float | None) -> Noun:
        """The next non-log message, or SerfTimeout/SerfDied/SerfProtocolError."""
        self._check_usable()
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            item = self._inbox.get(timeout=wait_s)
        except queue.Empty:
            if self._proc.poll() is not None:
                raise self._break(self._died("worker died")) from None
            raise self._break(SerfTimeout(f"no reply from worker pid {self.pid} within {wait_s}s")) from None
        if item is _EOF:
            raise self._break(self._died("worker closed its stdout"))
        if isinstance(item, SerfError):
            raise self._break(item)
        return item  # type: ignore[return-value]

    def _died(self, what: str) -> SerfDied:
        """Reap the child (bounded) and describe how it ended."""
        try:
            status = self._proc.wait(timeout=EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            status = self._proc.wait(timeout=EXIT_GRACE_S)
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
            self._inbox.put(SerfProtocolError(f"bad frame from worker: {exc}"))
        except OSError as exc:  # fd closed under us by kill(): nobody is listening
            self._inbox.put(_EOF)
            log.debug("worker reader stopped", extra={"reason": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a reader bug must surface as an error, not a hang
            self._inbox.put(SerfProtocolError(f"worker reader failed: {exc!r}"))

    def _log_message(self, message: Noun) -> bool:
        """Log %slog [pri tank] and %flog cord messages; True if `message` was one of them."""
        if not isinstance(message, tuple):
            return False
        tag, body = message
        if tag == cord("slog") and isinstance(body, tuple):
            text = render_tank(body[1])
            log.info("worker slog: %s", text, extra={"pid": self.pid, "priority": body[0], "text": text})
            return True
        if tag == cord("flog"):
            text = render_cord(body)
            log.info("worker flog: %s", text, extra={"pid": self.pid, "text": text})
            return True
        return False
