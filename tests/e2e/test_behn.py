"""End to end: the ship's timer survives a failover. A `later` timer set before the master is SIGKILLed
fires exactly once, from the new master, which re-arms it from the %born it sends on promotion."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from seguro.node.config import parse_hostport
from seguro.ops.admin import status_rows
from tests.e2e.helpers import Cluster, wait_until

pytestmark = pytest.mark.e2e
LATER_MS = 6000


@pytest.mark.parametrize("runtime", ["ship", "ship2"])
def test_a_timer_set_before_the_master_dies_fires_once_from_the_next(tmp_path: Path, runtime: str) -> None:
    cluster = Cluster(tmp_path / "cluster", extra=["--runtime", runtime])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    try:
        old, head = cluster.master(), cluster.head()
        for node in cluster.state["nodes"]:  # as the load balancer does: every replica gets it
            sock.sendto(b"later %d" % LATER_MS, parse_hostport("udp", node["udp"]))
        set_at = time.monotonic()
        wait_until("the timer's event committed", lambda: cluster.head() > head, timeout_s=5)
        os.kill(cluster.node(old["id"])["pid"], signal.SIGKILL)
        def moved() -> bool:
            return (cluster.master_or_none() or {}).get("id") not in (None, old["id"])

        wait_until("a new master", moved, timeout_s=15)
        heard: list[tuple[float, bytes]] = []
        deadline = set_at + LATER_MS / 1000 + 15
        while time.monotonic() < deadline:  # bounded: listen past the due time for any second answer
            try:
                heard.append((time.monotonic() - set_at, sock.recvfrom(1024)[0]))
            except TimeoutError:
                continue
        woke = [(at_s, data) for at_s, data in heard if data.startswith(b"woke ")]
        print(f"heard {heard}")
        assert len(woke) == 1, heard
        assert woke[0][0] >= LATER_MS / 1000 - 0.5  # not before it was due
        new = cluster.master()
        for node in cluster.state["nodes"]:
            sock.sendto(b"blit", parse_hostport("udp", node["udp"]))

        def counted() -> bool:
            rows = {r["id"]: r for r in status_rows(cluster.etcd, "zod")["replicas"]}
            return rows[new["id"]]["effects_unserved"].get("blit") == 1

        wait_until("the unserved %blit counted in the new master's status", counted, timeout_s=10)
    finally:
        sock.close()
        cluster.close()


def test_a_datagram_for_a_galaxy_goes_to_the_galaxys_address(tmp_path: Path) -> None:
    """With local networking (vere's -L), galaxy g is at 127.0.0.1:31337+g; else <name>.<domain>:13337+g."""
    galaxy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    galaxy.bind(("127.0.0.1", 31337 + 7))  # ~let
    galaxy.settimeout(10)
    cluster = Cluster(tmp_path / "cluster", replicas=1, extra=["--galaxy-local"])
    try:
        node = cluster.node("n0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:  # the ack goes back to it
            sender.sendto(b"galaxy 7 hello ~let", parse_hostport("udp", node["udp"]))
            assert galaxy.recvfrom(1024)[0] == b"hello ~let"
    finally:
        galaxy.close()
        cluster.close()
