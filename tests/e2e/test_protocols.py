"""End to end under each worker protocol: 3 replicas of the reference ship speaking protocol 1 (vere 3.x's
serf: the king logs) and protocol 2 (vere 4.x's worker: it owns the pier's LMDB log), 10,000 events with
the master SIGKILLed half way. Logs must be identical, no event answered twice; under protocol 2 every
replica's pier holds exactly the committed log."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from seguro.node.eventlog import EventLog
from seguro.ops import cluster as local
from seguro.urbit.pier.log import PierLog
from tests.e2e.helpers import TTL_S, Cluster, wait_until

pytestmark = pytest.mark.e2e
EVENTS = 10_000
WINDOW = 300  # datagrams in flight: UDP has no flow control
STALL_S = 2.0  # a full window unanswered this long was lost in a failover


def pump(cluster: Cluster, answered: int, timeout_s: float) -> None:
    """Send until the peer has `answered` acknowledgements, keeping a bounded window in flight.

    Datagrams in flight when the master dies are never answered (UDP: the new master never saw them
    committed), so a full window with no answer for STALL_S is written off rather than waited on forever."""
    peer, deadline = cluster.peer, time.monotonic() + timeout_s
    written_off, seen, progress_s = 0, peer.answered(), time.monotonic()
    while peer.answered() < answered and time.monotonic() < deadline:
        now, got = time.monotonic(), peer.answered()
        if got != seen:
            seen, progress_s = got, now
        if peer.sent - got - written_off < WINDOW:
            peer.send_one()
            continue
        if now - progress_s > STALL_S:
            written_off, progress_s = peer.sent - got, now
        time.sleep(0.001)
    assert peer.answered() >= answered, f"only {peer.answered()} of {answered} events acknowledged"


def pier_matches_log(data_dir: Path) -> int:
    """The pier's log is the committed log, record for record; returns its head."""
    with EventLog(data_dir) as log, PierLog(data_dir / "pier") as pier:
        head = log.last_event()
        assert pier.head() == head, f"{data_dir}: pier at {pier.head()}, log at {head}"
        for first in range(1, head + 1, 1000):
            ours = dict(log.read(first, min(head, first + 999)))
            theirs = dict(pier.read(first, min(head, first + 999)))
            assert ours == theirs, f"{data_dir}: pier and log differ in {first}..{first + 999}"
        return head


@pytest.mark.parametrize("runtime", ["ship", "ship2"])
def test_10000_events_with_a_sigkilled_master_under_each_protocol(tmp_path: Path, runtime: str) -> None:
    cluster = Cluster(tmp_path / "cluster", extra=["--runtime", runtime])
    try:
        pump(cluster, EVENTS // 2, timeout_s=120)
        old = cluster.master()
        os.kill(cluster.node(old["id"])["pid"], signal.SIGKILL)

        def moved() -> bool:
            return (cluster.master_or_none() or {}).get("id") not in (None, old["id"])

        wait_until("a new master", moved, timeout_s=TTL_S + 10)
        pump(cluster, EVENTS, timeout_s=180)
        local.restart_node(cluster.workdir, old["id"])
        wait_until("replicas to converge", cluster.converged, 90, every_s=0.5)
        last = cluster.logs_agree()
        assert min(last.values()) >= EVENTS + 3
        assert max(cluster.peer.answers()) <= min(last.values()), "an acknowledged event is missing"
        assert not cluster.peer.doubles(), "double boot"
        nodes = local.read_state(cluster.workdir)["nodes"]
    finally:
        cluster.close()
    if runtime == "ship2":  # read once every node has stopped
        assert {pier_matches_log(Path(n["data"])) for n in nodes} == set(last.values())
