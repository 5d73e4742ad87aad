"""End to end: an event that runs longer than a minute (a kernel upgrade, a large desk commit) completes
and commits. vere has no per-event deadline; neither may Seguro: only a dead runtime (EOF) or one hung
past the liveness bound (an hour by default) is restarted."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from seguro.node.config import parse_hostport
from tests.e2e.helpers import Cluster

pytestmark = pytest.mark.e2e
SLOW_MS = 61_000


@pytest.mark.parametrize("runtime", ["ship", "ship2"])
def test_a_work_of_more_than_60_s_completes_and_commits(tmp_path: Path, runtime: str) -> None:
    cluster = Cluster(tmp_path / "cluster", replicas=1, extra=["--runtime", runtime])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(SLOW_MS / 1000 + 30)
    try:
        head = cluster.head()
        node = cluster.node("n0")
        started = time.monotonic()
        sock.sendto(b"slow %d" % SLOW_MS, parse_hostport("udp", node["udp"]))
        answer, _ = sock.recvfrom(1024)  # the ack comes once the event is committed
        took_s = time.monotonic() - started
        print(f"a {SLOW_MS / 1000:.0f} s event answered after {took_s:.1f} s")
        event = int(answer.split()[1])  # "ack <event> ..." (a %born may have come just before it)
        assert answer.startswith(b"ack ") and event > head and took_s >= SLOW_MS / 1000
        assert cluster.head() >= event  # committed
    finally:
        sock.close()
        cluster.close()
