"""The etcd launcher against real etcd processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seguro.ops.etcd_server import EtcdCluster, EtcdStartError, free_ports, is_healthy, stop_from_state
from seguro.ops.processes import pid_alive

_alive = pid_alive


def _wait(cond, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_one_member_up_state_file_and_stop_from_state(etcd1: EtcdCluster, tmp_path: Path) -> None:
    assert len(etcd1.client_urls) == 1 and etcd1.endpoints == etcd1.client_urls[0]
    assert is_healthy(etcd1.client_urls[0])
    pid = etcd1.pids[0]
    assert pid is not None and os.getsid(pid) == pid  # own session: survives the launcher, killable by pid
    state = tmp_path / "etcd.json"
    etcd1.write_state(state)
    assert stop_from_state(state) == [pid]
    assert _wait(lambda: not _alive(pid))
    assert stop_from_state(state) == []  # a stale state file signals nobody


def test_three_members_kill_restart_pause_resume_stop(etcd3: EtcdCluster) -> None:
    assert all(is_healthy(u) for u in etcd3.client_urls)
    leader = etcd3.leader()
    assert leader is not None
    etcd3.kill(leader)
    assert not etcd3.is_running(leader) and etcd3.pids[leader] is None
    others = [i for i in range(3) if i != leader]
    assert _wait(lambda: etcd3.leader() in others), "survivors elect a new leader"
    etcd3.restart(leader)
    assert is_healthy(etcd3.client_urls[leader])

    etcd3.pause(others[0])
    assert not is_healthy(etcd3.client_urls[others[0]], timeout_s=0.3)
    etcd3.resume(others[0])
    assert _wait(lambda: is_healthy(etcd3.client_urls[others[0]]))

    pids = [p for p in etcd3.pids if p is not None]
    etcd3.pause(others[1])  # stop() must also end a stopped process
    started = time.monotonic()
    etcd3.stop(timeout_s=5.0)
    assert len(pids) == 3 and not any(_alive(p) for p in pids)
    assert time.monotonic() - started < 3, "leader-first SIGTERM ends a 3-member cluster quickly"


def test_port_race_is_retried_with_new_ports(tmp_path: Path) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    calls: list[list[int]] = []

    def allocator(n: int) -> list[int]:
        ports = free_ports(n)
        if not calls:
            ports[0] = taken  # the first member's client port is already bound by someone else
        calls.append(ports)
        return ports

    cluster = EtcdCluster(tmp_path / "race", members=1, port_allocator=allocator)
    try:
        cluster.start()
        assert cluster.start_attempts == 2 and taken not in calls[1]
        assert is_healthy(cluster.client_urls[0])
    finally:
        cluster.stop()
        squatter.close()


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    cluster = EtcdCluster(tmp_path / "fail", members=1, port_allocator=lambda n: [taken] + free_ports(n - 1))
    try:
        with pytest.raises(EtcdStartError, match="address already in use") as info:
            cluster.start()
        assert cluster.start_attempts == 3 and "n1.log" in str(info.value)
        assert cluster.pids == [None]
    finally:
        cluster.stop()
        squatter.close()


def test_cluster_outlives_its_launcher_and_stops_from_state(tmp_path: Path) -> None:
    """`seguro cluster up` / `down`: the launching process exits; the state file stops the members."""
    state = tmp_path / "state.json"
    script = (
        "import sys; from pathlib import Path; from seguro.ops.etcd_server import EtcdCluster\n"
        "c = EtcdCluster(Path(sys.argv[1]), members=3).start(); c.write_state(Path(sys.argv[2]))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "up"), str(state)], check=True, timeout=60)
    saved = json.loads(state.read_text())
    try:
        assert all(is_healthy(u) for u in saved["client_urls"]) and len(saved["pids"]) == 3
    finally:
        started = time.monotonic()
        stopped = stop_from_state(state)
    assert sorted(stopped) == sorted(saved["pids"]) and time.monotonic() - started < 3
    assert _wait(lambda: not any(_alive(p) for p in stopped))
