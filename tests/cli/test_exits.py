"""The CLI's documented exit codes, and bad input answered without a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from seguro.cli import main
from seguro.node.eventlog import EventLog
from seguro.node.snapshots import SnapshotStore
from seguro.ops.etcd_server import EtcdCluster
from tests.conftest import put_bare_genesis

DOWN = "http://127.0.0.1:1"


def test_etcd_unreachable_is_5_and_no_master_is_4(etcd1: EtcdCluster) -> None:
    runner = CliRunner()
    down = runner.invoke(main, ["leader"], env={"SEGURO_ETCD": DOWN, "SEGURO_SHIP": "zod"})
    assert down.exit_code == 5 and "etcd unreachable" in down.output and "Traceback" not in down.output
    put_bare_genesis(etcd1.endpoints, "zod")
    none = runner.invoke(main, ["leader", "--etcd", etcd1.endpoints, "--ship", "zod"])
    assert none.exit_code == 4 and "no master" in none.output


def test_bad_input_is_a_usage_error_not_a_traceback() -> None:
    runner = CliRunner()
    level = runner.invoke(main, ["node", "run", "--id", "a", "--ship", "zod", "--data", "/tmp/none",
                                 "--etcd", DOWN, "--log-level", "foo"])  # fmt: skip
    assert level.exit_code == 2 and "'foo' is not one of" in level.output
    missing = runner.invoke(main, ["status"], env={"SEGURO_ETCD": "", "SEGURO_SHIP": ""})
    assert missing.exit_code == 2 and "Missing option" in missing.output


def test_a_demo_whose_etcd_cannot_start_says_so_without_a_traceback() -> None:
    result = CliRunner().invoke(main, ["demo"], env={"PATH": "/nonexistent"})
    assert result.exit_code == 1 and "cannot start etcd" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_chop_and_reload_map_bad_etcd_settings_to_usage_and_unreachable(tmp_path: Path) -> None:
    """Found in review: a malformed --etcd was a traceback for both, and chop said 1 for an etcd it could
    not reach and for --etcd without --ship."""
    runner = CliRunner()
    data = str(tmp_path)
    no_ship = runner.invoke(main, ["log", "chop", "--data", data, "--etcd", DOWN], env={"SEGURO_SHIP": ""})
    assert no_ship.exit_code == 2 and "give --ship with --etcd" in no_ship.output
    malformed = runner.invoke(main, ["log", "chop", "--data", data, "--etcd", "nonsense", "--ship", "zod"])
    assert malformed.exit_code == 2 and "host:port" in malformed.output
    reload = runner.invoke(main, ["reload", "--etcd", "nonsense", "--ship", "zod"])
    assert reload.exit_code == 2 and "host:port" in reload.output
    with EventLog(tmp_path / "data") as log:  # a log with a kept snapshot, so chop gets as far as etcd
        log.append(1, [b"\x00" * 4 + b"\x01"])
    kept = tmp_path / "snapshot.jam"
    kept.write_bytes(b"state")
    SnapshotStore(tmp_path / "data").keep(1, 0, "ship", {"snapshot.jam": kept}, genesis="")
    replica = str(tmp_path / "data")
    down = runner.invoke(main, ["log", "chop", "--data", replica, "--etcd", DOWN, "--ship", "zod"])
    assert down.exit_code == 5 and "etcd unreachable" in down.output
    with EventLog(tmp_path / "data") as log:
        assert (log.first_event(), log.last_event()) == (1, 1)  # nothing lost


def test_ship_create_exist_ok_is_idempotent_but_never_takes_another_ship(etcd1: EtcdCluster) -> None:
    runner, env = CliRunner(), {"SEGURO_ETCD": etcd1.endpoints, "SEGURO_SHIP": "zod"}
    first = runner.invoke(main, ["ship", "create", "--who", "~zod", "--exist-ok"], env=env)
    again = runner.invoke(main, ["ship", "create", "--who", "~zod", "--exist-ok"], env=env)
    assert first.exit_code == 0 and first.output.startswith("created ship zod")
    assert again.exit_code == 0 and again.output.startswith("exists: ship zod")
    assert first.output.split("genesis ")[1] == again.output.split("genesis ")[1]
    other = runner.invoke(main, ["ship", "create", "--who", "~nec", "--exist-ok"], env=env)
    assert other.exit_code == 1 and "exists in etcd as ~zod" in other.output
    plain = runner.invoke(main, ["ship", "create", "--who", "~zod"], env=env)
    assert plain.exit_code == 1 and "already exists" in plain.output


def test_tls_issues_only_from_an_existing_ca_and_a_busy_grpc_port_is_named(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["tls", "replica", str(tmp_path / "pki"), "--ship", "zod", "--id", "n0"])
    assert done.exit_code == 1 and "no CA in" in done.output and not (tmp_path / "pki").exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data = str(tmp_path / "d")
        run = runner.invoke(main, ["node", "run", "--id", "n0", "--ship", "zod", "--data", data,
                                   "--etcd", DOWN, "--grpc", f"127.0.0.1:{port}"])  # fmt: skip
    assert run.exit_code == 1 and f"cannot bind the gRPC server to 127.0.0.1:{port}" in run.output
    assert isinstance(run.exception, SystemExit), run.exception  # click's exit, not a traceback
