#!/usr/bin/env python3
"""A small supervisor for hosts without systemd as PID 1 (containers, CI): the roles' test mode.

It runs a systemd unit file's own [Service] command the way systemd would for the directives our units
use, so the command tested is the command deployed: ExecStart (and Environment=) run with $NOTIFY_SOCKET
set; `start` returns once a Type=notify service says READY=1 (as `systemctl start` does), and fails after
TimeoutStartSec; Restart=on-failure restarts after RestartSec (at most StartLimitBurst times in
StartLimitIntervalSec); `stop` sends KillSignal and SIGKILLs after TimeoutStopSec. Output goes to
STATE/NAME.log, standing in for journald. Hardening and [Install] directives are systemd's and are ignored
here; `systemd-analyze verify` checks them where it is installed.

    unitrun.py start|restart UNIT_FILE --state DIR   prints started, or active when it ran already
    unitrun.py stop|status NAME --state DIR          status exits 0 only while the service is ready
Standard library only: it runs with the host's python3, before any virtualenv exists."""

from __future__ import annotations

import argparse
import configparser
import contextlib
import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.1


def read_unit(path: Path) -> dict[str, str]:
    """The [Service] section, its Environment= lines joined."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive in unit files
    text = path.read_text()
    env = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("Environment=")]
    for line in text.splitlines():  # EnvironmentFile=PATH: KEY=VALUE lines, as systemd reads them
        if line.startswith("EnvironmentFile="):
            env += [shlex.quote(v) for v in env_file(Path(line.split("=", 1)[1].lstrip("-")))]
    parser.read_string(text)
    if not parser.has_section("Service") or "ExecStart" not in parser["Service"]:
        raise SystemExit(f"unitrun: {path}: no [Service] ExecStart")
    service = dict(parser["Service"])
    service["Environment"] = " ".join(env)
    return service


def env_file(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#") and "=" in line]


def seconds(value: str, default_s: float) -> float:
    value = (value or "").strip()
    if not value:
        return default_s
    if value == "infinity":
        return 1e9
    return float(value[:-1]) * 60 if value.endswith("min") else float(value.rstrip("s"))


class State:
    """One service's files under the state directory: the supervisor's pid, its status, its log."""

    def __init__(self, root: Path, name: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.status_file, self.log = root / f"{name}.status", root / f"{name}.log"
        # An abstract socket: a path under a deep state directory can pass AF_UNIX's 108-byte limit.
        self.notify = "@unitrun/" + hashlib.sha256(str(root.resolve() / name).encode()).hexdigest()[:24]

    def read(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def write(self, **status: object) -> None:
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.read(), **status}))
        tmp.replace(self.status_file)

    def supervisor_alive(self) -> bool:
        """Our supervisor runs: the pid is alive, no zombie (where PID 1 does not reap, an exited one
        lingers as one) and still this unit's supervisor (a pid reused by another process is not)."""
        pid = self.read().get("supervisor", 0)
        try:
            zombie = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            return False
        return bool(pid) and not zombie and b"_supervise" in argv and self.name.encode() in b" ".join(argv)

    def kill_service(self) -> None:
        """SIGKILL the service's process group (its supervisor is gone, or could not stop it in time)."""
        child = int(self.read().get("pid", 0))
        try:  # only the process this supervisor started: its environment names our notify socket
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            ours = f"NOTIFY_SOCKET={self.notify}".encode() in environ
        except OSError:
            return
        if child > 1 and ours:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)


def supervise(unit: Path, state: State) -> None:
    """The supervisor process: run ExecStart, report readiness, restart on failure, stop on SIGTERM."""
    svc = read_unit(unit)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + state.notify[1:])
    sock.settimeout(POLL_S)
    state.write(supervisor=os.getpid(), state="activating")
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    env = {**os.environ, "NOTIFY_SOCKET": state.notify}
    env.update(dict(word.split("=", 1) for word in shlex.split(svc["Environment"])))
    starts: list[float] = []
    burst, interval_s = int(svc.get("StartLimitBurst", "5")), seconds(svc.get("StartLimitIntervalSec"), 10)
    while not stopping:
        starts = [t for t in starts if time.monotonic() - t < interval_s] + [time.monotonic()]
        if len(starts) > burst:
            state.write(state="failed", reason="start limit hit")
            return
        with state.log.open("ab") as out:
            child = subprocess.Popen(
                shlex.split(svc["ExecStart"]),
                env=env,
                stdout=out,
                stderr=out,
                cwd=svc.get("WorkingDirectory") or "/",
                start_new_session=True,
            )
        notify = svc.get("Type", "simple") == "notify"
        state.write(state="activating" if notify else "ready", pid=child.pid)
        rc = run_child(child, sock, state, svc, stopping)
        if stopping:
            break
        restart = svc.get("Restart", "no")
        if restart == "no" or (restart == "on-failure" and rc == 0):
            state.write(state="failed" if rc else "inactive", reason=f"exited {rc}")
            return
        state.write(state="restarting", reason=f"exited {rc}")
        time.sleep(seconds(svc.get("RestartSec"), 0.1))
    state.write(state="inactive", reason="stopped")


def run_child(child: subprocess.Popen, sock: socket.socket, state: State, svc: dict, stopping: list) -> int:
    """Wait for the child to exit, reading its notifications; on stop, signal it and bound the wait."""
    stop_deadline = None
    while child.poll() is None:
        if stopping and stop_deadline is None:
            child.send_signal(getattr(signal, svc.get("KillSignal", "SIGTERM")))
            stop_deadline = time.monotonic() + seconds(svc.get("TimeoutStopSec"), 90)
        if stop_deadline is not None and time.monotonic() > stop_deadline:
            os.killpg(child.pid, signal.SIGKILL)
        try:
            message = sock.recv(4096).decode(errors="replace")
        except (TimeoutError, InterruptedError):
            continue
        if "READY=1" in message.splitlines():
            state.write(state="ready")
        status = [line[7:] for line in message.splitlines() if line.startswith("STATUS=")]
        if status:
            state.write(status=status[-1])
    if svc.get("KillMode", "control-group") != "process":
        with contextlib.suppress(ProcessLookupError):  # what it left in its group goes, as under systemd
            os.killpg(child.pid, signal.SIGKILL)
    return child.returncode


def start(unit: Path, state: State) -> str:
    """Start the unit and wait until it is ready. One already running is left alone, as `systemctl start`
    does (changed files take effect on `restart`); one activating (or restarting after a failure) is
    waited for."""
    svc = read_unit(unit)
    deadline = time.monotonic() + seconds(svc.get("TimeoutStartSec"), 90)
    if state.supervisor_alive():
        if state.read().get("state") == "ready":
            return "active"
        return wait_ready(state, deadline, None) and "active"
    state.status_file.unlink(missing_ok=True)  # only the supervisor writes it from here on
    supervisor = subprocess.Popen(
        [sys.executable, __file__, "_supervise", str(unit), "--state", str(state.status_file.parent)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return wait_ready(state, deadline, supervisor)


def wait_ready(state: State, deadline: float, supervisor: subprocess.Popen | None) -> str:
    """'started' once the service says it is ready; past the deadline, or when it fails, stop it and
    exit non-zero with the end of its log."""
    while time.monotonic() < deadline:
        now = state.read().get("state")
        if now == "ready":
            return "started"
        if now in ("failed", "inactive") or (supervisor is not None and supervisor.poll() is not None):
            break
        time.sleep(POLL_S)
    stop(state, 5)
    tail = state.log.read_text(errors="replace")[-2000:] if state.log.exists() else ""
    raise SystemExit(f"unitrun: {state.name} did not become ready ({state.read()}); its log ends:\n{tail}")


def stop(state: State, timeout_s: float = 95) -> str:
    pid = state.read().get("supervisor", 0)
    if not state.supervisor_alive():
        state.kill_service()  # a supervisor killed from outside leaves its service running: not for long
        return "inactive"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s + 5
    while state.supervisor_alive() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if state.supervisor_alive():  # it could not stop its service in time: both go, as systemd's SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        state.kill_service()
    return "stopped"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "restart", "stop", "status", "_supervise"])
    parser.add_argument("unit", help="a unit file (start, restart) or a unit's name (stop, status)")
    parser.add_argument("--state", required=True, type=Path, help="where pids, status and logs are kept")
    args = parser.parse_args()
    name = Path(args.unit).name
    state = State(args.state, name)
    if args.action == "_supervise":
        supervise(Path(args.unit), state)
    elif args.action in ("start", "restart"):
        if args.action == "restart":
            stop(state, seconds(read_unit(Path(args.unit)).get("TimeoutStopSec"), 90))
        print(start(Path(args.unit), state))
    elif args.action == "stop":
        print(stop(state))
    else:
        current = state.read()
        print(json.dumps(current))
        sys.exit(0 if state.supervisor_alive() and current.get("state") == "ready" else 3)


if __name__ == "__main__":
    main()
