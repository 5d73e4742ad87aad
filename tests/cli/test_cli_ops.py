"""Operator commands against a real etcd: clear answers when there is no master, bad input or no etcd."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from seguro.cli import main
from seguro.node.etcd.coordinator import Coordinator
from seguro.ops.etcd_server import EtcdCluster, free_port
from tests.conftest import BARE_GENESIS as G
from tests.conftest import put_bare_genesis


def test_leader_and_status_of_a_ship_without_master(etcd1: EtcdCluster) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["leader", "--etcd", etcd1.endpoints, "--ship", "zod", "--json"])
    assert result.exit_code == 4 and "has no master" in result.output
    assert json.loads(result.output.splitlines()[0]) == {"id": None, "epoch": None, "lease": None,
                                                        "ttl_remaining": None}  # fmt: skip
    result = runner.invoke(main, ["status", "--etcd", etcd1.endpoints, "--ship", "zod", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"head": 0, "master": None, "genesis": None, "etcd_alarms": [],
                                         "paused": None, "candidate": None, "replicas": [],
                                         "differ": {}}  # fmt: skip
    result = runner.invoke(main, ["status", "--etcd", etcd1.endpoints, "--ship", "zod"])
    assert result.exit_code == 0 and "not created in this etcd" in result.output


def test_leader_shows_the_master_key(etcd1: EtcdCluster) -> None:
    put_bare_genesis(etcd1.endpoints, "zod")
    with Coordinator(etcd1.endpoints, "zod") as coord:
        lease = coord.grant_lease(5)
        won = coord.campaign("n7", lease, {"grpc": "127.0.0.1:1", "udp": "127.0.0.1:2"}, G)
        assert won is not None
        result = CliRunner().invoke(main, ["leader", "--etcd", etcd1.endpoints, "--ship", "zod", "--json"])
    info = json.loads(result.output)
    assert result.exit_code == 0 and info["id"] == "n7" and info["epoch"] == won.epoch
    assert info["lease"] == lease and 0 < info["ttl_remaining"] <= 5


def test_step_down_without_a_master_or_with_an_unreachable_one_is_a_clear_error(etcd1: EtcdCluster) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["step-down", "--etcd", etcd1.endpoints, "--ship", "zod"])
    assert result.exit_code == 4 and "ship zod has no master to step down" in result.output
    put_bare_genesis(etcd1.endpoints, "zod")
    with Coordinator(etcd1.endpoints, "zod") as coord:
        lease = coord.grant_lease(5)
        assert coord.campaign("n7", lease, {"grpc": f"127.0.0.1:{free_port()}", "udp": "127.0.0.1:2"}, G)
        result = runner.invoke(main, ["step-down", "--etcd", etcd1.endpoints, "--ship", "zod"])
    assert result.exit_code == 1 and "master n7 at 127.0.0.1:" in result.output
    assert "did not take the request (UNAVAILABLE" in result.output


def test_forget_replica_refuses_the_master_and_running_replicas(etcd1: EtcdCluster) -> None:
    runner = CliRunner()

    def forget(node_id: str) -> tuple[int, str]:
        args = ["forget-replica", "--etcd", etcd1.endpoints, "--ship", "zod", "--id", node_id]
        result = runner.invoke(main, args)
        return result.exit_code, result.output

    put_bare_genesis(etcd1.endpoints, "zod")
    with Coordinator(etcd1.endpoints, "zod") as coord:
        assert coord.campaign("n0", coord.grant_lease(5), {}, G) is not None
        coord.put_replica("n0", {"role": "master"})
        coord.put_replica("n1", {"role": "follower"})
        coord.put_replica("n2", {"role": "follower", "updated_at": time.time() - 60})
        assert forget("n9") == (1, "Error: ship zod has no replica 'n9' registered\n")
        assert "n0 is the master" in forget("n0")[1]
        assert "n1 published its status" in forget("n1")[1] and "stop it first" in forget("n1")[1]
        assert forget("n2") == (0, "forgot replica n2 of ship zod\n")
        assert set(coord.replicas()) == {"n0", "n1"}


def test_bad_endpoints_are_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["leader", "--etcd", "nonsense", "--ship", "zod"])
    assert result.exit_code == 2 and "host:port" in result.output


def test_etcd_down_is_a_clear_error_in_bounded_time() -> None:
    result = CliRunner().invoke(main, ["status", "--etcd", f"127.0.0.1:{free_port()}", "--ship", "zod"])
    assert result.exit_code == 5 and "etcd unreachable" in result.output


def test_out_of_range_cluster_and_demo_flags_are_usage_errors(tmp_path) -> None:
    runner = CliRunner()
    for args in (["cluster", "up", "--workdir", str(tmp_path), "--ack-replicas", "-5"],
                 ["cluster", "up", "--workdir", str(tmp_path), "--max-event-bytes", "10"],
                 ["demo", "--seconds", "-1"]):  # fmt: skip
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and "Invalid value" in result.output, (args, result.output)
    assert not (tmp_path / "cluster.json").exists()  # nothing was started


def test_cluster_up_refuses_a_workdir_holding_an_earlier_clusters_logs(tmp_path) -> None:
    (tmp_path / "n1" / "log").mkdir(parents=True)
    result = CliRunner().invoke(main, ["cluster", "up", "--workdir", str(tmp_path), "--seal"])
    assert result.exit_code == 1 and "holds the logs of an earlier cluster (n1)" in result.output
    assert not (tmp_path / "etcd").exists() and not (tmp_path / "event-keys.json").exists(), "nothing started"


def test_ship_create_writes_the_genesis_once(etcd1: EtcdCluster) -> None:
    runner = CliRunner()
    create = ["ship", "create", "--etcd", etcd1.endpoints, "--ship", "zod", "--who", "~nec", "--json"]
    result = runner.invoke(main, create)
    assert result.exit_code == 0, result.output
    genesis = json.loads(result.output)
    assert genesis["who"] == "~nec" and len(genesis["id"]) == 32 and genesis["first_event"] == 1
    again = runner.invoke(main, create)
    assert again.exit_code == 1 and f"ship zod already exists (genesis {genesis['id']})" in again.output
    asked = runner.invoke(main, ["status", "--etcd", etcd1.endpoints, "--ship", "zod", "--json"])
    status = json.loads(asked.output)
    assert status["genesis"]["id"] == genesis["id"] and status["head"] == 3  # the boot sequence is the log
    bad = runner.invoke(main, ["ship", "create", "--etcd", etcd1.endpoints, "--ship", "bus", "--who", "zod"])
    assert bad.exit_code == 2 and "~sampel-palnet" in bad.output


def test_ship_create_with_etcd_down_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        main, ["ship", "create", "--etcd", f"127.0.0.1:{free_port()}", "--ship", "zod"]
    )
    assert result.exit_code == 5 and "etcd unreachable" in result.output and "Traceback" not in result.output
