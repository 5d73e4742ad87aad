"""etcd's database size over a long run: a real one-replica ship with a small retention, side by side
with the same events appended to etcd raw (fenced batches, never trimmed) in the same run.

Run: .venv/bin/python benchmarks/bench_etcd_bounded.py [--events 200000] [--retain 2000] [--workdir DIR]
Prints a sample every tenth of the run: events committed, etcd db size of the ship's cluster, and of the
raw baseline at the same number of events; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `seguro` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seguro.node.config import parse_hostport  # noqa: E402
from seguro.node.etcd.coordinator import Coordinator, etcd_client  # noqa: E402
from seguro.ops import cluster as local  # noqa: E402
from seguro.ops.demo import Peer  # noqa: E402
from seguro.ops.etcd_server import EtcdCluster  # noqa: E402
from seguro.proto.seguro.v1 import replication_pb2 as pb  # noqa: E402
from tests.conftest import put_bare_genesis  # noqa: E402

WINDOW = 400  # datagrams in flight
RECORD_BYTES = 90  # about what the reference ship logs for one datagram here


def db_bytes(endpoints: str) -> int:
    """The largest member's backend size (every member holds the same data)."""
    sizes = []
    for member in endpoints.split(","):
        with etcd_client(member, timeout_s=10.0) as client:
            sizes.append(int(client.status().db_size))
    return max(sizes)


def run_ship(work: Path, events: int, retain: int, samples: int) -> list[tuple[int, int, float]]:
    """(events answered, etcd db bytes, seconds) every events/samples, for a one-replica ship."""
    state = local.up(work / "ship", replicas=1, ttl_s=3, extra=["--etcd-retain-events", str(retain)])
    peer = Peer({n["id"]: parse_hostport("udp", n["udp"]) for n in state["nodes"]})
    points, started, deadline = [], time.monotonic(), time.monotonic() + 3600
    try:
        every = events // samples
        while peer.answered() < events and time.monotonic() < deadline:
            if peer.sent - peer.answered() < WINDOW:
                peer.send_one()
            else:
                time.sleep(0.0005)
            if peer.answered() >= (len(points) + 1) * every:
                points.append((peer.answered(), db_bytes(state["etcd"]), time.monotonic() - started))
                print(f"  ship: {points[-1][0]:>8} events  etcd db {points[-1][1] / 1e6:7.2f} MB  "
                      f"{points[-1][2]:6.1f} s", flush=True)  # fmt: skip
    finally:
        peer.close()
        local.down(work / "ship")
    return points


def run_raw(work: Path, events: int, samples: int) -> list[tuple[int, int]]:
    """The baseline: the same number of records appended to a 3-member etcd in fenced batches of 1000,
    never trimmed (what etcd would hold without Seguro's retention)."""
    etcd = EtcdCluster(work / "raw", members=3).start()
    points = []
    try:
        genesis = put_bare_genesis(etcd.endpoints, "raw")
        with Coordinator(etcd.endpoints, "raw") as coord:
            won = coord.campaign("raw", coord.grant_lease(60), {}, genesis)
            assert won is not None
            head, every = 0, events // samples
            while head < events:
                records = [pb.Record(event=head + 1 + i, data=b"\x01" * RECORD_BYTES) for i in range(1000)]
                assert coord.append(won.epoch, head, pb.Batch(epoch=won.epoch, first_event=head + 1,
                                                              records=records)).ok  # fmt: skip
                head += 1000
                if head >= (len(points) + 1) * every:
                    points.append((head, db_bytes(etcd.endpoints)))
    finally:
        etcd.stop()
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--retain", type=int, default=2000)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="seguro-bounded-"))
    print(f"{args.events} events, retention {args.retain} events; raw baseline never trims")
    raw = run_raw(work, args.events, 10)
    ship = run_ship(work, args.events, args.retain, 10)
    rows = [(s[0], s[1], r[1], s[1] / r[1]) for s, r in zip(ship, raw, strict=False)]
    for events, seguro, baseline, ratio in rows:
        print(f"{events:>8} events: seguro {seguro / 1e6:7.2f} MB, raw {baseline / 1e6:7.2f} MB, "
              f"ratio {ratio:.2f}")  # fmt: skip
    summary = {"events": args.events, "retain": args.retain, "seconds": round(ship[-1][2], 1),
               "seguro_db_bytes": [s[1] for s in ship], "raw_db_bytes": [r[1] for r in raw]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
