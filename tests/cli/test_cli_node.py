"""`seguro node run` refuses wrong settings and unusable resources with a clear error, taking nothing;
a node answers admin calls from its start and stops loudly on a broken invariant."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from seguro.cli import main
from seguro.core import messages as m
from seguro.node import driver
from seguro.node.config import NodeConfig
from seguro.node.driver import Node
from seguro.node.eventlog import EventLog, event_key
from seguro.proto.seguro.v1 import replication_pb2 as pb
from seguro.proto.seguro.v1 import replication_pb2_grpc as rpc
from seguro.urbit.noun import cord, jam
from seguro.urbit.record import da_from_unix
from tests.node.test_runtime import make_log


def run_node(tmp_path: Path, *extra: str) -> tuple[int, str]:
    args = ["node", "run", "--id", "n0", "--ship", "zod", "--data", str(tmp_path / "d"),
            "--etcd", "127.0.0.1:1", *extra]  # fmt: skip
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def test_missing_and_wrong_settings_are_usage_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["node", "run", "--id", "n0"])
    assert result.exit_code == 2 and "missing settings: ship, data_dir, etcd" in result.output
    assert run_node(tmp_path, "--ttl", "1")[0] == 2


def test_a_udp_port_in_use_is_named_and_the_log_is_released(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        code, output = run_node(tmp_path, "--udp", f"127.0.0.1:{taken.getsockname()[1]}")
    assert code == 1 and "cannot bind the UDP socket" in output
    EventLog(tmp_path / "d").close()  # the failed node did not keep the log locked


def test_a_data_dir_of_another_ship_is_refused(tmp_path: Path) -> None:
    with EventLog(tmp_path / "d") as log:
        log.set_meta(who="nec")
    code, output = run_node(tmp_path)
    assert code == 1 and "holds ship 'nec', not 'zod'" in output


def test_a_data_dir_in_use_is_refused(tmp_path: Path) -> None:
    with EventLog(tmp_path / "d"):
        code, output = run_node(tmp_path)
    assert code == 1 and "in use" in output


def test_a_gap_in_the_local_log_stops_the_node_loudly(tmp_path: Path) -> None:
    """Found in review: the runtime thread turned a broken invariant (here, a hole in the log it replays)
    into a runtime failure and restarted every second, forever. The node must stop and say why."""
    log = make_log(tmp_path / "d", 7)  # events 1..10
    log._db.delete(event_key(5))  # what no code path of ours writes: a log with a hole
    log.close()
    args = [sys.executable, "-m", "seguro.cli", "node", "run", "--id", "n0", "--ship", "zod",
            "--data", str(tmp_path / "d"), "--etcd", "127.0.0.1:1"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "invariant violated" in done.stderr and "event log is not contiguous" in done.stderr


@pytest.fixture
def idle_node(tmp_path: Path) -> Iterator[Node]:
    """A node whose loop never runs: what callers see between its start and its first round."""
    settings = {"node_id": "n0", "ship": "zod", "data_dir": tmp_path / "d", "etcd": "127.0.0.1:1",
                "grpc": "127.0.0.1:0", "udp": "127.0.0.1:0"}  # fmt: skip
    node = Node(NodeConfig.load(None, settings))
    try:
        yield node
    finally:
        node._shutdown()


def test_status_and_step_down_answer_before_the_node_loop_runs(idle_node: Node) -> None:
    """Found in review: the gRPC server starts in Node() but the status was empty until the loop's first
    round, so Status and StepDown failed with a KeyError in that window."""
    with grpc.insecure_channel(idle_node.grpc_address) as channel:
        admin = rpc.AdminStub(channel)
        status = admin.Status(pb.StatusRequest(), timeout=5)
        assert (status.id, status.role, status.durable_event) == ("n0", "waiting", 0)  # no genesis seen yet
        assert status.genesis == "" and "genesis" in status.error
        assert admin.StepDown(pb.StepDownRequest(), timeout=5).was_master is False


def test_a_poke_shed_at_a_full_queue_is_told_so_at_once(idle_node: Node) -> None:
    """Found in review: a poke dropped at the door waited 10 s for an answer that could never come."""
    while idle_node.datagrams_shed == 0:  # bounded: the queue holds MAX_QUEUED_DATAGRAMS
        idle_node.post(m.IncomingEvent(job=None, size_bytes=1))
    started_s = time.monotonic()
    event, reply = idle_node.poke(jam((da_from_unix(1_700_000_000.0), ((0, 0), (cord("test"), 0)))))
    assert event == 0 and reply.startswith("node overloaded") and time.monotonic() - started_s < 1.0


def test_catch_up_batches_wait_for_room_instead_of_piling_up(
    idle_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: a large catch-up queued every fetched batch for the driver: the log in memory."""
    monkeypatch.setattr(driver, "CATCH_UP_WAIT_S", 0.3)
    batch = m.CatchUpFetched(m.Batch(0, 1, (b"r",)))
    for _ in range(driver.CATCH_UP_QUEUED):
        idle_node.post(batch)
    with pytest.raises(TimeoutError, match="took no catch-up batch"):
        idle_node.post(batch)  # the fetch fails and is retried later; nothing grows without bound
    assert idle_node._next_event(0.1) == batch  # the driver takes one: there is room again
    idle_node.post(batch)
