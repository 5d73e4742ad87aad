"""End to end: every node's HTTP endpoint. /primary answers 200 on exactly one node and moves with a
failover, /replica on the followers, /health everywhere, and /metrics parses as Prometheus' format."""

from __future__ import annotations

import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from seguro.ops import cluster as local
from tests.e2e.helpers import TTL_S, Cluster, wait_until

pytestmark = pytest.mark.e2e


def status_of(node: dict, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{node['http']}{path}", timeout=2) as reply:
            return reply.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0  # not listening (a killed node)


def primaries(cluster: Cluster) -> list[str]:
    return [n["id"] for n in local.read_state(cluster.workdir)["nodes"] if status_of(n, "/primary") == 200]


def test_primary_is_one_node_and_moves_on_failover_and_metrics_parse(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster")
    try:
        cluster.send(200)
        master = cluster.master()["id"]
        wait_until("/primary on the master only", lambda: primaries(cluster) == [master], 10, every_s=0.2)
        nodes = local.read_state(cluster.workdir)["nodes"]
        assert all(status_of(n, "/health") == 200 for n in nodes)
        assert sorted(n["id"] for n in nodes if status_of(n, "/replica") == 200) == sorted(
            n["id"] for n in nodes if n["id"] != master)  # fmt: skip
        with urllib.request.urlopen(f"http://{cluster.node(master)['http']}/metrics", timeout=5) as reply:
            families = {f.name: f for f in text_string_to_metric_families(reply.read().decode())}
        role = {s.labels["role"]: s.value for s in families["seguro_role"].samples}
        assert role["master"] == 1.0 and role["follower"] == 0.0
        latency = {s.name: s.value for s in families["seguro_commit_latency_seconds"].samples}
        assert latency["seguro_commit_latency_seconds_count"] > 0
        os.kill(cluster.node(master)["pid"], signal.SIGKILL)

        def moved() -> bool:
            found = primaries(cluster)
            return len(found) == 1 and found[0] != master

        wait_until("/primary to move to one other node", moved, TTL_S + 10, every_s=0.2)
    finally:
        cluster.close()
