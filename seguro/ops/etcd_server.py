"""Launch real local etcd clusters on 127.0.0.1 (for tests and for `seguro cluster up`).

Each member runs in its own session (start_new_session=True), so `seguro cluster down` can stop it by pid
from a JSON state file after the launching process has gone. Ports come from the kernel (bind to port 0);
another process can grab one before etcd binds it, so a start that dies with "address already in use" is
retried with fresh ports and fresh data dirs, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from seguro.node.tls import TlsFiles
from seguro.ops import processes
from seguro.ops.pki import Authority
from seguro.ops.processes import cmdline

ETCD_BINARY = "etcd"
MEMBER_CN = "etcd-member"  # every member's certificate: what the peer port admits (--peer-cert-allowed-cn)
HEALTH_TIMEOUT_S = 20.0
START_ATTEMPTS = 3
LOG_TAIL_BYTES = 2000
HEARTBEAT_INTERVAL_MS = 100
ELECTION_TIMEOUT_MS = 1000  # etcd's default; a leader cut off from its quorum steps down within two


class EtcdStartError(RuntimeError):
    """etcd did not become healthy; the message carries the member's log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1, all held open together so the kernel cannot repeat one."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class MemberSpec:
    """Everything needed to (re)start one member with the same command."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    tls: TlsFiles | None = None  # its server and peer certificate: https, client certificates required

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"


def etcd_command(member: MemberSpec, initial_cluster: str, token: str) -> list[str]:
    """The etcd command line for one loopback member: fast heartbeats, periodic compaction."""
    return [
        ETCD_BINARY,
        "--name", member.name,
        "--data-dir", str(member.data_dir),
        "--listen-client-urls", member.client_url,
        "--advertise-client-urls", member.client_url,
        "--listen-peer-urls", member.peer_url,
        "--initial-advertise-peer-urls", member.peer_url,
        "--initial-cluster", initial_cluster,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", token,
        "--heartbeat-interval", str(HEARTBEAT_INTERVAL_MS),
        "--election-timeout", str(ELECTION_TIMEOUT_MS),
        "--auto-compaction-mode", "periodic",
        "--auto-compaction-retention", "1h",
        "--logger", "zap",
        "--log-outputs", "stderr",
        *(tls_flags(member.tls) if member.tls is not None else []),
    ]  # fmt: skip


def tls_flags(files: TlsFiles) -> list[str]:
    """TLS on client and peer URLs, and a certificate from the CA required of every client and peer (with
    auth enabled, etcd takes a client certificate's CN as its user). The peer port takes only members'
    certificates (CN MEMBER_CN): a replica's or an operator's, from the same CA, cannot join raft."""
    cert, key, ca = str(files.cert), str(files.key), str(files.ca)
    return ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca, "--client-cert-auth",
            "--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca,
            "--peer-client-cert-auth", "--peer-cert-allowed-cn", MEMBER_CN]  # fmt: skip


def ssl_context(files: TlsFiles | None) -> ssl.SSLContext | None:
    """For this module's own HTTP calls to members (/health, status) when they serve TLS."""
    if files is None:
        return None
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def plan_members(workdir: Path, ports: list[int], authority: Authority | None = None) -> list[MemberSpec]:
    """Member specs from 2*n ports: client ports first, then peer ports."""
    n = len(ports) // 2
    return [
        MemberSpec(
            name=f"n{i + 1}",
            client_port=ports[i],
            peer_port=ports[n + i],
            data_dir=workdir / f"n{i + 1}.etcd",
            log_path=workdir / f"n{i + 1}.log",
            tls=authority.issue(f"etcd-n{i + 1}", MEMBER_CN, hosts=("127.0.0.1", "localhost"))
            if authority is not None else None,
        )
        for i in range(n)
    ]


def log_tail(path: Path, limit_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last `limit_bytes` of a log file, for error messages."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"<no log: {e}>"
    return data[-limit_bytes:].decode("utf-8", "replace")


def is_healthy(client_url: str, timeout_s: float = 0.5, context: ssl.SSLContext | None = None) -> bool:
    """True when the member answers /health with health=true (it sees a leader)."""
    try:
        with urllib.request.urlopen(f"{client_url}/health", timeout=timeout_s, context=context) as r:
            return json.loads(r.read()).get("health") == "true"
    except (OSError, ValueError, urllib.error.URLError):
        return False


def is_leader(status: dict | None) -> bool:
    """A member's status says it is the raft leader."""
    return bool(status) and status.get("leader") == status.get("header", {}).get("member_id")  # type: ignore[union-attr]


def member_status(
    client_url: str, timeout_s: float = 0.5, context: ssl.SSLContext | None = None
) -> dict | None:
    """The member's /v3/maintenance/status answer (member_id, leader, ...), or None when unreachable."""
    request = urllib.request.Request(f"{client_url}/v3/maintenance/status", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as r:
            return json.loads(r.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


class EtcdCluster:
    """A local etcd cluster of 1 or 3 members. `start()` launches it; `stop()` always ends every member."""

    def __init__(
        self,
        workdir: Path,
        members: int = 1,
        token: str = "seguro-local",
        port_allocator: Callable[[int], list[int]] = free_ports,
        extra_args: Sequence[str] = (),
        authority: Authority | None = None,
    ) -> None:
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        self.workdir = Path(workdir)
        self.size = members
        self.token = token
        self._allocate = port_allocator
        self.extra_args = list(extra_args)  # e.g. --quota-backend-bytes N
        self._members: list[MemberSpec] = []
        self._procs: list[subprocess.Popen | None] = []
        self.start_attempts = 0
        # TLS: members' certificates from `authority`, and a root client certificate for this module's
        # own calls and for setting up auth (auth.py); None: plaintext.
        self.authority = authority
        self.root_tls = authority.issue("etcd-root", "root") if authority is not None else None
        self._context = ssl_context(self.root_tls)

    # ---- start / stop -------------------------------------------------------------------------------

    def start(self, timeout_s: float = HEALTH_TIMEOUT_S) -> EtcdCluster:
        """Start all members and wait until every one is healthy; retry port races with new ports."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        attempt = 0
        while True:
            attempt += 1
            self.start_attempts = attempt
            self._members = plan_members(self.workdir, self._allocate(2 * self.size), self.authority)
            for m in self._members:
                shutil.rmtree(m.data_dir, ignore_errors=True)
                m.log_path.unlink(missing_ok=True)
            self._procs = []
            try:
                for m in self._members:  # one at a time: stop() must see every member that did start
                    self._procs.append(self._spawn(m))
                self._wait_healthy(range(self.size), timeout_s)
                return self
            except EtcdStartError as e:
                self.stop()
                if "address already in use" not in str(e) or attempt >= START_ATTEMPTS:
                    raise

    def stop(self, timeout_s: float = 5.0) -> None:
        """End every member: SIGCONT (a stopped process cannot die), then SIGTERM one at a time, leader first.

        A leader that gets SIGTERM hands leadership to a live follower and exits in ~0.1 s; SIGTERM to all at
        once leaves it trying to hand over to dying followers for ~7 s. Whatever outlives timeout_s is killed.
        """
        live = [i for i in range(len(self._procs)) if self.is_running(i)]
        for i in live:
            self._signal(i, signal.SIGCONT)
        leader = self.leader() if len(live) > 1 else None
        deadline = time.monotonic() + timeout_s
        for i in sorted(live, key=lambda i: i != leader):
            p = self._procs[i]
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5.0)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- one member ---------------------------------------------------------------------------------

    def kill(self, i: int) -> None:
        """SIGKILL member i and reap it."""
        p = self._procs[i]
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5.0)

    def pause(self, i: int) -> None:
        """SIGSTOP member i: it keeps its sockets open but answers nothing (a hung machine)."""
        self._signal(i, signal.SIGSTOP)

    def resume(self, i: int) -> None:
        """SIGCONT member i."""
        self._signal(i, signal.SIGCONT)

    def restart(self, i: int, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        """Kill member i if it runs, start it with the same command (its data dir wins), wait healthy."""
        self.kill(i)
        self._procs[i] = self._spawn(self._members[i])
        self._wait_healthy([i], timeout_s)

    def is_running(self, i: int) -> bool:
        p = self._procs[i]
        return p is not None and p.poll() is None

    def leader(self) -> int | None:
        """Index of the member that is the raft leader now, by asking each live member; None when unknown."""
        for i, m in enumerate(self._members):
            if not self.is_running(i):
                continue
            if is_leader(member_status(m.client_url, context=self._context)):
                return i
        return None

    # ---- views --------------------------------------------------------------------------------------

    @property
    def client_urls(self) -> list[str]:
        return [m.client_url for m in self._members]

    @property
    def endpoints(self) -> str:
        """Client URLs, comma-separated (the form `--etcd` flags take)."""
        return ",".join(self.client_urls)

    @property
    def pids(self) -> list[int | None]:
        return [p.pid if p is not None and p.poll() is None else None for p in self._procs]

    def state(self) -> dict:
        """What `stop_from_state` needs after this process has gone (pids[i] is None for a dead member)."""
        return {
            "pids": self.pids,
            "client_urls": self.client_urls,
            "data_dirs": [str(m.data_dir) for m in self._members],
            "workdir": str(self.workdir),
            "token": self.token,
            "root_tls": [str(f) for f in (self.root_tls.ca, self.root_tls.cert, self.root_tls.key)]
            if self.root_tls is not None else None,
        }

    def write_state(self, path: Path) -> None:
        """Write `state()` as JSON atomically (tmp + rename)."""
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state(), indent=2))
        tmp.replace(path)

    # ---- internals ----------------------------------------------------------------------------------

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self._members)

    def _spawn(self, member: MemberSpec) -> subprocess.Popen:
        log = open(member.log_path, "ab")  # noqa: SIM115 - the child keeps its own copy of the fd
        try:
            return subprocess.Popen(
                [*etcd_command(member, self._initial_cluster(), self.token), *self.extra_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:  # etcd not installed, not executable
            raise EtcdStartError(
                f"cannot start {ETCD_BINARY} ({e}); install it (Debian/Ubuntu: apt-get install etcd-server) "
                "or run `bash scripts/setup.sh`"
            ) from None
        finally:
            log.close()

    def _signal(self, i: int, sig: signal.Signals) -> None:
        p = self._procs[i]
        if p is None or p.poll() is not None:
            raise RuntimeError(f"etcd member {i} is not running")
        os.kill(p.pid, sig)

    def _wait_healthy(self, indexes: range | list[int], timeout_s: float) -> None:
        """Poll /health of the given members until all are healthy; fail fast if one exits."""
        deadline = time.monotonic() + timeout_s
        pending = list(indexes)
        while pending:
            for i in list(pending):
                p = self._procs[i]
                if p is not None and p.poll() is not None:
                    raise self._start_error(i, f"exited with code {p.returncode}")
                if is_healthy(self._members[i].client_url, context=self._context):
                    pending.remove(i)
            if pending and time.monotonic() > deadline:
                raise self._start_error(pending[0], f"not healthy after {timeout_s:.0f} s")
            if pending:
                time.sleep(0.05)

    def _start_error(self, i: int, what: str) -> EtcdStartError:
        m = self._members[i]
        tail = log_tail(m.log_path)
        return EtcdStartError(
            f"etcd member {m.name} ({m.client_url}) {what}; log {m.log_path} ends with:\n{tail}"
        )


def load_state(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _is_our_etcd(pid: int, data_dirs: list[str]) -> bool:
    """Guard against pid reuse: the process must be etcd running on one of the cluster's data dirs."""
    argv = cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]) == ETCD_BINARY and any(d in argv for d in data_dirs)


def _leader_first(pids: list[int | None], urls: list[str], context: ssl.SSLContext | None) -> list[int]:
    """Live pids ordered with the raft leader's first (see EtcdCluster.stop for why)."""
    leader = next((pid for pid, url in zip(pids, urls, strict=True)
                   if pid is not None and is_leader(member_status(url, context=context))), None)  # fmt: skip
    return sorted((p for p in pids if p is not None), key=lambda p: p != leader)


def stop_from_state(path: Path, timeout_s: float = 5.0) -> list[int]:
    """Stop the members listed in a state file, leader first: SIGCONT+SIGTERM each, SIGKILL after timeout_s.

    Returns the pids signalled. Pids that no longer run etcd on the cluster's data dirs are skipped.
    """
    state = load_state(path)
    pids = [p if p is not None and _is_our_etcd(p, state["data_dirs"]) else None for p in state["pids"]]
    root = state.get("root_tls")
    context = ssl_context(TlsFiles(*map(Path, root)) if root else None)
    ordered = _leader_first(pids, state["client_urls"], context)
    processes.stop(ordered, timeout_s, one_at_a_time=True)
    return ordered
