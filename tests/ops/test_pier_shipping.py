"""A pier's log into a node's local log and back: pier -> import -> export -> pier gives the same META
and byte-identical EVENTS for every layout vere has written, a chopped log with its snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from seguro.cli import main
from seguro.node.etcd.coordinator import Coordinator, ShipExists
from seguro.node.eventlog import EventLog
from seguro.ops.etcd_server import EtcdCluster
from seguro.ops.pier import export_from_etcd, import_to_etcd
from seguro.ops.ship import create_ship
from seguro.urbit.pier.layout import PierError, epochs
from tests.urbit.piers import epoch_pier, legacy_pier, read_events, read_meta, ship_records


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return ship_records(80, tmp_path_factory.mktemp("ship"))


def all_events(pier: Path) -> dict[int, bytes]:
    log = pier / ".urb" / "log"
    bases = epochs(pier)
    found: dict[int, bytes] = {}
    for path in [log / f"0i{b}" for b in bases] if bases else [log]:
        found.update(read_events(path))
    return found


def identity(pier: Path) -> dict[bytes, bytes]:
    """META without the version (a 1.x pier says 1; what vere >= 3 writes says 3)."""
    bases = epochs(pier)
    newest = pier / ".urb" / "log" / (f"0i{bases[-1]}" if bases else "")
    return {k: v for k, v in read_meta(newest).items() if k != b"version"}


@pytest.mark.parametrize("layout", ["1.x-2.x", "3.x", "4.x epochs", "4.x chopped", "3.x chopped"])
def test_a_pier_round_trips_through_a_node_log(tmp_path: Path, records: list[bytes], layout: str) -> None:
    source = tmp_path / "source"
    if layout == "1.x-2.x":
        legacy_pier(source, records[:50])
    elif layout == "3.x":
        epoch_pier(source, [(0, records[:50])], fmt=1)
    elif layout == "4.x epochs":
        epoch_pier(source, [(0, records[:40]), (40, records[40:70]), (70, records[70:80])])
    elif layout == "4.x chopped":
        epoch_pier(source, [(40, records[40:70]), (70, records[70:80])])
    else:
        epoch_pier(source, [(40, records[40:60])], fmt=1)
    runner = CliRunner()
    node = str(tmp_path / "node")
    imported = runner.invoke(main, ["pier", "import", str(source), "--data", node, "--json"])
    assert imported.exit_code == 0, imported.output
    exported = runner.invoke(main, ["pier", "export", "--data", str(tmp_path / "node"), "--to",
                                    str(tmp_path / "back"), "--json"])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    back = tmp_path / "back"
    assert all_events(back) == all_events(source) and identity(back) == identity(source)
    assert runner.invoke(main, ["pier", "verify", str(back)]).exit_code == 0
    if "chopped" in layout:
        base = epochs(source)[0]
        for name in [p.name for p in (source / ".urb" / "log" / f"0i{base}").glob("*.bin")]:
            assert (back / ".urb" / "log" / f"0i{base}" / name).read_bytes() == (
                source / ".urb" / "log" / f"0i{base}" / name
            ).read_bytes()
        assert (back / ".urb" / "log" / f"0i{base}" / "epoc.txt").read_text() == (
            "1" if layout.startswith("3") else "2"
        )


def test_import_and_export_refuse_to_overwrite(tmp_path: Path, records: list[bytes]) -> None:
    source = epoch_pier(tmp_path / "source", [(0, records[:20])])
    runner = CliRunner()
    node = str(tmp_path / "node")
    assert runner.invoke(main, ["pier", "import", str(source), "--data", node]).exit_code == 0
    again = runner.invoke(main, ["pier", "import", str(source), "--data", node])
    assert again.exit_code == 1 and "already holds a log" in again.output
    export = ["pier", "export", "--data", node, "--to", str(source)]
    refused = runner.invoke(main, export)
    assert refused.exit_code == 1 and "refusing to overwrite" in refused.output
    assert runner.invoke(main, [*export, "--force", "--vere", "3"]).exit_code == 0
    assert (source / ".urb" / "log" / "0i0" / "epoc.txt").read_text() == "1"
    with EventLog(tmp_path / "node", create=False, read_only=True) as log:
        assert log.last_event() == 20 and log.meta()["pier"]["who"] == 0x1234_5678


def test_verify_names_the_first_bad_event_and_exits_non_zero(tmp_path: Path, records: list[bytes]) -> None:
    pier = epoch_pier(tmp_path / "pier", [(0, records[:10] + [b"\0\0\0\0"] + records[11:20])])
    result = CliRunner().invoke(main, ["pier", "verify", str(pier), "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1 and report["bad_event"] == 11 and not report["ok"]
    assert "record too short" in report["problem"]
    missing = CliRunner().invoke(main, ["pier", "verify", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "no event log" in missing.output


def test_an_import_into_etcd_resumes_a_stopped_one_and_refuses_what_it_must(
    etcd1: EtcdCluster, tmp_path: Path, records: list[bytes]
) -> None:
    pier = epoch_pier(tmp_path / "pier", [(0, records[:60])])
    with Coordinator(etcd1.endpoints, "zod") as coord:  # a run that stopped after 25 events
        assert coord.append_records(0, 0, records[:25]).ok
        assert coord.genesis() is None
    genesis, report = import_to_etcd(pier, etcd1.endpoints, "zod")
    assert (report.first_event, report.last_event) == (1, 60)
    with Coordinator(etcd1.endpoints, "zod") as coord:
        assert coord.head()[0] == 60 and coord.genesis() == genesis and genesis.vere["life"] == 1  # type: ignore[index]
        assert [r.data for b in coord.read_batches(1) for r in b.records] == records[:60]
    with pytest.raises(ShipExists, match="already exists"):
        import_to_etcd(pier, etcd1.endpoints, "zod")
    other = epoch_pier(tmp_path / "other", [(0, records[1:30])])
    with Coordinator(etcd1.endpoints, "bus") as coord:
        assert coord.append_records(0, 0, records[:5]).ok
    with pytest.raises(ShipExists, match="not this pier's"):
        import_to_etcd(other, etcd1.endpoints, "bus")
    chopped = epoch_pier(tmp_path / "chopped", [(40, records[40:60])])
    with pytest.raises(PierError, match="chopped"):
        import_to_etcd(chopped, etcd1.endpoints, "nec")
    create_ship(etcd1.endpoints, "ref")
    with pytest.raises(PierError, match="reference ship"):
        export_from_etcd(etcd1.endpoints, "ref", tmp_path / "ref")
