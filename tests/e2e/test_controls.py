"""End to end: the operators' controls. A switchover hands the ship to the named replica with no double
emitter and no lost event; a paused ship does not fail over when its master dies; a failover to a named
replica serves it again; resume makes failover automatic again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seguro.node.config import SHARED_SETTINGS
from seguro.ops import cluster as local
from seguro.ops.admin import leader_info, status_rows
from tests.e2e.helpers import TTL_S, Cluster, wait_until

pytestmark = pytest.mark.e2e
SEGURO = [sys.executable, "-m", "seguro.cli"]


def seguro(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEGURO_ETCD": cluster.etcd, "SEGURO_SHIP": cluster.ship}
    return subprocess.run([*SEGURO, *args, "--json"], capture_output=True, text=True, timeout=60, env=env)


def test_switchover_pause_failover_resume(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster")
    try:
        cluster.send(300)
        old = cluster.master()["id"]
        candidate = sorted(n["id"] for n in cluster.state["nodes"] if n["id"] != old)[-1]
        done = seguro(cluster, "switchover", "--candidate", candidate)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["new"] == candidate == cluster.master()["id"]
        print(f"switchover: {done.stdout.strip()}")
        cluster.send(300)
        wait_until("replicas to converge", cluster.converged, 60, every_s=0.5)
        last = cluster.logs_agree()
        assert max(cluster.peer.answers()) <= min(last.values()), "an acknowledged event is missing"
        assert not cluster.peer.doubles(), "double boot"

        paused = seguro(cluster, "pause")
        assert paused.returncode == 0 and json.loads(paused.stdout)["paused"], paused.stderr
        wait_until("every replica to know", lambda: all(
            r["paused"]
            for r in status_rows(cluster.etcd, cluster.ship)["replicas"]), 10, every_s=0.2)  # fmt: skip
        os.kill(cluster.node(candidate)["pid"], signal.SIGKILL)
        deadline = time.monotonic() + TTL_S + 2 * TTL_S + 3  # lease, grace, and some
        while time.monotonic() < deadline:  # bounded: nobody takes over while paused
            info = leader_info(cluster.etcd, cluster.ship)
            assert info is None or info["id"] == candidate, f"{info} took over a paused ship"
            time.sleep(0.3)
        assert status_rows(cluster.etcd, cluster.ship)["paused"]["by"]
        healthy = seguro(cluster, "switchover", "--candidate", old)
        assert healthy.returncode == 4 and "no master" in healthy.stderr  # nothing to switch over from
        rescued = seguro(cluster, "failover", "--candidate", old)
        assert rescued.returncode == 0, rescued.stderr
        assert json.loads(rescued.stdout)["new"] == old == cluster.master()["id"]
        print(f"failover: {rescued.stdout.strip()}")
        refused = seguro(cluster, "failover", "--candidate", old)
        assert refused.returncode == 1 and "healthy master" in refused.stderr
        assert seguro(cluster, "resume").returncode == 0
        assert status_rows(cluster.etcd, cluster.ship)["paused"] is None
    finally:
        cluster.close()


def test_reload_and_sighup_apply_live_settings_and_name_the_rest(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster")
    settings = tmp_path / "n3.toml"
    settings.write_text("failover_priority = 1\n")
    try:
        local.add_node(cluster.workdir, "n3", ["--config", str(settings)])

        def row() -> dict:
            return {r["id"]: r for r in status_rows(cluster.etcd, cluster.ship)["replicas"]}.get("n3", {})

        wait_until("n3 to publish", lambda: row().get("role") == "follower", 20, every_s=0.2)
        assert set(row()["settings"]) == {*SHARED_SETTINGS, "event_keys"}
        assert status_rows(cluster.etcd, cluster.ship)["differ"] == {}, "all replicas run the same settings"
        settings.write_text("failover_priority = 5\nnofailover = true\netcd_retain_events = 5000\n")
        done = seguro(cluster, "reload", "--id", "n3")
        assert done.returncode == 0, done.stderr
        applied = {"failover_priority": 5, "nofailover": True}
        assert json.loads(done.stdout)["n3"] == {"applied": applied, "restart_needed": ["etcd_retain_events"],
                                                 "error": ""}  # fmt: skip

        def shows_them() -> bool:
            return (row()["failover_priority"], row()["nofailover"]) == (5, True)

        wait_until("the new settings in n3's status", shows_them, 10, every_s=0.2)
        settings.write_text("failover_priority = 7\nnofailover = true\netcd_retain_events = 5000\n")
        os.kill(cluster.node("n3")["pid"], signal.SIGHUP)
        wait_until("SIGHUP to apply it", lambda: row()["failover_priority"] == 7, 10, every_s=0.2)
        settings.write_text("failover_priority = -1\n")
        bad = seguro(cluster, "reload", "--id", "n3")
        assert "failover_priority must be >= 0" in json.loads(bad.stdout)["n3"]["error"]
        assert row()["failover_priority"] == 7  # a bad file changes nothing
    finally:
        cluster.close()


def test_reinit_rebuilds_a_follower_from_its_peers_and_is_refused_on_the_master(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", extra=["--snapshot-every", "100"])
    try:
        cluster.send(300)
        master = cluster.master()["id"]
        refused = seguro(cluster, "reinit", "--id", master)
        assert refused.returncode == 1 and "is the master: hand the ship over first" in refused.stderr
        follower = sorted(n["id"] for n in cluster.state["nodes"] if n["id"] != master)[0]
        wait_until("a snapshot on every replica", lambda: all(
            r["snapshot_event"] >= 100 for r in status_rows(cluster.etcd, cluster.ship)["replicas"]), 60)
        pid, data = cluster.node(follower)["pid"], Path(cluster.node(follower)["data"])
        done = seguro(cluster, "reinit", "--id", follower)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        print(f"reinit: {result}")
        aside = data / result["aside"].rsplit("/", 1)[-1]
        assert (aside / "log").is_dir() and (data / "log").is_dir(), "old data kept aside, a new log made"
        assert result["bootstrapped"] and result["bootstrapped"]["event"] >= 100, "started from a snapshot"
        os.kill(pid, 0)  # the same process, started again in place (its service manager sees no exit)
        cluster.send(100)
        wait_until("replicas to converge", cluster.converged, 60, every_s=0.5)
        last = cluster.logs_agree()
        assert max(cluster.peer.answers()) <= min(last.values()), "an acknowledged event is missing"
        assert not cluster.peer.doubles(), "double boot"
    finally:
        cluster.close()
