"""End to end: a pier seeds a fresh cluster through etcd. Nodes started with empty data directories (and
no ship) pick the ship up from etcd: every node's log ends equal to the pier's, byte for byte, and the
ship exports back into a pier with the same META and EVENTS."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from seguro.cli import main
from seguro.node.eventlog import EventLog
from seguro.ops import cluster as local
from seguro.ops.admin import wait_for_master
from tests.e2e.helpers import Cluster, wait_until
from tests.urbit.piers import epoch_pier, read_events, read_meta, ship_records

pytestmark = pytest.mark.e2e
EVENTS = 20_000


def test_a_20000_event_pier_seeds_a_fresh_three_node_cluster(tmp_path: Path) -> None:
    records = ship_records(EVENTS, tmp_path / "ship")
    pier = epoch_pier(tmp_path / "pier", [(0, records[:12_000]), (12_000, records[12_000:])])
    cluster = Cluster(tmp_path / "cluster", who=None)  # nodes up, empty, waiting for a ship
    runner = CliRunner()
    try:
        started = time.monotonic()
        result = runner.invoke(main, ["pier", "import", str(pier), "--etcd", cluster.etcd, "--ship", "zod"])
        assert result.exit_code == 0, result.output
        imported_s = time.monotonic() - started
        again = runner.invoke(main, ["pier", "import", str(pier), "--etcd", cluster.etcd, "--ship", "zod"])
        assert again.exit_code == 1 and "already exists" in again.output
        wait_for_master(cluster.etcd, "zod", timeout_s=60)
        took_s = wait_until("every node holds the pier's log", cluster.converged, 120, every_s=0.5)
        print(f"import into etcd {imported_s:.1f} s; every node holds the events {took_s:.1f} s later")
        assert cluster.head() >= EVENTS  # and a %born from the master, which tells its timer to behn
        cluster.send(50)  # the ship runs on: the runtime replayed the imported events, mugs matching
        wait_until("answers", lambda: cluster.peer.answered() >= 45, timeout_s=20)
        from_etcd = runner.invoke(main, ["pier", "export", "--etcd", cluster.etcd, "--ship", "zod", "--to",
                                         str(tmp_path / "from-etcd")])  # fmt: skip
        assert from_etcd.exit_code == 0, from_etcd.output
        nodes = local.read_state(cluster.workdir)["nodes"]
    finally:
        cluster.close()
    wanted = dict(enumerate(records, start=1))
    for node in nodes:
        with EventLog(Path(node["data"]), create=False, read_only=True) as log:
            held = dict(log.read(1, EVENTS))
        assert held == wanted, f"{node['id']}'s log differs from the pier's"
        back = tmp_path / f"back-{node['id']}"
        exported = runner.invoke(main, ["pier", "export", "--data", node["data"], "--to", str(back)])
        assert exported.exit_code == 0, exported.output
        assert {k: v for k, v in read_events(back / ".urb" / "log" / "0i0").items() if k <= EVENTS} == wanted
        assert read_meta(back / ".urb" / "log" / "0i0") == read_meta(pier / ".urb" / "log" / "0i0")
    from_etcd_events = read_events(tmp_path / "from-etcd" / ".urb" / "log" / "0i0")
    assert {k: v for k, v in from_etcd_events.items() if k <= EVENTS} == wanted
