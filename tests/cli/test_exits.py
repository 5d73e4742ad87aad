"""The CLI's documented exit codes, and bad input answered without a traceback."""

from __future__ import annotations

from click.testing import CliRunner

from seguro.cli import main
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
