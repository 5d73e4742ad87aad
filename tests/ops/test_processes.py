"""Finding and stopping our own processes from state files, and never anybody else's."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from seguro.ops import cluster, processes
from seguro.ops.etcd_server import EtcdCluster, EtcdStartError


def test_a_recorded_pid_now_running_something_else_is_left_alone(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        node = {"id": "n0", "pid": stranger.pid, "grpc": "", "udp": "", "data": str(tmp_path / "n0")}
        (tmp_path / cluster.STATE_FILE).write_text(json.dumps({"nodes": [node]}))
        assert cluster.down(tmp_path) == []
        assert processes.pid_alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_ends_stopped_and_stubborn_processes(tmp_path: Path) -> None:
    paused = subprocess.Popen(["sleep", "30"])
    stubborn_sh = "trap '' TERM; echo ready; exec sleep 30"
    stubborn = subprocess.Popen(["sh", "-c", stubborn_sh], stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"  # TERM is ignored now
    started_at = time.monotonic()
    paused.send_signal(signal.SIGSTOP)  # it must be continued to die
    survivors = processes.stop([paused.pid, stubborn.pid], timeout_s=1.0)
    elapsed_s = time.monotonic() - started_at
    assert survivors == []
    assert not processes.pid_alive(paused.pid) and not processes.pid_alive(stubborn.pid)
    assert 1.0 <= elapsed_s < 3.0  # SIGTERM did not end it; SIGKILL at the deadline did, and stop() saw it


def test_runs_with_reads_the_command_line() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while processes.cmdline(proc.pid)[:1] != ["sleep"] and time.monotonic() < deadline:
            time.sleep(0.01)  # between fork and exec it still reads as python
        assert processes.runs_with(proc.pid, "sleep", "30") and not processes.runs_with(proc.pid, "etcd")
    finally:
        proc.kill()
        proc.wait()
    assert processes.cmdline(proc.pid) == [] and not processes.pid_alive(proc.pid)


def test_a_missing_etcd_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EtcdStartError, match="cannot start etcd .* apt-get install etcd-server"):
        EtcdCluster(tmp_path / "etcd", members=3).start()
