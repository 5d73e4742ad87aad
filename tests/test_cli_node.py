"""`seguro node run` refuses wrong settings and unusable resources with a clear error, taking nothing."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from seguro.cli import main
from seguro.eventlog import EventLog


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
