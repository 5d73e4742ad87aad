"""Events per second through the reference ship under each worker protocol, next to the raw baseline of
what protocol 2 adds: one synced LMDB write per event, as vere 4.x's worker commits each event before it
answers.

- protocol 1 (`Serf`): `[%work mil job]` pipelined 32 deep; the king keeps the log (not written here).
- protocol 2 (`Mars`): `[%poke mil ovum]` pipelined 32 deep; the worker writes each event to its pier's
  LMDB log, synced, before it answers.
- raw: the same records put into an LMDB environment opened as vere opens it, one synced transaction
  per event, in this process.

Run: `.venv/bin/python -m benchmarks.bench_runtimes [--events N]`. Prints JSON; not a test.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `seguro` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seguro.urbit import ames  # noqa: E402
from seguro.urbit.launch import reference_ship  # noqa: E402
from seguro.urbit.mars import Mars  # noqa: E402
from seguro.urbit.noun import Noun  # noqa: E402
from seguro.urbit.pier.layout import Meta  # noqa: E402
from seguro.urbit.pier.log import PierLog  # noqa: E402
from seguro.urbit.record import encode_record  # noqa: E402
from seguro.urbit.serf import Serf  # noqa: E402
from seguro.urbit.ship.kernel import BOOT_LIFE, boot_events  # noqa: E402

WALL_S = 1_700_000_000.0
DEPTH = 32


def workload(count: int) -> list[Noun]:
    return [
        ames.datagram_event(WALL_S + i / 1000, "127.0.0.1", 40000 + i % 7, b"packet %d" % i)
        for i in range(count)
    ]


def protocol_1(pier: Path, events: list[Noun]) -> float:
    with Serf(reference_ship(pier, 1), timeout_s=30) as serf:
        serf.play(1, boot_events("~zod", WALL_S))
        start = time.perf_counter()
        for job in events:
            if serf.in_flight == DEPTH:
                serf.next_work_result()
            serf.submit_work(job)
        while serf.in_flight:
            serf.next_work_result()
        return len(events) / (time.perf_counter() - start)


def protocol_2(pier: Path, events: list[Noun]) -> float:
    with PierLog.create(pier, Meta(3, 0, True, BOOT_LIFE)) as log:
        log.append((i, encode_record(0, e)) for i, e in enumerate(boot_events("~zod", WALL_S), 1))
    with Mars(reference_ship(pier, 2), timeout_s=30, work_timeout_s=120) as mars:
        start = time.perf_counter()
        for job in events:
            if mars.in_flight == DEPTH:
                mars.next_poke_result()
            mars.submit_poke(job[1])  # type: ignore[index]
        while mars.in_flight:
            mars.next_poke_result()
        return len(events) / (time.perf_counter() - start)


def raw_lmdb(pier: Path, events: list[Noun]) -> float:
    records = [encode_record(i + 1, e) for i, e in enumerate(events)]
    with PierLog.create(pier, Meta(3, 0, True, BOOT_LIFE)) as log:
        start = time.perf_counter()
        for i, record in enumerate(records, 1):
            log.append([(i, record)])
        return len(records) / (time.perf_counter() - start)


def main(count: int) -> dict[str, float]:
    events = workload(count)
    with tempfile.TemporaryDirectory(prefix="seguro-bench-") as tmp:
        root = Path(tmp)
        p1 = protocol_1(root / "p1", events)
        p2 = protocol_2(root / "p2", events)
        raw = raw_lmdb(root / "raw", events)
    return {
        "events": count,
        "protocol_1_events_per_s": round(p1),
        "protocol_2_events_per_s": round(p2),
        "raw_lmdb_synced_puts_per_s": round(raw),
        "protocol_2_over_protocol_1": round(p2 / p1, 2),
        "protocol_2_over_raw_lmdb": round(p2 / raw, 2),
    }


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--events") + 1]) if "--events" in sys.argv else 5000
    print(json.dumps(main(n)))
