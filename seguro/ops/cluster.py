"""A local cluster on 127.0.0.1: a real 3-member etcd and N node processes, for trying Seguro out and for
end-to-end tests. Everything it starts runs in its own session and is recorded in WORKDIR/cluster.json,
so `seguro cluster down` can stop it from another process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from seguro.node import tls
from seguro.node.config import WILDCARD_HOSTS
from seguro.node.etcd.coordinator import CoordinationError
from seguro.ops import cluster_tls, keys, processes
from seguro.ops.admin import AdminError, wait_for_master
from seguro.ops.etcd_server import EtcdCluster, stop_from_state
from seguro.ops.ship import create_ship

STATE_FILE = "cluster.json"
KEYRING_FILE = "event-keys.json"  # `cluster up --seal`: the ship's event keyring
READY_TIMEOUT_S = 30.0


class ClusterError(RuntimeError):
    """The cluster could not be brought up or down; the message says what and where to look."""


@dataclass
class NodeProc:
    id: str
    pid: int
    grpc: str
    udp: str
    data: str
    log: str
    http: str = ""


def node_command(node_id: str, ship: str, data: Path, etcd: str, ready: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "seguro.cli", "node", "run", "--id", node_id, "--ship", ship,
        "--data", str(data), "--etcd", etcd, "--ready-file", str(ready), *extra,
    ]  # fmt: skip


def start_node(workdir: Path, node_id: str, ship: str, etcd: str, extra: list[str]) -> NodeProc:
    """Start one node process (or restart it on its existing data dir) and wait until it is listening."""
    data, ready = workdir / node_id, workdir / f"{node_id}.ready"
    ready.unlink(missing_ok=True)
    log_path = workdir / f"{node_id}.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            node_command(node_id, ship, data, etcd, ready, extra),
            stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        if proc.poll() is not None:
            raise ClusterError(f"node {node_id} exited with {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            proc.kill()
            raise ClusterError(f"node {node_id} not listening after {READY_TIMEOUT_S} s; see {log_path}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    http = info.get("http", "")
    return NodeProc(node_id, proc.pid, info["grpc"], info["udp"], info["data"], str(log_path), http)


def up(
    workdir: Path,
    replicas: int = 3,
    ttl_s: int = 3,
    ship: str = "zod",
    extra: list[str] | None = None,
    who: str | None = "~zod",
    bind_host: str = "127.0.0.1",
    etcd_args: list[str] | None = None,
    seal: bool = False,
    secure: bool = False,
) -> dict:
    """Start etcd (3 members), create the ship as `who` (None: leave it uncreated, and nodes wait), and
    start `replicas` nodes binding gRPC on `bind_host` (a wildcard is advertised as 127.0.0.1); return the
    state once a master is elected (at once when the ship was left uncreated). `seal`: a new keyring in
    the workdir, and the ship's events sealed in etcd under it. `secure`: TLS and auth everywhere
    (cluster_tls.py); this process then speaks to etcd and the nodes as the operator."""
    if replicas < 1:
        raise ClusterError("replicas must be >= 1")
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / STATE_FILE).exists():
        raise ClusterError(f"{workdir} already has a cluster ({STATE_FILE}); run `seguro cluster down` first")
    if left := sorted(n for n in (f"n{i}" for i in range(replicas)) if (workdir / n).exists()):
        raise ClusterError(f"{workdir} holds the logs of an earlier cluster ({', '.join(left)}), whose ship "
                           "a new etcd would not know (its nodes would refuse to run): use a new workdir")
    token = f"seguro-{ship}-{os.getpid()}"
    ca = cluster_tls.authority(workdir) if secure else None
    if seal:  # the etcd below starts empty, so a keyring left by an earlier `up` seals nothing anyone needs
        (workdir / KEYRING_FILE).unlink(missing_ok=True)
    keyring = keys.create(workdir / KEYRING_FILE) if seal else None  # before etcd: nothing left running
    etcd = EtcdCluster(workdir / "etcd", members=3, token=token, extra_args=etcd_args or (), authority=ca)
    etcd.start()
    etcd.write_state(workdir / "etcd.json")
    extra = [*(["--event-keys", str(workdir / KEYRING_FILE)] if seal else []), *(extra or [])]
    state: dict = {"etcd": etcd.endpoints, "ship": ship, "nodes": [], "ttl": ttl_s, "extra": extra,
                   "bind": bind_host, "event_keys": str(workdir / KEYRING_FILE) if seal else ""}  # fmt: skip
    try:
        if secure:
            cluster_tls.secure_etcd(etcd, ship)
            admin = cluster_tls.operator(workdir)
            tls.configure(admin)
            state["tls"] = {"ca": str(admin.ca), "cert": str(admin.cert), "key": str(admin.key)}
        if who is not None:
            state["genesis"] = create_ship(etcd.endpoints, ship, who, keyring=keyring).id
        args = ["--ttl", str(ttl_s), *grpc_flags(bind_host, 0), "--http", "127.0.0.1:0", *extra]
        for i in range(replicas):
            node_args = [*args, *_security(workdir, state, f"n{i}")]
            state["nodes"].append(asdict(start_node(workdir, f"n{i}", ship, etcd.endpoints, node_args)))
            write_state(workdir, state)
        if who is not None:
            wait_for_master(etcd.endpoints, ship, timeout_s=READY_TIMEOUT_S)
    except BaseException as e:
        down(workdir)
        if secure:
            tls.configure(None)
        if isinstance(e, AdminError | CoordinationError):
            raise ClusterError(f"{e}; node logs are in {workdir}") from None
        raise
    return state


def grpc_flags(bind_host: str, port: int) -> list[str]:
    """Bind gRPC on `bind_host`; a wildcard bind advertises 127.0.0.1, where the other nodes dial."""
    flags = ["--grpc", f"{bind_host}:{port}"]
    return flags + (["--advertise-grpc", f"127.0.0.1:{port}"] if bind_host in WILDCARD_HOSTS else [])


def plaintext_flags(state: dict) -> list[str]:
    """A plaintext cluster bound beyond loopback says so (--insecure); a --tls one needs nothing."""
    return ["--insecure"] if not state.get("tls") and state.get("bind", "127.0.0.1") in WILDCARD_HOSTS else []


def write_state(workdir: Path, state: dict) -> None:
    tmp = workdir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.rename(workdir / STATE_FILE)


def read_state(workdir: Path) -> dict:
    try:
        return json.loads((workdir / STATE_FILE).read_text())
    except FileNotFoundError:
        raise ClusterError(f"no cluster in {workdir} (no {STATE_FILE})") from None


def restart_node(workdir: Path, node_id: str) -> NodeProc:
    """Start a stopped node again on its data dir; updates the state file."""
    state = read_state(workdir)
    old = next((n for n in state["nodes"] if n["id"] == node_id), None)
    if old is None:
        raise ClusterError(f"no node {node_id} in {workdir}")
    if is_our_node(old):
        raise ClusterError(f"node {node_id} is still running (pid {old['pid']})")
    # Same addresses as before: peers and the load balancer know the ship by its UDP address.
    port = int(old["grpc"].rsplit(":", 1)[1])
    grpc = grpc_flags(state.get("bind", "127.0.0.1"), port)
    http = ["--http", old["http"]] if old.get("http") else []  # the same address: health checks know it
    args = ["--ttl", str(state["ttl"]), *grpc, "--udp", old["udp"], *http, *state["extra"],
            *_security(workdir, state, node_id)]
    proc = start_node(workdir, node_id, state["ship"], state["etcd"], args)
    state["nodes"] = [asdict(proc) if n["id"] == node_id else n for n in state["nodes"]]
    write_state(workdir, state)
    return proc


def add_node(workdir: Path, node_id: str, extra: list[str]) -> NodeProc:
    """Start one more node in a running cluster (recorded, so `down` stops it too)."""
    state = read_state(workdir)
    if any(n["id"] == node_id for n in state["nodes"]):
        raise ClusterError(f"{workdir} already has a node {node_id}")
    grpc = grpc_flags(state.get("bind", "127.0.0.1"), 0)
    sealed = ["--event-keys", state["event_keys"]] if state.get("event_keys") else []
    args = ["--ttl", str(state["ttl"]), *grpc, "--http", "127.0.0.1:0", *sealed, *extra,
            *_security(workdir, state, node_id)]
    proc = start_node(workdir, node_id, state["ship"], state["etcd"], args)
    state["nodes"].append(asdict(proc))
    write_state(workdir, state)
    return proc


def _security(workdir: Path, state: dict, node_id: str) -> list[str]:
    """A node's TLS flags in a --tls cluster; --insecure for a plaintext one bound beyond loopback."""
    if state.get("tls"):
        return cluster_tls.node_flags(workdir, state["ship"], node_id)
    return plaintext_flags(state)


def is_our_node(node: dict) -> bool:
    """The recorded pid still runs that node (after a reboot it may be anybody else's process)."""
    return processes.pid_alive(node["pid"]) and processes.runs_with(node["pid"], "node", "run", node["data"])


def down(workdir: Path) -> list[int]:
    """Stop every node and etcd member the cluster in `workdir` started; returns the pids stopped."""
    stopped: list[int] = []
    with contextlib.suppress(ClusterError):
        stopped = [n["pid"] for n in read_state(workdir)["nodes"] if is_our_node(n)]
        processes.stop(stopped, timeout_s=10.0, group=True)
    if (workdir / "etcd.json").exists():
        stopped += stop_from_state(workdir / "etcd.json")
    if survivors := [pid for pid in stopped if processes.pid_alive(pid)]:
        raise ClusterError(f"pids {survivors} outlived SIGKILL; {workdir / STATE_FILE} kept, run down again")
    (workdir / STATE_FILE).unlink(missing_ok=True)
    return stopped
