"""Processes this project started in their own sessions and must find and stop again from a state file,
possibly from another process (`seguro cluster down`), and never mistake for an unrelated process."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie does not count, and our own exited children are reaped."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def cmdline(pid: int) -> list[str]:
    """The argv of `pid` ([] when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode("utf-8", "replace") for arg in raw.split(b"\0") if arg]


def runs_with(pid: int, *args: str) -> bool:
    """Guard against pid reuse after a reboot: `pid` must still run with every one of `args` in its argv."""
    argv = cmdline(pid)
    return bool(argv) and all(arg in argv for arg in args)


def stop(
    pids: Sequence[int],
    timeout_s: float,
    *,
    one_at_a_time: bool = False,
    group: bool = False,
    kill_wait_s: float = 5.0,
) -> list[int]:
    """SIGCONT all (a stopped process cannot die), then SIGTERM: all at once, or each in order after the
    one before has exited. Whatever outlives the shared deadline is SIGKILLed (with `group`, together
    with its process group: the children it could not stop itself). SIGKILL is delivered asynchronously,
    so this waits up to `kill_wait_s` for the killed to be gone; it returns the pids still alive (none,
    unless the kernel is stuck on them, e.g. in uninterruptible I/O)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout_s
    for batch in ([pid] for pid in pids) if one_at_a_time else [pids]:
        for pid in batch:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        _wait_gone(batch, deadline)
    for pid in (p for p in pids if pid_alive(p)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    return _wait_gone(pids, time.monotonic() + kill_wait_s)


def _wait_gone(pids: Sequence[int], deadline: float) -> list[int]:
    """Poll until every pid is gone or `deadline` (monotonic seconds) passes; the pids still alive."""
    while (alive := [pid for pid in pids if pid_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive
