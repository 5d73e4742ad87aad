"""End to end: `seguro pier follow` protects a ship that still runs on vere. Another process (this test,
writing LMDB as vere does) keeps appending to the pier and rolls to a new epoch midway; the follower
is SIGKILLed and restarted; the log-only replicas end with exactly the pier's log: no gap, no duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lmdb
import pytest
from click.testing import CliRunner

from seguro.cli import main
from seguro.node.eventlog import EventLog
from seguro.ops import cluster as local
from seguro.ops.admin import wait_for_master
from tests.e2e.helpers import Cluster, wait_until
from tests.urbit.piers import PierSpec, env, epoch_pier, put_events, put_meta, ship_records

pytestmark = pytest.mark.e2e
TOTAL, IMPORTED, ROLL_AT = 3000, 1000, 2000


class Vere(threading.Thread):
    """Appends events to the pier as vere does (write transactions of up to 100 events), and rolls to a
    new epoch at ROLL_AT (a new 0i<N> directory with its snapshot, META, epoc.txt and vere.txt)."""

    def __init__(self, pier: Path, records: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.pier, self.records, self.written = pier, records, IMPORTED
        self.stop = threading.Event()

    def run(self) -> None:
        epoch = self.pier / ".urb" / "log" / "0i0"
        while self.written < TOTAL and not self.stop.is_set():
            if self.written == ROLL_AT:
                epoch = self._roll(ROLL_AT)
            end = min(self.written + 50, ROLL_AT if self.written < ROLL_AT else TOTAL)
            batch = self.records[self.written : end]
            e = lmdb.open(str(epoch), max_dbs=2, map_size=1 << 30)
            put_events(e, self.written + 1, batch)
            e.close()
            self.written += len(batch)
            time.sleep(0.02)

    def _roll(self, base: int) -> Path:
        epoch = self.pier / ".urb" / "log" / f"0i{base}"
        e = env(epoch)
        put_meta(e, PierSpec())
        e.close()
        (epoch / "image.bin").write_bytes(b"snapshot at %d" % base)
        (epoch / "epoc.txt").write_text("2")
        (epoch / "vere.txt").write_text("4.5")
        return epoch


def start_follower(pier: Path, etcd: str, workdir: Path) -> subprocess.Popen:
    log = open(workdir / "follow.log", "ab")  # noqa: SIM115 - the child keeps its own copy
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "seguro.cli", "pier", "follow", str(pier), "--etcd", etcd, "--ship", "zod",
             "--data", str(workdir / "follow")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    finally:
        log.close()


def test_pier_follow_commits_a_growing_pier_across_an_epoch_roll_and_a_restart(tmp_path: Path) -> None:
    records = ship_records(TOTAL, tmp_path / "ship")
    pier = epoch_pier(tmp_path / "pier", [(0, records[:IMPORTED])])
    cluster = Cluster(tmp_path / "cluster", replicas=2, who=None, extra=["--runtime", "none"])
    vere, follower = Vere(pier, records), None
    try:
        imported = CliRunner().invoke(main, ["pier", "import", str(pier), "--etcd", cluster.etcd, "--ship",
                                             "zod"])  # fmt: skip
        assert imported.exit_code == 0, imported.output
        follower = start_follower(pier, cluster.etcd, tmp_path)
        wait_for_master(cluster.etcd, "zod", timeout_s=30)
        vere.start()
        wait_until("vere past 1500", lambda: vere.written >= 1500, timeout_s=60)
        os.killpg(follower.pid, signal.SIGKILL)
        follower.wait(10)
        time.sleep(1.0)
        follower = start_follower(pier, cluster.etcd, tmp_path)
        vere.join(120)
        assert vere.written == TOTAL
        wait_until("etcd holds the whole pier", lambda: cluster.head() == TOTAL, timeout_s=60)
        wait_until("the replicas hold it", lambda: cluster.converged(replicas=3), timeout_s=60, every_s=0.5)
        nodes = local.read_state(cluster.workdir)["nodes"]
    finally:
        vere.stop.set()
        if follower is not None and follower.poll() is None:
            os.killpg(follower.pid, signal.SIGTERM)
            follower.wait(15)
        cluster.close()
    wanted = list(enumerate(records, start=1))
    for node in nodes:
        with EventLog(Path(node["data"]), create=False, read_only=True) as log:
            assert list(log.read(1)) == wanted, f"{node['id']}: not the pier's log"
