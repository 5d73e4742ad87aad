"""`seguro demo`: a local 3-replica cluster under Ames-like traffic, a SIGKILLed master, and the checks a
ship's owner cares about: a new master within seconds, no acknowledged event lost, never two replicas
answering for the same event (a double boot), and every replica's log identical in the end."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from seguro.node.config import parse_hostport
from seguro.node.etcd.coordinator import CoordinationError
from seguro.node.eventlog import EventLog
from seguro.ops import cluster as local
from seguro.ops.admin import leader_info, status_rows

ACK = re.compile(rb"^ack (\d+)")
RATE_PER_S = 200
CONVERGE_TIMEOUT_S = 30.0


class Peer:
    """A remote ship's end: sends every datagram to every replica (the load balancer's job) and reads acks."""

    def __init__(self, targets: dict[str, tuple[str, int]]) -> None:
        self.targets = targets
        self.by_address = {addr: node_id for node_id, addr in targets.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Effects are released in bursts (a commit, a follower's ack); a small buffer would drop some
        # before this thread reads them. The kernel caps the size at net.core.rmem_max.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.sent = 0
        self._lock = threading.Lock()  # the receiver thread adds while callers read
        self._acks: dict[int, set[str]] = defaultdict(set)  # event -> nodes that answered for it
        self.replies_by_node: dict[str, int] = defaultdict(int)
        self.last_reply_s: dict[str, float] = {}
        self.last_reply_event: dict[str, int] = {}
        self.replies: list[tuple[float, str, int]] = []  # (received at, node, event)
        self._stop = threading.Event()
        self._rx = threading.Thread(target=self._receive, daemon=True)
        self._rx.start()

    def send_one(self) -> None:
        self.sent += 1
        payload = b"ping %d from the demo peer" % self.sent
        for addr in self.targets.values():
            self.sock.sendto(payload, addr)

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65_535)
            except (TimeoutError, OSError):
                continue
            node_id = self.by_address.get(addr, f"{addr[0]}:{addr[1]}")
            match = ACK.match(data)
            if match:
                with self._lock:
                    self._acks[int(match.group(1))].add(node_id)
                self.replies_by_node[node_id] += 1
                self.last_reply_s[node_id] = time.monotonic()
                self.last_reply_event[node_id] = int(match.group(1))
                self.replies.append((time.monotonic(), node_id, int(match.group(1))))

    def answered(self) -> int:
        """How many events have been answered."""
        return len(self._acks)

    def answers(self) -> dict[int, frozenset[str]]:
        """A copy of event -> the nodes that answered for it."""
        with self._lock:
            return {event: frozenset(nodes) for event, nodes in self._acks.items()}

    def doubles(self) -> dict[int, list[str]]:
        """Events answered by more than one node: a double boot."""
        return {event: sorted(nodes) for event, nodes in self.answers().items() if len(nodes) > 1}

    def close(self) -> None:
        self._stop.set()
        self._rx.join(1.0)
        self.sock.close()


def _show(echo: Callable[[str], None], etcd: str, ship: str, t0: float, peer: Peer) -> dict | None:
    try:
        master = leader_info(etcd, ship)
        report = status_rows(etcd, ship)
    except CoordinationError as e:
        echo(f"  t={time.monotonic() - t0:5.1f}s  etcd: {e}")
        return None
    who = f"{master['id']} epoch {master['epoch']} ttl {master['ttl_remaining']}s" if master else "(electing)"
    replicas = "  ".join(
        f"{r['id']}:{r['role'][:6]} {r['durable_event']} lag {r['lag']}" for r in report["replicas"]
    )
    echo(f"  t={time.monotonic() - t0:5.1f}s  master {who} | {replicas} | acks {peer.answered()}")
    return master


def _traffic(peer: Peer, seconds: float, echo: Callable[[str], None], etcd: str, ship: str, t0: float,
             until: Callable[[], bool] | None = None) -> None:  # fmt: skip
    end = time.monotonic() + seconds
    next_show = 0.0
    while time.monotonic() < end and not (until and until()):
        peer.send_one()
        if time.monotonic() >= next_show:
            next_show = time.monotonic() + 0.5
            _show(echo, etcd, ship, t0, peer)
        time.sleep(1 / RATE_PER_S)


def _wait_converged(etcd: str, ship: str, replicas: int) -> dict:
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    report: dict = {}
    while time.monotonic() < deadline:
        try:
            report = status_rows(etcd, ship)
        except CoordinationError:
            time.sleep(0.2)
            continue
        rows = report["replicas"]
        if len(rows) == replicas and all(r["durable_event"] == report["head"] for r in rows):
            return report
        time.sleep(0.2)
    return report


def compare_logs(data_dirs: dict[str, str]) -> tuple[bool, dict[str, int], str]:
    """Open every replica's log read-only; True when all hold the same records (from the highest first
    event: a replica that started from a snapshot, or was chopped, holds the log after it)."""
    logs = {node_id: EventLog(Path(d), create=False, read_only=True) for node_id, d in data_dirs.items()}
    try:
        last = {node_id: log.last_event() for node_id, log in logs.items()}
        if len(set(last.values())) != 1:
            return False, last, f"last events differ: {last}"
        start = max(max(1, log.first_event()) for log in logs.values())
        readers = [log.read(start) for log in logs.values()]
        for rows in zip(*readers, strict=True):
            if len({record for _, record in rows}) != 1:
                return False, last, f"records differ at event {rows[0][0]}"
        bad = {node_id: log.verify().summary() for node_id, log in logs.items() if not log.verify().ok}
        return not bad, last, f"verify failed: {bad}" if bad else ""
    finally:
        for log in logs.values():
            log.close()


def run_demo(
    workdir: Path | None, keep: bool, seconds: float, echo: Callable[[str], None], secure: bool = False,
    seal: bool = False,
) -> dict:  # fmt: skip
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="seguro-demo-")) if workdir is None else workdir.resolve()
    extras = ", TLS and auth everywhere" * secure + ", events sealed in etcd" * seal
    echo(f"Seguro demo in {work}: 3-member etcd, 3 replicas of ship 'zod', lease TTL 3 s{extras}")
    try:
        state = local.up(work, replicas=3, ttl_s=3, secure=secure, seal=seal)
    except BaseException:
        if own_dir:  # nothing of it is worth keeping
            shutil.rmtree(work, ignore_errors=True)
        raise
    etcd, ship = state["etcd"], state["ship"]
    peer = Peer({n["id"]: parse_hostport("udp", n["udp"]) for n in state["nodes"]})
    problems: list[str] = []
    t0 = time.monotonic()
    try:
        echo(f"Sending Ames-like datagrams to every replica at {RATE_PER_S}/s (as a load balancer would)")
        _traffic(peer, seconds / 2, echo, etcd, ship, t0)
        old = leader_info(etcd, ship)
        if old is None:
            raise local.ClusterError("no master before the failover")
        pid = next(n["pid"] for n in state["nodes"] if n["id"] == old["id"])
        echo(f"SIGKILL master {old['id']} (pid {pid}) mid-stream")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        elected: dict = {}
        next_look = [0.0]

        def new_master() -> bool:
            if not elected and time.monotonic() >= next_look[0]:
                next_look[0] = time.monotonic() + 0.05
                master = leader_info(etcd, ship)
                if master is not None and master["id"] != old["id"]:
                    elected.update(master, at=time.monotonic())
            return False

        _traffic(peer, seconds, echo, etcd, ship, t0, until=new_master)
        if not elected:
            problems.append("no new master after the kill")
        failover_s = round(elected.get("at", time.monotonic()) - killed_at, 2)
        echo(f"New master {elected.get('id')} at epoch {elected.get('epoch')} after {failover_s} s; "
             f"restarting {old['id']} on its data to catch up")  # fmt: skip
        local.restart_node(work, old["id"])
        _traffic(peer, 1.0, echo, etcd, ship, t0)
        time.sleep(1.0)  # replies in flight
        report = _wait_converged(etcd, ship, replicas=3)
        nodes = local.read_state(work)["nodes"]
        agree, last, why = compare_logs({n["id"]: n["data"] for n in nodes})
        if not agree:
            problems.append(f"logs disagree: {why}")
        doubles = peer.doubles()
        if doubles:
            problems.append(
                f"double boot: events answered by two replicas: {dict(list(doubles.items())[:5])}"
            )
        head = int(report.get("head", 0))
        lost = [e for e in peer.answers() if e > min(last.values(), default=0)]
        if lost:
            problems.append(f"acknowledged events missing from a log: {lost[:5]}")
        summary = {
            "ok": not problems,
            "events_committed": head,
            "failover_seconds": failover_s,
            "effects_by_node": {n["id"]: peer.replies_by_node.get(n["id"], 0) for n in nodes},
            "replicas": [
                {"id": n["id"], "data": n["data"], "last_event": last.get(n["id"], 0)} for n in nodes
            ],
            "datagrams_sent": peer.sent,
            "events_acknowledged": peer.answered(),
            "problems": problems,
        }
        _print_summary(echo, summary)
        return summary
    finally:
        peer.close()
        if not keep:
            local.down(work)
            if own_dir:
                shutil.rmtree(work, ignore_errors=True)


def _print_summary(echo: Callable[[str], None], s: dict) -> None:
    echo("")
    echo(f"events committed     {s['events_committed']}")
    echo(f"failover             {s['failover_seconds']} s (SIGKILL to a new master serving)")
    echo(f"acknowledged events  {s['events_acknowledged']} of {s['datagrams_sent']} datagrams sent")
    echo("effects by node      " + ", ".join(f"{k}: {v}" for k, v in s["effects_by_node"].items()))
    echo("replica logs         " + ", ".join(f"{r['id']}: 1..{r['last_event']}" for r in s["replicas"]))
    echo("result               " + ("OK: one master at a time, nothing lost, all logs identical" if s["ok"]
                                    else "FAILED: " + "; ".join(s["problems"])))  # fmt: skip
